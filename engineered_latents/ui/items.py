"""The Items view of the Benchmarks tab: every item of a finished per-item benchmark, filtered,
and one click from its word maps on the Explore tab.

- Plain functions (no Gradio): `items_of` turns finished results (the `--json` contract's
  `examples`) into item records with their margin and, for demo items, the pointing game of the
  `localization` benchmark; `filter_items` filters them (failures only, benchmark, tag, margin
  range); `explore_values` gives the Explore controls that open an item (all its captions paired
  with its image(s): Winoground-style items crossed); `item_card` says, for the run that shows
  it, each pair's caption with the benchmark's score of that caption, and `item_maps` draws
  the pairs side by side, each word's raw affinity map on one colour scale.
- `ItemsView` wires them: `/items` filters, `/item_open` restores the item into the Explore
  controls and switches tab; the page then presses Explore's Run (RUN_IF_PENDING_JS), so the cut
  goes through Run's own handler and pool. After every Explore run, `/item_card` shows the card
  and the word maps above the gallery while the run is the item's (hidden otherwise).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import gradio as gr
import numpy as np

from ..benchmarks import BENCHMARKS
from ..compositional import margin as item_margin
from ..errors import UserError
from ..localization import METHODS
from .explore import RUN_IF_PENDING_JS, user_errors

ITEM_HEADERS = ["benchmark", "index", "tag", "correct", "margin", "scores", "pointing game"]
ALL = "all"
MAX_ROWS = 2000  # rows shown at once (sorted by margin: the hardest first)


# ----------------------------------------------------------------------------- plain functions


def pointing_by_index(result: dict) -> dict[int, dict]:
    """{dataset index: {method: [hits, cases], "chance": mean %, "cases": [...]}} of a
    `localization` result's (word, box) cases."""
    out: dict[int, dict] = {}
    for case in result.get("examples") or []:
        entry = out.setdefault(int(case["index"]), {**{m: [0, 0] for m in METHODS},
                                                    "chance": [], "cases": []})
        for m in METHODS:
            entry[m][0] += bool(case.get(m))
            entry[m][1] += 1
        entry["chance"].append(float(case.get("chance", math.nan)))
        entry["cases"].append(case)
    for entry in out.values():
        entry["chance"] = 100 * sum(entry["chance"]) / len(entry["chance"])
    return out


def pointing_text(pointing: dict | None) -> str:
    """'raw 3/4 · scalar 2/4 · joint 1/4 (chance 9%)' or ''."""
    if not pointing:
        return ""
    hits = " · ".join(f"{m} {pointing[m][0]}/{pointing[m][1]}" for m in METHODS)
    return f"{hits} (chance {pointing['chance']:.0f}%)"


def _scores_text(scores) -> str:
    if scores and isinstance(scores[0], list | tuple):  # Winoground s[c][i]
        return " ".join(f"c{c}i{i} {s:.4f}" for c, row in enumerate(scores)
                        for i, s in enumerate(row))
    return " | ".join(f"{s:.4f}" for s in scores)


def items_of(results: Sequence[dict], model: str | None = None) -> list[dict]:
    """Item records of finished results (their JSON), in the results' order:
    {benchmark, dataset, kind, model, index, tag, correct, margin, scores, pointing};
    `model`: the model dropdown's value the results were run with (default: the results').

    `correct`: the item's `correct`, or Winoground's text score; `margin`: the item's, else
    `compositional.margin` of its scores (correct minus best negative; Winoground: the text
    margin). Items of the `localization` benchmark (demo scenes) have no scores: they are listed
    with their pointing game, which the demo items of the same index show too."""
    pointing: dict[int, dict] = {}
    for r in results:
        if BENCHMARKS.get(r.get("benchmark")) and BENCHMARKS[r["benchmark"]].kind == \
                "localization":
            pointing.update(pointing_by_index(r))
    items = []
    for r in results:
        bench = BENCHMARKS.get(r.get("benchmark"))
        if bench is None:
            continue
        base = {"benchmark": bench.name, "dataset": bench.dataset, "kind": bench.kind,
                "model": model or r.get("model")}
        if bench.kind == "localization":
            items += [{**base, "index": i, "tag": "", "correct": None, "margin": None,
                       "scores": [], "pointing": p} for i, p in pointing_by_index(r).items()]
            continue
        for e in r.get("examples") or []:
            if "scores" not in e or "index" not in e:
                continue
            correct = e.get("correct", e.get("text"))
            items.append({**base, "index": int(e["index"]), "tag": str(e.get("tag", "")),
                          "correct": None if correct is None else bool(correct),
                          "margin": float(e.get("margin", item_margin(e["scores"]))),
                          "scores": e["scores"],
                          "pointing": pointing.get(int(e["index"]))
                          if bench.dataset == "demo" else None})
    return items


