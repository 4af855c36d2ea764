"""The Benchmarks tab's Items view: its plain functions on hand-made results, then through
gradio_client (a benchmark run, failures filtered, a row opened on the Explore tab, the item's
captions shown with their scores; a deep link to a SugarCrepe item served from EL_DATA_ROOT)."""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
from fixtures_data import write_aro_order, write_sugarcrepe
from gradio_client import Client
from plotly_helpers import array as _array
from plotly_helpers import figure as _figure
from test_compositional_bench import _by_hand

from engineered_latents.__main__ import main
from engineered_latents.config import Settings
from engineered_latents.data import get_dataset
from engineered_latents.errors import UserError
from engineered_latents.ui import items as I
from engineered_latents.ui.explore import mirror_path
from engineered_latents.ui.views import _md

CHOICE = {"benchmark": "sugarcrepe-swap-att", "model": "m", "examples": [
    {"index": 4, "scores": [0.30, 0.25], "correct": True, "margin": 0.05, "tag": "swap-att"},
    {"index": 7, "scores": [0.20, 0.26], "correct": False, "margin": -0.06, "tag": "swap-att"},
]}
ORDER = {"benchmark": "aro-coco-order", "model": "m", "examples": [  # no margin kept: computed
    {"index": 2, "scores": [0.30, 0.31, 0.10, 0.29, 0.05], "correct": False, "tag": "x"},
]}
# Winoground-style s[c][i]: text margin min(s00 - s10, s11 - s01)
DEMO = {"benchmark": "demo", "model": "m", "examples": [
    {"index": 0, "scores": [[0.30, 0.20], [0.25, 0.28]], "text": True, "image": True,
     "group": True},
    {"index": 1, "scores": [[0.30, 0.29], [0.32, 0.28]], "text": False, "image": False,
     "group": False},
]}
LOCALIZATION = {"benchmark": "localization", "model": "m", "cases": 3,
                "metrics": {"raw": 66.67, "scalar": 33.33, "joint": 0.0, "chance": 10.0},
                "examples": [
                    {"index": 1, "word": "red", "kind": "colour", "caption": "a red square",
                     "raw": True, "scalar": False, "joint": False, "chance": 0.1},
                    {"index": 1, "word": "square", "kind": "shape", "caption": "a red square",
                     "raw": True, "scalar": True, "joint": False, "chance": 0.2},
                    {"index": 3, "word": "blue", "kind": "colour", "caption": "a blue disc",
                     "raw": False, "scalar": False, "joint": False, "chance": 0.0}]}


def test_items_carry_margins_verdicts_and_the_pointing_game():
    items = I.items_of([CHOICE, ORDER, DEMO, LOCALIZATION])
    by = {(it["benchmark"], it["index"]): it for it in items}
    assert by[("aro-coco-order", 2)]["margin"] == pytest.approx(0.30 - 0.31)
    assert by[("demo", 0)]["margin"] == pytest.approx(min(0.30 - 0.25, 0.28 - 0.20))
    assert by[("demo", 1)]["margin"] == pytest.approx(min(0.30 - 0.32, 0.28 - 0.29))
    assert by[("demo", 1)]["correct"] is False and by[("demo", 0)]["correct"] is True
    assert by[("sugarcrepe-swap-att", 7)]["margin"] == -0.06  # the runner's own margin
    # the pointing game: demo item 1 has 2 cases (raw 2 hits, scalar 1, joint 0)
    pointing = by[("demo", 1)]["pointing"]
    assert [pointing[m] for m in ("raw", "scalar", "joint")] == [[2, 2], [1, 2], [0, 2]]
    assert pointing["chance"] == pytest.approx(15.0)
    assert by[("demo", 0)]["pointing"] is None and by[("localization", 3)]["margin"] is None
    row = I.item_rows([by[("demo", 1)]])[0]
    assert row[:5] == ["demo", 1, "", "no", round(min(0.30 - 0.32, 0.28 - 0.29), 4)]
    assert row[6] == "raw 2/2 · scalar 1/2 · joint 0/2 (chance 15%)"
    assert "raw 66.7%" in I.localization_note([CHOICE, LOCALIZATION])
    assert I.localization_note([CHOICE]) == ""


