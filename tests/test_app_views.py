"""The app's logic without a server: parsing controls, model allow-list, uploads, and the views
of a cut (tiny model)."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from engineered_latents.config import Settings
from engineered_latents.data import get_dataset
from engineered_latents.errors import UserError
from engineered_latents.ui import views as V
from engineered_latents.ui.models import (
    DEFAULT_CHOICE,
    LOCAL_PREFIX,
    allowed_local_models,
    model_choices,
    model_spec_for,
)
from engineered_latents.ui.upload import stage_upload

HOSTILE = "<b>x</b>"


def _controls(**overrides):
    controls = dict(dataset="demo", start=0, count=3, indices="", model=DEFAULT_CHOICE,
                    mode="scalar", n_eig=8, sharpness=0, clusters=4, seed=0,
                    include_special=False, patch_norm=True)
    controls.update(overrides)
    return controls


@pytest.fixture(scope="module")
def explorer(tiny_clip, tmp_path_factory):
    cache = tmp_path_factory.mktemp("views_cache")
    return V.Explorer(Settings(str(cache), 1, 16), default_model=tiny_clip)


@pytest.fixture(scope="module")
def scalar_view(explorer):
    return explorer.run(explorer.request(**_controls()))


@pytest.fixture(scope="module")
def joint_view(explorer):
    return explorer.run(explorer.request(**_controls(mode="joint", include_special=True)))


# ----------------------------------------------------------------------------- controls


def test_parse_indices():
    assert V.parse_indices("") is None and V.parse_indices(None) is None
    assert V.parse_indices("3, 7 9;12-14") == (3, 7, 9, 12, 13, 14)
    for bad in ("a", "3.5", "5-2", "1, x"):
        with pytest.raises(UserError):
            V.parse_indices(bad)


def test_parse_request(tiny_clip):
    req = V.parse_request(**_controls(indices="1 2", sharpness=0.2, seed=3.0),
                          default_model=tiny_clip)
    assert req.slice.indices == (1, 2) and req.cut.sharpness == 0.2 and req.cut.seed == 3
    assert req.model.name == tiny_clip
    assert V.parse_request(**_controls()).cut.sharpness is None
    for bad in (dict(count=None), dict(start="abc"), dict(count=2.5), dict(sharpness=1.5)):
        with pytest.raises(UserError):
            V.parse_request(**_controls(**bad))
    hash(req)  # sessions keep it and the explorer's memory is keyed by it


def test_model_allow_list(tiny_clip, tmp_path, monkeypatch):
    # a folder of this test's own (pytest's shared temp root holds every test's models)
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny").symlink_to(tiny_clip, target_is_directory=True)
    env = {"EL_MODEL_DIRS": os.pathsep.join([str(tmp_path / "missing"), str(models)])}
    allowed = allowed_local_models(env)
    assert list(allowed.values()) == [os.path.realpath(tiny_clip)]
    label = next(iter(allowed))
    assert (f"local: {label}", LOCAL_PREFIX + label) in model_choices(None, env)
    assert model_spec_for(LOCAL_PREFIX + label, env=env).name == allowed[label]
    assert model_spec_for(DEFAULT_CHOICE).name is None  # default: offline fallback allowed
    assert model_spec_for(DEFAULT_CHOICE, default_model=tiny_clip).name == tiny_clip
    assert model_spec_for("openai/clip-vit-base-patch16").name == "openai/clip-vit-base-patch16"
    assert model_spec_for(" laion/CLIP-ViT-B-32 ", patch_norm=False).patch_norm is False
    refused = [LOCAL_PREFIX + "nope", tiny_clip, "/etc", "../models", "~/x", "a/b/c",
               "a/../../b", HOSTILE, "owner/name"]
    (tmp_path / "owner" / "name").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # "owner/name" is now also a local path: refused
    for choice in refused:
        with pytest.raises(UserError, match="EL_MODEL_DIRS"):
            model_spec_for(choice, env=env)


def test_stage_upload(tmp_path):
    files = []
    for i, colour in enumerate(["red", "blue"]):
        path = tmp_path / f"in {i}.png"
        Image.new("RGB", (10, 20), colour).save(path)
        files.append(str(path))
    folder = stage_upload(files, "a red one\n\n a blue one \n", 8, root=tmp_path / "up")
    names = sorted(p for p in os.listdir(folder) if p.endswith(".png"))
    assert names == ["000_in_0.png", "001_in_1.png"]
    mapping = json.load(open(os.path.join(folder, "captions.json")))
    assert mapping == {"000_in_0.png": "a red one", "001_in_1.png": "a blue one"}
    assert stage_upload(files, "a red one\na blue one", 8, root=tmp_path / "up") == folder
    adapter = get_dataset("upload", data_path=folder)  # the datasets' upload adapter reads it
    assert adapter.size() == 2
    assert [ex.captions for ex in adapter.load([0, 1])] == [("a red one",), ("a blue one",)]
    for bad in [([], "x"), (files, "only one"), (files * 5, "x\n" * 10)]:
        with pytest.raises(UserError):
            stage_upload(bad[0], bad[1], 8, root=tmp_path / "up")


def test_display_crop_is_the_centre_square():
    image = Image.new("RGB", (300, 100), "white")
    image.paste((255, 0, 0), (0, 0, 50, 100))  # red left edge is cropped away
    crop = V.display_crop(image)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    assert crop[:, 0].min() > 200  # no red column left


# ----------------------------------------------------------------------------- views of a run


def test_run_view_arrays(scalar_view):
    run = scalar_view.run
    assert scalar_view.grid == (7, 7) and scalar_view.n_pairs == 6
    for p, info in enumerate(run.pairs):
        assert scalar_view.affinities[p].shape == (50, len(info.tokens))
        assert len(scalar_view.images[(info.example, info.image)]) == 224
    assert np.isfinite(np.concatenate(scalar_view.affinities, axis=1)).all()
    for e, _, high, low in scalar_view.top_words:
        assert run.top_words(e) == {"high": high, "low": low}
    assert [c["size"] for c in scalar_view.clusters] == run.cluster_sizes()
    assert sum(c["size"] for c in scalar_view.clusters) == run.result.eigvec.shape[0]


def test_raw_affinities_match_scalar_nodes(scalar_view):
    """In scalar mode the graph's node features are the raw affinities: the helper that rebuilds
    them from cached embeddings must agree with the pipeline's own nodes."""
    res = scalar_view.run.result
    assert res.mode == "scalar"
    # the all-words eigenvector-1 map of a pair equals patch_map (the library's own view)
    values = V.overlay_values(scalar_view, 1, V.ALL_WORDS, 1, "eigenvector")
    assert np.allclose(values, res.patch_map(1)[:, 1], equal_nan=True)
    # a word's map is its column(s) of the node values
    info = scalar_view.run.pairs[1]
    pos = info.word_positions[1]
    word_map = V.overlay_values(scalar_view, 1, 1, 2, "eigenvector")
    assert np.allclose(word_map[1:], res.node_values(1)[1:, pos, 2].mean(1))
    raw = V.overlay_values(scalar_view, 1, 1, 2, "raw affinity")
    column = info.token_positions.index(pos[0])
    assert np.allclose(raw, scalar_view.affinities[1][:, column:column + len(pos)].mean(1))