def filter_items(items: Sequence[dict], failures_only: bool = False, benchmark: str | None = None,
                 tag: str | None = None, margin_min: float | None = None,
                 margin_max: float | None = None) -> list[dict]:
    """The items that pass every filter, the smallest margin first (items without a margin
    last). A margin bound excludes items without a margin; None or "all" means no filter."""
    def keep(item):
        if failures_only and item["correct"] is not False:
            return False
        if benchmark not in (None, "", ALL) and item["benchmark"] != benchmark:
            return False
        if tag not in (None, "", ALL) and item["tag"] != tag:
            return False
        m = item["margin"]
        if margin_min is not None and (m is None or m < margin_min):
            return False
        return margin_max is None or (m is not None and m <= margin_max)

    kept = [it for it in items if keep(it)]
    return sorted(kept, key=lambda it: (it["margin"] is None, it["margin"] or 0.0))


def item_rows(items: Sequence[dict]) -> list[list]:
    """The table's rows (`ITEM_HEADERS`)."""
    word = {True: "yes", False: "no", None: ""}
    return [[it["benchmark"], it["index"], it["tag"], word[it["correct"]],
             None if it["margin"] is None else round(it["margin"], 4),
             _scores_text(it["scores"]), pointing_text(it["pointing"])] for it in items]


def choices(items: Sequence[dict], key: str) -> list[str]:
    """"all" and the distinct values of `key` (in order of first appearance)."""
    return [ALL] + [v for v in dict.fromkeys(str(it[key]) for it in items) if v]


def bound(value, name: str) -> float | None:
    """A margin bound from a page field: None when empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name} is {str(value)[:40]!r}: give a number or leave it empty.") \
            from None
    if math.isnan(number):
        raise UserError(f"{name} is not a number: give one or leave it empty.")
    return number


def explore_values(item: dict, defaults: dict) -> dict:
    """The Explore controls (link values) that show an item: its dataset and index alone, all
    its captions paired with its image(s) (Winoground-style items: crossed pairs, so each
    caption meets each image), the benchmark's model (`item["model"]`, a model dropdown
    value); the rest at the page's defaults."""
    crossed = BENCHMARKS[item["benchmark"]].kind in ("winoground", "localization")
    return {**defaults, "dataset": item["dataset"], "start": 0, "count": 1,
            "indices": str(item["index"]), "model": item["model"],
            "crossed": crossed, "all_captions": False}


def shows_item(slice_spec, item: dict | None) -> bool:
    """Whether a run's slice is exactly the item's example."""
    return bool(item) and slice_spec.dataset == item["dataset"] and \
        tuple(slice_spec.indices or ()) == (item["index"],)


def pair_score(item: dict, image: int, caption: int) -> float | None:
    """The benchmark's score of (image, caption) of an item: s[c][i] for Winoground-style
    items, else the caption's score against the one image."""
    scores = item.get("scores") or []
    if scores and isinstance(scores[0], list | tuple):
        return float(scores[caption][image]) if caption < len(scores) and \
            image < len(scores[caption]) else None
    return float(scores[caption]) if image == 0 and caption < len(scores) else None


def pair_role(item: dict, image: int, caption: int) -> str:
    if item["kind"] in ("winoground", "localization"):
        return "matching" if image == caption else "crossed"
    return "correct caption" if caption == 0 else "negative"


def item_card(item: dict, pairs: Sequence) -> str:
    """Markdown above Explore's gallery: the item, its verdict and margin, then per pair of the
    run (`PairInfo`s) its caption, its role and the benchmark's score; the pointing game's cases
    of the item where there are some."""
    from .views import _md

    verdict = {True: "correct", False: "**wrong**", None: ""}[item["correct"]]
    head = f"**{_md(item['benchmark'])} #{item['index']}**"
    if item["tag"]:
        head += f" ({_md(item['tag'])})"
    if item["margin"] is not None:
        what = ("text margin: min(s(c0,i0) - s(c1,i0), s(c1,i1) - s(c0,i1))"
                if item["kind"] == "winoground" else "correct caption minus the best negative")
        head += f" · {verdict} · margin {item['margin']:+.4f} ({what})"
    lines = [head, "", "| pair | image | caption | role | score |", "|---|---|---|---|---|"]
    for p, info in enumerate(pairs):
        score = pair_score(item, info.image, info.caption_index)
        lines.append(f"| {p} | {info.image} | {_md(info.caption)} | "
                     f"{pair_role(item, info.image, info.caption_index)} | "
                     f"{'' if score is None else f'{score:.4f}'} |")
    pointing = item.get("pointing")
    if pointing:  # folded: one row per (word, box) case
        lines += ["", f"<details><summary>Pointing game: {pointing_text(pointing)}</summary>",
                  "", "| word | caption | " + " | ".join(METHODS) + " |",
                  "|---|---|" + "---|" * len(METHODS)]
        for case in pointing["cases"]:
            marks = " | ".join("hit" if case.get(m) else "miss" for m in METHODS)
            lines.append(f"| {_md(case.get('word', ''))} ({_md(case.get('kind', ''))}) | "
                         f"{_md(case.get('caption', ''))} | {marks} |")
        lines += ["", "</details>"]
    return "\n".join(lines)