def test_filters_failures_benchmark_tag_and_margin_range():
    items = I.items_of([CHOICE, ORDER, DEMO, LOCALIZATION])
    keys = lambda its: [(it["benchmark"], it["index"]) for it in its]  # noqa: E731
    failures = I.filter_items(items, failures_only=True)
    assert keys(failures) == [("sugarcrepe-swap-att", 7), ("demo", 1), ("aro-coco-order", 2)]
    assert keys(I.filter_items(items, benchmark="demo")) == [("demo", 1), ("demo", 0)]
    assert keys(I.filter_items(items, tag="swap-att")) == [("sugarcrepe-swap-att", 7),
                                                           ("sugarcrepe-swap-att", 4)]
    # bounds are inclusive; items without a margin drop out of a bounded range
    assert keys(I.filter_items(items, margin_min=-0.021, margin_max=0.05)) == [
        ("demo", 1), ("aro-coco-order", 2), ("demo", 0), ("sugarcrepe-swap-att", 4)]
    assert keys(I.filter_items(items))[-2:] == [("localization", 1), ("localization", 3)]
    assert I.choices(items, "tag") == ["all", "swap-att", "x"]
    assert I.bound("", "m") is None and I.bound("-0.5", "m") == -0.5
    with pytest.raises(UserError, match="give a number"):
        I.bound("abc", "Margin from")


def test_the_views_filter_handler_resets_a_tag_of_another_benchmark():
    view = I.ItemsView.__new__(I.ItemsView)  # the handler alone, no Blocks
    view.explore = SimpleNamespace(explorer=SimpleNamespace(default_model="/models/other"))
    note, _, rows, shown, benchmarks, tags = view.on_filter([CHOICE, DEMO], None, False, "demo",
                                                            "swap-att", "", " ")
    assert [r[:2] for r in rows] == [["demo", 1], ["demo", 0]] and "2 of 4 items" in note
    assert benchmarks["choices"] == ["all", "sugarcrepe-swap-att", "demo"]
    assert tags["value"] == "all" and tags["choices"] == ["all"]  # demo items have no tags
    assert {it["model"] for it in shown} == {"m"}  # another model than the page's default
    view.explore.explorer.default_model = "/models/m"  # results JSON names it "m"
    assert {it["model"] for it in view.on_filter([CHOICE])[3]} == {"default"}
    with pytest.raises(Exception, match="Margin to"):
        view.on_filter([CHOICE], None, False, "all", "all", "", "x")


def test_explore_values_and_the_card_pair_scores():
    defaults = {"dataset": "demo", "start": 3, "count": 8, "indices": "", "model": "default",
                "crossed": False, "all_captions": True, "mode": "joint"}
    demo = next(it for it in I.items_of([DEMO], "default") if it["index"] == 1)
    values = I.explore_values(demo, defaults)
    assert (values["dataset"], values["indices"], values["crossed"], values["all_captions"],
            values["mode"], values["model"]) == ("demo", "1", True, False, "joint", "default")
    choice = I.items_of([CHOICE])[1]
    assert I.explore_values(choice, defaults)["crossed"] is False
    # crossed pairs in Example.crossed's order: (0, 0), (1, 1), (0, 1), (1, 0)
    pairs = [SimpleNamespace(image=i, caption_index=c, caption=f"caption {c}")
             for i, c in ((0, 0), (1, 1), (0, 1), (1, 0))]
    assert [I.pair_score(demo, p.image, p.caption_index) for p in pairs] == \
        [0.30, 0.28, 0.32, 0.29]  # s[c][i]
    card = I.item_card(demo, pairs)
    assert "| 2 | 0 | caption 1 | crossed | 0.3200 |" in card and "**wrong**" in card
    card = I.item_card(choice, pairs[:1] + [SimpleNamespace(image=0, caption_index=1,
                                                            caption="neg")])
    assert "| 0 | 0 | caption 0 | correct caption | 0.2000 |" in card
    assert "| 1 | 0 | neg | negative | 0.2600 |" in card
    sl = SimpleNamespace(dataset="demo", indices=(1,))
    assert I.shows_item(sl, demo) and not I.shows_item(sl, choice)