def test_pair_views_all_sources(scalar_view, joint_view):
    for view in (scalar_view, joint_view):
        for pair in range(view.n_pairs):
            figs = V.pair_figures(view, pair, 0, 2, "eigenvector", bpe=True, show0=True)
            assert set(figs) == {"overlay", "rgb", "words", "affinity"}
            words = figs["words"].data[0]
            assert np.asarray(words.z).shape == (len(view.run.pairs[pair].tokens),
                                                 view.run.result.n_eig)
        for source in V.OVERLAYS:
            for word in (V.ALL_WORDS, 0):
                fig = V.overlay_figure(view, 0, word, 1, source)
                assert np.asarray(fig.data[1].z).shape == view.grid
        V.spectrum_figure(view)
        V.cluster_figure(view)
    hidden0 = V.word_figure(scalar_view, 0, bpe=False, show0=False)
    assert list(hidden0.layout.xaxis.ticktext)[0] == "1"
    assert np.asarray(hidden0.data[0].z).shape[0] == len(scalar_view.run.pairs[0].words)
    # joint mode with special tokens: the CLS row is in the affinity heatmap
    assert joint_view.run.cut.include_special
    assert V.affinity_figure(joint_view, 0).layout.yaxis.ticktext[0] == "CLS"


def test_bad_pair_or_eigenvector(scalar_view):
    with pytest.raises(UserError, match="pairs 0..5"):
        V.overlay_figure(scalar_view, 6, None, 1)
    with pytest.raises(UserError, match="0..7"):
        V.overlay_figure(scalar_view, 0, None, 8)
    with pytest.raises(UserError, match="Overlay"):
        V.overlay_figure(scalar_view, 0, None, 1, "nonsense")


