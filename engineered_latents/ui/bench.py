"""The Benchmarks tab: live benchmark runs and the run history.

- `/benchmark`: runs the picked benchmarks one after another with `benchmarks.run_benchmark`
  (the CLI's generator) and yields the table and the bar chart after every batch; a finished
  run is cached, so running it again shows its numbers at once.
- `/bench_export`: the session's finished results as JSON (the CLI's `--json` contract) and the
  chart as HTML.
- The history panel lists `history.jsonl` of the cache directory (cuts and bench runs, newest
  first); clicking a row restores it: a bench run here, a cuts run on the Explore tab.

Benchmarks other than `demo` need their data: the Hub (gated ones with `HF_TOKEN`) or a local
mirror under `EL_DATA_ROOT` (one folder per Hub repository, as the CLI's `--data-root`).
"""

import dataclasses
import functools
import os
from pathlib import Path
from types import SimpleNamespace

import gradio as gr

from .. import bench_compare, history
from .. import figures as F
from ..benchmarks import BENCHMARKS, BenchResult, published_for, run_benchmark
from ..config import Settings
from ..errors import UserError
from . import components as C
from . import export, gpu, share
from . import views as V
from .explore import MODEL_POOL, VIEWS_POOL, ExploreTab, user_errors
from .items import ItemsView
from .models import DEFAULT_CHOICE, choice_for, model_choices, model_spec_for
from .privacy import redact, scrub

BENCH_HEADERS = ["benchmark", "metric", "value", "95% CI low", "95% CI high",
                 "published (this model)", "difference", "n", "status"]
HISTORY_HEADERS = ["time", "kind", "model", "run", "numbers"]
NO_COMPARE = "none"  # the "compare with" dropdown's value for a single-model run
PAIRED_HEADERS = ["benchmark", "metric", "A", "B", "B - A", "paired 95% CI low",
                  "paired 95% CI high", "p (McNemar)", "A only", "B only", "n", "status"]
FLIP_HEADERS = ["row", "benchmark", "metric", "right", "item", "dataset indices"]
SHOWN_FLIPS = 500  # flipped items listed per benchmark
# kinds whose items have several captions (or images): crossed pairs show them all
_CROSSED_KINDS = ("winoground", "localization", "whatsup", "choice")
HISTORY_ROWS = 200
# After a history row is restored: click the Run button of the tab that has to run it.
RESTORE_JS = """(cuts, bench, compare) => {
    const id = cuts ? '#el-run' : bench ? '#el-bench-run' : compare ? '#el-compare-run' : null;
    if (id) setTimeout(() => document.querySelector(id)?.click(), 50);
}"""


# ----------------------------------------------------------------------------- plain functions


def data_path_for(name: str, env: dict | None = None) -> str | None:
    """The local mirror of a benchmark's data under EL_DATA_ROOT, if there is one."""
    root = Settings.from_env(env).data_root
    if not root or name not in BENCHMARKS:
        return None
    folder = Path(root).expanduser() / BENCHMARKS[name].hub_folder
    return str(folder) if folder.is_dir() else None


def result_status(result: BenchResult) -> str:
    if result.from_cache:
        return "from cache"
    return "done" if result.done else f"running {result.n}/{result.total}"


def bench_rows(results: dict[str, BenchResult]) -> list[list]:
    """A row per (benchmark, metric): the live value, its 95% interval (when final), the
    published number for the result's own model, if one was published for it (never another
    model's), and the difference (only where comparable)."""
    rows = []
    for name, result in results.items():
        published = published_for(BENCHMARKS[name], result.model, result.demo_weights)
        for metric, value in result.metrics.items():
            lo, hi = result.ci95.get(metric, (None, None))
            diff = result.reference.get(metric)
            rows.append([name, metric, value, lo, hi, published.get(metric),
                         None if diff is None else round(value - diff, 2),
                         result.n, result_status(result)])
    return rows


def bench_chart(results: dict[str, BenchResult]):
    if not results:
        return F.message_figure("Run a benchmark to see its scores here.")
    labels, values, ci, published = [], [], [], []
    for name, result in results.items():
        for metric, value in result.metrics.items():
            labels.append(f"{name}: {metric}")
            values.append(value)
            ci.append(tuple(result.ci95[metric]) if metric in result.ci95 else None)
            published.append(published_for(BENCHMARKS[name], result.model,
                                           result.demo_weights).get(metric))
    models = sorted({(r.model, r.demo_weights) for r in results.values()})
    title = ["scores (%) with 95% intervals; published numbers only where they were published "
             "for this model",
             "model " + ", ".join(_model_name(m) + (" (DEMO weights: meaningless)" if demo else "")
                                  for m, demo in models)]
    return F.bench_bars(labels, values, ci, published, title)