def test_mirror_path_follows_el_data_root(tmp_path):
    (tmp_path / "SugarCrepe_swap_att").mkdir()
    settings = Settings.from_env({"EL_DATA_ROOT": str(tmp_path)})
    assert mirror_path("sugarcrepe-swap-att", settings) == str(tmp_path / "SugarCrepe_swap_att")
    assert mirror_path("sugarcrepe-add-obj", settings) is None  # no such folder
    assert mirror_path("demo", settings) is None
    assert mirror_path("sugarcrepe-swap-att", Settings.from_env({})) is None


def test_an_order_item_opens_with_all_five_captions(tiny_clip, tmp_path):
    """ARO order items: one image, five captions; Explore's slice of the item (through the
    EL_DATA_ROOT mirror) pairs the image with every caption, the correct one first."""
    from engineered_latents.ui import views as V

    rows = write_aro_order(tmp_path / "ARO-COCO-order", n=4)
    settings = Settings.from_env({"EL_DATA_ROOT": str(tmp_path),
                                  "EL_CACHE_DIR": str(tmp_path / "cache")})
    explorer = V.Explorer(settings, tiny_clip)
    item = I.items_of([{"benchmark": "aro-coco-order", "model": "default", "examples": [
        {"index": 2, "scores": [0.1, 0.2, 0.0, 0.0, 0.0], "correct": False}]}])[0]
    values = I.explore_values(item, {"start": 0, "count": 8, "indices": ""})
    request = explorer.request(
        dataset=values["dataset"], start=values["start"], count=values["count"],
        indices=values["indices"], model=values["model"], mode="scalar", n_eig=6, sharpness=0,
        clusters=0, seed=0, include_special=False, patch_norm=True, crossed=values["crossed"],
        all_captions=values["all_captions"],
        data_path=mirror_path(values["dataset"], settings))
    view = explorer.run(request)
    assert [p.caption for p in view.run.pairs] == rows[2]["captions"]
    assert {p.image for p in view.run.pairs} == {0}
    card = I.item_card(item, view.run.pairs)
    assert card.count("| negative |") == 4 and "| correct caption | 0.1000 |" in card


def test_word_map_grid_rows_words_and_one_scale():
    from engineered_latents.figures import word_map_grid

    image = np.zeros((8, 8, 3), np.uint8)
    maps = [[np.full((2, 2), 1.0), np.array([[0.0, 2.0], [3.0, np.nan]])], [np.full((2, 2), -1.0)]]
    fig = word_map_grid([image, image], maps, [["<b>x</b>", "y"], ["z"]],
                        ["pair 0: correct caption", "pair 1:\nnegative"], "t")
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 3 and len([t for t in fig.data if t.type == "image"]) == 2
    assert (fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax) == (-1.0, 3.0)
    titles = [a.text for a in fig.layout.annotations]
    assert "&lt;b&gt;x&lt;/b&gt;" in titles and "pair 1:<br>negative" in titles
    with pytest.raises(ValueError, match="one map per word"):
        word_map_grid([image], [[maps[0][0]]], [["a", "b"]], ["r"], "t")


# ----------------------------------------------------------------------------- through the API

# /item_open's answer: the note, the pending flag, then the restored Explore controls
RESTORED = ["dataset", "start", "count", "indices", "model", "mode", "n_eig", "sharpness",
            "clusters", "seed", "special", "patch_norm", "crossed", "all_captions", "overlay",
            "bpe", "show0", "layer", "rgb", "colour", "perplexity"]
CUT_OUTPUTS = ["note", "status", "banner", "gallery", "pair", "word", "eig", "overlay", "rgb",
               "words", "affinity", "spectrum", "clusters", "top_words", "cluster_table", "timings"]


