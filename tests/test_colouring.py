"""The RGB view's colouring: chosen eigenvectors, t-SNE / UMAP over the slice, its own cache."""

import json
import re

import numpy as np
import pytest

import engineered_latents as el
from engineered_latents import colouring, pipeline
from engineered_latents.errors import UserError
from engineered_latents.ui import share


def _run(model, cache, **cut):
    return el.compute_cuts(el.SliceSpec("demo", start=0, count=2),
                           el.CutSpec(n_eig=6, clusters=3, **cut), el.ModelSpec(model),
                           cache=cache)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return el.Cache(tmp_path_factory.mktemp("colour"))


@pytest.fixture(scope="module")
def base(tiny_clip, cache):
    return _run(tiny_clip, cache)


def _minmax(x):
    lo, hi = np.nanmin(x, axis=0), np.nanmax(x, axis=0)
    return (x - lo) / (hi - lo)


@pytest.mark.parametrize("mode", ["scalar", "joint"])
def test_chosen_rgb_indices_select_those_eigenvector_columns(tiny_clip, cache, mode):
    run = _run(tiny_clip, cache, mode=mode, rgb=(4, 1, 2))
    res = run.result
    # oracle: the eigenvector columns 4, 1, 2 of the patch maps / word scores, min-max scaled
    maps = np.stack([res.patch_map(p) for p in range(len(run.pairs))])  # [pairs, 50, 6]
    expected = _minmax(maps.reshape(-1, 6)[:, [4, 1, 2]]).reshape(len(run.pairs), -1, 3)
    np.testing.assert_allclose(run.patch_rgb(), expected, rtol=1e-5, atol=1e-6)
    words = np.concatenate([res.word_scores(p)[info.token_positions]
                            for p, info in enumerate(run.pairs)])
    np.testing.assert_allclose(np.concatenate(run.token_rgb()), _minmax(words[:, [4, 1, 2]]),
                               rtol=1e-5, atol=1e-6)


def test_only_a_colour_change_reuses_the_cut(tiny_clip, cache, base, monkeypatch):
    def no_cut(*a, **k):
        raise AssertionError("the cut was recomputed")

    monkeypatch.setattr(pipeline, "run_ncut", no_cut)
    again = _run(tiny_clip, cache, rgb=(3, 2, 1))
    assert again.cache["cuts"] == "hit" and again.cut.rgb == (3, 2, 1)
    np.testing.assert_array_equal(again.result.eigvec, base.result.eigvec)
    assert not np.allclose(np.nan_to_num(again.patch_rgb()), np.nan_to_num(base.patch_rgb()))

    stages = []
    tsne = el.compute_cuts(el.SliceSpec("demo", start=0, count=2),
                           el.CutSpec(n_eig=6, clusters=3, colour="tsne", perplexity=5),
                           el.ModelSpec(tiny_clip), cache=cache,
                           progress=lambda stage, f: stages.append(stage))
    assert tsne.cache == {"cuts": "hit", "colour": "miss"}
    assert any(s.startswith("t-SNE colouring:") and "anchors" in s for s in stages)
    rgb = tsne.patch_rgb()
    assert rgb.shape == (4, 50, 3)
    assert np.isnan(rgb[:, 0]).all() and not np.isnan(rgb[:, 1:]).any()  # CLS is no node
    assert rgb[:, 1:].min() >= 0 and rgb[:, 1:].max() <= 1 and rgb[:, 1:].std() > 0.05
    tokens = tsne.token_rgb()
    assert [len(t) for t in tokens] == [len(p.tokens) for p in tsne.pairs]
    assert all(t.min() >= 0 and t.max() <= 1 for t in tokens)

    # the colouring has its own cache entry: computed neither cut nor colours again
    monkeypatch.setattr(colouring, "colour_points", no_cut)
    hit = el.compute_cuts(el.SliceSpec("demo", start=0, count=2),
                          el.CutSpec(n_eig=6, clusters=3, colour="tsne", perplexity=5),
                          el.ModelSpec(tiny_clip), cache=cache)
    assert hit.cache == {"cuts": "hit", "colour": "hit"}
    np.testing.assert_array_equal(hit.patch_rgb(), rgb)


def test_patches_and_words_share_one_colouring(base, monkeypatch):
    """One call over every distinct point (patches and words together); shared rows coloured
    alike, and each point's colour is its own row's."""
    calls = []

    def fake(x, method, perplexity, seed):
        calls.append((x.shape, method, seed))
        return np.clip(x[:, :3] * 0 + (np.arange(len(x))[:, None] / len(x)), 0, 1)

    monkeypatch.setattr(colouring, "colour_points", fake)
    spec = el.CutSpec(n_eig=6, clusters=3, colour="umap", seed=7)
    colours = colouring.slice_colours(base, spec)
    patches, tokens = colouring.view_points(base)
    points = np.concatenate([patches, tokens])[:, 1:]
    distinct = np.unique(points[~np.isnan(points).any(1)], axis=0)
    assert calls == [((len(distinct), 5), "umap", 7)]
    flat = np.concatenate([colours.patch.reshape(-1, 3), *colours.tokens])
    for i in (1, 60, len(flat) - 1):
        row = np.flatnonzero((distinct == points[i]).all(1))[0]
        assert flat[i, 0] == pytest.approx(row / len(distinct))
    assert colours.points == len(distinct) and colours.anchors == len(distinct)


