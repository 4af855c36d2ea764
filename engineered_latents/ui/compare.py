"""The Compare tab: two models (or two layers of one) cut on the same slice, in one basis.

The cut is the library's `compare.compare_cuts` (scalar mode: one NCut over both models' nodes;
joint mode: one cut each, eigenvectors matched); each side is then derived like an Explore run
(`views.derive`), so its patch map and word heatmap are Explore's own views. Events and their
API names:
- `/compare` (Run): cut and return every view.
- `/compare_pair`: the views of another pair or eigenvector of the current comparison.
- `/compare_link` (undocumented): the query string of a link to the current controls.
- `/compare_load` (undocumented): a deep link with `tab=compare` (see `share`) sets the
  controls and selects the tab; the Run button then runs it (through the model pool).

The cut goes through the same model pool as Explore's (`explore.MODEL_POOL`). Handlers take a
`gr.Progress` default, which Gradio finds by its value: no `from __future__ import annotations`.
"""

import dataclasses
from dataclasses import dataclass

import gradio as gr

from .. import colouring
from .. import figures as F
from ..compare import CompareRun, compare_cuts
from ..config import CutSpec, SliceSpec
from ..controls import CONTROLS
from ..data import dataset_names
from ..errors import UserError
from . import components as C
from . import gpu, layers, share
from . import views as V
from .explore import (
    COPY_LINK_JS,
    MODEL_POOL,
    VIEWS_POOL,
    clusters_slider,
    colour_controls,
    eig_slider,
    number_control,
    page_text,
    slider_control,
    user_errors,
)
from .models import DEFAULT_CHOICE, model_choices, model_spec_for
from .upload import UPLOAD_DATASET

MATCH_HEADERS = ["eig A", "eig B", "|correlation|", "sign", "match"]
RUN_IF_PENDING_JS = """(pending) => {
    if (pending) setTimeout(() => document.querySelector('#el-compare-run')?.click(), 50);
}"""
LINK_FIELDS = {**share.FIELDS, **share.COMPARE_FIELDS}


@dataclass(frozen=True)
class CompareRequest:
    """What one comparison is (hashable: a session keeps it, the memory finds the run by it)."""

    slice: SliceSpec
    cut: CutSpec
    models: tuple  # (ModelSpec of A, ModelSpec of B)


@dataclass
class CompareView:
    """A finished comparison and each side derived like an Explore run."""

    request: CompareRequest
    run: CompareRun
    sides: tuple  # (RunView of A, RunView of B)

    @property
    def n_pairs(self) -> int:
        return len(self.run.runs[0].pairs)

    @property
    def n_eig(self) -> int:
        return min(r.result.n_eig for r in self.run.runs)


# ----------------------------------------------------------------------------- parsing controls


def parse_layer(value, label: str) -> int | None:
    """A layer field: empty is the last layer (None), else a whole number in the control
    table's range (the model's own range is checked by the library: `models.check_layer`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return CONTROLS["layer"].check(V._as_int(value, label))
    except UserError as e:
        raise UserError(f"{label}: {e}") from None


def compare_request(explorer: V.Explorer, *, model_a, layer_a, model_b, layer_b,
                    **controls) -> CompareRequest:
    """The tab's controls as a CompareRequest (a `UserError` for anything a user got wrong)."""
    if controls.get("dataset") == UPLOAD_DATASET:
        raise UserError("The Compare tab cuts dataset slices: compare uploads is not possible "
                        "here; pick a dataset.")
    specs = []
    for label, model in (("A", model_a), ("B", model_b)):
        try:
            specs.append(model_spec_for(model, explorer.default_model))
        except UserError as e:
            raise UserError(f"Model {label}: {e}") from None
    base = explorer.request(model=model_a, **controls)
    spec_b = dataclasses.replace(specs[1], patch_norm=base.model.patch_norm)
    specs = (dataclasses.replace(base.model, layer=parse_layer(layer_a, "Layer A")),
             dataclasses.replace(spec_b, layer=parse_layer(layer_b, "Layer B")))
    return CompareRequest(base.slice, base.cut, specs)


