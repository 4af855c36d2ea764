"""The research's eigenvector analyses, for one cut or two aligned ones (see `compare`).

- top-k agreement: for each pair of eigenvectors, the share of their top-k nodes (or words) that
  they have in common, as a matrix;
- correlation of each eigenvector's per-pair score with the pair's CLIP score (cosine of the
  pooled embeddings), Pearson and Spearman with their p-values;
- word emphasis: each word's score per eigenvector before (model a) and after (model b), sorted
  by the size of the change.

Eigenvector 0 is trivial (constant): every analysis covers eigenvectors 1..k-1 (`eigs`).
"""

from __future__ import annotations

import numpy as np

from .pipeline import CutsRun

TOP = 10  # default k of the top-k agreement (nodes: a percentage of them, see `node_top`)


def topk_overlap(x: np.ndarray, y: np.ndarray, top: int) -> np.ndarray:
    """[k1, k2] share of common rows among the `top` highest of column i of x and column j of y.

    x is [n, k1], y is [n, k2] over the same n rows (nodes or words); ties are broken by row
    order (a stable sort). `top` is capped at n.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"topk_overlap needs [n, k] arrays over the same rows, got {x.shape} "
                         f"and {y.shape}.")
    top = max(1, min(int(top), x.shape[0]))
    sets_x = _top_rows(x, top)  # [k1, n] bool
    sets_y = _top_rows(y, top)  # [k2, n] bool
    return (sets_x.astype(np.float32) @ sets_y.T.astype(np.float32)) / top


def _top_rows(x: np.ndarray, top: int) -> np.ndarray:
    order = np.argsort(-np.nan_to_num(x, nan=-np.inf), axis=0, kind="stable")[:top]  # [top, k]
    member = np.zeros((x.shape[1], x.shape[0]), bool)
    member[np.arange(x.shape[1])[None, :], order] = True
    return member


def word_means(run: CutsRun) -> tuple[list[str], np.ndarray]:
    """(words, [W, k]): each case-folded word's word-level scores averaged over the slice."""
    totals: dict[str, list[np.ndarray]] = {}
    for p, info in enumerate(run.pairs):
        for word, row in zip(info.words, run.word_level_scores(p)):
            totals.setdefault(word.lower(), []).append(row)
    words = sorted(totals)
    return words, np.stack([np.nanmean(totals[w], axis=0) for w in words]).astype(np.float64)


def shared_word_means(run_a: CutsRun, run_b: CutsRun):
    """(shared words, [W, k] of a, [W, k] of b) over the words both slices have."""
    words_a, means_a = word_means(run_a)
    words_b, means_b = word_means(run_b)
    pos_b = {w: i for i, w in enumerate(words_b)}
    shared = [w for w in words_a if w in pos_b]
    rows_a = [i for i, w in enumerate(words_a) if w in pos_b]
    return shared, means_a[rows_a], means_b[[pos_b[w] for w in shared]]


