"""The Compare tab and the paired Benchmarks table through the app's API (gradio_client, the
tiny CLIP models of conftest): a run and a pair switch against the library's own comparison, a
model against itself, bad input as messages, deep links; and the share fields it adds."""

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from plotly_helpers import array as _array
from plotly_helpers import figure as _figure

import engineered_latents as el
from engineered_latents.compare import compare_cuts
from engineered_latents.ui import share
from engineered_latents.ui.compare import MATCH_HEADERS

OUTPUTS = ["note", "pair", "eig", "patch_a", "patch_b", "words_a", "words_b", "diff",
           "emphasis", "rgb_a", "rgb_b", "matches", "agreement", "correlation"]
PAIR_OUTPUTS = ["patch_a", "patch_b", "words_a", "words_b", "diff", "emphasis", "rgb_a",
                "rgb_b"]
RESTORED = ["dataset", "start", "count", "indices", "model", "mode", "n_eig", "sharpness",
            "clusters", "seed", "special", "patch_norm", "crossed", "model_b", "layer_a",
            "layer_b", "rgb", "colour", "perplexity"]


@pytest.fixture(scope="module")
def small(tiny_clip_small_grid):
    """The 4 x 4 grid model as the page names it: a folder listed in EL_MODEL_DIRS."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EL_MODEL_DIRS", tiny_clip_small_grid)
        yield "local:" + Path(tiny_clip_small_grid).name


@pytest.fixture(scope="module")
def server(app_server, small):
    return app_server


def _client(server, **params):
    kwargs = {"httpx_kwargs": {"params": params}} if params else {}
    return Client(server[1], verbose=False, download_files=False, **kwargs)


def _compare(client, model_b="default", layer_b=None, mode="scalar", count=2, n_eig=8,
             **kw):
    args = dict(dataset="demo", start=0, count=count, indices="", model_a="default",
                layer_a=None, model_b=model_b, layer_b=layer_b, mode=mode, n_eig=n_eig,
                sharpness=0, clusters=0, seed=0, include_special=False, patch_norm=True,
                crossed=False)
    assert set(kw) <= set(args), kw
    args.update(kw)  # (the order is the inputs' order: /compare takes them by position)
    out = dict(zip(OUTPUTS, client.predict(*args.values(), api_name="/compare")))
    out["note"] = out["note"].replace("\\", "")  # Markdown's escapes: the text as shown
    return out


def _z(output) -> np.ndarray:
    return _array(_figure(output).data[-1].z).astype(np.float64)


def _library(tiny_clip, other, mode="scalar", count=2, n_eig=8, tmp_path=None):
    """The same comparison straight from the library, in its own cache."""
    return compare_cuts(el.SliceSpec("demo", 0, count), el.CutSpec(mode=mode, n_eig=n_eig),
                        [el.ModelSpec(tiny_clip), el.ModelSpec(other)],
                        cache=el.Cache(tmp_path))


def test_compare_two_models_shows_the_librarys_shared_basis(server, small, tiny_clip,
                                                            tiny_clip_small_grid, tmp_path):
    client = _client(server)
    out = _compare(client, small)
    run = _library(tiny_clip, tiny_clip_small_grid, tmp_path=tmp_path)
    a, b = run.runs
    assert "4 pairs, scalar mode" in out["note"] and "tiny_clip_64" in out["note"]
    assert "4x4" in out["note"] and "7x7" in out["note"]  # the grids differ: said
    assert [c[1] for c in out["pair"]["choices"]] == [0, 1, 2, 3]
    assert out["eig"]["maximum"] == 7
    # patch maps on each model's own grid, eigenvector 1 of the shared basis
    assert _z(out["patch_a"]).shape == (7, 7) and _z(out["patch_b"]).shape == (4, 4)
    np.testing.assert_allclose(_z(out["patch_a"]).ravel(), a.result.patch_map(0)[1:, 1],
                               atol=1e-5)
    np.testing.assert_allclose(_z(out["patch_b"]).ravel(), b.result.patch_map(0)[1:, 1],
                               atol=1e-5)
    # word heatmaps in the shared basis and their difference
    wa, wb = a.word_level_scores(0)[:, 1:], b.word_level_scores(0)[:, 1:]
    np.testing.assert_allclose(_z(out["words_a"]), wa, atol=1e-5)
    np.testing.assert_allclose(_z(out["words_b"]), wb, atol=1e-5)
    np.testing.assert_allclose(_z(out["diff"]), wb - wa, atol=1e-5)
    # the analyses' plots carry the library's numbers; 2 examples share too few words for a
    # word agreement matrix (all 1 by construction), and the grids differ (no node matrix)
    ag = run.analyses["agreement"]
    assert ag["nodes"] is None and ag["top_words"] == ag["n_words"]
    assert "1 by construction" in _figure(out["agreement"]).layout.annotations[0].text
    pearson_a = [r["pearson"] for r in run.analyses["clip_correlation"]["a"]]
    corr = _figure(out["correlation"])
    assert [t.name for t in corr.data] == ["Pearson A", "Spearman A", "Pearson B",
                                           "Spearman B"]
    np.testing.assert_allclose(_array(corr.data[0].y), pearson_a, atol=1e-9)
    changes = [r["change"] for r in run.analyses["word_emphasis"]["1"]]
    np.testing.assert_allclose(_array(_figure(out["emphasis"]).data[0].x), changes, atol=1e-9)
    assert out["matches"]["headers"] == MATCH_HEADERS and out["matches"]["data"] in ([], [[]])

    # another pair and eigenvector: no new cut, the same basis
    cut_before = len(server[0].parts["compare"]._views._items)
    views = dict(zip(PAIR_OUTPUTS, client.predict(2, 3, api_name="/compare_pair")))
    assert len(server[0].parts["compare"]._views._items) == cut_before
    np.testing.assert_allclose(_z(views["patch_b"]).ravel(), b.result.patch_map(2)[1:, 3],
                               atol=1e-5)
    np.testing.assert_allclose(_z(views["diff"]), b.word_level_scores(2)[:, 1:]
                               - a.word_level_scores(2)[:, 1:], atol=1e-5)
    changes = [r["change"] for r in run.analyses["word_emphasis"]["3"]]
    np.testing.assert_allclose(_array(_figure(views["emphasis"]).data[0].x), changes,
                               atol=1e-9)
    with pytest.raises(AppError, match="greater than maximum value 7"):  # Gradio's check
        client.predict(0, 8, api_name="/compare_pair")

    # 5 examples share more words than k: the word agreement matrix
    out = _compare(client, small, count=5)
    ag = _library(tiny_clip, tiny_clip_small_grid, count=5, tmp_path=tmp_path).analyses[
        "agreement"]
    assert ag["top_words"] < ag["n_words"]
    np.testing.assert_allclose(_z(out["agreement"]), ag["words"])


def test_a_model_against_itself_differs_by_nothing(server):
    out = _compare(_client(server), "default", count=2)
    assert "zero by construction" in out["note"]
    assert np.array_equal(_z(out["words_a"]), _z(out["words_b"]))
    assert not _z(out["diff"]).any()
    assert np.array_equal(_z(out["patch_a"]), _z(out["patch_b"]))
    assert not _array(_figure(out["emphasis"]).data[0].x).any()
    agreement = _z(out["agreement"])  # the same node set: node agreement, 1 on the diagonal
    assert "node agreement" in _figure(out["agreement"]).layout.title.text
    assert np.array_equal(np.diag(agreement), np.ones(len(agreement)))


def test_joint_mode_lists_the_eigenvector_matches(server, small, tiny_clip,
                                                  tiny_clip_small_grid, tmp_path):
    out = _compare(_client(server), small, mode="joint", n_eig=6)
    run = _library(tiny_clip, tiny_clip_small_grid, "joint", n_eig=6, tmp_path=tmp_path)
    rows = out["matches"]["data"]
    assert [[r[0], r[1]] for r in rows] == [[m["a"], m["b"]] for m in run.matches[1:]]
    assert [r[2] for r in rows] == pytest.approx([m["correlation"] for m in run.matches[1:]],
                                                 abs=1e-4)
    assert {r[4] for r in rows} <= {"matched", "weak: no real counterpart"}
    assert "joint mode" in out["note"]


def test_bad_input_is_a_message_and_the_app_answers_on(server, small):
    client = _client(server)
    with pytest.raises(AppError, match=r"Model b \(.*\).*layer"):
        _compare(client, small, layer_b=99)
    with pytest.raises(AppError, match="Layer A: layer is 5000"):
        _compare(client, small, layer_a=5000)
    with pytest.raises(AppError, match="Model B:.*EL_MODEL_DIRS"):
        _compare(client, "/etc")
    with pytest.raises(AppError, match="Press Run first"):
        _client(server).predict(0, 1, api_name="/compare_pair")
    out = _compare(client, small, layer_b=1, count=1)  # a valid layer: the app still answers
    assert "B: tiny_clip_64" in out["note"] and "layer 1" in out["note"]


def test_deep_link_restores_the_compare_tab(server, small):
    link = {"tab": "compare", "model_b": small, "layer_b": "1", "start": "3", "count": "2",
            "mode": "joint", "eig": "2", "pair": "1"}
    loaded = _client(server, **link).predict(api_name="/compare_load")
    controls = dict(zip(RESTORED, loaded[:len(RESTORED)]))
    assert (controls["model_b"], controls["layer_b"], controls["start"], controls["count"],
            controls["mode"], controls["model"], controls["layer_a"]) == \
        (small, 1, 3, 2, "joint", "default", None)
    # (the tab selection is a layout update, not in the API's answer: the browser test sees it)
    assert len(loaded) == len(RESTORED) + 1 and loaded[-1] is True  # the page then runs it
    # the Explore tab keeps its default view on a compare link
    explore = _client(server, **link).predict(api_name="/load")
    controls = len(server[0].parts["explore"].restore_outputs)  # then the note, the status
    assert explore[-1] is False and "demo 0..7" in explore[controls + 1]

    # a bad value keeps its default, the rest applies
    loaded = _client(server, tab="compare", layer_b="x", layer_a="9999",
                     count="2").predict(api_name="/compare_load")
    controls = dict(zip(RESTORED, loaded[:len(RESTORED)]))
    assert (controls["layer_b"], controls["layer_a"], controls["count"]) == (None, None, 2)
    # no compare link: the Compare tab's controls are left alone
    plain = _client(server, start="4").predict(api_name="/compare_load")
    assert plain[-1] is False

    # the link button writes what /compare_load reads back
    values = dict(zip(RESTORED, ["demo", 3, 2, "", "default", "joint", 20, 0, 0, 0, False,
                                 True, False, small, None, 1, "1, 2, 3", "rgb", 30]))
    query = _client(server).predict(*values.values(), api_name="/compare_link")
    assert query == f"?start=3&count=2&mode=joint&tab=compare&model_b={small.replace(':', '%3A')}" \
        "&layer_b=1"


def test_share_parses_the_compare_fields():
    fields = {**share.FIELDS, **share.COMPARE_FIELDS}
    defaults = {"tab": "explore", "model_b": "default", "layer_a": None, "layer_b": None,
                "start": 0}
    values, warnings = share.parse({"tab": "compare", "layer_a": "-2", "layer_b": "1.5",
                                    "model_b": "x" * 600, "start": "7"}, defaults, None, fields)
    assert (values["tab"], values["layer_a"], values["layer_b"], values["model_b"],
            values["start"]) == ("compare", -2, None, "default", 7)
    assert len(warnings) == 2 and any("layer_b" in w for w in warnings)
    assert any("model_b" in w and "too long" in w for w in warnings)
    _, warnings = share.parse({"tab": "<b>x</b>"}, defaults, None, fields)
    assert warnings and "<b>" not in warnings[0]
    assert share.is_compare_link({"tab": "compare", "start": "3"})
    assert not share.is_link({"tab": "compare", "start": "3"})
    assert share.is_link({"tab": "explore", "start": "3"}) and share.is_link({"start": "3"})


# ----------------------------------------------------------------------------- paired benchmarks


def _final(name, model, cache):
    from engineered_latents.benchmarks import run_benchmark

    *_, last = run_benchmark(name, el.ModelSpec(model, dtype="float32"), None, None, cache, 8)
    return last


def test_paired_benchmark_table_and_flipped_items(server, small, tiny_clip,
                                                  tiny_clip_small_grid, tmp_path):
    from scipy.stats import binomtest

    from engineered_latents.ui.bench import FLIP_HEADERS, PAIRED_HEADERS

    client = _client(server)
    note, table, chart, flips = client.predict(["demo"], 0, "default", 8, small,
                                               api_name="/benchmark")
    assert table["headers"] == PAIRED_HEADERS and flips["headers"] == FLIP_HEADERS
    rows = {r[1]: dict(zip(PAIRED_HEADERS, r)) for r in table["data"]}
    assert list(rows) == ["text", "image", "group"]
    # the oracle: both models run straight through the library, paired by hand
    cache = el.Cache(tmp_path)
    a, b = _final("demo", tiny_clip, cache), _final("demo", tiny_clip_small_grid, cache)
    n_flips = 0
    for metric, row in rows.items():
        x, y = a.hits[metric], b.hits[metric]
        assert (row["A"], row["B"], row["n"]) == (a.metrics[metric], b.metrics[metric], 24)
        assert row["B - A"] == pytest.approx(100 * (y.mean() - x.mean()), abs=0.01)
        assert row["paired 95% CI low"] <= row["B - A"] <= row["paired 95% CI high"]
        only_a, only_b = int((x & ~y).sum()), int((~x & y).sum())
        assert (row["A only"], row["B only"]) == (only_a, only_b)
        want = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        assert row["p (McNemar)"] == pytest.approx(want, rel=1e-3)
        n_flips += only_a + only_b
    listed = [dict(zip(FLIP_HEADERS, r)) for r in flips["data"]]
    assert len(listed) == n_flips > 0
    text_a_only = [int(r["item"]) for r in listed
                   if r["metric"] == "text" and r["right"] == "A right, B wrong"]
    assert text_a_only == [int(i) for i in np.flatnonzero(a.hits["text"] & ~b.hits["text"])]
    chart = _figure(chart)
    assert list(_array(chart.data[0].y)) == [r["B - A"] for r in rows.values()]

    # a flipped item opens in the Compare tab with both models and both images and captions
    opened = client.predict(0, api_name="/bench_flip_open")
    assert "Compare tab" in opened[0] and opened[1] is True  # note; the page then runs it
    controls = dict(zip(RESTORED, opened[2:]))  # (the tab selection is not in the answer)
    first = listed[0]
    assert (controls["dataset"], controls["indices"], controls["model"], controls["model_b"],
            controls["crossed"]) == ("demo", first["dataset indices"], "default", small, True)
    out = _compare(client, small, count=1, indices=controls["indices"], crossed=True)
    assert len(out["pair"]["choices"]) == 4  # 2 images x 2 captions
    with pytest.raises(AppError, match="no flipped item 9999"):
        client.predict(9999, api_name="/bench_flip_open")


def test_paired_benchmark_of_a_model_with_itself(server):
    _, table, _, flips = _client(server).predict(["demo"], 8, "default", 8, "default",
                                                 api_name="/benchmark")
    from engineered_latents.ui.bench import PAIRED_HEADERS

    for row in (dict(zip(PAIRED_HEADERS, r)) for r in table["data"]):
        assert (row["B - A"], row["p (McNemar)"], row["A only"], row["B only"]) == (0, 1, 0, 0)
    assert flips["data"] in ([], [[]]) or not any(flips["data"][0])


def test_history_lists_comparisons_and_restores_them(server, small):
    from types import SimpleNamespace

    client = _client(server)
    _compare(client, small, layer_b=1, mode="joint", count=3, n_eig=7, start=2)
    client.predict(["demo"], 8, "default", 8, small, api_name="/benchmark")
    bench, tab = server[0].parts["bench"], server[0].parts["compare"]
    rows, records = bench.on_history()
    assert rows[0][1] == "bench-compare" and "vs tiny_clip_64" in rows[0][2]
    assert "paired" in rows[0][3] and rows[0][4].startswith("text +")
    assert not any("/tmp" in str(cell) for row in rows for cell in row)  # no server paths
    # a paired bench run: the benchmark, its items and both models, then Run
    out = bench.on_history_select(records, SimpleNamespace(index=[0, 0]))
    assert out[:4] == (["demo"], 8, "default", True)
    assert out[8 + len(bench.explore.restore_outputs)] == small
    # a comparison: the Compare tab's controls, then its Run
    row = next(i for i, r in enumerate(records) if r["kind"] == "compare"
               and r["parameters"]["slice"]["start"] == 2)
    assert "vs tiny_clip_64" in rows[row][2] and "joint, 7 eig, 6 pairs" in rows[row][3]
    assert "layers last vs 1" in rows[row][3] and "6 matches" in rows[row][4]
    out = bench.on_history_select(records, SimpleNamespace(index=[row, 0]))
    assert out[5].selected == "compare" and out[6] is False and out[3] is False
    tail = out[8 + len(bench.explore.restore_outputs):]
    assert tail[1] is True  # the Compare tab's Run is pressed
    controls = dict(zip(RESTORED, tail[3:]))
    assert (controls["start"], controls["count"], controls["mode"], controls["n_eig"],
            controls["model_b"], controls["layer_b"]) == (2, 3, "joint", 7, small, 1)
    assert len(tail) == 3 + len(tab.restore_outputs)
