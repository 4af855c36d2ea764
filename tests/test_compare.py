"""Comparing two models on one slice: one shared basis (scalar), matched eigenvectors (joint)."""

import dataclasses

import numpy as np
import pytest

import engineered_latents as el
from engineered_latents.affinity import pair_affinities
from engineered_latents.compare import align_runs, compare_cuts, match_eigenvectors
from engineered_latents.cuts import run_ncut, scalar_nodes
from engineered_latents.data import get_dataset
from engineered_latents.features import encode_images, encode_texts

SLICE = el.SliceSpec("demo", start=0, count=3)  # 6 pairs


def _compare(a, b, mode="scalar", n_eig=6, cache=None, **kw):
    specs = [a if isinstance(a, el.ModelSpec) else el.ModelSpec(a),
             b if isinstance(b, el.ModelSpec) else el.ModelSpec(b)]
    return compare_cuts(SLICE, el.CutSpec(mode=mode, n_eig=n_eig, **kw), specs, cache=cache)


def _direct_nodes(model_dir, examples):
    """Scalar nodes of a model, from the encoders straight (no project cache, no pipeline)."""
    lm = el.load_model(model_dir)
    pairs = [(ex.images[i], ex.captions[c]) for ex in examples for i, c in ex.pairs]
    img, _ = encode_images(lm, [p[0] for p in pairs])
    txt, _ = encode_texts(lm, [p[1] for p in pairs])
    aff = pair_affinities([f.patches for f in img], [t.tokens for t in txt])
    return scalar_nodes(aff)


