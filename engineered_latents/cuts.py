"""Nystrom Normalized Cut over a whole slice (one graph, so eigenvectors align across pairs).

Two graph modes:
- `scalar` (the original method): every valid (pair, patch, token) affinity is a node with a 1-d
  feature. Word scores are a token's column averaged over the pair's patches.
- `joint`: every valid patch embedding and token embedding of the slice's unique images and
  captions is a node with its projected embedding (each modality centred and L2-normalized by
  default, else CLIP's modality gap makes eigenvector 1 just "image vs text").

Eigenvector 0 (eigenvalue ~1, constant) is trivial: arrays keep it, views start from 1.
ncut-pytorch draws from torch's and numpy's global RNGs, so seeding and the cut run under one
process-wide lock; a new `Ncut` is made per run (the object keeps state between fits).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .affinity import Affinities
from .errors import UserError
from .lazy import torch  # imported on first use (a cached run needs none)

MODES = ("scalar", "joint")
_NCUT_LOCK = threading.Lock()
# A 1-d graph (scalar mode) is a line: half of ncut-pytorch's 1,024 propagation samples keep
# eigenvectors 1-5 at correlation >= 0.99 with its defaults (0.994-0.997 on 64-pair slices of
# the B/32 and the toy model; seeds alone move them by ~0.99) for ~15 % less NCut time. Smaller
# Nystrom samples (n_sample 4,096 or less) change the graph itself: 0.99 fails there.
SCALAR_NYSTROM = {"n_sample2": 512}
# No repulsion (ncut-pytorch's repulsion_weight stays None), so the repulsion bandwidth is never
# used; naming one skips the binary search that would find it (13 affinity matrices of 1,000
# nodes): half of NCut's time on a 64-pair joint graph, 1-27 % of its CPU on a scalar one (noisy).
# The graph's bandwidth and the eigenvalues are unchanged (within 1e-6 on both); the search's
# sampling no longer moves the RNG, so joint eigenvectors 1-5 stay at correlation 1.0000 and
# scalar ones move as another seed moves them (0.99-0.997, eigenvector 5 0.988; seeds: 0.98-0.996).
NO_REPULSION = {"repulsion_sigma": 1.0}


def run_ncut(
    features: np.ndarray,  # [N, d] float32
    n_eig: int,
    seed: int = 0,
    sharpness: float | None = None,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvectors [N, k], eigenvalues [k] descending) of the slice graph; k = min(n_eig, N)."""
    from ncut_pytorch import Ncut

    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    n = x.shape[0]
    if n < 2:
        raise UserError(f"The graph has {n} node(s); NCut needs at least 2. Add pairs or words.")
    if n_eig < 1:
        raise UserError(f"n_eig is {n_eig}; it must be at least 1 (the default is 20).")
    spread = (x.max(0).values - x.min(0).values).max().item()
    if not np.isfinite(spread) or spread <= 1e-7 * max(1.0, x.abs().max().item()):
        raise UserError(
            "All graph nodes have the same value (constant affinities), so there is nothing to "
            "cut. Use other pairs, the joint mode, or --similarity dot."
        )
    with _NCUT_LOCK:
        torch.manual_seed(seed)
        np.random.seed(seed)
        nystrom = SCALAR_NYSTROM if x.shape[1] == 1 else {}
        ncut = Ncut(n_eig=min(n_eig, n), A_degree=sharpness, device=device, **NO_REPULSION,
                    **nystrom)
        try:
            eigvec = ncut.fit_transform(x)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            if not _degenerate_graph_error(e):
                raise  # an API change or a bug surfaces as itself
            raise UserError(
                f"NCut failed on this graph ({type(e).__name__}: {e}). This happens when almost "
                "all nodes share a few values; try more pairs, the joint mode or --sharpness."
            ) from e
        eigval = ncut.eigval
    return eigvec.float().cpu().numpy(), eigval.float().cpu().numpy()


# What ncut-pytorch 3.2 raises when the nodes share a few values (its bandwidth search finds a
# median distance of 0): the only errors turned into a message for the user.
_DEGENERATE = ("math domain error", "numel() == 0", "numel()==0", "division by zero")


def _degenerate_graph_error(error: Exception) -> bool:
    return any(text in str(error) for text in _DEGENERATE)


def kway_labels(eigvec: np.ndarray, k: int) -> np.ndarray:
    """k-way cluster label of each node from the first k eigenvectors (k <= eigenvectors)."""
    from ncut_pytorch import kway_ncut

    if k < 2:
        raise UserError(f"--clusters is {k}; ask for at least 2 clusters.")
    if k > eigvec.shape[1]:  # kway_ncut would silently return fewer clusters
        raise UserError(
            f"{k} clusters need at least {k} eigenvectors, but only {eigvec.shape[1]} were "
            f"computed: raise --n-eig to {k} or more, or ask for fewer clusters."
        )
    with _NCUT_LOCK:
        return kway_ncut(torch.from_numpy(eigvec[:, :k])).argmax(1).cpu().numpy()