# ----------------------------------------------------------------------------- the views


def side_name(view: CompareView, side: int) -> str:
    """'A: tiny_clip, layer 6' as the page shows a side (no server paths)."""
    run, spec = view.run.runs[side], view.request.models[side]
    layer = "last layer" if spec.layer is None else f"layer {spec.layer}"
    demo = " (DEMO weights)" if run.demo_weights else ""
    return f"{'AB'[side]}: {V.model_label(run.model)}{demo}, {layer}"


def patch_figure(view: CompareView, side: int, pair, eig):
    fig = V.overlay_figure(view.sides[side], pair, V.ALL_WORDS, eig, "eigenvector")
    return _named(fig, side_name(view, side))


def words_figure(view: CompareView, side: int, pair):
    return _named(V.word_figure(view.sides[side], pair), side_name(view, side))


def _named(fig, name: str):
    """The figure with the side's name as its title's first line."""
    title = fig.layout.title.text or ""
    fig.update_layout(title_text=F.esc(name) + ("<br>" + title if title else ""))
    fig.update_layout(margin_t=fig.layout.margin.t + 17, height=fig.layout.height + 17)
    return fig


def difference_figure(view: CompareView, pair):
    pair = V._check_pair(view.sides[0], pair)
    diff = view.run.word_difference(pair)  # [words, k]
    info = view.run.runs[0].pairs[pair]
    if diff is None:
        return F.message_figure(["The two tokenizers split this caption into different words:",
                                 "no word-by-word difference."])
    return F.word_heatmap(diff[:, 1:], info.words, list(range(1, diff.shape[1])),
                          ["word scores B − A per eigenvector ("
                           + ("shared basis)" if view.run.mode == "scalar"
                              else "B's eigenvectors matched to A's)"),
                           V._short(info.caption)])


def match_rows(run: CompareRun) -> list[list]:
    """The joint mode's eigenvector matches (eigenvector 0 is trivial: left out)."""
    return [[m["a"], m["b"], round(m["correlation"], 4), "+" if m["sign"] > 0 else "−",
             "weak: no real counterpart" if m["weak"] else "matched"]
            for m in (run.matches or [])[1:]]


def agreement_figure(run: CompareRun):
    """The top-k agreement matrix: on nodes where both graphs have the same node set (the
    finer measure), else on the shared words; a message where the words' is 1 by
    construction (no more shared words than k)."""
    ag = run.analyses.get("agreement") or {}
    eigs = ag.get("eigs") or []
    if ag.get("nodes") is not None:
        return F.agreement_heatmap(ag["nodes"], eigs, eigs,
                                   [f"top-{ag['top_nodes']} node agreement between eigenvectors",
                                    "share of common top nodes (both graphs: same node set)"])
    if not ag.get("words"):
        return F.message_figure("No words shared by both sides: no agreement matrix.")
    if ag["top_words"] >= ag["n_words"]:
        return F.message_figure([f"Only {ag['n_words']} words are shared by both sides: their "
                                 f"top-{ag['top_words']} agreement is 1 by construction.",
                                 "Cut a larger slice for a word agreement matrix."]
                                + ([ag["nodes_note"]] if ag.get("nodes_note") else []))
    return F.agreement_heatmap(
        ag["words"], eigs, eigs,
        [f"top-{ag['top_words']} word agreement between eigenvectors",
         f"share of common top words among {ag['n_words']} shared words"])


def correlation_figure(run: CompareRun):
    cc = run.analyses.get("clip_correlation") or {}
    eigs = [row["eig"] for row in cc.get("a", [])]
    if not eigs:
        return F.message_figure("No eigenvector beyond the trivial one: nothing to correlate.")
    series, p_values = {}, {}
    for side in ("a", "b"):
        rows = {row["eig"]: row for row in cc.get(side, [])}
        for stat in ("pearson", "spearman"):
            name = f"{stat.capitalize()} {side.upper()}"
            series[name] = [rows.get(e, {}).get(stat) for e in eigs]
            p_values[name] = [rows.get(e, {}).get(f"{stat}_p") for e in eigs]
    return F.correlation_bars(eigs, series, p_values,
                              ["each eigenvector's per-pair score vs the pair's CLIP score",
                               "(cosine of the pooled embeddings); p-values in the hover"])


