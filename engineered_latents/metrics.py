"""Benchmark metrics: pure functions over score matrices (protocols as REFERENCE.md section 2).

Every function takes similarity scores that were already computed (cosine similarities of
L2-normalized embeddings, float32 by the protocol) and returns numbers in percent as Python
floats, or per-example boolean "hit" arrays for bootstrap intervals. Scores are compared in the
dtype they come in (float32 stays float32, float64 stays float64, anything else becomes float64);
comparisons are exact, so no precision is lost or invented here.

The tie rule, everywhere: **a tie is never counted as correct.**

- Winoground and What'sUp use strict ``>``: equal scores make the example wrong.
- Ranked metrics (retrieval recall@k, top-k accuracy) break ties *against* the correct item: every
  wrong candidate whose score is ``>=`` the correct one's is ranked ahead of it. The 1-based rank of
  the correct item is ``1 + #{wrong candidates with score >= correct score}`` and it is a hit at k
  iff that rank is ``<= k``. So a wrong candidate tied with the correct one at the top makes a
  miss at k=1 (but a hit at k=2 if nothing else is ahead). When a query has several correct
  candidates (image->text: an image's captions), the best-scoring correct one counts and ties
  among correct candidates do not hurt (one of them occupies the earlier slot anyway).

Non-finite scores (NaN, inf) are refused with ``ValueError``: a NaN compares false with
everything and would silently turn into hits or misses.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

ArrayLike = Any  # numpy array, torch tensor, or nested sequence of numbers

_CHUNK_ELEMENTS = 1 << 22  # ~4M score comparisons per chunk (a few MB of booleans)


# --------------------------------------------------------------------------- helpers


def _scores(a: ArrayLike, name: str, ndim: int | None = None) -> np.ndarray:
    """A numpy score array in float32/float64 (kept if already so), checked finite."""
    if hasattr(a, "detach"):  # torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf; scores must be finite.")
    return a


def _indices(a: ArrayLike, name: str, n: int, upper: int) -> np.ndarray:
    """A 1-D integer index array of length n with values in [0, upper)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    idx = np.asarray(a)
    if idx.ndim != 1 or len(idx) != n:
        raise ValueError(f"{name} must be 1-D of length {n}, got shape {idx.shape}.")
    if len(idx) and not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must hold integer indices, got dtype {idx.dtype}.")
    idx = idx.astype(np.int64)
    if len(idx) and (idx.min() < 0 or idx.max() >= upper):
        raise ValueError(f"{name} values must lie in [0, {upper}).")
    return idx


def _percent(hits: np.ndarray) -> float:
    """Mean of a boolean array in percent; NaN for an empty array."""
    return float(100.0 * np.mean(hits)) if len(hits) else float("nan")


def _chunk_rows(n_cols: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_cols))


# --------------------------------------------------------------------------- Winoground


def winoground_hits(scores: ArrayLike) -> dict[str, np.ndarray]:
    """Per-example Winoground outcomes: ``{"text", "image", "group"}``, each bool ``[n]``.

    ``scores`` is ``[n, 2, 2]`` with ``scores[e, c, i] = s(caption c, image i)`` (so one example is
    ``[[s(C0,I0), s(C0,I1)], [s(C1,I0), s(C1,I1)]]``). Thrush et al. 2022, strict ``>``:

    - text correct iff ``s(C0,I0) > s(C1,I0)`` and ``s(C1,I1) > s(C0,I1)`` (each image prefers
      its own caption);
    - image correct iff ``s(C0,I0) > s(C0,I1)`` and ``s(C1,I1) > s(C1,I0)`` (each caption prefers
      its own image);
    - group correct iff both. A tie anywhere in a comparison makes it wrong.
    """
    s = _scores(scores, "Winoground scores", ndim=3)
    if s.shape[1:] != (2, 2):
        raise ValueError(f"Winoground scores must be [n, 2, 2], got {s.shape}.")
    c0i0, c0i1, c1i0, c1i1 = s[:, 0, 0], s[:, 0, 1], s[:, 1, 0], s[:, 1, 1]
    text = (c0i0 > c1i0) & (c1i1 > c0i1)
    image = (c0i0 > c0i1) & (c1i1 > c1i0)
    return {"text": text, "image": image, "group": text & image}


