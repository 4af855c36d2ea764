"""Colours of the RGB view: three chosen eigenvectors, or a t-SNE / UMAP embedding of them.

Methods (`CutSpec.colour`):
- `rgb`: the three eigenvectors `CutSpec.rgb` (default 1, 2, 3), each min-max scaled over the
  slice (the patch maps over all pairs' patches, the words over all pairs' words).
- `tsne` / `umap`: ncut-pytorch's `tsne_color` / `umap_color` (scikit-learn, umap-learn; both
  imported only when used) over the slice's *view points*: every pair's patch values and node
  token values in eigenvector space 1..k-1 (the trivial eigenvector 0 left out), patches and
  words in one embedding, so a colour means the same on an image and on a word anywhere in the
  slice. A point that occurs in several pairs (joint mode: an image or caption shared by pairs)
  is coloured once. Those functions fit the reduction on at most 1,000 farthest-point-sampled
  anchors and propagate it to every other point by its nearest anchors (`nystrom_propagate`),
  so a 64-pair slice (about 3,700 points; 23k scalar nodes) costs one 1,000-point fit.

The colouring is not part of the cut: its fields (`config.COLOUR_FIELDS`) are left out of the
cut's cache key, and a t-SNE / UMAP colouring has its own cache entry (kind `colours`, keyed by a
digest of the points and the colour parameters), so changing only the colour never recomputes
the cut. UMAP's first call in a process compiles numba code (about 30 s on a free core):
`warm_umap` does that in a background thread (the app starts it), and the progress text says so
while it is not finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np

from .config import COLOUR_METHODS, auto_rgb
from .cuts import minmax_rgb
from .errors import UserError, quoted

log = logging.getLogger(__name__)

METHODS = COLOUR_METHODS
COLOUR_VERSION = 1  # bump when a change alters t-SNE / UMAP colours
ANCHORS = 1000  # ncut-pytorch's num_sample: points the reduction is fitted on
MIN_UMAP_POINTS = 16  # fewer distinct points give UMAP no neighbourhood graph to embed
_UMAP_READY = threading.Event()  # numba's UMAP code compiled in this process
_WARM_THREAD: threading.Thread | None = None
_WARM_LOCK = threading.Lock()


@dataclass
class SliceColours:
    """The RGB view's colours of one run: per pair, its patches and its node tokens."""

    params: tuple  # what they were computed with (`params_of`)
    patch: np.ndarray  # [pairs, 1 + patches, 3] in [0, 1], NaN where a patch is not a node
    tokens: list[np.ndarray]  # per pair [node tokens, 3] in [0, 1]
    points: int = 0  # t-SNE / UMAP: distinct points coloured
    anchors: int = 0  # t-SNE / UMAP: points the reduction was fitted on
    cache: str = ""  # t-SNE / UMAP: "hit" or "miss"
    seconds: float = 0.0


# ----------------------------------------------------------------------------- checks