def emphasis_figure(run: CompareRun, eig):
    rows = (run.analyses.get("word_emphasis") or {}).get(str(int(eig)))
    if not rows:
        return F.message_figure(f"No shared words on eigenvector {eig}.")
    return F.emphasis_bars([r["word"] for r in rows], [r["before"] for r in rows],
                           [r["after"] for r in rows],
                           [f"words whose score changed most on eigenvector {eig}",
                            "mean over the slice, A → B"])


def run_note(view: CompareView) -> str:
    run = view.run
    how = "From the cache" if run.cache.get("compare") == "hit" else "Computed"
    total = run.timings.get("total")
    took = f" in {total:.2f} s" if isinstance(total, int | float) else ""
    if run.mode == "scalar":
        basis = "one NCut over both models' nodes, so eigenvector j means the same for both"
    else:
        weak = sum(m["weak"] for m in (run.matches or []))
        basis = f"a cut each, B's eigenvectors matched to A's, {weak} of them weakly"
    head = [f"**{V._md(side_name(view, 0))}** · **{V._md(side_name(view, 1))}**",
            f"{view.n_pairs} pairs, {run.mode} mode: {basis}. {how}{took}."]
    return "\n\n".join(head + ["\n".join(f"- {V._md(n)}" for n in run.notes)]).strip()


def pair_views(view: CompareView, pair, eig) -> tuple:
    """Patch maps A, B; word heatmaps A, B; their difference; the word emphasis change; the
    RGB views A, B."""
    return (patch_figure(view, 0, pair, eig), patch_figure(view, 1, pair, eig),
            words_figure(view, 0, pair), words_figure(view, 1, pair),
            difference_figure(view, pair), emphasis_figure(view.run, eig),
            rgb_figure(view, 0, pair), rgb_figure(view, 1, pair))


def rgb_figure(view: CompareView, side: int, pair):
    return _named(V.rgb_figure(view.sides[side], pair), side_name(view, side))


# ----------------------------------------------------------------------------- the tab



def _model_row(choices, side: str, depth: int | None = None) -> tuple:
    """A model picker (listed models or a typed Hub id) and its optional layer, for one side
    (`depth`: the default model's layer count, shown in the layer's help)."""
    with gr.Row():
        model = C.Dropdown(choices, value=DEFAULT_CHOICE, allow_custom_value=True,
                           label=f"Model {side}", info="or type a Hub id",
                           elem_id=f"el-compare-model-{side.lower()}", scale=3)
        layer = gr.Number(None, precision=0, label=f"Layer {side}",
                          info=layers.field_update(depth)["info"],
                          elem_id=f"el-compare-layer-{side.lower()}", scale=1, min_width=80)
    return model, layer

