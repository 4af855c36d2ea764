"""The Explore tab: controls -> a cut of a slice -> per-pair and per-slice views.

Events and their API names:
- `/cut` (Run): the whole view.
- `/pair`: another pair of the current run (no new cut).
- `/overlay` and `/words` (undocumented): the overlay or the word views after a control change.
- `/export`: the current run as downloads (cuts.npz, summary.json, figures.html).
- `/load` (undocumented): the page load; the page URL's query parameters (a deep link, see
  `share`) set the controls, and a view not held in memory is then run by the Run button.
- `/link` (undocumented): the query string of the current controls (the Copy link button).

Model and NCut work go through one shared concurrency pool (`MODEL_POOL`, one job at a time);
the pair views only read arrays of a finished run and have their own pool.
Handlers take `gr.SelectData` / `gr.Progress` parameters, which Gradio finds by annotation and
default value: this module does not use `from __future__ import annotations`.
"""

import contextlib
import functools
import html
import inspect
import re
from pathlib import Path

import gradio as gr

from ..controls import CONTROLS
from ..data import dataset_names
from ..errors import UserError
from . import components as C
from . import export, layers, share
from . import tree_views as TV
from . import views as V
from .models import DEFAULT_CHOICE, model_choices
from .privacy import hide_paths, redact
from .upload import UPLOAD_DATASET, stage_upload

MODEL_POOL = "model"  # concurrency_id shared by every event that loads a model or cuts
VIEWS_POOL = "views"
SET_BY_RUN = ("pair", "word", "eig")  # link values a run's own outputs set (with their choices)


# Clicks the Run button when the hidden flag says a restored view (a deep link, a run from the
# history) still has to be cut: the cut then goes through Run's own event and pool.
RUN_IF_PENDING_JS = """(pending) => {
    if (pending) setTimeout(() => document.querySelector('#el-run')?.click(), 50);
}"""
# Turns the query string from `/link` into the page's full address and copies it.
COPY_LINK_JS = """(query) => {
    const url = window.location.origin + window.location.pathname + (query || "");
    try { navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
    return url;
}"""


def eig_slider(n_eig: int, show0: bool, value) -> dict:
    """The Eigenvector slider's update for a cut with `n_eig` eigenvectors. Gradio refuses a
    slider whose minimum is not below its maximum, so a cut with only eigenvectors 0 and 1 gets
    a fixed slider (1..2, not interactive) rather than an error."""
    low = 0 if show0 else 1
    return gr.update(minimum=low, maximum=max(int(n_eig) - 1, low + 1), value=value,
                     interactive=int(n_eig) - 1 > low)


def number_control(name: str, label: str, **kwargs) -> gr.Number:
    """A whole-number field with the control table's default, range and help."""
    c = CONTROLS[name]
    return gr.Number(c.default, precision=0, minimum=c.lo, maximum=c.hi, label=label,
                     info=None if name in ("start", "count") else c.help, **kwargs)


def slider_control(name: str, label: str, **kwargs) -> gr.Slider:
    """A slider over the control table's range (its page maximum), with its default and help."""
    c = CONTROLS[name]
    return gr.Slider(c.lo, c.page_hi or c.hi, value=c.default, step=1, label=label,
                     info=c.help, **kwargs)


def colour_controls(prefix: str) -> tuple:
    """The RGB view's colouring (rgb / tsne / umap), its three eigenvectors and t-SNE's
    perplexity, from the control table (their checks are the run's: `colouring`)."""
    colour = C.Radio(list(CONTROLS["colour"].choices), value=CONTROLS["colour"].default,
                     label="RGB view colours", elem_id=f"{prefix}-colour",
                     info="rgb: three eigenvectors; tsne / umap: one embedding of eigenvectors "
                          "1..k-1 over all patches and words (UMAP's first use compiles, ~30 s)")
    with gr.Row():
        rgb = gr.Textbox(CONTROLS["rgb"].default, label="RGB eigenvectors", max_length=60,
                         info="three different ones, below n_eig", elem_id=f"{prefix}-rgb-eigs")
        perplexity = number_control("perplexity", "t-SNE perplexity",
                                    elem_id=f"{prefix}-perplexity")
    return colour, rgb, perplexity


