"""The fine-tuning losses: each against the formula as the research wrote it (numpy, written out
here independently), the normalized variants against engineered_latents.losses, gradcheck, and the
weighted-sum parser."""

import numpy as np
import pytest
import torch

from engineered_latents import losses as np_losses
from engineered_latents.errors import UserError
from engineered_latents.finetune import losses as L


def _pair(n=6, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    y = 0.6 * x + 0.4 * y  # correlated, so the losses are not at a degenerate point
    return x, y


def _t(a, grad=False):
    return torch.tensor(a, dtype=torch.float64, requires_grad=grad)


def _rownorm(a):
    return a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-8)


# ----------------------------------------------------------------------------- research formulas


def test_contrastive_matches_symmetric_infonce_by_loops():
    x, y = _pair()
    scale = np.log(10.0)
    xn, yn = _rownorm(x), _rownorm(y)
    logits = np.exp(scale) * xn @ yn.T
    n = len(x)
    row = -np.mean([logits[i, i] - np.log(np.exp(logits[i]).sum()) for i in range(n)])
    col = -np.mean([logits[i, i] - np.log(np.exp(logits[:, i]).sum()) for i in range(n)])
    got = L.contrastive(_t(x), _t(y), torch.tensor(scale, dtype=torch.float64))
    assert got.item() == pytest.approx((row + col) / 2, abs=1e-10)


def test_cka_matches_research_formula():
    x, y = _pair()
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, m = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    expected = -np.sum(k * m) / (np.sqrt(np.sum(k * k) * np.sum(m * m)) + 1e-8)
    assert L.cka(_t(x), _t(y)).item() == pytest.approx(expected, abs=1e-10)
    assert -1 <= L.cka(_t(x), _t(y)).item() < 0
    assert L.cka(_t(x), _t(x)).item() == pytest.approx(-1.0, abs=1e-7)  # identical: CKA 1


@pytest.mark.parametrize("normalize", [True, False])
def test_svd_matches_research_formula(normalize):
    x, y = _pair(n=8, d=5)
    xs, ys = (_rownorm(x), _rownorm(y)) if normalize else (x, y)
    s = np.linalg.svd(xs.T @ ys, compute_uv=False)
    k, alpha, beta = 2, 1.3, 0.7
    expected = alpha * -(s[k - 1] - s[k]) + beta * -(s[:k].sum())
    got = L.svd(_t(x), _t(y), k=k, alpha=alpha, beta=beta, normalize=normalize)
    assert got.item() == pytest.approx(expected, abs=1e-10)


def test_svd_defaults_are_the_research_values():
    x, y = _pair(n=8, d=5)
    s = np.linalg.svd(_rownorm(x).T @ _rownorm(y), compute_uv=False)
    expected = -(s[2] - s[3]) + 0.5 * -(s[:3].sum())
    assert L.svd(_t(x), _t(y)).item() == pytest.approx(expected, abs=1e-10)


def test_clip_svd_is_minus_gamma_paired_dot_plus_svd():
    x, y = _pair(n=8, d=5)
    xn, yn = _rownorm(x), _rownorm(y)
    s = np.linalg.svd(_rownorm(xn).T @ _rownorm(yn), compute_uv=False)  # normalized copies
    gamma = 2.0
    expected = -gamma * np.mean(np.sum(xn * yn, axis=1)) + (-(s[2] - s[3]) - 0.5 * s[:3].sum())
    got = L.clip_svd(_t(xn), _t(yn), gamma=gamma)
    assert got.item() == pytest.approx(expected, abs=1e-8)


def test_cluster_from_eigenvalues_subtracts_beta_times_the_sum():
    lam = np.array([0.0, 0.1, 0.3, 0.35, 0.9, 1.2])
    k, alpha, beta = 3, 1.0, 0.5
    expected = alpha * -(lam[3] - lam[2]) + beta * -(lam[1] + lam[2] + lam[3])
    assert L.cluster_from_eigenvalues(_t(lam), k, alpha, beta).item() == pytest.approx(expected)
    assert L.cluster_from_eigenvalues(_t(lam)).item() == pytest.approx(expected)


def _graph_eigenvalues_numpy(nodes):
    z = nodes / (np.linalg.norm(nodes, axis=1, keepdims=True) + 1e-8)
    dist = 1 - z @ z.T
    m = len(nodes)
    off = ~np.eye(m, dtype=bool)
    a = np.where(off, np.exp(-dist / dist[off].mean()), 0.0)
    d = 1 / np.sqrt(a.sum(1))
    lap = np.eye(m) - d[:, None] * a * d[None, :]
    return np.linalg.eigvalsh(lap)


def test_cluster_on_the_pooled_graph_matches_a_dense_numpy_laplacian():
    x, y = _pair(n=5, d=3)
    centre = lambda a: _rownorm(a - a.mean(0))  # noqa: E731
    lam = _graph_eigenvalues_numpy(np.concatenate([centre(x), centre(y)]))
    assert lam[0] == pytest.approx(0.0, abs=1e-10)  # a connected graph: one zero eigenvalue
    expected = -(lam[3] - lam[2]) - 0.5 * lam[1:4].sum()
    assert L.cluster(_t(x), _t(y)).item() == pytest.approx(expected, abs=1e-8)