@pytest.mark.parametrize("rgb, needle", [
    ((1, 2, 6), "between 0 and n_eig - 1 (5)"),
    ((2, 2, 3), "repeat an eigenvector"),
])
def test_bad_rgb_indices_are_messages_before_any_work(rgb, needle, monkeypatch):
    monkeypatch.setattr(pipeline, "resolve_model", lambda *a: pytest.fail("work started"))
    with pytest.raises(UserError, match=re.escape(needle)):
        el.compute_cuts(el.SliceSpec(), el.CutSpec(n_eig=6, rgb=rgb))


def test_automatic_rgb_of_a_small_cut_may_repeat():
    assert el.CutSpec(n_eig=2).rgb == (1, 1, 1)
    colouring.check_rgb((1, 1, 1), 2)  # the automatic choice passes
    with pytest.raises(UserError, match="repeat"):
        colouring.check_rgb((1, 1, 2), 4)


def test_tsne_on_too_few_points_says_how_many_the_perplexity_and_what_to_do(base):
    with pytest.raises(UserError) as e:
        colouring.slice_colours(base, el.CutSpec(n_eig=6, colour="tsne", perplexity=400))
    points = np.concatenate(colouring.view_points(base))[:, 1:]
    n = len(np.unique(points[~np.isnan(points).any(1)], axis=0))  # CLS rows are no node
    assert 100 < n < 800
    text = str(e.value)
    assert "perplexity 400 needs at least 800 points" in text
    assert f"has {n} distinct patches and words" in text
    assert f"lower the perplexity to {n // 2} or less" in text and "rgb" in text
    with pytest.raises(UserError, match="UMAP needs at least 16"):
        colouring.check_points("umap", 10, 30)


def test_parse_rgb():
    assert colouring.parse_rgb("4, 1 2") == (4, 1, 2)
    assert colouring.parse_rgb([1, 2, 3]) == (1, 2, 3)
    for bad, needle in [("1, 2", "exactly three"), ("1, x, 3", "whole numbers"),
                        ("1, -2, 3", "whole numbers"), ("1, 2.5, 3", "whole numbers")]:
        with pytest.raises(UserError, match=re.escape(needle)):
            colouring.parse_rgb(bad)


def test_deep_link_round_trip_of_the_colour_controls():
    defaults = {name: share.FIELDS[name] and None for name in share.FIELDS}
    defaults.update(rgb="1, 2, 3", colour="rgb", perplexity=30)
    query = share.query({**defaults, "rgb": "4, 1, 2", "colour": "tsne", "perplexity": 12},
                        defaults)
    assert "rgb=4%2C+1%2C+2" in query and "colour=tsne" in query and "perplexity=12" in query
    from urllib.parse import parse_qsl

    values, problems = share.parse(dict(parse_qsl(query[1:])), defaults)
    assert problems == []
    assert (values["rgb"], values["colour"], values["perplexity"]) == ("4, 1, 2", "tsne", 12)
    bad, problems = share.parse({"rgb": "1,1", "colour": "pca", "perplexity": "1"}, defaults)
    assert (bad["rgb"], bad["colour"], bad["perplexity"]) == ("1, 2, 3", "rgb", 30)
    assert len(problems) == 3 and "exactly three" in problems[0]


@pytest.mark.slow
def test_one_real_umap_colouring_of_a_tiny_input():
    x = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    rgb = colouring.colour_points(x, "umap", seed=0)
    assert rgb.shape == (40, 3) and rgb.min() >= 0 and rgb.max() <= 1 and rgb.std() > 0.05
    assert colouring.umap_ready()
    assert "compiles" not in colouring.progress_text("umap", 40)