def clusters_slider(n_eig, clusters) -> dict:
    """The clusters slider for `n_eig` eigenvectors: at most n_eig (0 keeps "automatic")."""
    top = max(2, min(int(n_eig or 2), CONTROLS["clusters"].page_hi))
    value = min(int(clusters or 0), top)
    return gr.update(maximum=top, value=value)


def mirror_path(dataset: str, settings) -> str | None:
    """A Hub dataset's local mirror under EL_DATA_ROOT, if there is one: the folder named like
    its Hub repository, as the Benchmarks tab reads it (`Benchmark.hub_folder`)."""
    from ..benchmarks import BENCHMARKS

    root = getattr(settings, "data_root", None)
    folder = next((b.hub_folder for b in BENCHMARKS.values()
                   if b.dataset == dataset and dataset not in ("demo", UPLOAD_DATASET)), None)
    if not root or folder is None:
        return None
    path = Path(root).expanduser() / folder
    return str(path) if path.is_dir() else None


def max_uploads(settings) -> int:
    """The most images one upload run takes: EL_MAX_UPLOADS (default 32), at most EL_MAX_COUNT."""
    return max(1, min(settings.max_uploads, settings.max_count))


MESSAGE_LIMIT = 600  # characters of one message shown in the page (a caption may be long)


# the library's messages name CLI options; the page has server settings instead
_FOR_PAGE = [
    (re.compile(r"then --data-path DIR"), "then set EL_DATA_ROOT on the server to DIR's parent"),
    (re.compile(r"point --data-path at a local copy"),
     "put a local copy in a folder under EL_DATA_ROOT on the server (one folder per Hub "
     "repository)"),
    (re.compile(r"--max-count or EL_MAX_COUNT"), "EL_MAX_COUNT on the server"),
    (re.compile(r"--cache-dir or EL_CACHE_DIR"), "EL_CACHE_DIR on the server"),
    (re.compile(r"--data-path"), "EL_DATA_ROOT on the server"),
]


def for_page(text: str) -> str:
    """A library message in the page's words: server settings where the CLI has options."""
    for pattern, replacement in _FOR_PAGE:
        text = pattern.sub(replacement, text)
    return text