def scalar_nodes(aff: Affinities) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, 1], index [N, 3] of (pair, patch, token)) of every valid affinity."""
    index = np.argwhere(aff.mask)  # row-major: grouped by pair, then patch, then token
    return aff.values[aff.mask][:, None].astype(np.float32), index


def joint_nodes(
    patches: list[np.ndarray],  # per unique image [1 + patches, D]
    tokens: list[np.ndarray],  # per unique caption [T_i, D]
    spans: list[tuple[int, int]],  # per unique caption: token positions that are nodes
    include_special: bool,
    center: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], index [N, 3] of (kind 0 patch / 1 token, item, position))."""
    first_patch = 0 if include_special else 1
    img = [(0, u, i, p[i]) for u, p in enumerate(patches) for i in range(first_patch, len(p))]
    txt = [(1, c, t, tokens[c][t]) for c, (a, b) in enumerate(spans) for t in range(a, b)]
    groups = []
    for rows in (img, txt):
        x = np.stack([r[3] for r in rows]).astype(np.float32)  # [n_modality, D]
        if center:
            x = x - x.mean(0, keepdims=True)
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        groups.append(x)
    index = np.array([r[:3] for r in img + txt], dtype=np.int64)
    return np.concatenate(groups), index


@dataclass
class CutResult:
    """Eigenvectors of one slice graph, and per-pair views of them."""

    mode: str
    eigvec: np.ndarray  # [N, k]
    eigval: np.ndarray  # [k] descending, eigval[0] ~ 1 trivial
    labels: np.ndarray  # [N] k-way cluster per node
    index: np.ndarray  # [N, 3] scalar: (pair, patch, token); joint: (kind, item, position)
    pair_items: list[tuple[int, int]]  # per pair: (unique image, unique caption)
    n_patches: int  # 1 + patches per image (row 0 CLS)
    n_tokens: list[int]  # per unique caption, tokens including start/end
    # the slice's projected embeddings (float16), for analyses that need no model (landscapes)
    patch_embeddings: list[np.ndarray] | None = None  # per unique image [1 + patches, D]
    token_embeddings: list[np.ndarray] | None = None  # per unique caption [T, D]

    @property
    def n_eig(self) -> int:
        return self.eigvec.shape[1]

    def node_values(self, pair: int) -> np.ndarray:
        """Scalar mode: [1 + patches, T, k] node values of one pair (NaN where not a node)."""
        caption = self.pair_items[pair][1]
        out = np.full((self.n_patches, self.n_tokens[caption], self.n_eig), np.nan, np.float32)
        rows = self.index[:, 0] == pair
        out[self.index[rows, 1], self.index[rows, 2]] = self.eigvec[rows]
        return out

    def _joint_values(self, kind: int, item: int, length: int) -> np.ndarray:
        out = np.full((length, self.n_eig), np.nan, np.float32)
        rows = (self.index[:, 0] == kind) & (self.index[:, 1] == item)
        out[self.index[rows, 2]] = self.eigvec[rows]
        return out

    def word_scores(self, pair: int) -> np.ndarray:
        """[T, k] score of each token of the pair's caption per eigenvector (NaN: not a node)."""
        image, caption = self.pair_items[pair]
        if self.mode == "joint":
            return self._joint_values(1, caption, self.n_tokens[caption])
        return _nanmean(self.node_values(pair), axis=0)

    def patch_map(self, pair: int, token: int | None = None) -> np.ndarray:
        """[1 + patches, k] values on the patch grid: for one token, or all words (None).

        Joint mode has one value per patch node, the same for every token.
        """
        image, _ = self.pair_items[pair]
        if self.mode == "joint":
            return self._joint_values(0, image, self.n_patches)
        values = self.node_values(pair)  # [1 + patches, T, k]
        return values[:, token] if token is not None else _nanmean(values, axis=1)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    count = np.sum(~np.isnan(x), axis=axis)
    total = np.nansum(x, axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def minmax_rgb(values: np.ndarray, channels: tuple[int, int, int]) -> np.ndarray:
    """[..., 3] RGB in [0, 1] from three eigenvector channels, min-max scaled over all values."""
    x = values[..., list(channels)]
    lo, hi = np.nanmin(x.reshape(-1, 3), 0), np.nanmax(x.reshape(-1, 3), 0)
    return np.clip((x - lo) / np.where(hi > lo, hi - lo, 1.0), 0, 1).astype(np.float32)
