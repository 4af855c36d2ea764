"""What the Explore tab shows: plain functions over a finished cut, no Gradio in here.

`Explorer` turns the tab's control values into a cut (through `compute_cuts`, so the disk cache
answers repeated requests) and keeps the few most recent runs, with what their views need, in
memory: sessions only hold the small `Request` that names their run, and picking another pair
or word re-reads that run instead of cutting again. The pair and slice views are functions of a
`RunView`; figures come from `engineered_latents.figures`.
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .. import analysis, colouring, pipeline
from .. import figures as F
from ..cache import Cache
from ..config import AUTO_RGB, CutSpec, Settings, SliceSpec
from ..controls import CONTROLS
from ..data import Example, dataset_names
from ..errors import UserError, quoted
from ..pipeline import CutsRun, compute_cuts, open_dataset
from ..siglip import row0_label
from . import gpu, layers, privacy
from .models import model_spec_for

log = logging.getLogger(__name__)

DISPLAY_SIZE = 224  # the images are shown as the model sees them: short side resized, centre crop
OVERLAYS = ("eigenvector", "raw affinity", "k-way clusters")
ALL_WORDS = -1
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class Request:
    """What one Explore run is: hashable, so a session can keep it and the views can find it."""

    slice: SliceSpec
    cut: CutSpec
    model: object  # ModelSpec


# ----------------------------------------------------------------------------- parsing controls


def _as_int(value, name: str) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise UserError(f"{name} is empty: give a whole number.")
    shown = quoted(value)
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)  # exact, however large (the range check follows)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{name} is {shown}: give a whole number.") from None
    if not np.isfinite(number) or number != int(number):
        raise UserError(f"{name} is {shown}: give a whole number.")
    return int(number)


MAX_TEXT = 2000  # characters of a text field (indices, captions are bounded elsewhere)


def parse_indices(text: str | None, limit: int = 10_000) -> tuple[int, ...] | None:
    """ "3, 7 9 12-14" -> (3, 7, 9, 12, 13, 14); empty -> None (use start and count).

    At most `limit` indices in all (the slice limit, EL_MAX_COUNT): counted before any range
    is expanded, so a short text cannot ask for millions of indices."""
    if text is None or not str(text).strip():
        return None
    text = str(text).strip()
    if len(text) > MAX_TEXT:
        raise UserError(f"The indices are {len(text)} characters long: list at most {limit} "
                        f"indices in {MAX_TEXT} characters.")
    parts = [part for part in re.split(r"[,\s;]+", text) if part]
    spans = []
    for part in parts:
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if span:
            first, last = int(span[1]), int(span[2])
            if last < first:
                raise UserError(f"Index range {part!r}: write it low-high, e.g. 12-15.")
            spans.append((first, last))
        elif re.fullmatch(r"-?\d+", part):
            spans.append((int(part), int(part)))
        else:
            raise UserError(
                f"{part[:40]!r} is not an index: list whole numbers separated by commas or "
                "spaces, with ranges like 12-15."
            )
    total = sum(last - first + 1 for first, last in spans)
    if total > limit:
        raise UserError(f"{total} examples is more than the limit of {limit} per run "
                        "(EL_MAX_COUNT): ask for fewer.")
    return tuple(i for first, last in spans for i in range(first, last + 1))


def parse_request(
    *, dataset: str, start, count, indices: str | None, model: str | None, mode: str,
    n_eig, sharpness, clusters, seed, include_special: bool, patch_norm: bool,
    crossed: bool = False, all_captions: bool = False, data_path: str | None = None,
    default_model: str | None = None, max_count: int = 10_000, layer=None,
    rgb=None, colour: str | None = None, perplexity=None,
) -> Request:
    """The Explore controls as specs; anything a user can get wrong is a `UserError` (the same
    ranges as the CLI's options: `controls.CONTROLS`). `layer`: the Layer slider's value (-1 or
    None: the last layer; the model's own range is checked by the run, `models.check_layer`)."""
    sharp = None if sharpness in (None, "", 0, 0.0) else CONTROLS["sharpness"].check(sharpness)
    if str(dataset or "demo") not in dataset_names():
        raise UserError(f"Unknown dataset {str(dataset)[:40]!r}: choose one of the list.")
    chosen = parse_indices(indices, max_count)
    slice_spec = SliceSpec(
        dataset=str(dataset or "demo"), start=_checked(start, "start", "Start"),
        count=_checked(count, "count", "Count"), indices=chosen, data_path=data_path,
        crossed_pairs=bool(crossed), all_captions=bool(all_captions),
    )
    k = _checked(n_eig, "n_eig", "Eigenvectors")
    # 0 or empty clusters: the default, min(6, n_eig); the page's RGB view is eigenvectors 1-3
    k_way = None if clusters in (None, "", 0) else _checked(clusters, "clusters", "Clusters")
    cut = CutSpec(
        mode=CONTROLS["mode"].check(str(mode or "scalar")), n_eig=k,
        seed=_checked(seed, "seed", "Seed"), include_special=bool(include_special),
        clusters=k_way, sharpness=sharp, **colour_fields(rgb, colour, perplexity),
    )
    model_spec = model_spec_for(model, default_model, bool(patch_norm))
    try:
        chosen_layer = layers.spec_layer(layer)
    except UserError as e:
        raise UserError(f"Layer: {e}") from None
    if chosen_layer is not None:
        model_spec = dataclasses.replace(model_spec, layer=chosen_layer)
    return Request(slice_spec, cut, model_spec)


def colour_fields(rgb, colour, perplexity) -> dict:
    """The RGB view's controls as CutSpec fields: the RGB eigenvectors ("1, 2, 3", the
    automatic choice, is None: capped at n_eig - 1 like the CLI's default), the colouring and
    t-SNE's perplexity. Their check against n_eig and the slice is the run's (`colouring`)."""
    chosen = None
    if rgb is not None and str(rgb).strip():
        chosen = colouring.parse_rgb(rgb)
    method = CONTROLS["colour"].check(str(colour or "rgb"))
    if perplexity is None or (isinstance(perplexity, str) and not perplexity.strip()):
        perplexity = CONTROLS["perplexity"].default
    return {"rgb": None if chosen == AUTO_RGB else chosen, "colour": method,
            "perplexity": _checked(perplexity, "perplexity", "Perplexity")}


def _checked(value, control: str, label: str) -> int:
    """A whole number from a page field, within the control table's range for `control`."""
    number = _as_int(value, label)
    c = CONTROLS[control]
    if (c.lo is not None and number < c.lo) or (c.hi is not None and number > c.hi):
        raise UserError(f"{label} is {number}: {c.range_text()}.")
    return number


# ----------------------------------------------------------------------------- run + derived data


@dataclass
class RunView:
    """A finished cut and what its views need, computed once per run."""

    request: Request
    run: CutsRun
    grid: tuple[int, int]  # patch rows, cols
    affinities: list[np.ndarray]  # per pair [1 + patches, node tokens] raw similarities
    word_levels: list[np.ndarray]  # per pair [words, k]
    patch_rgb: np.ndarray  # [pairs, 1 + patches, 3]
    token_rgb: list[np.ndarray]  # per pair [node tokens, 3]
    top_words: list[tuple[int, float, list[str], list[str]]]  # (eig, eigval, high, low)
    clusters: list[dict]  # per cluster: size, words, patch nodes, pairs
    images: dict[tuple[int, int], np.ndarray]  # (example, image) -> [S, S, 3] display crop
    seconds: float = 0.0  # time spent deriving the views
    # (example, image) -> the whole image, shrunk to fit S x S (the gallery shows it uncropped)
    thumbnails: dict[tuple[int, int], np.ndarray] | None = None

    @property
    def n_pairs(self) -> int:
        return len(self.run.pairs)


class _LRU:
    def __init__(self, size: int):
        self.size, self._items, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class Explorer:
    """The app's link to the library: runs, the recent-runs memory, and the default view."""

    def __init__(self, settings: Settings | None = None, default_model: str | None = None,
                 cache: Cache | None = None, max_runs: int = 8):
        self.settings = settings or Settings.from_env()
        self.default_model = default_model
        self.cache = cache or Cache(self.settings.cache_dir,
                                    int(self.settings.cache_size_gb * 2**30))
        self._runs = _LRU(max_runs)
        privacy.register_private_path(default_model)  # a local default: no path in messages
        self._ready = threading.Event()
        self._ready.set()
        self.startup: dict = {}

    def default_request(self) -> Request:
        return Request(SliceSpec(), CutSpec(), model_spec_for(None, self.default_model))

    def request(self, **controls) -> Request:
        """`parse_request` with this app's default model."""
        return parse_request(default_model=self.default_model,
                             max_count=self.settings.max_count, **controls)

    # --- the default view, prepared at start-up

    def warm_up(self, preload_model: bool = True) -> threading.Thread:
        """Cut the default slice in the background (from the cache after the first start), then
        load the default model so that the first Run does not wait for it."""
        self._ready.clear()

        def work():
            started = time.perf_counter()
            try:
                view = self._run(self.default_request())
                self.startup["default_view_s"] = round(time.perf_counter() - started, 3)
                log.info("Default view ready in %.1f s (%s).", self.startup["default_view_s"],
                         run_note(view).rstrip("."))
            except Exception as e:  # noqa: BLE001 - the page then shows the error on load
                log.warning("Could not prepare the default view: %s", e)
            finally:
                self._ready.set()
            if preload_model:
                try:
                    pipeline.preload_model(self.default_request().model)
                    self.startup["model_loaded_s"] = round(time.perf_counter() - started, 3)
                    log.info("Default model loaded after %.1f s.", self.startup["model_loaded_s"])
                except Exception as e:  # noqa: BLE001 - a Run will report it properly
                    log.warning("Could not preload the default model: %s", e)

        thread = threading.Thread(target=work, name="el-warm-up", daemon=True)
        thread.start()
        return thread

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    # --- runs

    def run(self, request: Request, progress: Progress | None = None) -> RunView:
        """Cut (or re-read) a request's slice and derive its views."""
        self._ready.wait()
        return self._run(request, progress)

    def view(self, request: Request | None, progress: Progress | None = None) -> RunView:
        """The run a session is looking at: from memory, else from the cache (same results)."""
        request = request or self.default_request()
        return self._runs.get(request) or self.run(request, progress)

    def cached_view(self, request: Request) -> RunView | None:
        """The run of `request` if it is held in memory (no cut, no cache read), else None."""
        return self._runs.get(request)

    def _run(self, request: Request, progress: Progress | None = None) -> RunView:
        report = progress or (lambda stage, fraction: None)
        staged = request.slice.data_path
        if request.slice.dataset == "upload" and staged and not os.path.isdir(staged):
            raise UserError("Your uploaded images are no longer on the server (uploads are "
                            "removed an hour after their last run): upload them again and Run.")
        # on a ZeroGPU Space the cut runs in a GPU worker process: no callback crosses over
        scaled = None if gpu.enabled() else (lambda stage, f: report(stage, 0.9 * f))
        run = gpu.call(compute_cuts, request.slice, request.cut, request.model, cache=self.cache,
                       progress=scaled, settings=self.settings)
        report("preparing the views", 0.92)
        started = time.perf_counter()
        view = derive(run, request, self.cache)
        view.seconds = round(time.perf_counter() - started, 4)
        self._runs.put(request, view)
        return view

    def cache_bytes(self) -> int:
        total = 0
        for root, _, files in os.walk(self.cache.directory):
            for name in files:
                try:
                    total += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return total


def display_crop(image: Image.Image, size: int = DISPLAY_SIZE) -> np.ndarray:
    """[size, size, 3] uint8: the short side resized to `size`, then the centre cropped (as
    CLIP's processor does), so the patch grid lines up with the picture."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    resized = image.resize((max(size, round(w * scale)), max(size, round(h * scale))),
                           Image.Resampling.BICUBIC)
    left, top = (resized.width - size) // 2, (resized.height - size) // 2
    return np.asarray(resized.crop((left, top, left + size, top + size)))


def thumbnail(image: Image.Image, size: int = DISPLAY_SIZE) -> np.ndarray:
    """[h, w, 3] uint8: the whole image, its long side shrunk to `size` (never cropped)."""
    image = image.convert("RGB")
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image)


def derive(run: CutsRun, request: Request, cache: Cache | None) -> RunView:
    """Everything the views show that is computed once per run."""
    res = run.result
    n = res.n_patches - 1
    side = int(round(np.sqrt(n)))
    grid = (side, side) if side * side == n else (1, n)
    examples = _load_examples(run, cache)
    pair_images = [examples[p.example].images[p.image] for p in run.pairs]
    word_levels = [run.word_level_scores(p) for p in range(len(run.pairs))]
    # the request's colouring (a cached comparison's runs keep the spec they were cut with)
    colours = colouring.slice_colours(run, request.cut, cache=cache)
    rgb = np.nan_to_num(colours.patch, nan=0.5)
    token_rgb = [np.nan_to_num(t, nan=0.5) for t in colours.tokens]
    return RunView(
        request=request, run=run, grid=grid,
        affinities=analysis.pair_affinity_maps(run),
        word_levels=word_levels, patch_rgb=rgb, token_rgb=token_rgb,
        top_words=_top_words(run), clusters=analysis.cluster_summaries(run),
        images={(p.example, p.image): display_crop(im) for p, im in zip(run.pairs, pair_images)},
        thumbnails={(p.example, p.image): thumbnail(im) for p, im in zip(run.pairs, pair_images)},
    )


def _load_examples(run: CutsRun, cache: Cache | None) -> dict[int, Example]:
    dataset = open_dataset(run.slice, cache)
    indices = sorted({p.example for p in run.pairs})
    examples = {ex.index: ex for ex in dataset.load(indices)}
    missing = sorted({p.example for p in run.pairs} - set(examples))
    if missing:
        why = " ".join(getattr(dataset, "warnings", [])) or "they cannot be read any more."
        raise UserError(f"Examples {missing[:5]} of this slice cannot be shown: {why} Pick "
                        "other examples, or replace the files.")
    return examples


def _top_words(run: CutsRun) -> list[tuple[int, float, list[str], list[str]]]:
    """(eigenvector, eigenvalue, highest words, lowest words) for every eigenvector but 0."""
    return [(e, float(run.result.eigval[e]), words["high"], words["low"])
            for e, words in run.top_words_all(5).items()]



# ----------------------------------------------------------------------------- pair views


def pair_label(view: RunView, pair: int) -> str:
    info = view.run.pairs[pair]
    where = f"#{info.example}" + (f" image {info.image}" if info.image else "")
    return f"{pair}: {where}: {info.caption}"


def word_choices(view: RunView, pair: int) -> list[tuple[str, int]]:
    words = view.run.pairs[pair].words
    return [("all words", ALL_WORDS)] + [(w, i) for i, w in enumerate(words)]


def gallery_items(view: RunView) -> list[tuple[np.ndarray, str]]:
    """(the whole image, its pair's label) per pair: uncropped, so a wide or tall upload is seen
    as it is (the patch maps show the centre square the model sees)."""
    shown = view.thumbnails or view.images
    return [(shown[(p.example, p.image)], pair_label(view, i))
            for i, p in enumerate(view.run.pairs)]


def _check_pair(view: RunView, pair) -> int:
    pair = 0 if pair is None else _as_int(pair, "Pair")
    if not 0 <= pair < view.n_pairs:
        raise UserError(f"Pair {pair} does not exist: this slice has pairs 0..{view.n_pairs - 1}.")
    return pair


def _check_eig(view: RunView, eig) -> int:
    k = view.run.result.n_eig
    eig = 1 if eig is None else _as_int(eig, "Eigenvector")
    if not 0 <= eig < k:
        raise UserError(f"Eigenvector {eig} does not exist: this cut has 0..{k - 1}.")
    return eig


def _patch_labels(view: RunView) -> list[str]:
    rows, cols = view.grid
    return [row0_label(view.run.model)] + [f"r{r} c{c}" for r in range(rows)
                                            for c in range(cols)]


def overlay_values(view: RunView, pair: int, word: int, eig: int, source: str) -> np.ndarray:
    """[1 + patches] the value drawn on each patch (row 0 the CLS token)."""
    res, info = view.run.result, view.run.pairs[pair]
    positions = info.word_positions[word] if word != ALL_WORDS else info.token_positions
    if source == "raw affinity":
        columns = [info.token_positions.index(t) for t in positions]
        return view.affinities[pair][:, columns].mean(axis=1)
    if source == "k-way clusters":
        return analysis.patch_clusters(view.run, pair)
    if word == ALL_WORDS:
        return res.patch_map(pair)[:, eig]
    return analysis.word_patch_map(view.run, pair, positions, eig)


def overlay_figure(view: RunView, pair, word, eig, source: str = "eigenvector"):
    pair, eig = _check_pair(view, pair), _check_eig(view, eig)
    info = view.run.pairs[pair]
    word = ALL_WORDS if word is None else _as_int(word, "Word")
    if not ALL_WORDS <= word < len(info.words):
        word = ALL_WORDS
    if source not in OVERLAYS:
        raise UserError(f"Overlay {source!r}: use one of {', '.join(OVERLAYS)}.")
    values = overlay_values(view, pair, word, eig, source)
    rows, cols = view.grid
    grid = np.asarray(values[1:], dtype=np.float64).reshape(rows, cols)
    label = "all words" if word == ALL_WORDS else f"“{info.words[word]}”"
    joint = view.run.result.mode == "joint"
    if source == "raw affinity":
        what, kwargs = f"raw affinity of {label}", dict(colorscale=F.SEQUENTIAL, zmid=None)
    elif source == "k-way clusters":
        what = f"k-way clusters ({view.run.cut.clusters})"
        kwargs = dict(categories=int(view.run.result.labels.max()) + 1)
    elif word != ALL_WORDS and joint:
        what, kwargs = f"{label}: similarity to each patch over eigenvectors 1..", {}
    else:
        what, kwargs = f"{label} on eigenvector {eig}", {}
    if view.run.cut.include_special and source != "k-way clusters":
        what += f" ({row0_label(view.run.model)} {values[0]:.3f})"
    image = view.images[(info.example, info.image)]
    return F.patch_overlay(image, grid, [what, _short(info.caption)],
                           value_name="cluster" if source == "k-way clusters" else "value",
                           **kwargs)


def word_figure(view: RunView, pair, bpe: bool = False, show0: bool = False):
    pair = _check_pair(view, pair)
    info, run = view.run.pairs[pair], view.run
    first = 0 if show0 else 1
    if bpe:
        scores, labels, name = run.word_scores(pair), info.tokens, "BPE piece"
    else:
        scores, labels, name = view.word_levels[pair], info.words, "word"
    eigs = list(range(first, run.result.n_eig))
    return F.word_heatmap(scores[:, first:], labels, eigs,
                          [f"{name} scores per eigenvector", _short(info.caption)], row_name=name)


def affinity_figure(view: RunView, pair):
    pair = _check_pair(view, pair)
    info = view.run.pairs[pair]
    first = 0 if view.run.cut.include_special else 1
    values = view.affinities[pair][first:]
    labels = _patch_labels(view)[first:]
    sim = view.run.cut.similarity
    return F.affinity_heatmap(values, labels, info.tokens,
                              [f"raw patch × token affinity ({sim})", _short(info.caption)])


def rgb_figure(view: RunView, pair, bpe: bool = False):
    pair = _check_pair(view, pair)
    info = view.run.pairs[pair]
    rows, cols = view.grid
    patch_rgb = view.patch_rgb[pair][1:].reshape(rows, cols, 3)
    token_rgb = view.token_rgb[pair]
    if bpe:
        labels, colours = info.tokens, token_rgb
    else:
        index = {t: i for i, t in enumerate(info.token_positions)}
        labels = info.words
        colours = np.stack([token_rgb[[index[t] for t in pos]].mean(0)
                            for pos in info.word_positions])
    return F.rgb_view(patch_rgb, labels, colours, [rgb_title(view), _short(info.caption)])


def rgb_title(view: RunView) -> str:
    """What the RGB view's colours are: three eigenvectors, or a t-SNE / UMAP of them."""
    cut, k = view.request.cut, view.run.result.n_eig
    if cut.colour == "rgb":
        return f"eigenvectors {tuple(min(c, k - 1) for c in cut.rgb)} as RGB"
    name = {"tsne": f"t-SNE (perplexity {cut.perplexity})", "umap": "UMAP"}[cut.colour]
    return f"{name} of eigenvectors 1-{k - 1} as RGB, one colouring over the slice"


def pair_figures(view: RunView, pair, word=None, eig=1, source="eigenvector", bpe=False,
                 show0=False) -> dict:
    return {
        "overlay": overlay_figure(view, pair, word, eig, source),
        "rgb": rgb_figure(view, pair, bpe),
        "words": word_figure(view, pair, bpe, show0),
        "affinity": affinity_figure(view, pair),
    }


# ----------------------------------------------------------------------------- slice views


def spectrum_figure(view: RunView):
    eigval = view.run.result.eigval
    gaps = eigval[:-1] - eigval[1:]
    # gap 0 (after the trivial eigenvector) is always large: mark the largest after it
    marked = (np.argsort(-gaps[1:], kind="stable")[:2] + 1).tolist() if len(gaps) > 1 else []
    return F.eigen_spectrum(eigval, gaps, marked, f"eigenvalues of the slice graph "
                            f"({view.run.result.eigvec.shape[0]} nodes, {view.run.cut.mode})")


def cluster_figure(view: RunView):
    details = []
    for c in view.clusters:
        lines = ["words: " + (", ".join(c["words"]) or "none")]
        lines.append(f"patch nodes: {c['patch_nodes']}")
        if c["pairs"]:
            lines.append("mostly in pairs " + ", ".join(map(str, c["pairs"])))
        details.append(lines)
    return F.cluster_bars([c["size"] for c in view.clusters], details,
                          f"k-way clusters (k = {view.run.cut.clusters}): nodes per cluster")


def top_words_rows(view: RunView) -> list[list]:
    return [[e, round(v, 5), ", ".join(high), ", ".join(low)]
            for e, v, high, low in view.top_words]


TOP_WORDS_HEADERS = ["eig", "eigenvalue", "highest words", "lowest words"]
CLUSTER_HEADERS = ["k", "nodes", "example words", "patches", "top pairs"]


def cluster_rows(view: RunView) -> list[list]:
    return [[c["cluster"], c["size"], ", ".join(c["words"]), c["patch_nodes"],
             ", ".join(map(str, c["pairs"]))] for c in view.clusters]


def timings_markdown(view: RunView) -> str:
    run = view.run
    lines = ["| stage | seconds |", "|---|---|"]
    for stage, seconds in run.timings.items():
        if seconds is not None and stage != "computed_in":
            lines.append(f"| {_md(stage)} | {_md(seconds)} |")
    lines.append(f"| views | {view.seconds} |")
    cache = run.cache
    hit = cache.get("cuts") == "hit"
    note = f"**cuts**: {'from the cache' if hit else 'computed'}"
    if hit and run.timings.get("computed_in") is not None:
        note += f" (first computed in {_md(run.timings['computed_in'])} s)"
    extra = [f"{_md(k.replace('_', ' '))}: {_md(v)}" for k, v in cache.items() if k != "cuts"]
    return "\n".join(lines) + "\n\n" + " · ".join([note] + extra)


def run_note(view: RunView) -> str:
    run = view.run
    how = "from the cache" if run.cache.get("cuts") == "hit" else "computed"
    total = run.timings.get("total")
    took = f" in {total:.2f} s" if isinstance(total, int | float) else ""
    return f"{view.n_pairs} pairs, {run.result.eigvec.shape[0]} nodes: {how}{took}."


def slice_where(sl) -> str:
    """'0..7' or 'indices 3, 7, 9': which examples a slice is."""
    if sl.indices:
        return f"indices {', '.join(map(str, sl.indices[:8]))}{'…' if len(sl.indices) > 8 else ''}"
    return f"{sl.start}..{sl.start + sl.count - 1}"


def model_label(model) -> str:
    """A resolved model's name as the page shows it: a local folder by its name only (no server
    paths in the page)."""
    if model.weights_id.startswith("local:"):
        return os.path.basename(os.path.normpath(model.name))
    return model.name


def status_markdown(view: RunView | None, explorer: Explorer) -> str:
    size = explorer.cache_bytes() / 2**20
    cache_note = f"**cache** {size:.1f} MB" + ("" if explorer.cache.persistent else " (memory)")
    if view is None:
        return f"Preparing the default view… · {cache_note}"
    run = view.run
    prov = run.provenance
    weights = f"**DEMO weights ({run.model.demo_label})**" if run.demo_weights \
        else "real weights"
    parts = [
        f"**model** {_md(model_label(run.model))} ({_md(run.model.weights_id)}), {weights}"
        + layer_text(view),
        f"**device** {_md(prov.get('device'))}, {_md(prov.get('dtype'))}",
        f"**slice** {_md(run.slice.dataset)} {slice_where(run.slice)}: {view.n_pairs} pairs, "
        f"{run.result.eigvec.shape[0]} nodes, {run.cut.mode}, {run.result.n_eig} eigenvectors",
        cache_note,
    ]
    return " · ".join(parts)


def run_title(view: RunView) -> str:
    """A one-line plain-text name of a run (titles of exported files, of loss figures)."""
    run = view.run
    demo = f", DEMO weights ({run.model.demo_label})" if run.demo_weights else ""
    return (f"{run.slice.dataset} {slice_where(run.slice)}, {view.n_pairs} pairs, "
            f"{run.cut.mode}, {run.result.n_eig} eigenvectors, {model_label(run.model)}{demo}"
            + layer_text(view))


def layer_text(view: RunView) -> str:
    """', layer 6' for a run on another hidden state than the last ('' for the last)."""
    layer = getattr(view.request.model, "layer", None)
    return "" if layer is None else f", layer {layer}"


def banner_html(view: RunView | None) -> str:
    """A visible warning when the numbers mean nothing (demo weights); empty otherwise."""
    if view is None or not view.run.demo_weights:
        return ""
    text = html.escape(view.run.model.warning or "Demo weights: the numbers mean nothing.")
    return ('<div class="el-banner" role="alert" style="background:#fff3cd;color:#664d03;'
            'border:1px solid #e0b000;border-radius:6px;padding:8px 12px;font-weight:600">'
            f"⚠ {text}</div>")


def _md(value) -> str:
    """Data in Markdown shown as typed: HTML escaped, Markdown's active characters backslashed."""
    text = html.escape(str(value), quote=False)
    return re.sub(r"([\\`*_{}\[\]()#+!|~])", r"\\\1", text)


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def warnings_to_show(view: RunView) -> list[str]:
    return [w for w in view.run.warnings if w and w != view.run.model.warning]