def test_captions_escaped_in_every_view(scalar_view):
    """A caption with HTML shows as typed in every figure, label and status text."""
    import copy

    view = copy.copy(scalar_view)
    run = copy.deepcopy(scalar_view.run)
    info = run.pairs[0]
    info.caption = HOSTILE + " " + info.caption
    info.words = [HOSTILE] + info.words[1:]
    info.tokens = [HOSTILE] + info.tokens[1:]
    view.run = run
    figs = V.pair_figures(view, 0, 0, 1, "eigenvector", bpe=False, show0=False)
    figs["bpe"] = V.word_figure(view, 0, bpe=True)
    for name, fig in figs.items():
        dumped = json.dumps(json.loads(fig.to_json()))
        assert HOSTILE not in dumped, name
        assert "&lt;b&gt;x&lt;/b&gt;" in dumped, name
    assert HOSTILE not in V._md(HOSTILE) and "&lt;b&gt;" in V._md(HOSTILE)


def test_status_banner_and_timings(scalar_view, explorer):
    status = V.status_markdown(scalar_view, explorer)
    assert "6 pairs" in status and "real weights" in status and "MB" in status
    assert os.sep + "tmp" not in status  # a local model shows by name, not by server path
    assert V.banner_html(scalar_view) == ""
    timings = V.timings_markdown(scalar_view)
    assert "| ncut |" in timings or "from the cache" in timings
    again = explorer.run(explorer.request(**_controls()))
    assert "from the cache" in V.timings_markdown(again)


def test_demo_weights_banner(scalar_view, explorer):
    import copy
    import dataclasses

    from engineered_latents.models import demo_resolved

    view = copy.copy(scalar_view)
    view.run = dataclasses.replace(scalar_view.run, model=demo_resolved())
    banner = V.banner_html(view)
    assert "DEMO WEIGHTS" in banner and 'role="alert"' in banner
    assert "DEMO weights" in V.status_markdown(view, explorer)
    assert "DEMO weights (random weights)" in V.status_markdown(view, explorer)
    # one label everywhere: the toy model is named as the banner and the CLI name it
    from engineered_latents.models import TOY_LABEL, toy_resolved

    view.run = dataclasses.replace(scalar_view.run, model=toy_resolved())
    assert f"DEMO weights ({TOY_LABEL})" in V.status_markdown(view, explorer)
    assert TOY_LABEL in V.banner_html(view) and "random" not in V.status_markdown(view, explorer)


def test_view_rereads_without_new_cut(explorer, scalar_view, monkeypatch):
    calls = []
    monkeypatch.setattr(V, "compute_cuts", lambda *a, **k: calls.append(1))
    view = explorer.view(scalar_view.request)
    assert calls == []
    assert np.array_equal(view.run.result.eigvec, scalar_view.run.result.eigvec)


def test_raw_affinities_equal_a_fresh_encoding(scalar_view, explorer):
    """The raw heatmap's values are the pipeline's similarities, from the embeddings the run
    keeps (float16): the view never loads a model for them."""
    import copy
    import dataclasses

    from engineered_latents.affinity import pair_affinities
    from engineered_latents.data.demo import DemoDataset
    from engineered_latents.features import encode_images, encode_texts
    from engineered_latents.models import load_model

    run = scalar_view.run
    lm = load_model(run.model)
    info = run.pairs[3]
    image = DemoDataset().load([info.example])[0].images[info.image]
    img = encode_images(lm, [image])[0][0]
    txt = encode_texts(lm, [info.caption])[0][0]
    fresh = pair_affinities([img.patches], [txt.tokens], include_special=True).values[0]
    fresh = fresh[:, info.token_positions]
    assert np.allclose(scalar_view.affinities[3], fresh, atol=5e-3)
    # a run without kept embeddings says so (the views never load a model for them)
    bare = copy.deepcopy(run)
    bare.result = dataclasses.replace(run.result, patch_embeddings=None, token_embeddings=None)
    with pytest.raises(UserError, match="keeps no embeddings"):
        V.derive(bare, scalar_view.request, explorer.cache)


def test_the_gallery_shows_whole_images_and_the_overlay_the_models_crop():
    wide = Image.new("RGB", (400, 100), (200, 30, 30))
    thumb = V.thumbnail(wide)
    assert thumb.shape == (56, 224, 3)  # the aspect ratio kept: nothing cut away
    crop = V.display_crop(wide)
    assert crop.shape == (224, 224, 3)  # what the model sees: the centre square
