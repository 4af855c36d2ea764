"""Paired benchmark statistics: McNemar, the paired bootstrap, and the per-metric summary."""

import numpy as np
import pytest
from scipy.stats import binomtest

from engineered_latents import metrics


def _items(n10, n01, n11, n00):
    """Per-item correctness of a and b with the given cell counts, in a shuffled order."""
    a = np.array([1] * n10 + [0] * n01 + [1] * n11 + [0] * n00, dtype=bool)
    b = np.array([0] * n10 + [1] * n01 + [1] * n11 + [0] * n00, dtype=bool)
    order = np.random.default_rng(n10 + 7 * n01).permutation(len(a))
    return a[order], b[order]


@pytest.mark.parametrize("n10,n01", [(0, 0), (1, 0), (3, 7), (10, 10), (0, 12), (25, 9),
                                     (2, 40)])
def test_mcnemar_equals_scipys_exact_binomial_test_on_the_discordant_items(n10, n01):
    a, b = _items(n10, n01, n11=13, n00=5)
    got = metrics.mcnemar_p(a, b)
    want = 1.0 if n10 + n01 == 0 else binomtest(n10, n10 + n01, 0.5).pvalue
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert metrics.mcnemar_p(b, a) == pytest.approx(got, rel=1e-12)  # symmetric


def test_mcnemar_refuses_non_binary_results():
    with pytest.raises(ValueError):
        metrics.mcnemar_p([0.5, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError):
        metrics.mcnemar_p([1, 0, 1], [1, 0])


def test_paired_interval_equals_a_loop_computed_bootstrap():
    rng = np.random.default_rng(3)
    a = rng.random(57) < 0.4
    b = rng.random(57) < 0.6
    lo, hi = metrics.paired_bootstrap_ci(a, b, n_resamples=500, seed=11)
    draw = np.random.default_rng(11)
    diffs = []
    for _ in range(500):  # the same items for both models in every resample
        idx = draw.integers(0, 57, size=57)
        diffs.append(100 * (b[idx].astype(float).mean() - a[idx].astype(float).mean()))
    want = np.percentile(diffs, [2.5, 97.5])
    assert (lo, hi) == pytest.approx(tuple(want), abs=1e-9)
    # narrower than treating the two models as independent samples when they agree a lot
    c = a.copy()
    c[:3] = ~c[:3]
    lo2, hi2 = metrics.paired_bootstrap_ci(a, c, n_resamples=500)
    assert hi2 - lo2 < hi - lo


def test_a_model_against_itself_differs_by_nothing():
    hits = {"text": np.array([1, 0, 1, 1, 0], bool), "image": np.array([0, 0, 1, 0, 1], bool)}
    out = metrics.paired(hits, hits, {"text": [10, 11, 12, 13, 14],
                                      "image": [10, 11, 12, 13, 14]})
    for m in hits:
        assert out[m]["difference"] == 0.0 and out[m]["ci95"] == [0.0, 0.0]
        assert out[m]["p_value"] == 1.0 and out[m]["n_discordant"] == 0
        assert out[m]["a_only"] == [] and out[m]["b_only"] == [] and out[m]["n"] == 5


def test_swapping_the_models_negates_differences_and_swaps_the_flips():
    rng = np.random.default_rng(0)
    hits_a = {"top1": rng.random(80) < 0.5, "top5": rng.random(80) < 0.8}
    hits_b = {"top1": rng.random(80) < 0.6, "top5": rng.random(80) < 0.7}
    ids = {m: list(range(100, 180)) for m in hits_a}
    ab = metrics.paired(hits_a, hits_b, ids)
    ba = metrics.paired(hits_b, hits_a, ids)
    for m in hits_a:
        assert ab[m]["difference"] == pytest.approx(-ba[m]["difference"])
        assert ab[m]["difference"] == pytest.approx(100 * (hits_b[m].mean() - hits_a[m].mean()))
        assert ab[m]["ci95"] == pytest.approx([-ba[m]["ci95"][1], -ba[m]["ci95"][0]])
        assert ab[m]["a_only"] == ba[m]["b_only"] and ab[m]["b_only"] == ba[m]["a_only"]
        assert ab[m]["p_value"] == pytest.approx(ba[m]["p_value"])
        a_only = [100 + i for i in range(80) if hits_a[m][i] and not hits_b[m][i]]
        assert ab[m]["a_only"] == a_only
        assert ab[m]["n_discordant"] == len(a_only) + len(ab[m]["b_only"])


def test_paired_refuses_items_that_do_not_line_up():
    with pytest.raises(ValueError):
        metrics.paired({"x": [True, False]}, {"x": [True, False, True]})
    with pytest.raises(ValueError):
        metrics.paired({"x": [True]}, {"y": [True]})
