"""Alignment losses between image patch features and text token features.

Three losses, each with a scalar form and vectorized forms for the app's plots:

- CKA loss: ``1 - linear_cka(X, Y)`` (linear CKA, column-centered features).
- SVD loss: spectral gap / magnitude of the cross-covariance singular values.
- Cluster loss: eigengap / sum of normalized-Laplacian eigenvalues from NCut.

Inputs may be numpy arrays or torch tensors; they are converted to float64 numpy.
Scalars come back as Python floats, arrays as numpy float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import UserError

ArrayLike = Any  # numpy array, torch tensor, or nested sequence of numbers


def _to_f64(a: ArrayLike) -> np.ndarray:
    """Convert a numpy array / torch tensor / sequence to a float64 numpy array."""
    if hasattr(a, "detach"):  # torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _as_matrix(a: ArrayLike, name: str) -> np.ndarray:
    m = _to_f64(a)
    if m.ndim != 2:
        raise ValueError(f"{name} must be a 2-D [n, d] feature matrix, got shape {m.shape}.")
    return m


def _as_vector(a: ArrayLike, name: str) -> np.ndarray:
    v = _to_f64(a).reshape(-1)
    if v.size == 0:
        raise ValueError(f"{name} is empty.")
    return v


def _check_same_rows(X: np.ndarray, Y: np.ndarray) -> None:
    if X.shape[0] != Y.shape[0]:  # a shape mistake of the caller
        raise ValueError(
            f"X and Y need the same number of rows (samples), got {X.shape[0]} and {Y.shape[0]}."
        )
    if X.shape[0] < 2:
        raise UserError(f"Need at least 2 rows (samples), got {X.shape[0]}.")


def _center(X: np.ndarray) -> np.ndarray:
    """Subtract the column means. X: [n, d] -> [n, d]."""
    return X - X.mean(axis=0, keepdims=True)


# --------------------------------------------------------------------------------------------
# 1. CKA
# --------------------------------------------------------------------------------------------


def linear_cka(X: ArrayLike, Y: ArrayLike) -> float:
    """Linear CKA: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F * ||Yc^T Yc||_F), Xc, Yc column-centered.

    In [0, 1]; invariant to orthogonal transforms, isotropic scaling and shifts of X or Y.
    Returns 0.0 if either centered matrix is all zeros.
    """
    # X: [n, dx], Y: [n, dy]
    X, Y = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    _check_same_rows(X, Y)
    Xc, Yc = _center(X), _center(Y)
    cross = np.linalg.norm(Yc.T @ Xc, "fro") ** 2  # [dy, dx] -> scalar
    denom = np.linalg.norm(Xc.T @ Xc, "fro") * np.linalg.norm(Yc.T @ Yc, "fro")
    return float(cross / denom) if denom > 0 else 0.0


def cka_loss(X: ArrayLike, Y: ArrayLike) -> float:
    """CKA alignment loss: 1 - linear_cka(X, Y) (0 = perfectly aligned)."""
    return 1.0 - linear_cka(X, Y)


def cka_vs_noise(
    X: ArrayLike, Y: ArrayLike, noise_levels: Sequence[float], seed: int = 0
) -> np.ndarray:
    """CKA(X, Y + noise) per level; noise ~ N(0, (level * Y.std())^2), elementwise.

    One numpy Generator seeded with ``seed`` draws one standard-normal matrix, which is scaled
    by each level, so the result is deterministic and the levels share the same noise direction.
    Returns float32 [len(noise_levels)].
    """
    # X: [n, dx], Y: [n, dy]
    X, Y = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    _check_same_rows(X, Y)
    levels = _to_f64(noise_levels).reshape(-1)
    z = np.random.default_rng(seed).standard_normal(Y.shape)  # [n, dy]
    std = Y.std()
    out = [linear_cka(X, Y + lvl * std * z) for lvl in levels]
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# 2. Cross-covariance SVD loss
# --------------------------------------------------------------------------------------------


def cross_covariance_singular_values(X: ArrayLike, Y: ArrayLike) -> np.ndarray:
    """Singular values (descending) of C = Xc^T Yc / (n - 1), Xc, Yc column-centered.

    Returns float64 [min(dx, dy)].
    """
    # X: [n, dx], Y: [n, dy]
    X, Y = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    _check_same_rows(X, Y)
    n = X.shape[0]
    C = _center(X).T @ _center(Y) / (n - 1)  # [dx, dy]
    return np.linalg.svd(C, compute_uv=False)


def _svd_terms(s: ArrayLike, k: int) -> tuple[float, float]:
    """(gap, magnitude) of p = s / s.sum() with s sorted descending.

    gap = p[k-1] - p[k] (0 if k >= len(s)), magnitude = p[:k].sum(); (0, 0) if s is all zeros.
    """
    # s: [m]
    s = np.sort(np.abs(_as_vector(s, "singular values")))[::-1]
    k = int(k)
    if k < 1:
        raise UserError(f"k must be >= 1 for the SVD loss, got {k}.")
    total = s.sum()
    if total <= 0:
        return 0.0, 0.0
    p = s / total
    gap = p[k - 1] - p[k] if k < len(p) else 0.0
    return float(gap), float(p[:k].sum())


def svd_loss_from_singular_values(
    s: ArrayLike, k: int, alpha: float = 1.0, beta: float = 1.0
) -> float:
    """SVD loss from singular values s (sorted descending internally; lower is better).

    p = s / s.sum(); gap = p[k-1] - p[k] (0 if k >= len(s)); magnitude = p[:k].sum();
    loss = -alpha * gap - beta * magnitude. All-zero s gives 0.0. k must be >= 1.
    """
    gap, mag = _svd_terms(s, k)
    return float(-alpha * gap - beta * mag)


def svd_loss(X: ArrayLike, Y: ArrayLike, k: int, alpha: float = 1.0, beta: float = 1.0) -> float:
    """SVD loss on the cross-covariance C = Xc^T Yc / (n - 1) of X [n, dx] and Y [n, dy].

    s = singular values of C; see ``svd_loss_from_singular_values`` for the formula.
    """
    return svd_loss_from_singular_values(cross_covariance_singular_values(X, Y), k, alpha, beta)


def svd_loss_surface(
    s: ArrayLike, k: int, alphas: Sequence[float], betas: Sequence[float]
) -> np.ndarray:
    """SVD loss on the grid: out[i, j] = -alphas[i] * gap - betas[j] * magnitude.

    Returns float32 [len(alphas), len(betas)].
    """
    gap, mag = _svd_terms(s, k)
    a = _to_f64(alphas).reshape(-1, 1)  # [A, 1]
    b = _to_f64(betas).reshape(1, -1)  # [1, B]
    return (-a * gap - b * mag).astype(np.float32)


def svd_loss_vs_k(
    s: ArrayLike, ks: Sequence[int], alpha: float = 1.0, beta: float = 1.0
) -> np.ndarray:
    """SVD loss for each k in ks. Returns float32 [len(ks)]."""
    out = [svd_loss_from_singular_values(s, int(k), alpha, beta) for k in ks]
    return np.asarray(out, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# 3. NCut cluster loss
# --------------------------------------------------------------------------------------------


def svd_terms_vs_k(s: ArrayLike, ks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(gap [K], magnitude [K]) of the SVD loss for each k: the two terms it weighs by alpha and
    beta (the loss is -alpha * gap - beta * magnitude, linear in both weights)."""
    terms = np.asarray([_svd_terms(s, k) for k in ks], dtype=np.float32).reshape(-1, 2)
    return terms[:, 0], terms[:, 1]


