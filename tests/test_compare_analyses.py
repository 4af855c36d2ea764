"""The research's eigenvector analyses: top-k agreement, CLIP-score correlation, word emphasis."""

import numpy as np
import pytest
from scipy import stats
from test_benchmarks import _embeddings_by_hand

import engineered_latents as el
from engineered_latents import eigen_analyses as an
from engineered_latents.compare import compare_cuts
from engineered_latents.data import get_dataset

SLICE = el.SliceSpec("demo", start=0, count=4)  # 8 pairs


@pytest.fixture(scope="module")
def compared(tiny_clip, tiny_clip_small_grid, tmp_path_factory):
    return compare_cuts(SLICE, el.CutSpec(n_eig=6), [el.ModelSpec(tiny_clip),
                                                     el.ModelSpec(tiny_clip_small_grid)],
                        cache=el.Cache(tmp_path_factory.mktemp("cache")))


def test_topk_overlap_equals_set_intersections_by_a_loop():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 5)), rng.normal(size=(40, 4))
    y[:, 0] = x[:, 2] + 0.01 * rng.normal(size=40)  # same ranking: full overlap
    got = an.topk_overlap(x, y, top=7)
    for i in range(5):
        for j in range(4):
            top_x = set(np.argsort(-x[:, i])[:7])
            top_y = set(np.argsort(-y[:, j])[:7])
            assert got[i, j] == pytest.approx(len(top_x & top_y) / 7)
    assert got[2, 0] == 1.0
    with pytest.raises(ValueError):
        an.topk_overlap(x, y[:30], 3)


def test_one_model_agreement_is_symmetric_with_a_unit_diagonal(compared):
    out = an.agreement(compared.runs[0])
    nodes, words = np.array(out["nodes"]), np.array(out["words"])
    assert nodes.shape == words.shape == (5, 5) and out["eigs"] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(np.diag(nodes), 1)
    np.testing.assert_allclose(np.diag(words), 1)
    np.testing.assert_allclose(nodes, nodes.T)
    assert out["top_nodes"] == an.node_top(len(compared.runs[0].result.index))


def test_two_models_with_other_grids_agree_on_words_only(compared):
    out = compared.analyses["agreement"]
    assert out["nodes"] is None and "node sets differ" in out["nodes_note"]
    assert np.array(out["words"]).shape == (5, 5)


def test_clip_scores_and_their_correlation_with_each_eigenvector(compared, tiny_clip):
    examples = get_dataset("demo").load(range(4))
    pairs = [(ex.images[i], ex.captions[c]) for ex in examples for i, c in ex.pairs]
    img, txt = _embeddings_by_hand(tiny_clip, [p[0] for p in pairs], [p[1] for p in pairs])
    clip = (img * txt).sum(1)  # cosine of the normalized pooled embeddings, per pair
    np.testing.assert_allclose(compared.clip_scores[0], clip, atol=1e-5)
    run = compared.runs[0]
    scores = an.pair_scores(run)
    for p in range(len(run.pairs)):  # the mean of each eigenvector over the pair's nodes
        np.testing.assert_allclose(scores[p], run.result.eigvec[run.result.index[:, 0] == p]
                                   .mean(0), rtol=1e-4, atol=1e-6)
    rows = compared.analyses["clip_correlation"]["a"]
    assert [r["eig"] for r in rows] == [1, 2, 3, 4, 5]
    for r in rows:
        pr = stats.pearsonr(scores[:, r["eig"]], compared.clip_scores[0])
        sr = stats.spearmanr(scores[:, r["eig"]], compared.clip_scores[0])
        assert (r["pearson"], r["pearson_p"]) == pytest.approx((pr[0], pr[1]), rel=1e-4)
        assert (r["spearman"], r["spearman_p"]) == pytest.approx((sr[0], sr[1]), rel=1e-4)
    constant = an.clip_correlation(np.ones((8, 3)), compared.clip_scores[0])
    assert all(r["pearson"] is None for r in constant)


def test_word_emphasis_is_sorted_by_change_of_the_averaged_word_scores(compared):
    a, b = compared.runs
    table = an.word_emphasis(a, b, n=None)

    def by_hand(run, word, eig):
        values = [run.word_level_scores(p)[w, eig] for p, info in enumerate(run.pairs)
                  for w, x in enumerate(info.words) if x.lower() == word]
        return float(np.mean(values))

    for eig, rows in table.items():
        changes = [abs(r["change"]) for r in rows]
        assert changes == sorted(changes, reverse=True)
        for r in rows[:3]:
            assert r["before"] == pytest.approx(by_hand(a, r["word"], eig), rel=1e-5)
            assert r["after"] == pytest.approx(by_hand(b, r["word"], eig), rel=1e-5)
            assert r["change"] == pytest.approx(r["after"] - r["before"])
    assert set(compared.analyses["word_emphasis"]) == {"1", "2", "3", "4", "5"}


def test_analyze_one_model(compared):
    run = compared.runs[0]
    out = an.analyze(run, compared.clip_scores[0])
    assert set(out) == {"agreement", "clip_correlation"} and "b" not in out["clip_correlation"]


def test_clip_scores_of_a_single_cut_equal_the_comparisons(compared, tiny_clip, tmp_path):
    run = el.compute_cuts(SLICE, el.CutSpec(n_eig=6), el.ModelSpec(tiny_clip), el.Cache(tmp_path))
    clip = an.run_clip_scores(run)
    np.testing.assert_allclose(clip, compared.clip_scores[0], atol=1e-5)
    out = an.analyze(run, clip)
    assert len(out["clip_correlation"]["a"]) == 5