def _client(url, **params):
    kwargs = {"httpx_kwargs": {"params": params}} if params else {}
    return Client(url, verbose=False, download_files=False, **kwargs)


def _cut_with(client, controls):
    """/cut with restored controls (what the page's Run does after RUN_IF_PENDING_JS)."""
    c = controls
    out = client.predict(c["dataset"], c["start"], c["count"], c["indices"], c["model"],
                         c["mode"], c["n_eig"], c["sharpness"], c["clusters"], c["seed"],
                         c["special"], c["patch_norm"], c["crossed"], c["all_captions"],
                         api_name="/cut")
    return dict(zip(CUT_OUTPUTS, out))


def _open(client, row):
    out = client.predict(row, api_name="/item_open")
    return out[0], out[1], dict(zip(RESTORED, out[2:]))


def _captions(gallery):
    return [g["caption"].split(": ", 2)[2] for g in gallery]


@pytest.mark.slow
def test_demo_failures_open_on_explore_with_both_captions(app_server, tiny_clip, tmp_path):
    url = app_server[1]
    assert main(["bench", "--benchmark", "demo", "--model", tiny_clip, "--limit", "8",
                 "--json", str(tmp_path / "r.json")]) == 0
    expected = json.loads((tmp_path / "r.json").read_text())["examples"]
    s = {e["index"]: np.array(e["scores"]) for e in expected}  # s[c][i]
    wrong = sorted((min(v[0, 0] - v[1, 0], v[1, 1] - v[0, 1]), i) for i, v in s.items()
                   if not (v[0, 0] > v[1, 0] and v[1, 1] > v[0, 1]))
    assert wrong, "the tiny model fails some demo items"

    client = _client(url)
    client.predict(["demo"], 8, "default", 4, api_name="/benchmark")
    note, _, table, *_ = client.predict(True, "all", "all", None, None, api_name="/items")
    rows = table["data"]
    assert [r[1] for r in rows] == [i for _, i in wrong] and {r[3] for r in rows} == {"no"}
    assert [r[4] for r in rows] == pytest.approx([round(m, 4) for m, _ in wrong], abs=1e-4)
    assert f"{len(wrong)} of 8 items" in note
    # a margin range keeps the items inside it
    low = wrong[0][0]
    _, _, table, *_ = client.predict(False, "demo", "all", low, low + 1e-9, api_name="/items")
    assert [r[1] for r in table["data"]] == [wrong[0][1]]

    client.predict(True, "all", "all", None, None, api_name="/items")
    note, pending, controls = _open(client, 0)
    index = wrong[0][1]
    assert pending is True and f"demo #{index}" in note
    assert (controls["dataset"], controls["indices"], controls["crossed"], controls["model"]) \
        == ("demo", str(index), True, "default")
    view = _cut_with(client, controls)
    example = get_dataset("demo").load([index])[0]
    assert sorted(_captions(view["gallery"])) == sorted(list(example.captions) * 2)
    card, maps = client.predict(api_name="/item_card")
    assert card["visible"] is True and f"demo #{index}" in card["value"]
    assert maps["visible"] is True
    # each pair's score is the benchmark's s[c][i]: pair 2 is (image 0, caption 1)
    pair2 = f"| 2 | 0 | {_md(example.captions[1])} | crossed | {s[index][1, 0]:.4f} |"
    assert pair2 in card["value"]
    # another Explore run hides the card
    client.predict(start=0, count=2, api_name="/cut")
    card, maps = client.predict(api_name="/item_card")
    assert card["visible"] is False and maps["visible"] is False


@pytest.fixture(scope="module")
def sugarcrepe_server(tiny_clip, tmp_path_factory):
    """A server with EL_DATA_ROOT holding a 20-item SugarCrepe swap-att copy."""
    from engineered_latents.ui.testing import serve

    root = tmp_path_factory.mktemp("data_root")
    rows = write_sugarcrepe(root / "SugarCrepe_swap_att", n=20)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EL_DATA_ROOT", str(root))
        with serve(tiny_clip, tmp_path_factory.mktemp("sc_app"), warm_up=False) as (_, url):
            yield url, root / "SugarCrepe_swap_att", rows