def parse_rgb(value) -> tuple[int, int, int]:
    """'1, 2, 3' (or '1 2 3', or a sequence of three) -> (1, 2, 3); a `UserError` otherwise."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,\s;]+", value.strip()) if p]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        parts = [value]
    shown = quoted(value if isinstance(value, str) else ", ".join(map(str, parts)))
    numbers = []
    for part in parts:
        try:
            number = float(part)
        except (TypeError, ValueError, OverflowError):
            number = float("nan")
        if not np.isfinite(number) or number != int(number) or number < 0:
            raise UserError(f"RGB eigenvectors {shown}: give three whole numbers of 0 or more, "
                            "e.g. 1, 2, 3.")
        numbers.append(int(number))
    if len(numbers) != 3:
        raise UserError(f"RGB eigenvectors {shown}: give exactly three eigenvector indices "
                        f"(red, green, blue), e.g. 1, 2, 3; got {len(numbers)}.")
    return tuple(numbers)


def check_rgb(rgb, n_eig: int) -> None:
    """Three different eigenvectors below n_eig (the automatic choice of a cut with fewer than
    four eigenvectors repeats one, and passes)."""
    rgb = tuple(rgb)
    if len(rgb) != 3 or not all(isinstance(c, int | np.integer) and 0 <= c < n_eig for c in rgb):
        raise UserError(
            f"RGB eigenvectors {list(rgb)}: give three indices between 0 and n_eig - 1 "
            f"({n_eig - 1}), or raise n_eig above {max(rgb, default=0)}.")
    if len(set(rgb)) < 3 and rgb != auto_rgb(n_eig):
        raise UserError(f"RGB eigenvectors {list(rgb)} repeat an eigenvector: give three "
                        "different ones (red, green, blue), e.g. 1, 2, 3.")


def check_method(method: str, perplexity: int) -> None:
    if method not in METHODS:
        raise UserError(f"Colour {quoted(method)}: choose one of {', '.join(METHODS)}.")
    if method == "tsne" and not (isinstance(perplexity, int | np.integer) and perplexity >= 2):
        raise UserError(f"t-SNE perplexity {quoted(perplexity)}: give a whole number of 2 or "
                        "more (default 30).")


def check_points(method: str, n_points: int, perplexity: int) -> None:
    """Enough distinct points for the method: t-SNE needs at least 2 x perplexity (ncut-pytorch
    would silently lower the perplexity below that), UMAP `MIN_UMAP_POINTS`."""
    if method == "tsne" and n_points < 2 * perplexity:
        lower = (f"lower the perplexity to {n_points // 2} or less, " if n_points // 2 >= 2
                 else "")
        raise UserError(
            f"t-SNE with perplexity {perplexity} needs at least {2 * perplexity} points to "
            f"colour, but this slice has {n_points} distinct patches and words: {lower}add "
            "pairs, or colour by rgb.")
    if method == "umap" and n_points < MIN_UMAP_POINTS:
        raise UserError(f"UMAP needs at least {MIN_UMAP_POINTS} distinct patches and words to "
                        f"colour, but this slice has {n_points}: add pairs, or colour by rgb "
                        "or tsne.")


def params_of(cut) -> tuple:
    """The parameters a colouring depends on (besides the eigenvectors)."""
    if cut.colour == "rgb":
        return ("rgb", tuple(int(c) for c in cut.rgb))
    if cut.colour == "tsne":
        return ("tsne", int(cut.perplexity), int(cut.seed))
    return (cut.colour, int(cut.seed))


# ----------------------------------------------------------------------------- colouring


def view_points(run) -> tuple[np.ndarray, np.ndarray]:
    """([pairs * (1 + patches), k] patch values, [all node tokens, k] token values) of a run:
    the points the RGB view shows, in its pairs' order (NaN rows: patches that are no node)."""
    maps = np.stack([run.result.patch_map(p) for p in range(len(run.pairs))])
    tokens = [run.word_scores(p) for p in range(len(run.pairs))]
    k = maps.shape[-1]
    return maps.reshape(-1, k), np.concatenate(tokens) if tokens else np.zeros((0, k))


