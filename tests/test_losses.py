"""Tests for engineered_latents.losses, with hand-computed oracles."""

import numpy as np
import pytest

from engineered_latents.errors import UserError
from engineered_latents.losses import (
    cka_loss,
    cka_vs_noise,
    cluster_loss,
    cluster_loss_from_laplacian,
    cluster_loss_surface,
    cluster_loss_vs_k,
    cross_covariance_singular_values,
    eigengap_k,
    laplacian_eigenvalues_from_ncut,
    linear_cka,
    svd_loss,
    svd_loss_from_singular_values,
    svd_loss_surface,
    svd_loss_vs_k,
)

# NCut affinity eigenvalues (descending) -> Laplacian [0, 0.1, 0.2, 0.8, 0.9] (ascending).
NCUT_DESC = [1.0, 0.9, 0.8, 0.2, 0.1]
LAPLACIAN_ASC = [0.0, 0.1, 0.2, 0.8, 0.9]


def _rand(n, d, seed):
    return np.random.default_rng(seed).standard_normal((n, d))


def _centered_orthonormal(n, d, seed):
    """[n, d] with orthonormal columns that each sum to zero (so centering is a no-op)."""
    A = _rand(n, d, seed)
    A -= A.mean(axis=0)
    Q, _ = np.linalg.qr(A)  # columns span the same (centered) space
    return Q


# ---------------------------------------------------------------------------------- CKA


def test_cka_self_is_one():
    X = _rand(100, 8, 0)
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert cka_loss(X, X) == pytest.approx(0.0, abs=1e-12)


def test_cka_invariant_to_orthogonal_transform():
    X = _rand(100, 8, 1)
    Q, _ = np.linalg.qr(_rand(8, 8, 2))
    assert linear_cka(X, X @ Q) == pytest.approx(1.0, abs=1e-10)


def test_cka_invariant_to_isotropic_scale_and_shift():
    X = _rand(100, 8, 3)
    assert linear_cka(X, X * 3.7 + 5.0) == pytest.approx(1.0, abs=1e-10)


def test_cka_independent_is_small():
    X, Y = _rand(500, 10, 4), _rand(500, 10, 5)
    assert linear_cka(X, Y) < 0.2


def test_cka_accepts_torch_and_mismatched_rows_raise():
    torch = pytest.importorskip("torch")
    X, Y = _rand(50, 4, 6), _rand(50, 3, 7)
    got = linear_cka(torch.from_numpy(X).float(), torch.from_numpy(Y))
    assert got == pytest.approx(linear_cka(X, Y), abs=1e-6)
    with pytest.raises(ValueError):  # a shape mistake, not the user's
        linear_cka(X, Y[:40])
    with pytest.raises(UserError, match="at least 2 rows"):  # a one-pair slice: the user's
        linear_cka(X[:1], Y[:1])


def test_cka_vs_noise_deterministic_and_decreasing():
    X = _rand(200, 6, 8)
    levels = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    a = cka_vs_noise(X, X, levels, seed=3)
    b = cka_vs_noise(X, X, levels, seed=3)
    assert a.dtype == np.float32 and a.shape == (len(levels),)
    np.testing.assert_array_equal(a, b)
    assert a[0] == pytest.approx(1.0, abs=1e-6)  # level 0 = no noise
    assert np.mean(np.diff(a)) < 0  # decreasing on average
    assert np.all(np.diff(a) <= 1e-3)  # and essentially monotone
    assert a[-1] < 0.5


# ---------------------------------------------------------------------------------- SVD


def test_svd_loss_from_singular_values_hand_computed():
    s = [4.0, 3.0, 2.0, 1.0]  # p = [0.4, 0.3, 0.2, 0.1]
    # k=2: gap = 0.3 - 0.2 = 0.1, magnitude = 0.4 + 0.3 = 0.7
    assert svd_loss_from_singular_values(s, 2, alpha=2.0, beta=0.5) == pytest.approx(
        -2.0 * 0.1 - 0.5 * 0.7
    )
    # k=1: gap = 0.4 - 0.3 = 0.1, magnitude = 0.4
    assert svd_loss_from_singular_values(s, 1) == pytest.approx(-0.1 - 0.4)
    # k = len(s): no gap term, magnitude = 1
    assert svd_loss_from_singular_values(s, 4, alpha=1.0, beta=3.0) == pytest.approx(-3.0)
    # unsorted input is sorted descending first
    assert svd_loss_from_singular_values([1.0, 4.0, 2.0, 3.0], 2) == pytest.approx(-0.1 - 0.7)


def test_svd_cross_covariance_singular_values_hand_built():
    n = 50
    Q = _centered_orthonormal(n, 3, 9)
    a = np.array([3.0, 2.0, 1.0])
    b = np.array([1.0, 4.0, 0.5])
    X, Y = Q * a, Q * b  # C = Xc^T Yc / (n-1) = diag(a * b) / (n-1)
    expected = np.array([8.0, 3.0, 0.5]) / (n - 1)  # sorted descending
    np.testing.assert_allclose(cross_covariance_singular_values(X, Y), expected, rtol=1e-10)
    # shifting rows by a constant does not change the (centered) cross-covariance
    np.testing.assert_allclose(
        cross_covariance_singular_values(X + 7.0, Y - 2.0), expected, rtol=1e-10
    )
    # p = [8, 3, 0.5] / 11.5; k=1: gap = 5/11.5, magnitude = 8/11.5
    assert svd_loss(X, Y, k=1, alpha=1.0, beta=2.0) == pytest.approx(-5.0 / 11.5 - 2.0 * 8.0 / 11.5)


