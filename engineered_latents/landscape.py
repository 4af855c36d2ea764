"""Loss surfaces of a cut slice, as arrays for plots (no model needed: the run keeps its
embeddings).

- Planes over the loss weights: SVD and NCut cluster losses over alpha x beta, loss versus k
  with the eigengap, CKA versus added noise (the original research code's plots).
- A true loss landscape: the losses along two random directions in the space of the slice's
  patch and token embeddings, around the current embeddings (directions scaled per node to the
  node's norm, as in Li et al. 2018's filter normalization). The cluster loss needs one NCut per
  grid point, so it runs on a seeded subsample of nodes.

The paired features for CKA and SVD are, per (image, caption) pair, the mean of its valid patch
embeddings and the mean of its valid token embeddings: X [pairs, D], Y [pairs, D].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import losses
from .cuts import run_ncut
from .errors import UserError
from .pipeline import CutsRun


@dataclass
class NodeFeatures:
    patches: np.ndarray  # [n_patch_nodes, D] valid patch embeddings of the slice's images
    tokens: np.ndarray  # [n_token_nodes, D] valid token embeddings of the slice's captions
    patch_pair: list[np.ndarray]  # per pair, rows of `patches` of its image
    token_pair: list[np.ndarray]  # per pair, rows of `tokens` of its caption


def node_features(run: CutsRun) -> NodeFeatures:
    """The slice's node embeddings (CLS and start/end excluded unless the cut included them)."""
    result = run.result
    if result.patch_embeddings is None:
        raise UserError("This cut was computed by an older version without embeddings: "
                        "run it again to get loss surfaces.")
    first = 0 if run.cut.include_special else 1
    img_rows, offset = [], 0
    for emb in result.patch_embeddings:
        img_rows.append(np.arange(offset, offset + len(emb) - first))
        offset += len(emb) - first
    patches = np.concatenate([e[first:] for e in result.patch_embeddings]).astype(np.float32)
    spans = {c: (info.token_positions[0], info.token_positions[-1] + 1)
             for info, (_, c) in zip(run.pairs, result.pair_items)}
    txt_rows, chunks, offset = {}, [], 0
    for c, (a, b) in sorted(spans.items()):
        chunks.append(result.token_embeddings[c][a:b])
        txt_rows[c] = np.arange(offset, offset + b - a)
        offset += b - a
    tokens = np.concatenate(chunks).astype(np.float32)
    return NodeFeatures(patches, tokens, [img_rows[i] for i, _ in result.pair_items],
                        [txt_rows[c] for _, c in result.pair_items])


def paired_features(nodes: NodeFeatures, patches=None, tokens=None) -> tuple[np.ndarray, ...]:
    """X, Y [pairs, D]: each pair's mean patch embedding and mean token embedding."""
    patches = nodes.patches if patches is None else patches
    tokens = nodes.tokens if tokens is None else tokens
    X = np.stack([patches[rows].mean(0) for rows in nodes.patch_pair])
    Y = np.stack([tokens[rows].mean(0) for rows in nodes.token_pair])
    return X, Y


def weight_planes(run: CutsRun, k: int, alphas: np.ndarray, betas: np.ndarray,
                  noise: np.ndarray | None = None) -> dict:
    """alpha x beta surfaces of the SVD and cluster losses, loss versus k, CKA versus noise."""
    X, Y = paired_features(node_features(run))
    s = losses.cross_covariance_singular_values(X, Y)
    eigval = run.result.eigval
    max_k = min(len(eigval) - 1, len(s) - 1)
    if not 1 <= k <= max_k:
        raise UserError(f"k must be between 1 and {max_k} for this cut (n_eig "
                        f"{len(eigval)}, {len(s)} singular values).")
    ks = np.arange(1, max_k + 1)
    noise = np.linspace(0, 2, 11) if noise is None else noise
    return {
        "alphas": alphas, "betas": betas, "ks": ks, "k": k,
        "svd_surface": losses.svd_loss_surface(s, k, alphas, betas),
        "cluster_surface": losses.cluster_loss_surface(eigval, k, alphas, betas),
        "svd_vs_k": losses.svd_loss_vs_k(s, ks),
        "cluster_vs_k": losses.cluster_loss_vs_k(eigval, ks),
        **dict(zip(("svd_gap_vs_k", "svd_magnitude_vs_k"), losses.svd_terms_vs_k(s, ks))),
        **dict(zip(("cluster_gap_vs_k", "cluster_sum_vs_k"),
                   losses.cluster_terms_vs_k(eigval, ks))),
        "eigengap_k": losses.eigengap_k(eigval, max_k) if max_k >= 2 else None,
        "noise": noise, "cka_vs_noise": losses.cka_vs_noise(X, Y, noise, seed=0),
        "cka": losses.linear_cka(X, Y),
    }