def bench_note(results: dict[str, BenchResult], errors: list[str], pending: list[str]) -> str:
    lines = []
    for name, result in results.items():
        what = f"**{name}**: {result.n}/{result.total} examples, {result_status(result)}"
        if result.demo_weights:
            what += " · **DEMO weights: the numbers mean nothing**"
        lines.append(what)
        for note in result.notes:
            lines.extend(f"  - {V._md(k)}: {V._md(v)}" for k, v in note.items()
                         if k != "warning")
    lines += [f"**{name}**: waiting" for name in pending]
    lines += [f"**error** {V._md(e)}" for e in errors]
    return "\n".join(lines) or "Pick benchmarks and press Run."


def _model_name(name: str) -> str:
    return os.path.basename(os.path.normpath(name)) if os.path.isabs(name) else name


def history_rows(records: list[dict]) -> list[list]:
    """The history table, one row per record (in the order given)."""
    rows = []
    for r in records:
        try:
            rows.append(_history_row(r))
        except (TypeError, ValueError, AttributeError, KeyError):
            continue  # a record of an unexpected shape: the others still show
    return scrub(rows)


def _history_row(r: dict) -> list:
    """One row of the history table (may raise on a record of the wrong shape)."""
    model = _model_name(str(r.get("model", ""))) + (" (demo weights)"
                                                    if r.get("demo_weights") else "")
    if r.get("kind") in ("compare", "bench-compare"):  # two models
        other = [r["model_b"]] if r.get("model_b") else r.get("compare") or []
        return [str(r.get("time", "")), str(r.get("kind", "")),
                f"{model} vs {', '.join(_model_name(str(o)) for o in other)}",
                *_comparison_cells(r)]
    if r.get("kind") == "train":
        run = os.path.basename(os.path.normpath(str(r.get("out", "")))) or "?"
        what = (f"run {run}: {r.get('loss')} on {r.get('dataset')}, {r.get('train')}, "
                f"{r.get('steps_done')} steps")
        numbers = ", ".join(f"{k} {v:.3g}" for k, v in (r.get("val") or {}).items())
        return [str(r.get("time", "")), "train", model, what, numbers]
    if r.get("kind") == "bench":
        limit = (r.get("parameters") or {}).get("limit")
        what = f"{r.get('benchmark')} n={r.get('n')}" + (f" (limit {limit})" if limit else "")
        numbers = ", ".join(f"{k} {v}" for k, v in (r.get("metrics") or {}).items())
    else:
        params = r.get("parameters") or {}
        sl, cut = params.get("slice") or {}, params.get("cut") or {}
        where = V.slice_where(SimpleNamespace(indices=sl.get("indices"),
                                              start=sl.get("start") or 0,
                                              count=sl.get("count") or 0))
        what = (f"{sl.get('dataset')} {where}, {cut.get('mode')}, {cut.get('n_eig')} eig, "
                f"{r.get('n_pairs')} pairs ({history.cache_word(r.get('cache'))})")
        numbers = "eigenvalues " + " ".join(f"{v:.3f}" for v in r.get("eigenvalues") or [])
    return [str(r.get("time", "")), str(r.get("kind", "")), model, what, numbers]


def _comparison_cells(r: dict) -> list[str]:
    """The run and numbers cells of a two-model record (no model names: they may be paths)."""
    if r.get("kind") == "bench-compare":
        stats = next(iter((r.get("paired") or {}).values()), {})
        numbers = ", ".join(f"{m} {s['difference']:+} (p {s['p_value']})"
                            for m, s in stats.items())
        return [f"{r.get('benchmark')} n={r.get('n')}, paired (B - A)", numbers]
    params = r.get("parameters") or {}
    sl, cut = params.get("slice") or {}, params.get("cut") or {}
    where = V.slice_where(SimpleNamespace(indices=sl.get("indices"), start=sl.get("start") or 0,
                                          count=sl.get("count") or 0))
    layers = [m.get("layer") for m in params.get("models") or []]
    what = (f"{sl.get('dataset')} {where}, {r.get('mode')}, {cut.get('n_eig')} eig, "
            f"{r.get('n_pairs')} pairs ({history.cache_word(r.get('cache'))})")
    if any(v is not None for v in layers):
        what += ", layers " + " vs ".join("last" if v is None else str(v) for v in layers)
    matches = (r.get("matches") or [])[1:]  # eigenvector 0 (trivial) is matched to 0
    weak = [m for m in matches if len(m) == 3 and m[2] < 0.5]
    return [what, f"{len(matches)} matches, {len(weak)} weak" if matches else ""]