@pytest.mark.slow
def test_sugarcrepe_items_filter_open_and_deep_link(sugarcrepe_server, tiny_clip):
    url, data, rows = sugarcrepe_server
    hand = {ex.index: (scores, ok) for ex, scores, ok in
            _by_hand(tiny_clip, "sugarcrepe-swap-att", data, list(range(20)))}
    client = _client(url)
    client.predict(["sugarcrepe-swap-att"], 0, "default", 8, api_name="/benchmark")
    _, _, table, bench_choices, tag_choices = client.predict(
        True, "sugarcrepe-swap-att", "swap-att", None, None, api_name="/items")
    failed = sorted((s[0] - s[1], i) for i, (s, ok) in hand.items() if not ok)
    assert failed and [r[1] for r in table["data"]] == [i for _, i in failed]
    assert {r[2] for r in table["data"]} == {"swap-att"}
    # margin range up to the second-worst failure's (the runner keeps margins to 6 digits)
    if len(failed) > 2 and failed[2][0] - failed[1][0] > 1e-5:
        _, _, table, *_ = client.predict(False, "all", "all", None, failed[1][0] + 2e-6,
                                         api_name="/items")
        assert [r[1] for r in table["data"]] == [i for _, i in failed[:2]]
        client.predict(True, "sugarcrepe-swap-att", "swap-att", None, None, api_name="/items")

    _, pending, controls = _open(client, 0)
    index = failed[0][1]
    assert pending and controls["dataset"] == "sugarcrepe-swap-att" and \
        controls["indices"] == str(index) and controls["crossed"] is False
    view = _cut_with(client, controls)
    assert _captions(view["gallery"]) == rows[index]["tested_labels"]  # positive, negative
    card, maps = client.predict(api_name="/item_card")
    card = card["value"]
    positive, negative = rows[index]["tested_labels"]
    # the word maps: a row per caption, a map per word, each the raw affinity map Explore's
    # patch map shows for that word
    fig = _figure(maps["value"])
    heat = [t for t in fig.data if t.type == "heatmap"]
    titles = [a.text for a in fig.layout.annotations]
    assert any(t.startswith(f"pair 0: correct caption<br>score {hand[index][0][0]:.4f}")
               for t in titles)
    assert any(t.startswith(f"pair 1: negative<br>score {hand[index][0][1]:.4f}")
               for t in titles)
    words0 = view["word"]["choices"][1:]  # pair 0's words ("all words" first)
    words1 = client.predict(1, api_name="/pair")[0]["choices"][1:]
    assert len(heat) == min(len(words0), I.MAX_WORDS) + min(len(words1), I.MAX_WORDS)
    overlay = _figure(client.predict(0, words0[1][1], 1, "raw affinity", api_name="/overlay"))
    np.testing.assert_allclose(_array(heat[1].z), _array(overlay.data[1].z), atol=1e-6)
    assert fig.layout.coloraxis.cmin == pytest.approx(min(_array(h.z).min() for h in heat))
    assert f"| 0 | 0 | {_md(positive)} | correct caption | {hand[index][0][0]:.4f} |" in card
    assert f"| 1 | 0 | {_md(negative)} | negative | {hand[index][0][1]:.4f} |" in card

    # the deep link of the issue opens item 17 (Run is then pressed by the page: here by us)
    linked = _client(url, dataset="sugarcrepe-swap-att", indices="17")
    loaded = linked.predict(api_name="/load")
    controls = dict(zip(RESTORED, loaded[:len(RESTORED)]))
    assert (controls["dataset"], controls["indices"]) == ("sugarcrepe-swap-att", "17")
    view = _cut_with(linked, controls)
    assert _captions(view["gallery"]) == rows[17]["tested_labels"]
    assert "2 pairs" in view["note"]
    assert os.path.isdir(data)