def node_top(n_nodes: int) -> int:
    """Top-k for nodes: 1% of the nodes, at least 10 (capped at the node count)."""
    return min(n_nodes, max(10, n_nodes // 100))


def agreement(run_a: CutsRun, run_b: CutsRun | None = None, top_words: int = TOP,
              top_nodes: int | None = None) -> dict:
    """Top-k agreement matrices [eigs of a, eigs of b] (b = a for one model) on words and nodes.

    Nodes are compared only when both cuts have the same node set (same graph layout: same mode,
    patch grid and tokens); otherwise `nodes` is None and `nodes_note` says why.
    """
    run_b = run_b or run_a
    k = min(run_a.result.n_eig, run_b.result.n_eig)
    eigs = list(range(1, k))
    words, wa, wb = shared_word_means(run_a, run_b)
    out = {"eigs": eigs, "top_words": min(top_words, len(words)), "n_words": len(words),
           "words": topk_overlap(wa[:, 1:k], wb[:, 1:k], top_words).tolist() if words else None}
    ia, ib = run_a.result.index, run_b.result.index
    if ia.shape == ib.shape and np.array_equal(ia, ib):
        top = top_nodes or node_top(len(ia))
        out.update(top_nodes=top, nodes=topk_overlap(run_a.result.eigvec[:, 1:k],
                                                     run_b.result.eigvec[:, 1:k], top).tolist())
    else:
        out.update(top_nodes=None, nodes=None, nodes_note=(
            f"node sets differ ({len(ia)} vs {len(ib)} nodes, patch grids "
            f"{run_a.result.n_patches - 1} vs {run_b.result.n_patches - 1} patches): compared "
            "on words only"))
    return out


def pair_scores(run: CutsRun) -> np.ndarray:
    """[pairs, k] each eigenvector's mean over a pair's nodes (scalar: its patch x token nodes;
    joint: its image's patch nodes and its caption's token nodes)."""
    rows = []
    for p in range(len(run.pairs)):
        if run.result.mode == "joint":
            values = np.concatenate([run.result.patch_map(p), run.result.word_scores(p)])
        else:
            values = run.result.node_values(p).reshape(-1, run.result.n_eig)
        rows.append(np.nanmean(values, axis=0))
    return np.stack(rows)


def run_clip_scores(run: CutsRun, cache=None) -> np.ndarray:
    """[pairs] CLIP score of each pair of a finished cut: the cosine of its pooled image and
    caption embeddings (a SigLIP: its sigmoid of it, `siglip.model_scores`; reloads the slice's
    examples and the run's model)."""
    from .features import pooled_image_embeddings, pooled_text_embeddings
    from .models import load_model
    from .pipeline import open_dataset

    examples = {ex.index: ex for ex in open_dataset(run.slice, cache).load(
        sorted({p.example for p in run.pairs}))}
    if run.slice.crossed_pairs:
        examples = {i: ex.crossed() for i, ex in examples.items()}
    lm = load_model(run.model)
    img = pooled_image_embeddings(lm, [examples[p.example].images[p.image] for p in run.pairs])
    txt = pooled_text_embeddings(lm, [p.caption for p in run.pairs])
    from .siglip import model_scores

    return model_scores(lm, (img * txt).sum(1))  # both L2-normalized: [pairs]


def clip_correlation(scores: np.ndarray, clip: np.ndarray) -> list[dict]:
    """Per eigenvector 1..k-1: Pearson and Spearman correlation (with p-values) of its per-pair
    score ([pairs, k], `pair_scores`) with the pairs' CLIP scores ([pairs]); None where either
    side is constant or fewer than 3 pairs."""
    from scipy import stats

    clip = np.asarray(clip, dtype=np.float64)
    if scores.shape[0] != len(clip):
        raise ValueError(f"{scores.shape[0]} pair scores for {len(clip)} CLIP scores.")
    out = []
    for e in range(1, scores.shape[1]):
        x = scores[:, e].astype(np.float64)
        row = {"eig": e, "pearson": None, "pearson_p": None, "spearman": None,
               "spearman_p": None}
        if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(clip) > 0:
            r, rp = stats.pearsonr(x, clip)
            s, sp = stats.spearmanr(x, clip)
            row.update(pearson=float(r), pearson_p=float(rp), spearman=float(s),
                       spearman_p=float(sp))
        out.append(row)
    return out


def word_emphasis(run_a: CutsRun, run_b: CutsRun, n: int | None = 10) -> dict[int, list[dict]]:
    """Per eigenvector 1..k-1, the shared words' scores before (a) and after (b), sorted by the
    size of the change (largest first; `n` of them, None: all)."""
    words, wa, wb = shared_word_means(run_a, run_b)
    k = min(wa.shape[1], wb.shape[1]) if words else 0
    out = {}
    for e in range(1, k):
        change = wb[:, e] - wa[:, e]
        order = np.argsort(-np.abs(np.nan_to_num(change)), kind="stable")[:n]
        out[e] = [{"word": words[i], "before": float(wa[i, e]), "after": float(wb[i, e]),
                   "change": float(change[i])} for i in order]
    return out


def analyze(run_a: CutsRun, clip_a: np.ndarray, run_b: CutsRun | None = None,
            clip_b: np.ndarray | None = None, n_words: int = 10) -> dict:
    """All three analyses for one model (run_b None) or two (in one basis: see `compare`)."""
    out = {"agreement": agreement(run_a, run_b),
           "clip_correlation": {"a": clip_correlation(pair_scores(run_a), clip_a)}}
    if run_b is not None:
        out["clip_correlation"]["b"] = clip_correlation(pair_scores(run_b), clip_b)
        out["word_emphasis"] = {str(e): rows for e, rows in
                                word_emphasis(run_a, run_b, n_words).items()}
    return out