def recent_history(cache_dir: str, limit: int = HISTORY_ROWS) -> list[dict]:
    """The last `limit` runs, newest first."""
    return history.read(cache_dir)[-limit:][::-1]


# ----------------------------------------------------------------------------- two models


def paired_rows(results: dict[str, BenchResult], others: dict[str, BenchResult],
                paired: dict) -> list[list]:
    """The paired table (`PAIRED_HEADERS`): per benchmark metric, both values, B - A with its
    paired 95% interval and McNemar p, the items only A / only B gets right; a benchmark not
    paired yet shows the values so far."""
    rows = []
    for name, a in results.items():
        b = others.get(name)
        if name in paired:
            p = paired[name]
            for metric, st in p.paired[p.labels[1]].items():
                rows.append([name, metric, a.metrics.get(metric), b.metrics.get(metric),
                             st["difference"], *st["ci95"], st["p_value"], len(st["a_only"]),
                             len(st["b_only"]), st["n"], "paired"])
            continue
        status = f"B: {result_status(b)}" if b is not None else f"A: {result_status(a)}"
        rows += [[name, metric, value, None if b is None else b.metrics.get(metric), None, None,
                  None, None, None, None, a.n, status] for metric, value in a.metrics.items()]
    return rows


def item_indices(metric: str, item) -> list[int] | None:
    """The dataset indices of a paired item id: an index, a group's members, a retrieval
    caption's image ([index, caption]); None for a position ("#k")."""
    if isinstance(item, list | tuple):
        return [int(item[0])] if metric.startswith("t2i") else [int(v) for v in item]
    if isinstance(item, int) and not isinstance(item, bool):
        return [item]
    return None


def flipped_items(pair: bench_compare.PairedBench, model_a: str, model_b: str) -> list[dict]:
    """The items one model gets right and the other wrong (both ways), each with what opens it
    in the Compare tab: dataset, indices, crossed pairs, both models (dropdown values)."""
    bench = BENCHMARKS[pair.benchmark]
    out = []
    for metric, st in pair.paired[pair.labels[1]].items():
        for side, who in (("a_only", "A right, B wrong"), ("b_only", "B right, A wrong")):
            for item in st[side]:
                out.append({"benchmark": pair.benchmark, "dataset": bench.dataset,
                            "metric": metric, "right": who,
                            "item": bench_compare._item(metric, item),
                            "indices": item_indices(metric, item),
                            "crossed": bench.kind in _CROSSED_KINDS,
                            "model": model_a, "model_b": model_b})
    return out[:SHOWN_FLIPS]


def flip_rows(flips: list[dict]) -> list[list]:
    return [[i, f["benchmark"], f["metric"], f["right"], f["item"],
             ", ".join(map(str, f["indices"])) if f["indices"] else "(no dataset index)"]
            for i, f in enumerate(flips)]


def paired_chart(paired: dict):
    """B - A per benchmark metric, with the paired 95% intervals."""
    labels, values, ci = [], [], []
    for name, p in paired.items():
        for metric, st in p.paired[p.labels[1]].items():
            labels.append(f"{name}: {metric}")
            values.append(st["difference"])
            ci.append(tuple(st["ci95"]))
    first = next(iter(paired.values()))
    demo = any(r.demo_weights for p in paired.values() for r in [p.base, *p.others])
    title = ["B − A (points) with paired 95% intervals",
             f"A {_model_name(first.labels[0])}, B {_model_name(first.labels[1])}"
             + (" (DEMO weights: meaningless)" if demo else "")]
    return F.bench_bars(labels, values, ci, [None] * len(labels), title)


# ----------------------------------------------------------------------------- the tab