def test_svd_loss_bad_k_raises():
    with pytest.raises(UserError):
        svd_loss_from_singular_values([3.0, 2.0, 1.0], 0)


def test_svd_surface_and_vs_k_match_scalar():
    s = [5.0, 2.0, 1.5, 0.5]
    alphas, betas = [0.0, 0.5, 1.0], [0.0, 1.0, 2.0, 3.0]
    surf = svd_loss_surface(s, 2, alphas, betas)
    assert surf.shape == (3, 4) and surf.dtype == np.float32
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            assert surf[i, j] == pytest.approx(svd_loss_from_singular_values(s, 2, a, b), abs=1e-6)
    ks = [1, 2, 3, 4]
    vs = svd_loss_vs_k(s, ks, alpha=1.5, beta=0.5)
    assert vs.shape == (4,) and vs.dtype == np.float32
    for i, k in enumerate(ks):
        assert vs[i] == pytest.approx(svd_loss_from_singular_values(s, k, 1.5, 0.5), abs=1e-6)


# ---------------------------------------------------------------------------------- cluster


def test_laplacian_from_ncut_is_one_minus_ascending():
    np.testing.assert_allclose(laplacian_eigenvalues_from_ncut(NCUT_DESC), LAPLACIAN_ASC)


def test_cluster_loss_known_spectrum():
    # lam = [0, 0.1, 0.2, 0.8, 0.9]
    # k=2: gap = lam_2 - lam_1 = 0.1, sum(lam_1..lam_2) = 0.3 -> -0.1 + 0.3 = 0.2
    assert cluster_loss(NCUT_DESC, 2, 1.0, 1.0) == pytest.approx(0.2)
    # k=3: gap = lam_3 - lam_2 = 0.6, sum(lam_1..lam_3) = 1.1 -> -0.6 + 1.1 = 0.5
    assert cluster_loss(NCUT_DESC, 3, 1.0, 1.0) == pytest.approx(0.5)
    # k=3, alpha=2, beta=0.5: -1.2 + 0.55 = -0.65
    assert cluster_loss(NCUT_DESC, 3, 2.0, 0.5) == pytest.approx(-0.65)
    assert cluster_loss_from_laplacian(LAPLACIAN_ASC, 3, 2.0, 0.5) == pytest.approx(-0.65)


def test_cluster_loss_accepts_torch():
    torch = pytest.importorskip("torch")
    got = cluster_loss(torch.tensor(NCUT_DESC), 3, 1.0, 1.0)
    assert got == pytest.approx(0.5, abs=1e-6)


@pytest.mark.parametrize("k", [0, -1, 5, 6, 1.5])
def test_cluster_loss_bad_k_raises(k):
    with pytest.raises(UserError, match="k must be"):
        cluster_loss(NCUT_DESC, k, 1.0, 1.0)


def test_eigengap_k_known_spectrum():
    # gaps lam_k - lam_{k-1} for k=1..4: [0.1, 0.1, 0.6, 0.1] -> largest at k=3
    assert eigengap_k(NCUT_DESC) == 3
    assert eigengap_k(NCUT_DESC, max_k=2) == 2  # k = 1 is never suggested
    with pytest.raises(UserError):
        eigengap_k(NCUT_DESC, max_k=5)


def test_eigengap_k_skips_the_trivial_gap():
    # the example: the gap after eigenvalue 0 (0.57) is the largest but k >= 2
    assert eigengap_k([1.0, 0.43, 0.19, 0.05]) == 2
    assert eigengap_k([1.0, 0.9, 0.5, 0.45, 0.4]) == 2  # a hand-made spectrum: 0.4 at k = 2
    assert eigengap_k([1.0, 0.95, 0.9, 0.3]) == 3
    with pytest.raises(UserError, match="at least 3"):
        eigengap_k([1.0, 0.5])


def test_cluster_surface_and_vs_k_match_scalar():
    alphas, betas = [0.0, 1.0, 2.0], [0.0, 0.5]
    surf = cluster_loss_surface(NCUT_DESC, 3, alphas, betas)
    assert surf.shape == (3, 2) and surf.dtype == np.float32
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            # hand-computed: -a * 0.6 + b * 1.1
            assert surf[i, j] == pytest.approx(-a * 0.6 + b * 1.1, abs=1e-6)
            assert surf[i, j] == pytest.approx(cluster_loss(NCUT_DESC, 3, a, b), abs=1e-6)
    vs = cluster_loss_vs_k(NCUT_DESC, [1, 2, 3, 4], alpha=1.0, beta=1.0)
    assert vs.dtype == np.float32
    # k=1: -0.1 + 0.1; k=2: -0.1 + 0.3; k=3: -0.6 + 1.1; k=4: -0.1 + 2.0
    np.testing.assert_allclose(vs, [0.0, 0.2, 0.5, 1.9], atol=1e-6)
    with pytest.raises(UserError):
        cluster_loss_vs_k(NCUT_DESC, [1, 5], 1.0, 1.0)


def test_terms_versus_k_hand_computed():
    from engineered_latents.losses import cluster_terms_vs_k, svd_terms_vs_k

    gap, magnitude = svd_terms_vs_k([4.0, 3.0, 2.0, 1.0], [1, 2, 3])  # p = .4 .3 .2 .1
    np.testing.assert_allclose(gap, [0.1, 0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(magnitude, [0.4, 0.7, 0.9], atol=1e-6)
    eigengap, total = cluster_terms_vs_k(NCUT_DESC, [1, 2, 3])  # lam = 0 .1 .2 .8 .9
    np.testing.assert_allclose(eigengap, [0.1, 0.1, 0.6], atol=1e-6)
    np.testing.assert_allclose(total, [0.1, 0.3, 1.1], atol=1e-6)