def colour_points(x: np.ndarray, method: str, perplexity: int = 30, seed: int = 0,
                  anchors: int = ANCHORS) -> np.ndarray:
    """[n, 3] float32 colours in [0, 1] of points `x` [n, d] by ncut-pytorch's t-SNE / UMAP
    colouring (fitted on at most `anchors` farthest-point-sampled points, then propagated)."""
    import torch
    from ncut_pytorch.color import tsne_color, umap_color

    try:  # scikit-learn's own dependency
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        def threadpool_limits(*a, **k):
            return contextlib.nullcontext()

    from .cuts import _NCUT_LOCK

    check_method(method, perplexity)
    check_points(method, len(x), perplexity)
    fn = {"tsne": tsne_color, "umap": umap_color}[method]
    extra = {"perplexity": int(perplexity)} if method == "tsne" else {}
    # one OpenMP thread: scikit-learn's Barnes-Hut t-SNE with a thread per core on a busy
    # machine spins ~40x slower (56 s against 1.5 s for 100 points on 2 loaded cores)
    with _NCUT_LOCK, threadpool_limits(1, user_api="openmp"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # UMAP's "n_jobs overridden by random_state" and kin
        torch.manual_seed(seed)
        np.random.seed(seed)
        rgb = fn(torch.as_tensor(np.asarray(x, dtype=np.float32)), num_sample=anchors,
                 seed=int(seed), device="cpu", **extra)
    if method == "umap":
        _UMAP_READY.set()
    return np.clip(np.asarray(rgb, dtype=np.float32), 0, 1)


def progress_text(method: str, n_points: int, anchors: int = ANCHORS) -> str:
    """The progress bar's text while a colouring runs (UMAP: whether numba is compiled yet)."""
    name = {"tsne": "t-SNE", "umap": "UMAP"}[method]
    text = (f"{name} colouring: {n_points:,} patches and words, fitted on "
            f"{min(n_points, anchors):,} anchors")
    if method == "umap" and not _UMAP_READY.is_set():
        warming = _WARM_THREAD is not None and _WARM_THREAD.is_alive()
        text += (" (UMAP's numba code is still compiling in the background warm-up: about 30 s "
                 "more the first time)" if warming else
                 " (UMAP's first use in this server compiles numba code: about 30 s more)")
    return text


def slice_colours(run, cut=None, cache=None, progress=None) -> SliceColours:
    """The RGB view's colours of a run for `cut`'s colour fields (default the run's own spec):
    from the run's memo, the cache, or computed (t-SNE / UMAP: one colouring over all points)."""
    return shared_colours([run], cut, cache, progress)[0]


def shared_colours(runs, cut=None, cache=None, progress=None) -> list[SliceColours]:
    """`slice_colours` of several runs whose eigenvectors share one basis (the Compare tab's
    two sides): t-SNE / UMAP colour all their points in one embedding, so a colour means the
    same on both sides; rgb scales each run's eigenvectors over its own slice."""
    cut = cut or runs[0].cut
    params = params_of(cut)
    memos = [getattr(run, "colours", None) for run in runs]
    if all(m is not None and m.params == params for m in memos):
        return memos
    started = time.perf_counter()
    blocks = []
    for run in runs:
        patches, tokens = view_points(run)
        blocks.append((patches, tokens, (len(run.pairs), run.result.n_patches, 3),
                       [len(p.token_positions) for p in run.pairs]))
    if cut.colour == "rgb":
        out = []
        for run, (patches, tokens, shape, lengths) in zip(runs, blocks):
            k = run.result.n_eig
            channels = tuple(min(c, k - 1) for c in cut.rgb)
            token_rgb = minmax_rgb(tokens, channels) if len(tokens) else np.zeros((0, 3))
            out.append(SliceColours(params, minmax_rgb(patches, channels).reshape(shape),
                                    _split(token_rgb, lengths)))
    else:
        out = _reduced(blocks, cut, params, cache, progress)
    for run, colours in zip(runs, out):
        colours.seconds = round(time.perf_counter() - started, 4)
        run.colours = colours
    return out


def _split(rows: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    return np.split(rows, np.cumsum(lengths)[:-1]) if lengths else []


def _reduced(blocks, cut, params, cache, progress) -> list[SliceColours]:
    check_method(cut.colour, cut.perplexity)
    k = min(b[0].shape[1] for b in blocks)
    rows = [np.concatenate([patches[:, :k], tokens[:, :k]]) for patches, tokens, _, _ in blocks]
    points = np.concatenate(rows)[:, 1:]  # eigenvector 0 is trivial
    valid = ~np.isnan(points).any(axis=1)
    unique, inverse = np.unique(points[valid], axis=0, return_inverse=True)
    check_points(cut.colour, len(unique), cut.perplexity)
    from .cache import cache_key

    digest = hashlib.blake2b(np.ascontiguousarray(unique, dtype=np.float32).tobytes(),
                             digest_size=16).hexdigest()
    key = cache_key("colours", {"version": COLOUR_VERSION, "params": list(params),
                                "points": digest, "n": len(unique), "anchors": ANCHORS,
                                "ncut-pytorch": _ncut_version()})
    found = cache.get(key) if cache is not None else None
    hit = found is not None
    if not hit:
        if progress is not None:
            progress(progress_text(cut.colour, len(unique)), 0.97)
        found = colour_points(unique, cut.colour, cut.perplexity, cut.seed)
        if cache is not None:
            cache.set(key, found)
    coloured = np.full((len(points), 3), np.nan, np.float32)
    coloured[valid] = np.asarray(found)[inverse.reshape(-1)]
    out, at = [], 0
    for (_, _, shape, lengths), block in zip(blocks, rows):
        mine, at = coloured[at:at + len(block)], at + len(block)
        n_patch = shape[0] * shape[1]
        out.append(SliceColours(params, mine[:n_patch].reshape(shape),
                                _split(mine[n_patch:], lengths), points=len(unique),
                                anchors=min(len(unique), ANCHORS),
                                cache="hit" if hit else "miss"))
    return out


def _ncut_version() -> str:
    from importlib.metadata import version

    return version("ncut-pytorch")


# ----------------------------------------------------------------------------- UMAP warm-up


def warm_umap(background: bool = True) -> threading.Thread | None:
    """Compile UMAP's numba code now (a tiny fit with the colouring's own settings), in a
    daemon thread unless `background` is False; once per process. Never raises: a failure is
    logged and the first real UMAP colouring then compiles (its progress text says so)."""
    global _WARM_THREAD

    def work():
        started = time.perf_counter()
        try:
            if background and hasattr(os, "setpriority"):  # this thread only (Linux: a task)
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
            import torch
            from ncut_pytorch.color import umap_color

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x = torch.as_tensor(np.random.default_rng(0).normal(size=(64, 4)),
                                    dtype=torch.float32)
                umap_color(x, num_sample=64, n_neighbors=8, seed=0, device="cpu")
            _UMAP_READY.set()
            log.info("UMAP colouring warmed up in %.1f s.", time.perf_counter() - started)
        except Exception as e:  # noqa: BLE001 - the first real call reports a real problem
            log.warning("UMAP warm-up failed (%s): the first UMAP colouring compiles instead.",
                        e)

    with _WARM_LOCK:
        if _UMAP_READY.is_set() or (_WARM_THREAD is not None and _WARM_THREAD.is_alive()):
            return _WARM_THREAD
        if not background:
            work()
            return None
        _WARM_THREAD = threading.Thread(target=work, name="el-umap-warm-up", daemon=True)
        _WARM_THREAD.start()
        return _WARM_THREAD


def umap_ready() -> bool:
    return _UMAP_READY.is_set()