def winoground_scores(scores: ArrayLike) -> dict[str, float]:
    """Winoground ``{"text", "image", "group"}`` in percent: the mean of :func:`winoground_hits`."""
    return {name: _percent(h) for name, h in winoground_hits(scores).items()}


def winoground_by_tag(scores: ArrayLike, tags: Sequence[Hashable]) -> dict[Any, dict[str, Any]]:
    """Winoground per tag (e.g. ``collapsed_tag``): ``{tag: {"text", "image", "group", "n"}}``.

    Same protocol as :func:`winoground_hits`, restricted to the examples with that tag; ``n`` is the
    number of examples (int). Tags are returned sorted by their string form.
    """
    hits = winoground_hits(scores)
    tags = list(tags)
    if len(tags) != len(hits["text"]):
        raise ValueError(f"{len(tags)} tags for {len(hits['text'])} Winoground examples.")
    out: dict[Any, dict[str, Any]] = {}
    for tag in sorted(set(tags), key=str):
        mask = np.array([t == tag for t in tags], dtype=bool)
        out[tag] = {name: _percent(h[mask]) for name, h in hits.items()}
        out[tag]["n"] = int(mask.sum())
    return out


# --------------------------------------------------------------------------- What'sUp


def whatsup_correct(option_scores: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    """Per-item What'sUp correctness, bool ``[n]``: option 0 scores *strictly* highest.

    Each item is one image with its caption options, the correct caption always at index 0
    (Kamath et al. 2023). ``option_scores`` is ``[n, m]`` or a list of 1-D arrays whose lengths
    may differ (Controlled A/B have 4 options, COCO-/GQA-spatial 2). Correct iff
    ``s[0] > max(s[1:])``; a tie at the top is wrong. Every item needs at least 2 options.
    """
    if isinstance(option_scores, (list, tuple)):
        rows = [_scores(r, f"What'sUp item {k} scores", ndim=1)
                for k, r in enumerate(option_scores)]
    else:
        rows = list(_scores(option_scores, "What'sUp scores", ndim=2))
    out = np.zeros(len(rows), dtype=bool)
    for k, r in enumerate(rows):
        if len(r) < 2:
            raise ValueError(f"What'sUp item {k} has {len(r)} option(s); at least 2 are needed.")
        out[k] = r[0] > r[1:].max()
    return out


def whatsup_accuracy(option_scores: ArrayLike | Sequence[ArrayLike]) -> float:
    """What'sUp individual accuracy in percent: the mean of :func:`whatsup_correct`."""
    return _percent(whatsup_correct(option_scores))


def whatsup_group_hits(
    correct: ArrayLike, groups: Sequence[Hashable] | ArrayLike, expected_size: int | None = None
) -> np.ndarray:
    """Per-group What'sUp outcome, bool ``[n_groups]``: a group is right iff *all* members are.

    ``correct`` is the per-item bool ``[n]`` from :func:`whatsup_correct`; ``groups`` gives each
    item's group id (any hashable). Pair accuracy groups the 2 images of one object pair with
    opposite relations, set accuracy the 4 images of the pair; the caller builds the ids. Groups
    come out in sorted order of their ids. With ``expected_size`` every group must have exactly
    that many items (``ValueError`` otherwise).
    """
    correct = np.asarray(correct, dtype=bool).reshape(-1)
    if hasattr(groups, "detach"):
        groups = groups.detach().cpu().numpy()
    # keep tuple ids intact: np.asarray would turn a list of tuples into a 2-D array
    groups = groups.tolist() if isinstance(groups, np.ndarray) else list(groups)
    if len(groups) != len(correct):
        raise ValueError(f"{len(groups)} group ids for {len(correct)} items.")
    ids = sorted(set(groups), key=str)
    pos = {g: j for j, g in enumerate(ids)}
    inv = np.array([pos[g] for g in groups], dtype=np.int64)
    sizes = np.bincount(inv, minlength=len(ids))
    if expected_size is not None and len(ids) and (sizes != expected_size).any():
        bad = ids[int(np.flatnonzero(sizes != expected_size)[0])]
        raise ValueError(f"group {bad!r} has {sizes[pos[bad]]} items, expected {expected_size}.")
    n_right = np.bincount(inv, weights=correct.astype(np.float64), minlength=len(ids))
    return n_right == sizes


def whatsup_group_accuracy(
    correct: ArrayLike, groups: Sequence[Hashable] | ArrayLike, expected_size: int | None = None
) -> float:
    """What'sUp pair/set accuracy in percent: the share of groups whose items are all correct.

    See :func:`whatsup_group_hits`; averaged over groups, not items.
    """
    return _percent(whatsup_group_hits(correct, groups, expected_size))


# --------------------------------------------------------------------------- ranked metrics


def _rank_of_target(scores: np.ndarray, target: np.ndarray) -> np.ndarray:
    """1-based pessimistic rank of ``t = target[q]`` in row q: 1 + #{j != t : s[q,j] >= s[q,t]}.

    Rows are processed in chunks so memory stays at a few MB whatever the matrix size.
    """
    n_rows, n_cols = scores.shape
    ranks = np.empty(n_rows, dtype=np.int64)
    step = _chunk_rows(n_cols)
    for r0 in range(0, n_rows, step):
        block = scores[r0:r0 + step]
        rows = np.arange(len(block))
        own = block[rows, target[r0:r0 + step]]
        # the target itself is >= itself (scores are finite), so the count includes it once:
        # that +1 is exactly the 1-based offset.
        ranks[r0:r0 + step] = (block >= own[:, None]).sum(axis=1)
    return ranks


def retrieval_ranks(
    scores: ArrayLike, caption_to_image: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic 1-based ranks for retrieval: ``(t2i_ranks [n_captions], i2t_ranks [n_queries])``.

    ``scores`` is ``[n_captions, n_images]`` text-image similarity; ``caption_to_image[c]`` is the
    index of caption ``c``'s image (an image usually has several captions: COCO 5, Flickr30K 5).

    - Text->image, one query per caption: the rank of its image among all ``n_images`` images,
      ``1 + #{other images with score >= the correct image's score}``.
    - Image->text, one query per image that has at least one caption (images without a caption
      are still gallery items for text->image but cannot be image->text queries): the rank of its
      best-ranked caption among all ``n_captions`` captions,
      ``1 + #{captions of OTHER images with score >= max score over its own captions}``.
      Its other captions never push the best one down. Queries are in image order.
    """
    s = _scores(scores, "retrieval scores", ndim=2)
    n_captions, n_images = s.shape
    c2i = _indices(caption_to_image, "caption_to_image", n_captions, n_images)
    t2i = _rank_of_target(s, c2i)

    own = s[np.arange(n_captions), c2i]  # score of each caption with its own image
    best = np.full(n_images, -np.inf, dtype=s.dtype)
    np.maximum.at(best, c2i, own)  # best own-caption score per image (-inf: no caption)
    ahead = np.zeros(n_images, dtype=np.int64)  # wrong captions with score >= best, per image
    step = _chunk_rows(n_images)
    image_ids = np.arange(n_images)
    for r0 in range(0, n_captions, step):
        block = s[r0:r0 + step]
        wrong = c2i[r0:r0 + step, None] != image_ids[None, :]
        ahead += ((block >= best[None, :]) & wrong).sum(axis=0)
    has_caption = np.bincount(c2i, minlength=n_images) > 0
    return t2i, 1 + ahead[has_caption]


def retrieval_hits(
    scores: ArrayLike, caption_to_image: ArrayLike, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, np.ndarray]:
    """Per-query recall@k hits: ``{"t2i_r{k}": bool [n_captions], "i2t_r{k}": bool [n_images]}``.

    Protocol of LAION CLIP_benchmark's ``zeroshot_retrieval`` over all captions of every image:

    - ``t2i_r{k}``: for each caption, a hit if its image is among the top k images.
    - ``i2t_r{k}``: for each image, a hit if *any* of its captions is among the top k captions
      (not just its first caption).

    "Among the top k" uses the pessimistic ranks of :func:`retrieval_ranks` (rank <= k): a
    caption/image tied with the correct one counts as ranked ahead of it. These arrays are the
    bootstrap units (captions for t2i, images for i2t).
    """
    t2i, i2t = retrieval_ranks(scores, caption_to_image)
    out = {f"t2i_r{k}": t2i <= k for k in ks}
    out.update({f"i2t_r{k}": i2t <= k for k in ks})
    return out


def retrieval_recall(
    scores: ArrayLike,
    caption_to_image: ArrayLike,
    ks: Sequence[int] = (1, 5, 10),
    include_ranks: bool = False,
) -> dict[str, float]:
    """Retrieval recall@k in percent: ``t2i_r1, t2i_r5, t2i_r10, i2t_r1, i2t_r5, i2t_r10``.

    ``t2i_r{k}`` is averaged over captions, ``i2t_r{k}`` over images (see :func:`retrieval_hits`
    for what a hit is and :func:`retrieval_ranks` for the tie rule). With ``include_ranks`` also
    ``t2i_median_rank``, ``t2i_mean_rank``, ``i2t_median_rank``, ``i2t_mean_rank`` (1-based
    pessimistic ranks, not percent).
    """
    t2i, i2t = retrieval_ranks(scores, caption_to_image)
    out = {f"t2i_r{k}": _percent(t2i <= k) for k in ks}
    out.update({f"i2t_r{k}": _percent(i2t <= k) for k in ks})
    if include_ranks:
        for name, r in (("t2i", t2i), ("i2t", i2t)):
            out[f"{name}_median_rank"] = float(np.median(r)) if len(r) else float("nan")
            out[f"{name}_mean_rank"] = float(np.mean(r)) if len(r) else float("nan")
    return out


# --------------------------------------------------------------------------- ImageNet zero-shot


def topk_hits(
    logits: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 5)
) -> dict[str, np.ndarray]:
    """Per-example top-k hits ``{"top{k}": bool [n]}`` for classification.

    ``logits`` is ``[n, classes]`` (cosine similarities or scaled logits: the scale does not
    change ranks), ``labels`` ``[n]`` the true class indices. A hit at k iff the true class's
    pessimistic rank ``1 + #{other classes with logit >= the true class's}`` is ``<= k``: a class
    tied with the true one counts as ranked ahead of it.
    """
    s = _scores(logits, "logits", ndim=2)
    y = _indices(labels, "labels", s.shape[0], s.shape[1])
    rank = _rank_of_target(s, y)
    return {f"top{k}": rank <= k for k in ks}


def topk_accuracy(
    logits: ArrayLike, labels: ArrayLike, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Top-k accuracy in percent ``{"top1", "top5"}``: the mean of :func:`topk_hits`."""
    return {name: _percent(h) for name, h in topk_hits(logits, labels, ks).items()}


def zero_shot_classifier(text_embeddings: ArrayLike) -> np.ndarray:
    """Zero-shot class weights ``[classes, D]`` (float32) from ``[classes, templates, D]``.

    OpenAI's recipe (CLIP notebook, CLIP_benchmark): L2-normalize each template's text embedding,
    average over the templates of a class, L2-normalize the mean. Computed in float64. Predict
    with ``image_embeddings_normalized @ weights.T``.
    """
    e = _scores(text_embeddings, "text embeddings", ndim=3).astype(np.float64)
    norms = np.linalg.norm(e, axis=-1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a template embedding has zero norm; it cannot be normalized.")
    mean = (e / norms).mean(axis=1)
    mean_norm = np.linalg.norm(mean, axis=-1, keepdims=True)
    if (mean_norm == 0).any():
        raise ValueError("the normalized templates of a class average to zero.")
    return (mean / mean_norm).astype(np.float32)


# --------------------------------------------------------------------------- intervals


def bootstrap_ci(
    values: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    scale: float = 100.0,
) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` for ``scale * mean(values)`` (percent by default).

    ``values`` are per-query results ``[n]``: booleans from a ``*_hits`` function (or 0/1 floats,
    or any per-example number). Draws ``n_resamples`` resamples of size n with replacement using
    ``numpy.random.default_rng(seed)`` (deterministic for a seed), takes each resample's mean, and
    returns its ``alpha/2`` and ``1 - alpha/2`` percentiles (numpy's linear interpolation).
    n=0 gives ``(nan, nan)``; n=1 gives ``(v, v)``.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(v).all():
        raise ValueError("bootstrap values must be finite.")
    n = len(v)
    if n == 0 or n_resamples < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples, dtype=np.float64)
    step = _chunk_rows(n)
    for b0 in range(0, n_resamples, step):
        b = min(step, n_resamples - b0)
        means[b0:b0 + b] = v[rng.integers(0, n, size=(b, n))].mean(axis=1)
    lo, hi = np.percentile(scale * means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


__all__ = [
    "bootstrap_ci", "mcnemar_p", "paired", "paired_bootstrap_ci", "retrieval_hits",
    "retrieval_ranks", "retrieval_recall", "topk_accuracy",
    "topk_hits", "whatsup_accuracy", "whatsup_correct", "whatsup_group_accuracy",
    "whatsup_group_hits", "winoground_by_tag", "winoground_hits", "winoground_scores",
    "zero_shot_classifier",
]


# --------------------------------------------------------------------------- paired statistics


def _paired_arrays(a: ArrayLike, b: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Two per-item result arrays of the same items, as float64 ``[n]`` each."""
    x = np.asarray(a, dtype=np.float64).reshape(-1)
    y = np.asarray(b, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"paired results need the same items: {len(x)} vs {len(y)} values.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("paired values must be finite.")
    return x, y


def paired_bootstrap_ci(
    a: ArrayLike,
    b: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    scale: float = 100.0,
) -> tuple[float, float]:
    """Paired percentile bootstrap interval for ``scale * (mean(b) - mean(a))``.

    ``a[i]`` and ``b[i]`` are two models' results on the same item i. Each resample draws n item
    indices with replacement (``numpy.random.default_rng(seed)``) and takes both models' results on
    those same items, so the interval reflects the per-item difference ``b - a``. n=0 gives
    ``(nan, nan)``.
    """
    x, y = _paired_arrays(a, b)
    return bootstrap_ci(y - x, n_resamples=n_resamples, seed=seed, alpha=alpha, scale=scale)


def mcnemar_p(a: ArrayLike, b: ArrayLike) -> float:
    """Exact McNemar p-value of two models' per-item correctness (bool ``[n]`` each).

    Only the discordant items count: ``n10`` where only a is right, ``n01`` where only b is. Under
    the null each discordant item is a fair coin, so p is the two-sided exact binomial test of
    ``n10`` successes in ``n10 + n01`` trials at 0.5: ``min(1, 2 * P(X <= min(n10, n01)))``.
    No discordant item gives p = 1.
    """
    x, y = _paired_arrays(a, b)
    if not (np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all()):
        raise ValueError("McNemar needs per-item correctness (booleans or 0/1).")
    n10 = int(np.sum((x == 1) & (y == 0)))
    n01 = int(np.sum((x == 0) & (y == 1)))
    n = n10 + n01
    if n == 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, 2.0 * binom.cdf(min(n10, n01), n, 0.5)))


def paired(
    hits_a: dict[str, ArrayLike],
    hits_b: dict[str, ArrayLike],
    item_ids: dict[str, Sequence] | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Paired comparison per metric of model a (the reference) and model b on the same items.

    ``hits_a[m]`` and ``hits_b[m]`` are per-item correctness (bool ``[n_m]``) of the same items in
    the same order; ``item_ids[m]`` names the items (default: their positions). Returns per metric
    ``{"difference", "ci95", "p_value", "n_discordant", "a_only", "b_only", "n"}``: the difference
    ``b - a`` in points, its paired bootstrap 95% interval (:func:`paired_bootstrap_ci`), the exact
    McNemar p-value (:func:`mcnemar_p`), and the ids of the items only a / only b gets right.
    """
    if set(hits_a) != set(hits_b):
        raise ValueError(f"metrics differ: {sorted(hits_a)} vs {sorted(hits_b)}.")
    out = {}
    for name in hits_a:
        x = np.asarray(hits_a[name], dtype=bool).reshape(-1)
        y = np.asarray(hits_b[name], dtype=bool).reshape(-1)
        if x.shape != y.shape:
            raise ValueError(f"{name}: {len(x)} vs {len(y)} items; pair only the same items.")
        ids = list(item_ids[name]) if item_ids and name in item_ids else list(range(len(x)))
        if len(ids) != len(x):
            raise ValueError(f"{name}: {len(ids)} ids for {len(x)} items.")
        lo, hi = paired_bootstrap_ci(x, y, n_resamples=n_resamples, seed=seed)
        diff = float(100.0 * (y.mean() - x.mean())) if len(x) else float("nan")
        out[name] = {
            "difference": diff, "ci95": [lo, hi], "p_value": mcnemar_p(x, y),
            "n_discordant": int(np.sum(x != y)),
            "a_only": [ids[i] for i in np.flatnonzero(x & ~y)],
            "b_only": [ids[i] for i in np.flatnonzero(~x & y)], "n": int(len(x)),
        }
    return out