MAX_WORDS = 10  # word maps per caption in the item's figure


def item_maps(item: dict, view):
    """The item's figure: per pair of the run (a `views.RunView`), its image, its role and
    score, and the raw affinity map of each of its words (at most `MAX_WORDS`), one colour
    scale for all."""
    from .. import figures as F
    from . import views as V

    rows, cols = view.grid
    images, maps, words, titles = [], [], [], []
    for p, info in enumerate(view.run.pairs):
        shown = info.words[:MAX_WORDS]
        images.append(view.images[(info.example, info.image)])
        maps.append([np.asarray(V.overlay_values(view, p, w, 1, "raw affinity")[1:],
                                dtype=np.float64).reshape(rows, cols) for w in range(len(shown))])
        words.append(shown)
        score = pair_score(item, info.image, info.caption_index)
        titles.append(f"pair {p}: {pair_role(item, info.image, info.caption_index)}"
                      + ("" if score is None else f"\nscore {score:.4f}")
                      + (f" (first {MAX_WORDS} of {len(info.words)} words)"
                         if len(info.words) > MAX_WORDS else ""))
    title = [f"{item['benchmark']} #{item['index']}: raw affinity of each word with each patch",
             "one colour scale: compare the captions word by word"]
    return F.word_map_grid(images, maps, words, titles, title, "cosine")


def localization_note(results: Sequence[dict]) -> str:
    """The pointing game's numbers of a finished `localization` result, or ''."""
    for r in results:
        if BENCHMARKS.get(r.get("benchmark")) and BENCHMARKS[r["benchmark"]].kind == \
                "localization":
            m, ci = r.get("metrics") or {}, r.get("ci95") or {}
            parts = [f"{k} {m[k]:.1f}%" + (f" [{ci[k][0]:.1f}, {ci[k][1]:.1f}]" if k in ci
                                            else "") for k in METHODS if k in m]
            return (f"**Pointing game** ({r.get('cases', '?')} word-box cases of the demo "
                    f"scenes): " + ", ".join(parts) + f"; chance {m.get('chance', math.nan):.1f}%"
                    " (the box's share of the patches).")
    return ""


def items_note(shown: int, total: int, results: Sequence[dict]) -> str:
    if not results:
        return "Run a benchmark: its items show here."
    if not total:
        return "These benchmarks keep no per-item scores (retrieval and ImageNet)."
    more = f" (the first {MAX_ROWS})" if shown > MAX_ROWS else ""
    return (f"{shown} of {total} items{more}, the smallest margin first; scores: each "
            "caption's, the correct one first (Winoground-style: c0i1 is caption 0 with image "
            "1). Click a row to open the item on the Explore tab.")


# ----------------------------------------------------------------------------- the view