class BenchTab:
    """Builds the tab inside the current Blocks; `tabs` is switched to Explore when a history
    row restores a cuts run there."""

    def __init__(self, explore: ExploreTab, tab: gr.Tab, tabs: gr.Tabs, compare=None):
        self.explore, self.explorer, self.tabs = explore, explore.explorer, tabs
        self.compare_tab = compare  # ui.compare.CompareTab: flipped items open there
        self._layout()
        self._wire(tab)

    def _layout(self) -> None:
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=280):
                self.names = C.CheckboxGroup(
                    list(BENCHMARKS), value=["demo"], label="Benchmarks", elem_id="el-bench-names",
                    info="demo runs offline on the built-in slice; the others read the Hub "
                         "(winoground needs HF_TOKEN on the server) or EL_DATA_ROOT")
                self.limit = gr.Number(0, precision=0, minimum=0, label="Sample limit (0 = all)",
                                       elem_id="el-bench-limit")
                self.model = C.Dropdown(
                    model_choices(self.explorer.default_model), value=DEFAULT_CHOICE,
                    allow_custom_value=True, label="Model", info="or type a Hub id",
                    elem_id="el-bench-model")
                self.compare = C.Dropdown(
                    [("none", NO_COMPARE)] + model_choices(self.explorer.default_model),
                    value=NO_COMPARE, allow_custom_value=True, label="Compare with",
                    info="a second model on the same items: the table becomes the paired one",
                    elem_id="el-bench-compare")
                with gr.Accordion("Advanced", open=False):
                    self.batch_size = gr.Slider(1, 128, value=8, step=1, label="Batch size",
                                                info="the table updates after every batch")
                with gr.Row():
                    self.run_button = gr.Button("Run", variant="primary", elem_id="el-bench-run")
                    self.stop_button = gr.Button("Stop", variant="stop", elem_id="el-bench-stop")
                self.note = gr.Markdown("Pick benchmarks and press Run.", elem_id="el-bench-note")
                with gr.Accordion("Download", open=False):
                    self.export_button = gr.Button("Prepare downloads", size="sm")
                    self.downloads = gr.File(file_count="multiple", interactive=False,
                                             height=140, label="benchmark.json, benchmark.html")
            with gr.Column(scale=3):
                self.table = gr.Dataframe(headers=BENCH_HEADERS, interactive=False, wrap=True,
                                          label="Scores (%)", elem_id="el-bench-table")
                self.chart = gr.Plot(label="Scores", elem_id="el-bench-chart")
                with gr.Accordion("Flipped items (with Compare with)", open=True):
                    self.flips_table = gr.Dataframe(
                        headers=FLIP_HEADERS, interactive=False, wrap=True, max_height=300,
                        label="Items only one model gets right: click one to open it in the "
                              "Compare tab with both models", elem_id="el-bench-flips")
                    with gr.Row():
                        self.flip_row = gr.Number(0, precision=0, minimum=0, label="Row",
                                                  scale=1, min_width=80)
                        self.flip_button = gr.Button("Open in Compare", size="sm", scale=2,
                                                     elem_id="el-bench-flip-open")
                self.flips = gr.State([])  # the flipped items listed, with what opens them
                self.paired = gr.State([])  # the session's paired results, as JSON
        self.items = ItemsView(self.explore, self.tabs)
        gr.Markdown("### Run history\nEvery cuts and bench run on this server (newest first). "
                    "Click a row to restore it: a benchmark here, a cut on the Explore tab.")
        self.history_table = gr.Dataframe(headers=HISTORY_HEADERS, interactive=False, wrap=True,
                                          max_height=360, label="History",
                                          column_widths=["14%", "6%", "18%", "34%", "28%"],
                                          elem_id="el-history")
        with gr.Row():
            self.refresh_button = gr.Button("Refresh", size="sm", elem_id="el-history-refresh")
            self.history_note = gr.Markdown("", elem_id="el-history-note")
        self.results = gr.State([])  # the session's final results, as JSON (for downloads)
        self.records = gr.State([])  # the history rows shown, as recorded
        self.pending = gr.Checkbox(False, visible="hidden", elem_id="el-bench-pending")

    def _wire(self, tab: gr.Tab) -> None:
        self.run_event = self.run_button.click(
            self.on_bench, [self.names, self.limit, self.model, self.batch_size, self.compare],
            [self.note, self.table, self.chart, self.results, self.flips_table, self.flips,
             self.paired], api_name="benchmark",
            api_description="Run benchmarks; yields the table and chart after every batch.",
            concurrency_id=MODEL_POOL, concurrency_limit=1, show_progress_on=[self.note])
        self.run_event.then(self.on_history, None, [self.history_table, self.records],
                            api_visibility="private", queue=False)
        self.stop_button.click(None, cancels=[self.run_event], queue=False)
        self.items.feed(self.run_event, self.results, self.model)  # the Items view follows
        self._wire_flips()
        self.export_button.click(self.on_export, [self.results, self.paired], self.downloads,
                                 api_name="bench_export", concurrency_id=VIEWS_POOL,
                                 concurrency_limit=4)
        for event in (tab.select, self.refresh_button.click):
            event(self.on_history, None, [self.history_table, self.records], api_name=None,
                  api_visibility="private", queue=False)
        explore = self.explore
        tab = self.compare_tab
        compared = [self.compare] + ([tab.pending, tab.restore, *tab.restore_outputs]
                                     if tab is not None else [])
        self.history_table.select(
            self.on_history_select, self.records,
            [self.names, self.limit, self.model, self.pending, self.history_note, self.tabs,
             explore.pending, explore.restore, *explore.restore_outputs, *compared],
            api_visibility="private", queue=False,
        ).then(None, [explore.pending, self.pending, compared[1] if tab else self.pending],
               None, js=RESTORE_JS, queue=False)

    @user_errors
    def on_bench(self, names, limit=0, model=DEFAULT_CHOICE, batch_size=8, compare=NO_COMPARE,
                 progress=gr.Progress()):
        names = [n for n in (names or []) if n]
        if not names:
            raise UserError("Pick at least one benchmark.")
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            raise UserError(f"Unknown benchmark {unknown[0]!r}: use {', '.join(BENCHMARKS)}.")
        spec = dataclasses.replace(model_spec_for(model, self.explorer.default_model),
                                   dtype="float32")
        spec_b = None
        if compare not in (None, "", NO_COMPARE):
            try:
                spec_b = dataclasses.replace(model_spec_for(compare, self.explorer.default_model),
                                             dtype="float32")
            except UserError as e:
                raise UserError(f"Compare with: {e}") from None
        limit = None if not limit else V._as_int(limit, "Limit")
        batch_size = V._as_int(batch_size, "Batch size")
        if not 1 <= batch_size <= 512:
            raise UserError(f"Batch size {batch_size}: use 1 to 512.")
        results: dict[str, BenchResult] = {}
        errors: list[str] = []
        finals: list[dict] = []
        others: dict[str, BenchResult] = {}  # the compared model's results
        paired: dict[str, bench_compare.PairedBench] = {}
        flips: list[dict] = []

        def outputs(pending):
            note = bench_note(results, errors, pending)
            if spec_b is None:
                return (note, bench_rows(results), bench_chart(results), finals, [], [], [])
            notes = [f"**{V._md(n)}** {V._md(t)}" for n, p in paired.items() for t in p.notes]
            import pandas as pd

            return ("\n".join([note, *notes]),
                    pd.DataFrame(paired_rows(results, others, paired), columns=PAIRED_HEADERS),
                    paired_chart(paired) if paired else bench_chart(results), finals,
                    flip_rows(flips), flips,
                    [scrub(p.to_json()) for p in paired.values()])

        for i, name in enumerate(names):
            try:
                for result in gpu.stream(run_benchmark, name, spec, limit, data_path_for(name),
                                         self.explorer.cache, batch_size):
                    results[name] = result
                    progress(result.n / max(result.total, 1),
                             desc=f"{name}: {result.n}/{result.total}")
                    if result.done:
                        finals.append(scrub(result.to_json()))
                    yield outputs(names[i + 1:])
                if spec_b is not None and results[name].done:
                    yield from self._compared(
                        name, spec_b, limit, batch_size, results, others, paired, progress,
                        functools.partial(outputs, names[i + 1:]))
                    flips += flipped_items(paired[name], model, compare)
                    yield outputs(names[i + 1:])
            except UserError as e:
                errors.append(f"{name}: {redact(str(e))}")
                yield outputs(names[i + 1:])
        if errors and not results:
            raise UserError(" ".join(errors))

    def _compared(self, name, spec_b, limit, batch_size, results, others, paired, progress,
                  outputs):
        """The compared model on the same benchmark (same items), then the pairing."""
        try:
            for result in gpu.stream(run_benchmark, name, spec_b, limit, data_path_for(name),
                                     self.explorer.cache, batch_size):
                others[name] = result
                progress(result.n / max(result.total, 1),
                         desc=f"{name} (B): {result.n}/{result.total}")
                yield outputs()
        except UserError as e:
            raise UserError(f"compare with: {e}") from None
        paired[name] = bench_compare.pair_results(results[name], [others[name]])
        bench_compare.record(self.explorer.cache.directory, paired[name])

    def _wire_flips(self) -> None:
        """A flipped item opens in the Compare tab (both models; its controls, then Run)."""
        tab = self.compare_tab
        if tab is None:
            return
        from .compare import RUN_IF_PENDING_JS as RUN_COMPARE_JS

        opened = [self.note, self.tabs, tab.pending, tab.restore, *tab.restore_outputs]
        self.flips_table.select(self.on_flip_pick, self.flips, opened, api_visibility="private",
                                queue=False).then(None, tab.pending, None, js=RUN_COMPARE_JS,
                                                  queue=False)
        self.flip_button.click(
            self.on_flip_open, [self.flips, self.flip_row], opened, api_name="bench_flip_open",
            api_description="Open row `row` of the flipped items in the Compare tab (its "
                            "controls; then run /compare with them).", queue=False,
        ).then(None, tab.pending, None, js=RUN_COMPARE_JS, queue=False)

    @user_errors
    def on_flip_pick(self, flips, evt: gr.SelectData):
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        return self.on_flip_open(flips, row)

    @user_errors
    def on_flip_open(self, flips, row=0):
        row = V._as_int(row, "Row")
        if not flips or not 0 <= row < len(flips):
            raise UserError(f"There is no flipped item {row}: run a benchmark with "
                            "'Compare with' set, then pick a listed row.")
        flip = flips[row]
        if not flip["indices"]:
            raise UserError(f"Item {flip['item']} of {flip['benchmark']} has no dataset index: "
                            "it cannot be opened.")
        tab = self.compare_tab
        values = {**tab.link_defaults, "dataset": flip["dataset"], "start": 0,
                  "count": len(flip["indices"]), "indices": ", ".join(map(str, flip["indices"])),
                  "model": flip["model"], "model_b": flip["model_b"], "crossed": flip["crossed"]}
        note = (f"Opened {flip['benchmark']} item {V._md(flip['item'])} ({flip['right']}) in "
                "the Compare tab.")
        return (note, gr.Tabs(selected="compare"), True, None, *tab.restore_values(values))

    @user_errors
    def on_export(self, results, paired=None):
        if not results:
            raise UserError("Run a benchmark first: there is nothing to download yet.")
        chart = bench_chart({r["benchmark"]: _as_result(r) for r in results})
        # with a compared model: the CLI's `bench --compare` JSON (both models under "models")
        return export.bench_files(list(paired) if paired else results, {"Scores": chart},
                                  "engineered_latents: benchmarks")

    def on_history(self):
        records = recent_history(self.explorer.cache.directory)
        return history_rows(records), records

    @user_errors
    def on_history_pick(self, records, evt: gr.SelectData):
        """A history row's run restored into the controls; the JS then presses Run."""
        record = self._picked(records, evt)
        if record.get("kind") in ("compare", "bench-compare"):
            return self._comparison_pick(record)
        if record.get("kind") == "train":
            return self._train_pick(record)
        return self._history_pick(record)

    def _train_pick(self, record: dict) -> tuple:
        """A training run of the history: the Train tab, where its list of runs restores its
        configuration and curves (a run lives under the cache's models folder by its name)."""
        run = os.path.basename(os.path.normpath(str(record.get("out", "")))) or "?"
        note = (f"Training run {run!r} of {record.get('time')}: restored on the Train tab "
                "(its configuration and curves).")
        return (gr.skip(), gr.skip(), gr.skip(), False, V._md(note), gr.Tabs(selected="train"),
                False, gr.skip(), *[gr.skip()] * len(self.explore.restore_outputs))

    @user_errors
    def on_history_select(self, records, evt: gr.SelectData):
        """`on_history_pick`'s outputs, then the "compare with" model and the Compare tab's
        controls (`_compare_part`)."""
        record = self._picked(records, evt)
        return (*self.on_history_pick(records, evt), *self._compare_part(record))

    def _picked(self, records, evt) -> dict:
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        if not records or not 0 <= int(row) < len(records):
            raise UserError("That history row is gone: press Refresh.")
        return records[int(row)]

    def _choose(self, name):
        return choice_for(name, self.explorer.default_model)

    def _comparison_pick(self, record: dict) -> tuple:
        """A two-model history row: a paired bench run here (its compared model is set by
        `_compare_part`), or a note and the Compare tab selected."""
        explore_skips = [gr.skip()] * len(self.explore.restore_outputs)
        when = record.get("time")
        if record.get("kind") == "bench-compare":
            name, others = record.get("benchmark"), record.get("compare") or []
            if name not in BENCHMARKS or not others:
                raise UserError(f"That paired run ({name!r}) cannot be restored.")
            note = f"Restored the paired {name} run of {when} (limit: its {record.get('n')} items)."
            return ([name], record.get("n") or 0, self._choose(record.get("model")), True, note,
                    gr.skip(), False, gr.skip(), *explore_skips)
        if self.compare_tab is None:
            raise UserError("This app has no Compare tab to restore that comparison in.")
        note = f"Restored the comparison of {when} on the Compare tab."
        return (gr.skip(), gr.skip(), gr.skip(), False, V._md(note), gr.Tabs(selected="compare"),
                False, gr.skip(), *explore_skips)

    def _compare_part(self, record: dict) -> tuple:
        """The "compare with" dropdown, then (with a Compare tab) its pending flag, restore
        state and controls, for a history row."""
        tab, kind = self.compare_tab, record.get("kind")
        rest = [] if tab is None else [False, gr.skip(), *[gr.skip()] * len(tab.restore_outputs)]
        if kind == "bench-compare":
            return (self._choose((record.get("compare") or [None])[0]), *rest)
        if kind != "compare":
            return (NO_COMPARE if kind == "bench" else gr.skip(), *rest)
        params = record.get("parameters") or {}
        sl, cut = params.get("slice") or {}, params.get("cut") or {}
        models = params.get("models") or [{}, {}]
        values = {**tab.link_defaults, "tab": "compare",
                  "dataset": sl.get("dataset", "demo"), "start": sl.get("start", 0),
                  "count": sl.get("count", 8),
                  "indices": ", ".join(map(str, sl["indices"])) if sl.get("indices") else "",
                  "model": self._choose(models[0].get("name")),
                  "model_b": self._choose(models[1].get("name")),
                  "layer_a": models[0].get("layer"), "layer_b": models[1].get("layer"),
                  "mode": cut.get("mode", "scalar"), "n_eig": cut.get("n_eig", 20),
                  "sharpness": cut.get("sharpness") or 0, "clusters": cut.get("clusters") or 0,
                  "seed": cut.get("seed", 0), "special": bool(cut.get("include_special")),
                  "patch_norm": models[0].get("patch_norm", True),
                  "crossed": bool(sl.get("crossed_pairs"))}
        return (gr.skip(), True, None, *tab.restore_values(values))

    def _history_pick(self, record: dict) -> tuple:
        explore = self.explore
        choose = lambda name: choice_for(name, self.explorer.default_model)  # noqa: E731
        if record.get("kind") == "bench":
            name = record.get("benchmark")
            if name not in BENCHMARKS:
                raise UserError(f"Benchmark {name!r} is not known to this version.")
            params = record.get("parameters") or {}
            note = f"Restored the {name} run of {record.get('time')}."
            if params.get("dtype") not in (None, "float32"):
                note += f" It ran in {params['dtype']}; the page runs float32."
            return ([name], params.get("limit") or 0, choose(record.get("model")), True, note,
                    gr.skip(), False, gr.skip(), *[gr.skip()] * len(explore.restore_outputs))
        values, notes = share.values_from_record(record, explore.link_defaults, choose)
        note = f"Restored the cut of {record.get('time')} on the Explore tab."
        if notes:
            note += " The page cannot set: " + ", ".join(notes) + "."
        return (gr.skip(), gr.skip(), gr.skip(), False, V._md(note),
                gr.Tabs(selected="explore"), True, None, *explore.restore_values(values))


def _as_result(record: dict) -> BenchResult:
    """A BenchResult from its JSON (for redrawing the chart of exported results)."""
    return BenchResult(record["benchmark"], record["model"], record["demo_weights"],
                       record["n"], record["n"], record["metrics"], record.get("ci95") or {},
                       record.get("reference") or {}, done=True)