def random_directions(nodes: NodeFeatures, seed: int) -> tuple[tuple[np.ndarray, ...], ...]:
    """Two random directions over all node embeddings, each row scaled to its node's norm."""
    rng = np.random.default_rng(seed)

    def direction(x: np.ndarray) -> np.ndarray:
        d = rng.standard_normal(x.shape).astype(np.float32)
        scale = np.linalg.norm(x, axis=1, keepdims=True) / np.linalg.norm(d, axis=1,
                                                                           keepdims=True)
        return d * scale

    return ((direction(nodes.patches), direction(nodes.tokens)),
            (direction(nodes.patches), direction(nodes.tokens)))


def direction_landscape(
    run: CutsRun, k: int = 2, grid: int = 11, span: float = 0.5, max_nodes: int = 2000,
    seed: int = 0, with_cluster: bool = True,
    progress: Callable[[str, float], None] | None = None,
) -> dict:
    """CKA, SVD and (optionally) cluster loss at embeddings + a*d1 + b*d2 on a grid x grid plane,
    a and b in [-span, span]. The cluster loss cuts a seeded subsample of <= max_nodes nodes
    (joint-mode features: each modality centred and L2-normalized) at each grid point."""
    if grid < 2 or grid > 51:
        raise UserError(f"grid {grid}: use between 2 and 51 points per axis.")
    nodes = node_features(run)
    (p1, t1), (p2, t2) = random_directions(nodes, seed)
    coords = np.linspace(-span, span, grid, dtype=np.float32)
    rng = np.random.default_rng(seed)
    n_p, n_t = len(nodes.patches), len(nodes.tokens)
    share = min(1.0, max_nodes / (n_p + n_t))
    keep_p = np.sort(rng.choice(n_p, max(2, int(n_p * share)), replace=False))
    keep_t = np.sort(rng.choice(n_t, max(2, min(n_t, int(n_t * share))), replace=False))
    out = {name: np.zeros((grid, grid), np.float32) for name in ("cka", "svd", "cluster")}
    n_eig = max(k + 1, 6)
    for i, a in enumerate(coords):
        for j, b in enumerate(coords):
            patches = nodes.patches + a * p1 + b * p2
            tokens = nodes.tokens + a * t1 + b * t2
            X, Y = paired_features(nodes, patches, tokens)
            out["cka"][i, j] = losses.cka_loss(X, Y)
            out["svd"][i, j] = losses.svd_loss(X, Y, min(k, X.shape[1] - 1))
            if with_cluster:
                features = np.concatenate([_unit(patches[keep_p]), _unit(tokens[keep_t])])
                _, eigval = run_ncut(features, n_eig, seed=seed)
                out["cluster"][i, j] = losses.cluster_loss(eigval, min(k, len(eigval) - 1))
            if progress:
                progress("loss landscape", (i * grid + j + 1) / grid**2)
    if not with_cluster:
        del out["cluster"]
    return {"coords": coords, "k": k, "nodes_for_cluster": int(len(keep_p) + len(keep_t)),
            **out}


def _unit(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(0, keepdims=True)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
