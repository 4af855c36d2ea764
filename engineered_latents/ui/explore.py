"""The Explore tab: controls -> a cut of a slice -> per-pair and per-slice views.

Events and their API names:
- `/cut` (Run; also the page's load event with the default values): the whole view.
- `/pair`: another pair of the current run (no new cut).
- `/overlay` and `/words` (undocumented): the overlay or the word views after a control change.

Model and NCut work go through one shared concurrency pool (`MODEL_POOL`, one job at a time);
the pair views only read arrays of a finished run and have their own pool.
Handlers take `gr.SelectData` / `gr.Progress` parameters, which Gradio finds by annotation and
default value: this module does not use `from __future__ import annotations`.
"""

import functools

import gradio as gr

from ..data import dataset_names
from ..errors import UserError
from . import views as V
from .models import DEFAULT_CHOICE, model_choices
from .upload import UPLOAD_DATASET, stage_upload

MODEL_POOL = "model"  # concurrency_id shared by every event that loads a model or cuts
VIEWS_POOL = "views"


def user_errors(fn):
    """Show a `UserError` as a Gradio error message (the app stays up); let bugs through."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            raise gr.Error(str(e), print_exception=False) from e

    return wrapper


class ExploreTab:
    """Builds the tab's components inside the current Blocks and wires their events."""

    def __init__(self, explorer: V.Explorer, status: gr.Markdown, banner: gr.HTML):
        self.explorer = explorer
        self.status, self.banner = status, banner
        self._layout()
        self._wire()

    # ------------------------------------------------------------------ layout

    def _layout(self) -> None:
        names = dataset_names()
        self.state = gr.State(None)  # this session's Request (the run itself stays in Explorer)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=290):
                self.dataset = gr.Dropdown(names, value="demo" if "demo" in names else names[0],
                                           label="Dataset", elem_id="el-dataset")
                with gr.Group(visible=False) as self.upload_group:
                    self.files = gr.File(file_count="multiple", file_types=["image"],
                                         label="Your images")
                    self.captions = gr.Textbox(
                        lines=4, label="Captions", placeholder="one line per image, in order")
                with gr.Row():
                    self.start = gr.Number(0, precision=0, minimum=0, label="Start",
                                           elem_id="el-start")
                    self.count = gr.Number(8, precision=0, minimum=1, label="Count",
                                           elem_id="el-count")
                self.indices = gr.Textbox("", label="Or example indices",
                                          placeholder="e.g. 3, 7, 12-15", elem_id="el-indices")
                self.model = gr.Dropdown(
                    model_choices(self.explorer.default_model), value=DEFAULT_CHOICE,
                    allow_custom_value=True, label="Model", info="or type a Hub id",
                    elem_id="el-model")
                self.mode = gr.Radio(["scalar", "joint"], value="scalar", label="Graph",
                                     info="scalar: a node per patch-token affinity; joint: a node "
                                          "per patch and per token embedding")
                with gr.Accordion("Advanced", open=False):
                    self.n_eig = gr.Slider(2, 100, value=20, step=1, label="Eigenvectors (n_eig)")
                    self.sharpness = gr.Slider(
                        0, 0.99, value=0, step=0.01, label="Affinity sharpness",
                        info="ncut-pytorch's A_degree: 0 = its default; lower is sharper")
                    self.clusters = gr.Slider(2, 20, value=6, step=1, label="k-way clusters")
                    self.seed = gr.Number(0, precision=0, label="Seed")
                    self.include_special = gr.Checkbox(
                        False, label="Include the CLS patch and start/end tokens")
                    self.patch_norm = gr.Checkbox(
                        True, label="Layer-norm patch embeddings (vision post_layernorm)")
                    self.crossed = gr.Checkbox(
                        False, label="Crossed pairs (every image with every caption)")
                    self.all_captions = gr.Checkbox(
                        False, label="All captions of each image (COCO, Flickr30K)")
                self.run_button = gr.Button("Run", variant="primary", elem_id="el-run")
                # progress and errors of a run show here, so the last good views stay visible
                self.run_note = gr.Markdown("", label="Run", elem_id="el-run-note", min_height=48)
            with gr.Column(scale=3):
                self.gallery = gr.Gallery(label="Pairs of the slice: click one", columns=8,
                                          height=230, allow_preview=False, object_fit="contain",
                                          elem_id="el-gallery")
                with gr.Row():
                    # custom values: an API session may ask for a pair before its first run
                    # (the default view); the handler checks the number
                    self.pair = gr.Dropdown([], value=None, label="Pair", scale=2,
                                            allow_custom_value=True, elem_id="el-pair")
                    self.eig = gr.Slider(1, 19, value=1, step=1, label="Eigenvector", scale=2,
                                         elem_id="el-eig")
                    self.source = gr.Radio(list(V.OVERLAYS), value="eigenvector",
                                           label="Overlay", scale=2)
                with gr.Row():
                    self.word = gr.Radio([], value=None, label="Word (click one for its map)",
                                         scale=4, elem_id="el-word")
                    with gr.Column(scale=1, min_width=150):
                        self.bpe = gr.Checkbox(False, label="BPE pieces")
                        self.show0 = gr.Checkbox(False, label="Show eigenvector 0")
                with gr.Row():
                    self.overlay_plot = gr.Plot(label="Patch map", elem_id="el-overlay")
                    self.rgb_plot = gr.Plot(label="Eigenvectors as RGB", elem_id="el-rgb")
                with gr.Row():
                    self.word_plot = gr.Plot(label="Per-word eigenvector scores",
                                             elem_id="el-words")
                    self.affinity_plot = gr.Plot(label="Raw affinities", elem_id="el-affinity")
        gr.Markdown("### The whole slice")
        with gr.Row():
            self.spectrum_plot = gr.Plot(label="Eigenvalues and eigengaps", elem_id="el-spectrum")
            self.cluster_plot = gr.Plot(label="k-way clusters", elem_id="el-clusters")
        with gr.Row():
            self.top_table = gr.Dataframe(
                headers=V.TOP_WORDS_HEADERS, interactive=False, wrap=True, max_height=420,
                column_widths=["8%", "17%", "37.5%", "37.5%"],
                label="Top words of each eigenvector")
            self.cluster_table = gr.Dataframe(
                headers=V.CLUSTER_HEADERS, interactive=False, wrap=True, max_height=420,
                column_widths=["8%", "12%", "50%", "12%", "18%"], label="Cluster table")
        self.timings = gr.Markdown(label="Timings", elem_id="el-timings")

    # ------------------------------------------------------------------ events

    @property
    def run_inputs(self) -> list:
        return [self.dataset, self.start, self.count, self.indices, self.model, self.mode,
                self.n_eig, self.sharpness, self.clusters, self.seed, self.include_special,
                self.patch_norm, self.crossed, self.all_captions, self.files, self.captions,
                self.eig, self.source, self.bpe, self.show0]

    @property
    def run_outputs(self) -> list:
        return [self.state, self.run_note, self.status, self.banner, self.gallery, self.pair,
                self.word, self.eig, self.overlay_plot, self.rgb_plot, self.word_plot,
                self.affinity_plot, self.spectrum_plot, self.cluster_plot, self.top_table,
                self.cluster_table, self.timings]

    @property
    def pair_outputs(self) -> list:
        return [self.word, self.overlay_plot, self.rgb_plot, self.word_plot, self.affinity_plot]

    def _wire(self) -> None:
        pool = dict(concurrency_id=MODEL_POOL, concurrency_limit=1,
                    show_progress_on=[self.run_note])
        self.run_event = self.run_button.click(
            self.on_run, self.run_inputs, self.run_outputs, api_name="cut",
            api_description="Cut a slice and return every view of it (Explore's Run button).",
            **pool)
        self.dataset.change(lambda name: gr.update(visible=name == UPLOAD_DATASET),
                            self.dataset, self.upload_group, queue=False,
                            api_visibility="private")
        views = dict(concurrency_id=VIEWS_POOL, concurrency_limit=4)
        self.gallery.select(
            self.on_select, [self.state, self.eig, self.source, self.bpe, self.show0],
            [self.pair] + self.pair_outputs, api_visibility="private", **views)
        self.pair.input(
            self.on_pair, [self.state, self.pair, self.eig, self.source, self.bpe, self.show0],
            self.pair_outputs, api_name="pair",
            api_description="Views of another pair of the current run (no new cut).", **views)
        overlay_inputs = [self.state, self.pair, self.word, self.eig, self.source]
        for i, control in enumerate((self.word, self.eig, self.source)):
            control.input(self.on_overlay, overlay_inputs, self.overlay_plot,
                          api_name="overlay" if i == 0 else None,
                          api_visibility="undocumented" if i == 0 else "private",
                          trigger_mode="always_last", **views)
        word_inputs = [self.state, self.pair, self.word, self.eig, self.source, self.bpe,
                       self.show0]
        for i, control in enumerate((self.bpe, self.show0)):
            control.input(self.on_words, word_inputs,
                          [self.eig, self.overlay_plot, self.rgb_plot, self.word_plot],
                          api_name="words" if i == 0 else None,
                          api_visibility="undocumented" if i == 0 else "private", **views)

    def on_load(self, demo: gr.Blocks) -> None:
        """The default view as soon as the page opens: prepared at start-up and held in memory,
        so page loads use the views pool and do not queue behind another user's cut."""
        demo.load(self.on_page_load, self.run_inputs, self.run_outputs,
                  api_visibility="private", concurrency_id=VIEWS_POOL, concurrency_limit=4,
                  show_progress_on=[self.run_note])

    # ------------------------------------------------------------------ handlers

    @user_errors
    def _handle_run(self, fresh, dataset, start, count, indices, model, mode, n_eig, sharpness,
                    clusters, seed, include_special, patch_norm, crossed=False,
                    all_captions=False, files=None, captions=None, eig=1, source="eigenvector",
                    bpe=False, show0=False, progress=gr.Progress()):
        explorer = self.explorer
        if not explorer.wait_ready(0):
            progress(0.0, desc="preparing the default view")
            explorer.wait_ready()
        data_path = None
        if dataset == UPLOAD_DATASET:
            data_path = stage_upload(files, captions, explorer.settings.max_count)
            if not (indices or "").strip() and isinstance(start, int | float) and \
                    0 <= start < len(files):  # a count past the last upload means "all of them"
                count = min(count or 1, len(files) - int(start))
        request = explorer.request(
            dataset=dataset, start=start, count=count, indices=indices, model=model, mode=mode,
            n_eig=n_eig, sharpness=sharpness, clusters=clusters, seed=seed,
            include_special=include_special, patch_norm=patch_norm, crossed=crossed,
            all_captions=all_captions, data_path=data_path)
        report = lambda stage, f: progress(f, desc=stage)  # noqa: E731
        # a Run cuts (or re-reads the cache); the page load shows the run held in memory
        view = explorer.run(request, report) if fresh else explorer.view(request, report)
        for warning in V.warnings_to_show(view):
            gr.Warning(warning)
        k = view.run.result.n_eig
        eig = int(eig) if eig is not None and (0 if show0 else 1) <= int(eig) < k else 1
        source = source if source in V.OVERLAYS else "eigenvector"
        figs = V.pair_figures(view, 0, V.ALL_WORDS, eig, source, bool(bpe), bool(show0))
        return (
            request,
            V.run_note(view),
            V.status_markdown(view, explorer),
            V.banner_html(view),
            V.gallery_items(view),
            gr.update(choices=[(V.pair_label(view, p), p) for p in range(view.n_pairs)],
                      value=0),
            gr.update(choices=V.word_choices(view, 0), value=V.ALL_WORDS),
            gr.update(minimum=0 if show0 else 1, maximum=max(k - 1, 1), value=eig),
            figs["overlay"], figs["rgb"], figs["words"], figs["affinity"],
            V.spectrum_figure(view), V.cluster_figure(view),
            V.top_words_rows(view),
            V.cluster_rows(view),
            V.timings_markdown(view),
        )

    on_run = functools.partialmethod(_handle_run, True)
    on_page_load = functools.partialmethod(_handle_run, False)

    def _pair_views(self, view, pair, eig, source, bpe, show0):
        figs = V.pair_figures(view, pair, V.ALL_WORDS, eig, source, bool(bpe), bool(show0))
        return (gr.update(choices=V.word_choices(view, pair), value=V.ALL_WORDS),
                figs["overlay"], figs["rgb"], figs["words"], figs["affinity"])

    @user_errors
    def on_select(self, request, eig, source, bpe, show0, evt: gr.SelectData):
        view = self.explorer.view(request)
        pair = int(evt.index)
        return (gr.update(value=pair),) + self._pair_views(view, pair, eig, source, bpe, show0)

    @user_errors
    def on_pair(self, request, pair, eig=1, source="eigenvector", bpe=False, show0=False):
        return self._pair_views(self.explorer.view(request), pair, eig, source, bpe, show0)

    @user_errors
    def on_overlay(self, request, pair, word=V.ALL_WORDS, eig=1, source="eigenvector"):
        return V.overlay_figure(self.explorer.view(request), pair, word, eig, source)

    @user_errors
    def on_words(self, request, pair, word=V.ALL_WORDS, eig=1, source="eigenvector", bpe=False,
                 show0=False):
        view = self.explorer.view(request)
        k = view.run.result.n_eig
        eig = 1 if eig is None or (not show0 and int(eig) == 0) else int(eig)
        return (gr.update(minimum=0 if show0 else 1, maximum=max(k - 1, 1), value=eig),
                V.overlay_figure(view, pair, word, eig, source),
                V.rgb_figure(view, pair, bool(bpe)),
                V.word_figure(view, pair, bool(bpe), bool(show0)))