def test_cli_colours_and_its_too_few_points_message(tiny_clip, cache, base, tmp_path, capsys):
    from engineered_latents.__main__ import main

    # the module's slice and cut (from its cache): only the colouring is the CLI's own
    base = ["cuts", "--model", tiny_clip, "--count", "2", "--n-eig", "6", "--clusters", "3",
            "--cache-dir", str(cache.directory), "--colour", "tsne", "--rgb", "3", "1", "2"]
    assert main([*base, "--perplexity", "500", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "t-SNE with perplexity 500 needs at least 1000 points" in err
    assert "Traceback" not in err
    assert main([*base, "--perplexity", "5", "--out", str(tmp_path / "o")]) == 0
    assert "colour" in capsys.readouterr().out  # timings and cache lines name it
    arrays = np.load(tmp_path / "o" / "cuts.npz")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["settings"]["cut"]["colour"] == "tsne"
    assert summary["settings"]["cut"]["rgb"] == [3, 1, 2]
    assert arrays["patch_rgb"].shape == (4, 50, 3) and arrays["token_rgb"].shape[2] == 3
    assert np.nanmin(arrays["token_rgb"]) >= 0 and np.nanmax(arrays["token_rgb"]) <= 1


def test_page_controls_recolour_a_run_from_the_cached_cut(tiny_clip, cache, base):
    from engineered_latents.config import Settings
    from engineered_latents.ui import views as V
    from engineered_latents.ui.models import DEFAULT_CHOICE

    explorer = V.Explorer(Settings(str(cache.directory), 1, 16), tiny_clip, cache=cache)
    controls = dict(dataset="demo", start=0, count=2, indices="", model=DEFAULT_CHOICE,
                    mode="scalar", n_eig=6, sharpness=0, clusters=3, seed=0,
                    include_special=False, patch_norm=True)
    assert explorer.request(**controls, rgb="1, 2, 3").cut.rgb == (1, 2, 3)  # automatic
    assert explorer.request(**{**controls, "n_eig": 2}, rgb="1, 2, 3").cut.rgb == (1, 1, 1)
    request = explorer.request(**controls, rgb="4 1 2", colour="tsne", perplexity=5)
    assert (request.cut.rgb, request.cut.colour, request.cut.perplexity) == ((4, 1, 2), "tsne", 5)
    view = explorer.run(request)
    assert view.run.cache["cuts"] == "hit"  # the fixture's cut, recoloured
    assert V.rgb_title(view).startswith("t-SNE (perplexity 5) of eigenvectors 1-5")
    np.testing.assert_array_equal(view.patch_rgb, np.nan_to_num(view.run.patch_rgb(), nan=0.5))
    assert V.rgb_figure(view, 1) is not None
    rgb_view = explorer.run(explorer.request(**controls, rgb="4, 1, 2"))
    assert V.rgb_title(rgb_view) == "eigenvectors (4, 1, 2) as RGB"
    for bad, needle in [(dict(rgb="1, 2, 9"), "between 0 and n_eig - 1 (5)"),
                        (dict(rgb="1, 2"), "exactly three"), (dict(colour="pca"), "colour"),
                        (dict(colour="tsne", perplexity=1), "Perplexity is 1")]:
        with pytest.raises(UserError, match=re.escape(needle)):
            explorer.run(explorer.request(**controls, **bad))


def test_umap_warm_up_runs_once_in_the_background_and_the_progress_says_so(monkeypatch):
    import threading

    import ncut_pytorch.color as nc

    calls, release = [], threading.Event()

    def fake_umap(x, **kw):
        calls.append((tuple(x.shape), kw["seed"]))
        release.wait(10)
        return x[:, :3]

    monkeypatch.setattr(nc, "umap_color", fake_umap)
    monkeypatch.setattr(colouring, "_UMAP_READY", threading.Event())
    monkeypatch.setattr(colouring, "_WARM_THREAD", None)
    assert "first use in this server compiles" in colouring.progress_text("umap", 5000)
    thread = colouring.warm_umap()
    assert colouring.warm_umap() is thread  # once
    assert "still compiling in the background" in colouring.progress_text("umap", 5000)
    assert "fitted on 1,000 anchors" in colouring.progress_text("umap", 5000)
    release.set()
    thread.join(10)
    assert calls == [((64, 4), 0)] and colouring.umap_ready()
    assert "compil" not in colouring.progress_text("umap", 5000)


def test_perf_figure_of_the_colouring(tiny_clip, monkeypatch):
    from engineered_latents import perf_colouring
    from engineered_latents.models import load_model, resolve_model
    from engineered_latents.perf import synthetic_examples

    monkeypatch.setattr(colouring, "colour_points",
                        lambda x, method, perplexity, seed: np.full((len(x), 3), 0.5))
    lm = load_model(resolve_model(tiny_clip))
    report = perf_colouring.measure(lm, synthetic_examples(4))
    assert report["pairs"] == 4 and set(report["seconds"]) == {"rgb", "tsne"}  # no UMAP < 64
    assert 0 < report["anchors"] == report["points"] <= 4 * 50 + 40
    assert report["nodes"] > report["points"]  # scalar nodes: patch x token
    line = perf_colouring.table_lines(report)[0]
    assert line.startswith("4 pairs: colouring (") and "tsne" in line and "NCut" in line


def test_compare_sides_share_one_colouring(tiny_clip, cache, base, monkeypatch):
    calls = []

    def fake(x, method, perplexity, seed):
        calls.append(len(x))
        return np.tile(np.linspace(0, 1, len(x))[:, None], (1, 3))

    monkeypatch.setattr(colouring, "colour_points", fake)
    joint = _run(tiny_clip, cache, mode="joint")
    spec = el.CutSpec(n_eig=6, clusters=3, colour="tsne", perplexity=5)
    a, b = colouring.shared_colours([base, joint], spec)
    distinct = set()
    for run in (base, joint):
        points = np.concatenate(colouring.view_points(run))[:, 1:]
        distinct |= {tuple(r) for r in points[~np.isnan(points).any(1)]}
    assert calls == [len(distinct)]  # one embedding over both sides' points
    assert a.points == b.points == len(distinct)
    assert base.colours is a and joint.colours is b  # each side's views read its share
    assert a.patch.shape == (4, 50, 3) and b.patch.shape == (4, 50, 3)