# ----------------------------------------------------------------------------- normalized views


def test_normalized_variants_equal_the_numpy_losses():
    x, y = _pair(n=9, d=4, seed=3)
    tx, ty = _t(x), _t(y)
    assert L.cka_centered(tx, ty).item() == pytest.approx(np_losses.cka_loss(x, y), abs=1e-6)
    for k in (1, 2, 4):  # k = 4 = len(s): the numpy gap is 0 there
        got = L.svd_normalized(tx, ty, k=k, alpha=1.0, beta=0.5).item()
        assert got == pytest.approx(np_losses.svd_loss(x, y, k, 1.0, 0.5), abs=1e-6)
    lam = _graph_eigenvalues_numpy(np.concatenate([x, y]))
    for k in (1, 3, 5):
        got = L.cluster_tight_from_eigenvalues(_t(lam), k, 1.0, 0.5).item()
        assert got == pytest.approx(np_losses.cluster_loss_from_laplacian(lam, k, 1.0, 0.5),
                                    abs=1e-6)
    lam_pooled = L.graph_eigenvalues(L.pooled_graph(tx, ty)).numpy()
    assert L.cluster_tight(tx, ty).item() == pytest.approx(
        np_losses.cluster_loss_from_laplacian(lam_pooled, 3, 1.0, 0.5), abs=1e-6)


def test_tight_and_research_cluster_losses_differ_in_the_sign_of_the_sum():
    lam = _t(np.array([0.0, 0.2, 0.4, 0.5, 1.0]))
    research = L.cluster_from_eigenvalues(lam, 2, 0.0, 1.0).item()
    tight = L.cluster_tight_from_eigenvalues(lam, 2, 0.0, 1.0).item()
    assert research == pytest.approx(-0.6) and tight == pytest.approx(0.6)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("fn", [
    lambda x, y: L.contrastive(x, y, torch.tensor(1.5, dtype=torch.float64)),
    L.cka, L.svd, lambda x, y: L.svd(x, y, normalize=False), L.clip_svd, L.cluster,
    L.cka_centered, L.svd_normalized, L.cluster_tight,
    L.mean_paired_cosine,
], ids=["contrastive", "cka", "svd", "svd_raw", "clip_svd", "cluster", "cka_centered",
        "svd_normalized", "cluster_tight", "cosine"])
def test_gradcheck(fn):
    x, y = _pair(n=7, d=5, seed=1)
    assert torch.autograd.gradcheck(fn, (_t(x, True), _t(y, True)), eps=1e-6, atol=1e-5)


def test_gradcheck_through_eigenvalue_losses_and_logit_scale():
    lam = _t(np.array([0.0, 0.15, 0.4, 0.55, 0.9]), True)
    assert torch.autograd.gradcheck(L.cluster_from_eigenvalues, (lam,))
    assert torch.autograd.gradcheck(L.cluster_tight_from_eigenvalues, (lam,))
    x, y = _pair()
    scale = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: L.contrastive(_t(x), _t(y), s), (scale,))


def test_combined_is_the_weighted_sum_of_its_terms():
    x, y = _pair(n=8, d=5)
    tx, ty = _t(_rownorm(x)), _t(_rownorm(y))
    scale = torch.tensor(2.0, dtype=torch.float64)
    terms = L.parse_loss("contrastive+0.1*cluster-2*cka")
    total, values = L.combined(terms, tx, ty, scale, L.LossParams(k=2))
    expected = (L.contrastive(tx, ty, scale) + 0.1 * L.cluster(tx, ty, k=2) - 2 * L.cka(tx, ty))
    assert total.item() == pytest.approx(expected.item(), abs=1e-12)
    assert set(values) == {"contrastive", "cluster", "cka"}


def test_shape_mistakes_are_value_errors():
    with pytest.raises(ValueError, match="same rows"):
        L.cka(torch.zeros(3, 2), torch.zeros(4, 2))
    with pytest.raises(ValueError, match="at least 2 rows"):
        L.svd(torch.ones(1, 3), torch.ones(1, 3))
    with pytest.raises(ValueError, match="k must be"):
        L.svd(torch.randn(5, 3), torch.randn(5, 3), k=3)  # 3 singular values: k <= 2


# ----------------------------------------------------------------------------- the parser


def test_parse_loss_weighted_sums():
    assert L.parse_loss("contrastive") == (L.LossTerm("contrastive", 1.0),)
    assert L.parse_loss(" contrastive + 0.1 * cluster ") == (
        L.LossTerm("contrastive", 1.0), L.LossTerm("cluster", 0.1))
    assert L.parse_loss("clip_svd-1e-3*cka") == (
        L.LossTerm("clip_svd", 1.0), L.LossTerm("cka", -1e-3))


@pytest.mark.parametrize("text, words", [
    ("", "empty"), ("contrastiv", "Unknown loss"), ("contrastive+", "weighted sum"),
    ("contrastive cluster", "weighted sum"), ("0.1*", "weighted sum"),
    ("cka+cka", "twice"), ("2**cka", "weighted sum"),
])
def test_parse_loss_refuses_bad_sums(text, words):
    with pytest.raises(UserError, match=words):
        L.parse_loss(text)
