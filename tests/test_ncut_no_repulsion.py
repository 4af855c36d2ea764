"""NCut names the (unused) repulsion bandwidth instead of searching for it: the same graph and
eigenvalues as ncut-pytorch's defaults, and eigenvectors as close as another seed's, without the
search."""

import numpy as np
import pytest
import torch
from ncut_pytorch import Ncut
from ncut_pytorch.ncuts import ncut_nystrom

from engineered_latents import cuts


@pytest.fixture
def searches(monkeypatch):
    """The A_degree of every bandwidth search ncut-pytorch runs."""
    seen = []
    real = ncut_nystrom.find_sigma

    def counting(x, *args, A_degree=None, **kwargs):
        seen.append(A_degree)
        return real(x, *args, A_degree=A_degree, **kwargs)

    monkeypatch.setattr(ncut_nystrom, "find_sigma", counting)
    return seen


def _clusters(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, d)) * 3
    return (centres[rng.integers(0, 4, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _reference(x: np.ndarray, n_eig: int, **options):
    torch.manual_seed(0)
    np.random.seed(0)
    ncut = Ncut(n_eig=n_eig, **options)
    return ncut.fit_transform(torch.from_numpy(x)).numpy(), ncut.eigval.numpy()


@pytest.mark.parametrize("dim, n, options", [(16, 600, {}), (1, 800, cuts.SCALAR_NYSTROM)])
def test_ncut_skips_the_repulsion_search_and_keeps_the_eigenvalues(searches, dim, n, options):
    x = _clusters(n, dim)
    eigvec, eigval = cuts.run_ncut(x, 6, seed=0)
    assert 0.3 not in searches  # ncut-pytorch's A_rep_degree: the repulsion search
    searches.clear()
    ref_vec, ref_val = _reference(x, 6, **options)  # ncut-pytorch's defaults: the search runs
    assert 0.3 in searches
    np.testing.assert_allclose(eigval, ref_val, atol=1e-5)
    for k in range(1, 6):
        assert abs(np.corrcoef(eigvec[:, k], ref_vec[:, k])[0, 1]) > 0.99
