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


def test_cli_colours_and_its_too_few_points_message(tiny_clip, tmp_path, capsys):
    from engineered_latents.__main__ import main

    base = ["cuts", "--model", tiny_clip, "--count", "1", "--n-eig", "4", "--cache-dir",
            str(tmp_path / "c"), "--colour", "tsne", "--rgb", "3", "1", "2"]
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
    assert arrays["patch_rgb"].shape == (2, 50, 3) and arrays["token_rgb"].shape[2] == 3
    assert np.nanmin(arrays["token_rgb"]) >= 0 and np.nanmax(arrays["token_rgb"]) <= 1