class ItemsView:
    """Built inside the Benchmarks tab: `feed(event, results, model)` refilters after each run;
    `explore` is the Explore tab, `tabs` the app's tabs."""

    def __init__(self, explore, tabs: gr.Tabs):
        self.explore, self.tabs = explore, tabs
        self._layout()

    def _layout(self) -> None:
        with gr.Accordion("Items", open=True, elem_id="el-items"):
            with gr.Row():
                self.failures = gr.Checkbox(False, label="Failures only", elem_id="el-items-fail")
                self.benchmark = gr.Dropdown([ALL], value=ALL, label="Benchmark",
                                             allow_custom_value=True, elem_id="el-items-bench")
                self.tag = gr.Dropdown([ALL], value=ALL, label="Subset / tag / relation",
                                       allow_custom_value=True, elem_id="el-items-tag")
                # text fields: a page's empty Number sends 0, and empty here means "no bound"
                self.margin_min = gr.Textbox("", label="Margin from", placeholder="e.g. -0.05",
                                             max_length=40, elem_id="el-items-min")
                self.margin_max = gr.Textbox("", label="Margin to", placeholder="e.g. 0",
                                             max_length=40, elem_id="el-items-max")
            self.note = gr.Markdown("Run a benchmark: its items show here.",
                                    elem_id="el-items-note")
            self.localization = gr.Markdown("", elem_id="el-items-localization")
            self.table = gr.Dataframe(headers=ITEM_HEADERS, interactive=False, wrap=True,
                                      max_height=420, label="Items",
                                      column_widths=["16%", "7%", "12%", "7%", "9%", "30%",
                                                     "19%"], elem_id="el-items-table")
        self.shown = gr.State([])  # the item records in the table's order
        self.current = gr.State(None)  # the item opened on the Explore tab
        self.run_model = gr.State(None)  # the model dropdown's value of the results' run
        self.row = gr.Number(0, precision=0, visible="hidden", elem_id="el-items-row")
        self.open_button = gr.Button("Open", visible="hidden", elem_id="el-items-open")

    @property
    def filters(self) -> list:
        return [self.failures, self.benchmark, self.tag, self.margin_min, self.margin_max]

    def feed(self, event, results: gr.State, model) -> None:
        """Wire the view: refilter after `event` (a finished run of the bench tab's `model`
        dropdown's value) and on every filter change."""
        outputs = [self.note, self.localization, self.table, self.shown, self.benchmark,
                   self.tag]
        inputs = [results, self.run_model, *self.filters]
        event.then(lambda m: m, model, self.run_model, api_visibility="private", queue=False
                   ).then(self.on_filter, inputs, outputs, api_visibility="private",
                          queue=False)
        triggers = [self.failures.change, self.benchmark.change, self.tag.change,
                    self.margin_min.submit, self.margin_min.blur, self.margin_max.submit,
                    self.margin_max.blur]  # the margins once typed, not at every keystroke
        for i, trigger in enumerate(triggers):
            trigger(self.on_filter, inputs, outputs, api_name="items" if i == 0 else None,
                    api_visibility="public" if i == 0 else "private", queue=False)
        explore = self.explore
        opened = [self.note, self.tabs, explore.pending, explore.restore,
                  *explore.restore_outputs, self.current]
        self.table.select(self.on_select, self.shown, opened, api_visibility="private",
                          queue=False).then(None, explore.pending, None, js=RUN_IF_PENDING_JS,
                                            queue=False)
        self.open_button.click(self.on_open, [self.shown, self.row], opened, api_name="item_open",
                               api_description="Open item `row` of the Items table on the "
                               "Explore tab (its controls; then run /cut with them).",
                               queue=False).then(None, explore.pending, None,
                                                 js=RUN_IF_PENDING_JS, queue=False)
        explore.run_event.then(self.on_card, [explore.state, self.current],
                               [explore.item_card, explore.item_maps], api_name="item_card",
                               api_visibility="undocumented", queue=False)

    @user_errors
    def on_filter(self, results, model=None, failures=False, benchmark=ALL, tag=ALL,
                  margin_min=None, margin_max=None):
        results = results or []
        items = items_of(results, model or self._default_choice(results))
        benchmarks = choices(items, "benchmark")
        tags = choices([it for it in items if benchmark in (None, "", ALL)
                        or it["benchmark"] == benchmark], "tag")
        tag = tag if tag in tags else ALL  # a tag of another benchmark: all of this one's
        kept = filter_items(items, bool(failures), benchmark, tag,
                            bound(margin_min, "Margin from"), bound(margin_max, "Margin to"))
        return (items_note(len(kept), len(items), results), localization_note(results),
                item_rows(kept[:MAX_ROWS]), kept[:MAX_ROWS],
                gr.update(choices=benchmarks, value=benchmark if benchmark in benchmarks
                          else ALL),
                gr.update(choices=tags, value=tag))

    def _default_choice(self, results) -> str | None:
        """"default" when the results are the page's default model's (their JSON names a local
        model by its folder's name only), else None (each result's own model)."""
        from ..models import DEFAULT_MODEL
        from .models import DEFAULT_CHOICE

        default = self.explore.explorer.default_model or DEFAULT_MODEL
        names = {default, os.path.basename(os.path.normpath(default))}
        same = results and all(r.get("model") in names for r in results)
        return DEFAULT_CHOICE if same else None

    @user_errors
    def on_select(self, shown, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        return self.on_open(shown, row)

    @user_errors
    def on_open(self, shown, row):
        """An item's controls restored on the Explore tab; the page then presses Run."""
        if not shown or row is None or not 0 <= int(row) < len(shown):
            raise UserError("That item is not in the table any more: filter again.")
        item = shown[int(row)]
        values = explore_values(item, self.explore.link_defaults)
        return (f"Opened {item['benchmark']} #{item['index']} on the Explore tab.",
                gr.Tabs(selected="explore"), True, None,
                *self.explore.restore_values(values), item)

    @user_errors
    def on_card(self, request, item):
        """The item's card and word maps above Explore's gallery while the run shown is the
        item's; hidden otherwise."""
        hidden = (gr.update(value="", visible=False), gr.update(value=None, visible=False))
        if request is None or not shows_item(request.slice, item):
            return hidden
        view = self.explore.explorer.cached_view(request)
        if view is None:
            return hidden
        return (gr.update(value=item_card(item, view.run.pairs), visible=True),
                gr.update(value=item_maps(item, view), visible=True))