class CompareTab:
    """Builds the tab inside the current Blocks; `tabs` is selected by a deep link."""

    def __init__(self, explorer: V.Explorer, tabs: gr.Tabs, memory: int = 4):
        self.explorer, self.tabs = explorer, tabs
        self._views = V._LRU(memory)
        self._layout()
        self._wire()

    def _layout(self) -> None:
        names = [n for n in dataset_names() if n != UPLOAD_DATASET]
        choices = model_choices(self.explorer.default_model)
        self.state = gr.State(None)  # this session's CompareRequest
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=290):
                self.dataset = C.Dropdown(names, value="demo" if "demo" in names else names[0],
                                          label="Dataset", elem_id="el-compare-dataset")
                with gr.Row():
                    self.start = number_control("start", "Start", elem_id="el-compare-start")
                    self.count = number_control("count", "Count", elem_id="el-compare-count")
                self.indices = gr.Textbox("", label="Or example indices",
                                          placeholder="e.g. 3, 7, 12-15", max_length=V.MAX_TEXT,
                                          elem_id="el-compare-indices")
                depth = layers.choice_depth(DEFAULT_CHOICE, self.explorer.default_model)
                self.model_a, self.layer_a = _model_row(choices, "A", depth)
                self.model_b, self.layer_b = _model_row(choices, "B", depth)
                self.mode = C.Radio(["scalar", "joint"], value="scalar", label="Graph",
                                    info="scalar: one NCut over both models' affinity nodes; "
                                         "joint: a cut each, eigenvectors matched")
                self.colour, self.rgb, self.perplexity = colour_controls("el-compare")
                with gr.Accordion("Advanced", open=False):
                    self.n_eig = slider_control("n_eig", "Eigenvectors (n_eig)")
                    self.sharpness = gr.Slider(
                        0, CONTROLS["sharpness"].hi, value=0, step=0.01,
                        label="Affinity sharpness",
                        info="ncut-pytorch's A_degree: 0 = its default; lower is sharper")
                    self.clusters = gr.Slider(0, CONTROLS["clusters"].page_hi, value=0, step=1,
                                              label="k-way clusters", info="0 = min(6, n_eig)")
                    self.seed = number_control("seed", "Seed")
                    self.include_special = gr.Checkbox(
                        False, label="Include the CLS patch and start/end tokens")
                    self.patch_norm = gr.Checkbox(
                        True, label="Layer-norm patch embeddings (vision post_layernorm)")
                    self.crossed = gr.Checkbox(
                        False, label="Crossed pairs (every image with every caption)")
                self.run_button = gr.Button("Run", variant="primary", elem_id="el-compare-run")
                self.note = gr.Markdown("Pick two models (or two layers) and press Run.",
                                        elem_id="el-compare-note", min_height=48)
                with gr.Accordion("Share", open=False):
                    self.link_button = gr.Button("Copy link to this comparison", size="sm",
                                                 elem_id="el-compare-copy-link")
                    self.link_box = gr.Textbox("", label="Link", interactive=False,
                                               buttons=["copy"], elem_id="el-compare-link")
                self.pending = gr.Checkbox(False, visible="hidden", elem_id="el-compare-pending")
                self.restore = gr.State(None)  # {"pair", "eig"} for the next Run to show
            with gr.Column(scale=3):
                with gr.Row():
                    self.pair = C.Dropdown([], value=None, label="Pair", scale=3,
                                           allow_custom_value=True, elem_id="el-compare-pair")
                    self.eig = gr.Slider(1, 19, value=1, step=1, label="Eigenvector", scale=2,
                                         elem_id="el-compare-eig")
                with gr.Row():
                    self.patch_a = gr.Plot(label="Patch map: A", elem_id="el-compare-patch-a")
                    self.patch_b = gr.Plot(label="Patch map: B", elem_id="el-compare-patch-b")
                with gr.Row():
                    self.words_a = gr.Plot(label="Word scores: A", elem_id="el-compare-words-a")
                    self.words_b = gr.Plot(label="Word scores: B", elem_id="el-compare-words-b")
                with gr.Row():  # one colouring over both sides (their basis is shared)
                    self.rgb_a = gr.Plot(label="Eigenvectors as RGB: A", elem_id="el-compare-rgb-a")
                    self.rgb_b = gr.Plot(label="Eigenvectors as RGB: B", elem_id="el-compare-rgb-b")
                with gr.Row():
                    self.diff = gr.Plot(label="Word scores: B − A", elem_id="el-compare-diff")
                    self.emphasis = gr.Plot(label="Word emphasis change",
                                            elem_id="el-compare-emphasis")
        gr.Markdown("### The whole slice")
        with gr.Row():
            self.agreement = gr.Plot(label="Top-k agreement", elem_id="el-compare-agreement")
            self.correlation = gr.Plot(label="Correlation with the CLIP score",
                                       elem_id="el-compare-correlation")
        self.matches = gr.Dataframe(headers=MATCH_HEADERS, interactive=False, wrap=True,
                                    max_height=360, elem_id="el-compare-matches",
                                    label="Eigenvector matches (joint mode; scalar mode has one "
                                          "shared basis)")

    # ------------------------------------------------------------------ events

    @property
    def run_inputs(self) -> list:
        return [self.dataset, self.start, self.count, self.indices, self.model_a, self.layer_a,
                self.model_b, self.layer_b, self.mode, self.n_eig, self.sharpness,
                self.clusters, self.seed, self.include_special, self.patch_norm, self.crossed,
                self.restore, self.rgb, self.colour, self.perplexity]

    @property
    def pair_outputs(self) -> list:
        return [self.patch_a, self.patch_b, self.words_a, self.words_b, self.diff,
                self.emphasis, self.rgb_a, self.rgb_b]

    @property
    def run_outputs(self) -> list:
        return [self.state, self.note, self.pair, self.eig, *self.pair_outputs, self.matches,
                self.agreement, self.correlation, self.restore]

    @property
    def link_controls(self) -> dict:
        """Deep-link parameter -> the control it sets."""
        return {"dataset": self.dataset, "start": self.start, "count": self.count,
                "indices": self.indices, "model": self.model_a, "mode": self.mode,
                "n_eig": self.n_eig, "sharpness": self.sharpness, "clusters": self.clusters,
                "seed": self.seed, "special": self.include_special,
                "patch_norm": self.patch_norm, "crossed": self.crossed,
                "model_b": self.model_b, "layer_a": self.layer_a, "layer_b": self.layer_b,
                "rgb": self.rgb, "colour": self.colour, "perplexity": self.perplexity}

    @property
    def restore_outputs(self) -> list:
        return list(self.link_controls.values())

    @property
    def link_defaults(self) -> dict:
        values = {name: control.value for name, control in self.link_controls.items()}
        return {**values, "tab": "explore", "pair": 0, "eig": 1}

    def _wire(self) -> None:
        self.run_event = self.run_button.click(
            self.on_run, self.run_inputs, self.run_outputs, api_name="compare",
            api_description="Cut a slice with two models in one basis and return every view.",
            concurrency_id=MODEL_POOL, concurrency_limit=1, show_progress_on=[self.note])
        self.n_eig.change(clusters_slider, [self.n_eig, self.clusters], self.clusters,
                          queue=False, api_visibility="private")
        # each side's layer field names its model's range (from its config.json)
        for model, layer in ((self.model_a, self.layer_a), (self.model_b, self.layer_b)):
            model.change(self.on_model, model, layer, queue=False, api_visibility="private")
        views = dict(concurrency_id=VIEWS_POOL, concurrency_limit=4)
        for i, control in enumerate((self.pair, self.eig)):
            control.input(self.on_pair, [self.state, self.pair, self.eig], self.pair_outputs,
                          api_name="compare_pair" if i == 0 else None,
                          api_description="Views of another pair or eigenvector of the current "
                                          "comparison (no new cut).",
                          api_visibility="public" if i == 0 else "private",
                          trigger_mode="always_last", **views)
        self.link_button.click(
            self.on_link, list(self.link_controls.values()), self.link_box,
            api_name="compare_link", api_visibility="undocumented", queue=False,
        ).then(None, self.link_box, self.link_box, js=COPY_LINK_JS, queue=False)

    def on_load(self, demo: gr.Blocks) -> None:
        """A `tab=compare` deep link: its controls, the tab selected, then Run clicked."""
        demo.load(self.on_page_load, None,
                  [*self.restore_outputs, self.tabs, self.restore, self.pending],
                  api_name="compare_load", api_visibility="undocumented",
                  concurrency_id=VIEWS_POOL, concurrency_limit=4,
                  ).then(None, self.pending, None, js=RUN_IF_PENDING_JS, queue=False)

    # ------------------------------------------------------------------ handlers

    def view(self, request: CompareRequest | None, progress=None) -> CompareView:
        """The comparison a session looks at: from memory, else cut (or read from the cache)."""
        if request is None:
            raise UserError("Press Run first: there is no comparison yet.")
        return self._views.get(request) or self._compute(request, progress)

    def _compute(self, request: CompareRequest, progress=None) -> CompareView:
        report = progress or (lambda stage, fraction: None)
        scaled = None if gpu.enabled() else (lambda stage, f: report(stage, 0.9 * f))
        run = gpu.call(compare_cuts, request.slice, request.cut, request.models,
                       cache=self.explorer.cache, progress=scaled,
                       settings=self.explorer.settings)
        # one t-SNE / UMAP colouring over both sides' points (cached), then each side's views
        colouring.shared_colours(run.runs, request.cut, self.explorer.cache,
                                 lambda stage, f: report(stage, 0.9))
        report("preparing the views", 0.92)
        sides = tuple(V.derive(r, V.Request(request.slice, request.cut, spec),
                               self.explorer.cache)
                      for r, spec in zip(run.runs, request.models))
        view = CompareView(request, run, sides)
        self._views.put(request, view)
        return view

    @user_errors
    def on_run(self, dataset, start, count, indices, model_a, layer_a, model_b, layer_b, mode,
               n_eig, sharpness, clusters, seed, include_special=False, patch_norm=True,
               crossed=False, restore=None, rgb=None, colour="rgb", perplexity=None,
               progress=gr.Progress()):
        """Run: compare the two models on the slice the controls name."""
        if not self.explorer.wait_ready(0):
            progress(0.0, desc="waiting for the default view")
            self.explorer.wait_ready()
        request = compare_request(
            self.explorer, model_a=model_a, layer_a=layer_a, model_b=model_b, layer_b=layer_b,
            dataset=dataset, start=start, count=count, indices=indices, mode=mode, n_eig=n_eig,
            sharpness=sharpness, clusters=clusters, seed=seed, include_special=include_special,
            patch_norm=patch_norm, crossed=crossed, rgb=rgb, colour=colour,
            perplexity=perplexity)
        view = self._compute(request, lambda stage, f: progress(f, desc=stage))
        restore = restore or {}
        pair = restore.get("pair", 0)
        pair = int(pair) if isinstance(pair, int | float) and 0 <= pair < view.n_pairs else 0
        eig = restore.get("eig", 1)
        eig = int(eig) if isinstance(eig, int | float) and 1 <= eig < view.n_eig else 1
        return (request, run_note(view),
                gr.update(choices=[(V.pair_label(view.sides[0], p), p)
                                   for p in range(view.n_pairs)], value=pair),
                eig_slider(view.n_eig, False, eig),
                *pair_views(view, pair, eig),
                match_rows(view.run), agreement_figure(view.run),
                correlation_figure(view.run), None)

    @user_errors
    def on_pair(self, request, pair=0, eig=1):
        view = self.view(request)
        eig = 1 if eig is None else V._as_int(eig, "Eigenvector")
        if not 1 <= eig < view.n_eig:
            raise UserError(f"Eigenvector {eig} does not exist: this comparison has "
                            f"1..{view.n_eig - 1}.")
        return pair_views(view, pair, eig)

    def on_model(self, model):
        """Another model on one side: its layer field's help names the model's range."""
        return layers.field_update(layers.choice_depth(model, self.explorer.default_model))

    def on_link(self, *values):
        """The query string of a link to this comparison (the page adds its address)."""
        linked = {**dict(zip(self.link_controls, values)), "tab": "compare"}
        return share.query(linked, self.link_defaults, LINK_FIELDS)

    def on_page_load(self, request: gr.Request):
        params = dict(request.query_params) if request is not None else {}
        n = len(self.restore_outputs)
        if not share.is_compare_link(params):
            return (*[gr.skip()] * n, gr.skip(), gr.skip(), False)
        choices = {"dataset": [d for d in dataset_names() if d != UPLOAD_DATASET]}
        values, problems = share.parse(params, self.link_defaults, choices, LINK_FIELDS)
        for problem in problems:
            gr.Warning(page_text(problem))
        return (*self.restore_values(values), gr.Tabs(selected="compare"),
                {"pair": values["pair"], "eig": values["eig"]}, True)

    def restore_values(self, values: dict) -> list:
        """`restore_outputs` values for a dict of link values (missing ones: the defaults)."""
        defaults = self.link_defaults
        return [values.get(name, defaults[name]) for name in self.link_controls]