def test_shared_basis_equals_a_direct_ncut_of_both_models_nodes(tiny_clip, tiny_clip_small_grid,
                                                                 tmp_path):
    run = _compare(tiny_clip, tiny_clip_small_grid, cache=el.Cache(tmp_path))
    examples = get_dataset("demo").load(range(3))
    (fa, ia), (fb, ib) = (_direct_nodes(m, examples) for m in (tiny_clip, tiny_clip_small_grid))
    eigvec, eigval = run_ncut(np.concatenate([fa, fb]), 6, seed=0)
    a, b = run.runs
    np.testing.assert_allclose(a.result.eigval, eigval, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(a.result.eigval, b.result.eigval)  # one basis
    np.testing.assert_array_equal(a.result.index, ia)
    np.testing.assert_array_equal(b.result.index, ib)
    np.testing.assert_allclose(a.result.eigvec, eigvec[:len(fa)], atol=1e-5)
    np.testing.assert_allclose(b.result.eigvec, eigvec[len(fa):], atol=1e-5)
    # b's word scores in the shared basis: its token columns averaged over its 16 patches
    rows = ib[:, 0] == 0
    for t in np.unique(ib[rows, 2]):
        want = eigvec[len(fa):][rows & (ib[:, 2] == t)].mean(0)
        np.testing.assert_allclose(b.result.word_scores(0)[t], want, atol=1e-5)
    assert run.grids == [49, 16] and any("4x4" in n and "7x7" in n for n in run.notes)
    d = run.word_difference(2)
    np.testing.assert_allclose(d, b.word_level_scores(2) - a.word_level_scores(2))


@pytest.mark.parametrize("mode", ["scalar", "joint"])
def test_a_model_compared_with_itself_differs_by_nothing(tiny_clip, tmp_path, mode):
    run = _compare(tiny_clip, tiny_clip, mode, cache=el.Cache(tmp_path))
    a, b = run.runs
    for p in range(len(a.pairs)):
        assert not run.word_difference(p).any()
        np.testing.assert_array_equal(a.word_level_scores(p), b.word_level_scores(p))
    assert any("zero by construction" in n for n in run.notes)
    for rows in run.analyses["word_emphasis"].values():
        assert all(r["change"] == 0 for r in rows)
    if mode == "joint":
        assert [(m["a"], m["b"], m["sign"]) for m in run.matches] == [(i, i, 1) for i in range(6)]
        assert all(m["correlation"] == pytest.approx(1) for m in run.matches)
    np.testing.assert_array_equal(run.clip_scores[0], run.clip_scores[1])


def test_matching_recovers_a_planted_permutation_and_sign_flip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    perm = [0, 3, 1, 7, 2, 6, 4, 5]  # b's column perm[i] is a's column i
    signs = np.array([1, -1, 1, 1, -1, -1, 1, -1])
    b = np.empty_like(a)
    b[:, perm] = a * signs
    b += 0.05 * rng.normal(size=b.shape)
    matches = match_eigenvectors(a, b)
    assert [m["b"] for m in matches] == perm
    assert [m["sign"] for m in matches] == signs.tolist()
    assert all(m["correlation"] > 0.99 and not m["weak"] for m in matches[1:])


def test_align_runs_undoes_a_planted_permutation_of_a_real_joint_cut(tiny_clip, tmp_path):
    run = el.compute_cuts(SLICE, el.CutSpec(mode="joint", n_eig=6), el.ModelSpec(tiny_clip),
                          el.Cache(tmp_path))
    perm, signs = [0, 4, 1, 5, 3, 2], np.array([1, -1, -1, 1, 1, -1], np.float32)
    planted = dataclasses.replace(run, result=dataclasses.replace(
        run.result, eigvec=run.result.eigvec[:, perm] * signs,
        eigval=run.result.eigval[perm]))
    aligned, matches = align_runs(run, planted)
    assert [m["b"] for m in matches] == [perm.index(i) for i in range(6)]
    np.testing.assert_allclose(aligned.result.eigvec, run.result.eigvec, atol=1e-6)
    np.testing.assert_allclose(aligned.result.eigval, run.result.eigval)


def test_joint_mode_with_two_models_reports_every_match(tiny_clip, tiny_clip_small_grid,
                                                        tmp_path):
    run = _compare(tiny_clip, tiny_clip_small_grid, "joint", cache=el.Cache(tmp_path))
    assert sorted(m["b"] for m in run.matches) == list(range(6))  # one-to-one
    assert all(0 <= m["correlation"] <= 1 and m["weak"] == (m["correlation"] < 0.5)
               for m in run.matches)
    a, b = run.runs
    wa = np.concatenate([a.word_level_scores(p) for p in range(len(a.pairs))])
    wb = np.concatenate([b.word_level_scores(p) for p in range(len(b.pairs))])
    for m in run.matches[1:]:  # after alignment, b's column i correlates positively with a's
        r = np.corrcoef(wa[:, m["a"]], wb[:, m["a"]])[0, 1]
        assert r == pytest.approx(m["correlation"], abs=1e-4)


def test_a_comparison_is_cached_and_recorded(tiny_clip, tiny_clip_small_grid, tmp_path):
    cache = el.Cache(tmp_path)
    first = _compare(tiny_clip, tiny_clip_small_grid, cache=cache)
    again = _compare(tiny_clip, tiny_clip_small_grid, cache=cache)
    assert first.cache["compare"] == "miss" and again.cache == {"compare": "hit"}
    np.testing.assert_array_equal(first.runs[1].result.eigvec, again.runs[1].result.eigvec)
    other_layer = _compare(tiny_clip, el.ModelSpec(tiny_clip, layer=1), cache=cache)
    assert other_layer.cache["compare"] == "miss"  # the layer is part of the key
    assert other_layer.cache["embeddings_cached_a"] == "12/12"  # a's embeddings reused
    runs = el.history.read(str(tmp_path))
    assert [r["cache"] for r in runs if r["kind"] == "compare"] == ["miss", "hit", "miss"]


def test_bad_models_are_named(tiny_clip, tmp_path):
    with pytest.raises(el.UserError, match=r"Model b .*Layer 9 does not exist"):
        _compare(tiny_clip, el.ModelSpec(tiny_clip, layer=9), cache=el.Cache(tmp_path))
    with pytest.raises(el.UserError, match=r"Model a .*does not exist"):
        _compare(str(tmp_path / "missing"), tiny_clip, cache=el.Cache(tmp_path))