def cluster_terms_vs_k(eigval_desc: ArrayLike, ks: Sequence[int]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(eigengap [K], eigenvalue sum [K]) of the cluster loss for each k: lam_k - lam_{k-1} and
    sum(lam_1..lam_k) of the ascending Laplacian eigenvalues (the loss is
    -alpha * eigengap + beta * sum, linear in both weights)."""
    lam = laplacian_eigenvalues_from_ncut(eigval_desc)
    terms = np.asarray([_cluster_terms(lam, k) for k in ks], dtype=np.float32).reshape(-1, 2)
    return terms[:, 0], terms[:, 1]


def laplacian_eigenvalues_from_ncut(eigval_desc: ArrayLike) -> np.ndarray:
    """Normalized-Laplacian eigenvalues, ascending, from NCut's affinity eigenvalues.

    ncut-pytorch returns eigenvalues of the normalized affinity in descending order (first ~1);
    the normalized Laplacian is I - that matrix, so lam = 1 - eigval, then sorted ascending
    (lam_0 ~ 0). Returns float64 [m].
    """
    # eigval_desc: [m]
    return np.sort(1.0 - _as_vector(eigval_desc, "eigenvalues"))


def _check_k(k: int, m: int) -> int:
    k_int = int(k)
    if k_int != k or not 1 <= k_int < m:
        raise UserError(
            f"k must be an integer with 1 <= k < {m} (the number of eigenvalues), got {k}. "
            "Compute more NCut eigenvectors or choose a smaller k."
        )
    return k_int


def _cluster_terms(lam_asc: np.ndarray, k: int) -> tuple[float, float]:
    """(gap, total) = (lam_k - lam_{k-1}, sum(lam_1..lam_k)) for ascending lam."""
    # lam_asc: [m]
    k = _check_k(k, len(lam_asc))
    return float(lam_asc[k] - lam_asc[k - 1]), float(lam_asc[1 : k + 1].sum())


def cluster_loss_from_laplacian(
    lam_asc: ArrayLike, k: int, alpha: float = 1.0, beta: float = 1.0
) -> float:
    """Cluster loss on ascending Laplacian eigenvalues lam_0 <= lam_1 <= ... (lower is better).

    loss = -alpha * (lam_k - lam_{k-1}) + beta * sum(lam_1 .. lam_k), with 1 <= k < len(lam).
    k = number of clusters: the gap rewarded is the one after the first k eigenvalues
    lam_0..lam_{k-1} (as in ``eigengap_k``). Input is sorted ascending defensively.
    """
    lam = np.sort(_as_vector(lam_asc, "eigenvalues"))
    gap, total = _cluster_terms(lam, k)
    return float(-alpha * gap + beta * total)


def cluster_loss(
    eigval_desc_from_ncut: ArrayLike, k: int, alpha: float = 1.0, beta: float = 1.0
) -> float:
    """Cluster loss from NCut's descending affinity eigenvalues.

    lam = sort_ascending(1 - eigval);
    loss = -alpha * (lam_k - lam_{k-1}) + beta * sum(lam_1..lam_k), with 1 <= k < len(lam).
    """
    lam = laplacian_eigenvalues_from_ncut(eigval_desc_from_ncut)
    return cluster_loss_from_laplacian(lam, k, alpha, beta)


def cluster_loss_surface(
    eigval_desc: ArrayLike, k: int, alphas: Sequence[float], betas: Sequence[float]
) -> np.ndarray:
    """Cluster loss on the grid: out[i, j] = -alphas[i] * gap + betas[j] * sum(lam_1..lam_k).

    Returns float32 [len(alphas), len(betas)].
    """
    gap, total = _cluster_terms(laplacian_eigenvalues_from_ncut(eigval_desc), k)
    a = _to_f64(alphas).reshape(-1, 1)  # [A, 1]
    b = _to_f64(betas).reshape(1, -1)  # [1, B]
    return (-a * gap + b * total).astype(np.float32)


def cluster_loss_vs_k(
    eigval_desc: ArrayLike, ks: Sequence[int], alpha: float = 1.0, beta: float = 1.0
) -> np.ndarray:
    """Cluster loss for each k in ks. Returns float32 [len(ks)]."""
    lam = laplacian_eigenvalues_from_ncut(eigval_desc)
    out = [cluster_loss_from_laplacian(lam, k, alpha, beta) for k in ks]
    return np.asarray(out, dtype=np.float32)


def eigengap_k(eigval_desc: ArrayLike, max_k: int | None = None) -> int:
    """Number of clusters by the eigengap heuristic on NCut's eigenvalues (descending,
    eigenvalue 0 the trivial ~1): k = argmax over 2 <= k <= max_k of (lambda_{k-1} - lambda_k).

    The gap after the trivial eigenvalue (k = 1, "one cluster") is never a suggestion: it is
    almost always the largest and says nothing. Example: for [1.0, 0.43, 0.19, 0.05] the gaps
    for k = 2, 3 are 0.24 and 0.14, so k = 2. max_k defaults to len(eigval) - 1; ties go to the
    smallest k.
    """
    lam = laplacian_eigenvalues_from_ncut(eigval_desc)  # [m] ascending, lam_0 ~ 0
    m = len(lam)
    if m < 3:
        raise UserError(f"Need at least 3 eigenvalues for the eigengap (k >= 2), got {m}.")
    max_k = m - 1 if max_k is None else _check_k(max_k, m)
    if max_k < 2:
        raise UserError(f"max_k is {max_k}: the eigengap suggests k >= 2.")
    gaps = np.diff(lam)[1:max_k]  # gaps[k-2] = lam_k - lam_{k-1} for k = 2..max_k
    return int(np.argmax(gaps)) + 2