def page_text(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """A message as the page may show it: in the page's words (`for_page`), secrets masked,
    server paths cut to their last component, shortened, and HTML-escaped (Gradio renders its
    toasts as HTML, and a message may echo what the user typed: a caption, a model id, a
    link's value)."""
    text = hide_paths(redact(for_page(str(text))))
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return html.escape(text, quote=False)


def _as_message(e: Exception) -> gr.Error | None:
    """The Gradio message for an exception, or None to let it through as it is."""
    if isinstance(e, UserError):
        return gr.Error(page_text(str(e)), print_exception=False)
    if not isinstance(e, gr.Error) and redact(str(e)) != str(e):
        return gr.Error(page_text(f"{type(e).__name__}: {e}"), print_exception=False)
    return None


@contextlib.contextmanager
def _messages():
    try:
        yield
    except Exception as e:
        shown = _as_message(e)
        if shown is None:
            raise
        raise shown from None


def user_errors(fn):
    """Show a `UserError` as a Gradio error message (the app stays up); let bugs through, unless
    their message would show a secret (then only the masked message goes out). Works on
    generator handlers too."""
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def generator(*args, **kwargs):
            with _messages():
                yield from fn(*args, **kwargs)
        return generator

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _messages():
            return fn(*args, **kwargs)

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
                self.dataset = C.Dropdown(names, value="demo" if "demo" in names else names[0],
                                           label="Dataset", elem_id="el-dataset")
                with gr.Group(visible=False) as self.upload_group:
                    self.files = gr.File(file_count="multiple", file_types=["image"],
                                         label="Your images")
                    self.captions = gr.Textbox(
                        lines=4, label="Captions", placeholder="one line per image, in order")
                with gr.Group() as self.slice_group:  # hidden for uploads: all images are cut
                    with gr.Row():
                        self.start = number_control("start", "Start", elem_id="el-start")
                        self.count = number_control("count", "Count", elem_id="el-count")
                    self.indices = gr.Textbox("", label="Or example indices",
                                              placeholder="e.g. 3, 7, 12-15",
                                              max_length=V.MAX_TEXT, elem_id="el-indices")
                self.model = C.Dropdown(
                    model_choices(self.explorer.default_model), value=DEFAULT_CHOICE,
                    allow_custom_value=True, label="Model", info="or type a Hub id",
                    elem_id="el-model")
                # the model's range is set on page load and when the model changes
                self.layer = layers.layer_slider(None, elem_id="el-layer")
                self.mode = C.Radio(["scalar", "joint"], value="scalar", label="Graph",
                                     info="scalar: a node per patch-token affinity; joint: a node "
                                          "per patch and per token embedding")
                self.colour, self.rgb, self.perplexity = colour_controls("el")
                with gr.Accordion("Advanced", open=False):
                    self.n_eig = slider_control("n_eig", "Eigenvectors (n_eig)")
                    self.sharpness = gr.Slider(
                        0, CONTROLS["sharpness"].hi, value=0, step=0.01,
                        label="Affinity sharpness",
                        info="ncut-pytorch's A_degree: 0 = its default; lower is sharper")
                    self.clusters = gr.Slider(
                        0, CONTROLS["clusters"].page_hi, value=0, step=1,
                        label="k-way clusters", info="0 = min(6, n_eig)", elem_id="el-clusters-k")
                    self.seed = number_control("seed", "Seed")
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
                with gr.Accordion("Share and download", open=False):
                    self.link_button = gr.Button("Copy link to this view", size="sm",
                                                 elem_id="el-copy-link")
                    self.link_box = gr.Textbox("", label="Link", interactive=False,
                                               buttons=["copy"], elem_id="el-link")
                    self.export_button = gr.Button("Prepare downloads", size="sm",
                                                   elem_id="el-export")
                    self.downloads = gr.File(
                        file_count="multiple", interactive=False, elem_id="el-downloads",
                        height=140, label="cuts.npz (eigenvectors, word scores), summary.json, "
                              "figures.html")
                # a restored view (deep link, history) waiting for Run; read by RUN_IF_PENDING_JS
                self.pending = gr.Checkbox(False, visible="hidden", elem_id="el-link-pending")
                self.restore = gr.State(None)  # {"pair", "word"} for the next Run to show
            with gr.Column(scale=3):
                # a benchmark item opened from the Benchmarks tab's Items view (ui/items.py)
                self.item_card = gr.Markdown("", visible=False, elem_id="el-item-card")
                self.item_maps = gr.Plot(visible=False, label="The item's word maps",
                                         elem_id="el-item-maps")
                self.gallery = gr.Gallery(label="Pairs of the slice: click one", columns=6,
                                          height=300, allow_preview=False, object_fit="contain",
                                          elem_id="el-gallery")
                with gr.Row():
                    # custom values: an API session may ask for a pair before its first run
                    # (the default view); the handler checks the number
                    self.pair = C.Dropdown([], value=None, label="Pair", scale=2,
                                            allow_custom_value=True, elem_id="el-pair")
                    self.eig = gr.Slider(1, 19, value=1, step=1, label="Eigenvector", scale=2,
                                         elem_id="el-eig")
                    self.source = C.Radio(list(V.OVERLAYS), value="eigenvector",
                                           label="Overlay", scale=2)
                with gr.Row():
                    self.word = C.Radio([], value=None, label="Word (click one for its map)",
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
                column_widths=["7%", "12%", "45%", "15%", "21%"], label="Cluster table",
                elem_id="el-cluster-table")
        from .tree import TreeSection  # the recursive cut's section (it wires its own events)

        self.tree = TreeSection(self.explorer, self.state)
        self.timings = gr.Markdown(label="Timings", elem_id="el-timings")

    # ------------------------------------------------------------------ events

    @property
    def run_inputs(self) -> list:
        return [self.dataset, self.start, self.count, self.indices, self.model, self.mode,
                self.n_eig, self.sharpness, self.clusters, self.seed, self.include_special,
                self.patch_norm, self.crossed, self.all_captions, self.files, self.captions,
                self.eig, self.source, self.bpe, self.show0, self.restore, self.rgb,
                self.colour, self.perplexity, self.layer]

    @property
    def run_outputs(self) -> list:
        return [self.state, self.run_note, self.status, self.banner, self.gallery, self.pair,
                self.word, self.eig, self.overlay_plot, self.rgb_plot, self.word_plot,
                self.affinity_plot, self.spectrum_plot, self.cluster_plot, self.top_table,
                self.cluster_table, self.timings, self.restore]

    @property
    def link_controls(self) -> dict:
        """Deep-link parameter -> the control it sets (`share.FIELDS` order)."""
        return {"dataset": self.dataset, "start": self.start, "count": self.count,
                "indices": self.indices, "model": self.model, "mode": self.mode,
                "n_eig": self.n_eig, "sharpness": self.sharpness, "clusters": self.clusters,
                "seed": self.seed, "special": self.include_special,
                "patch_norm": self.patch_norm, "crossed": self.crossed,
                "all_captions": self.all_captions, "pair": self.pair, "eig": self.eig,
                "word": self.word, "overlay": self.source, "bpe": self.bpe, "show0": self.show0,
                "layer": self.layer, "rgb": self.rgb, "colour": self.colour,
                "perplexity": self.perplexity}

    @property
    def restore_outputs(self) -> list:
        """The controls a restored view sets (pair, word and eig are set by the run itself)."""
        return [c for name, c in self.link_controls.items() if name not in SET_BY_RUN]

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
        self.dataset.change(lambda name: (gr.update(visible=name == UPLOAD_DATASET),
                                          gr.update(visible=name != UPLOAD_DATASET)),
                            self.dataset, [self.upload_group, self.slice_group], queue=False,
                            api_visibility="private")
        # a k-way cluster count never above n_eig: the slider follows the eigenvector count
        self.n_eig.change(clusters_slider, [self.n_eig, self.clusters], self.clusters,
                          queue=False, api_visibility="private")
        # the Layer slider's range follows the model (its config.json; no weights loaded)
        self.model.change(self.on_model, [self.model, self.layer], self.layer, queue=False,
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

        self.link_button.click(
            self.on_link, list(self.link_controls.values()), self.link_box, api_name="link",
            api_visibility="undocumented", queue=False,
        ).then(None, self.link_box, self.link_box, js=COPY_LINK_JS, queue=False)
        self.export_button.click(
            self.on_export, [self.state, self.pair, self.word, self.eig, self.source, self.bpe,
                             self.show0, self.tree.shown], self.downloads, api_name="export",
            api_description="The current run as files: cuts.npz, summary.json, figures.html.",
            **views)

    def on_load(self, demo: gr.Blocks) -> None:
        """The view as soon as the page opens: the default one (prepared at start-up and held in
        memory), or the one the URL's query parameters ask for. Page loads use the views pool
        and never cut: a linked view not in memory is run by clicking Run (RUN_IF_PENDING_JS),
        so its cut goes through the model pool like any other."""
        demo.load(
            self.on_page_load, None, self.restore_outputs + self.run_outputs + [self.pending],
            api_name="load", api_visibility="undocumented", concurrency_id=VIEWS_POOL,
            concurrency_limit=4, show_progress_on=[self.run_note],
        ).then(None, self.pending, None, js=RUN_IF_PENDING_JS, queue=False)

    # ------------------------------------------------------------------ handlers

    def _request(self, dataset, start, count, indices, model, mode, n_eig, sharpness, clusters,
                 seed, include_special, patch_norm, crossed=False, all_captions=False, files=None,
                 captions=None, rgb=None, colour=None, perplexity=None, layer=None
                 ) -> V.Request:
        data_path = mirror_path(dataset, self.explorer.settings)
        if dataset == UPLOAD_DATASET:
            data_path = stage_upload(files, captions, max_uploads(self.explorer.settings))
            if not (indices or "").strip() and isinstance(start, int | float) and \
                    0 <= start < len(files):  # a count past the last upload means "all of them"
                count = min(count or 1, len(files) - int(start))
        return self.explorer.request(
            dataset=dataset, start=start, count=count, indices=indices, model=model, mode=mode,
            n_eig=n_eig, sharpness=sharpness, clusters=clusters, seed=seed,
            include_special=include_special, patch_norm=patch_norm, crossed=crossed,
            all_captions=all_captions, data_path=data_path, layer=layer, rgb=rgb,
            colour=colour, perplexity=perplexity)

    @user_errors
    def on_run(self, dataset, start, count, indices, model, mode, n_eig, sharpness, clusters,
               seed, include_special, patch_norm, crossed=False, all_captions=False, files=None,
               captions=None, eig=1, source="eigenvector", bpe=False, show0=False, restore=None,
               rgb=None, colour="rgb", perplexity=None, layer=-1, progress=gr.Progress()):
        """Run: cut (or re-read from the cache) the slice the controls name."""
        if not self.explorer.wait_ready(0):
            progress(0.0, desc="preparing the default view")
            self.explorer.wait_ready()
        request = self._request(dataset, start, count, indices, model, mode, n_eig, sharpness,
                                clusters, seed, include_special, patch_norm, crossed,
                                all_captions, files, captions, rgb, colour, perplexity, layer)
        view = self.explorer.run(request, lambda stage, f: progress(f, desc=stage))
        restore = restore or {}
        return self._view_outputs(view, restore.get("pair", 0), restore.get("word"), eig, source,
                                  bpe, show0)

    def _view_outputs(self, view: V.RunView, pair, word, eig, source, bpe, show0) -> tuple:
        """Every output of a run (`run_outputs`), showing `pair` and `word` where they exist."""
        for warning in V.warnings_to_show(view):
            gr.Warning(page_text(warning))
        k = view.run.result.n_eig
        eig = int(eig) if eig is not None and (0 if show0 else 1) <= int(eig) < k else 1
        source = source if source in V.OVERLAYS else "eigenvector"
        pair = int(pair) if isinstance(pair, int | float) and 0 <= pair < view.n_pairs else 0
        n_words = len(view.run.pairs[pair].words)
        word = int(word) if isinstance(word, int | float) and 0 <= word < n_words else V.ALL_WORDS
        figs = V.pair_figures(view, pair, word, eig, source, bool(bpe), bool(show0))
        return (
            view.request,
            V.run_note(view),
            V.status_markdown(view, self.explorer),
            V.banner_html(view),
            V.gallery_items(view),
            gr.update(choices=[(V.pair_label(view, p), p) for p in range(view.n_pairs)],
                      value=pair),
            gr.update(choices=V.word_choices(view, pair), value=word),
            eig_slider(k, show0, eig),
            figs["overlay"], figs["rgb"], figs["words"], figs["affinity"],
            V.spectrum_figure(view), V.cluster_figure(view),
            V.top_words_rows(view),
            V.cluster_rows(view),
            V.timings_markdown(view),
            None,  # the restored pair and word are shown: forget them
        )

    @property
    def link_defaults(self) -> dict:
        """The controls' initial values; the pair and word a run shows first (0, all words)."""
        values = {name: control.value for name, control in self.link_controls.items()}
        return {**values, "pair": 0, "word": V.ALL_WORDS}

    @property
    def link_choices(self) -> dict:
        """The values a link may give the list controls (anything else keeps the default)."""
        return {"dataset": dataset_names(), "overlay": list(V.OVERLAYS)}

    def restore_values(self, values: dict) -> list:
        """`restore_outputs` values for a dict of link values (the Layer slider with the
        linked model's range)."""
        return [self.layer_update(values.get("model"), values.get("layer")) if name == "layer"
                else values[name] for name in self.link_controls if name not in SET_BY_RUN]

    def layer_update(self, model, layer) -> dict:
        """The Layer slider for the model picker's value `model`, at `layer` if it has it."""
        depth = layers.choice_depth(model, self.explorer.default_model)
        return layers.slider_update(depth, layer)

    def on_model(self, model, layer):
        """Another model: the Layer slider's range is its layer count."""
        return self.layer_update(model, layer)

    def request_for(self, values: dict) -> V.Request:
        """The Request a dict of link values names."""
        return self.explorer.request(
            dataset=values["dataset"], start=values["start"], count=values["count"],
            indices=values["indices"], model=values["model"], mode=values["mode"],
            n_eig=values["n_eig"], sharpness=values["sharpness"], clusters=values["clusters"],
            seed=values["seed"], include_special=values["special"],
            patch_norm=values["patch_norm"], crossed=values["crossed"],
            all_captions=values["all_captions"], layer=values.get("layer"),
            rgb=values.get("rgb"), colour=values.get("colour"),
            perplexity=values.get("perplexity"),
            data_path=mirror_path(values["dataset"], self.explorer.settings))

    @user_errors
    def on_page_load(self, request: gr.Request, progress=gr.Progress()):
        """The page's first view: the linked one when the URL has query parameters."""
        params = dict(request.query_params) if request is not None else {}
        values = self.link_defaults
        if share.is_link(params):
            values, problems = share.parse(params, values, self.link_choices)
            for problem in problems:
                gr.Warning(page_text(problem))
            try:
                linked = self.request_for(values)
            except UserError as e:
                gr.Warning(page_text(f"This link cannot be opened: {e} Showing the default "
                                     "view."))
                values = self.link_defaults
            else:
                if self.explorer.cached_view(linked) is None:
                    return self._pending_outputs(values)
        if not self.explorer.wait_ready(0):
            progress(0.0, desc="preparing the default view")
            self.explorer.wait_ready()
        view = self.explorer.view(self.request_for(values),
                                  lambda stage, f: progress(f, desc=stage))
        outputs = self._view_outputs(view, values["pair"], values["word"], values["eig"],
                                     values["overlay"], values["bpe"], values["show0"])
        return (*self.restore_values(values), *outputs, False)

    def _pending_outputs(self, values: dict) -> tuple:
        """A linked view that is not in memory: set the controls, keep the pair and word for
        the Run that RUN_IF_PENDING_JS clicks, and leave the views as they are until then."""
        outputs = [gr.skip()] * len(self.run_outputs)
        outputs[self.run_outputs.index(self.run_note)] = "Opening the linked view…"
        outputs[self.run_outputs.index(self.eig)] = eig_slider(values["n_eig"], values["show0"],
                                                               values["eig"])
        outputs[self.run_outputs.index(self.restore)] = {"pair": values["pair"],
                                                         "word": values["word"]}
        return (*self.restore_values(values), *outputs, True)

    def on_link(self, *values):
        """The query string of a link to the current controls (the page adds its address)."""
        return share.query(dict(zip(self.link_controls, values)), self.link_defaults)

    @user_errors
    def on_export(self, request, pair=0, word=V.ALL_WORDS, eig=1, source="eigenvector",
                  bpe=False, show0=False, levels=None):
        """The session's run as downloads; figures.html holds the views as they are shown, and
        the recursive cut's tree (`levels` deep, when one was cut) goes into summary.json."""
        view = self.explorer.view(request)
        tree = TV.tree_for(view, levels, self.explorer.cache) if levels else None
        figs = V.pair_figures(view, pair, word, eig, source, bool(bpe), bool(show0))
        figures = {"Patch map": figs["overlay"], "Eigenvectors as RGB": figs["rgb"],
                   "Per-word eigenvector scores": figs["words"],
                   "Raw affinities": figs["affinity"],
                   "Eigenvalues and eigengaps": V.spectrum_figure(view),
                   "k-way clusters": V.cluster_figure(view)}
        if tree is not None:
            figures["Recursive cut"] = TV.sunburst_figure(view, tree)
        title = f"engineered_latents: {V.run_title(view)}"
        return export.cuts_files(view.run, figures, title, tree)

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
        return (eig_slider(k, show0, eig),
                V.overlay_figure(view, pair, word, eig, source),
                V.rgb_figure(view, pair, bool(bpe)),
                V.word_figure(view, pair, bool(bpe), bool(show0)))
