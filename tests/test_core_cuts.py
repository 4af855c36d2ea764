"""The cuts pipeline end to end on the demo slice with a tiny CLIP loaded from disk."""

import numpy as np
import pytest

import engineered_latents as el
from engineered_latents.data import get_dataset


def _run(model, cache_dir, **cut):
    return el.compute_cuts(
        el.SliceSpec("demo", start=0, count=2), el.CutSpec(**cut), el.ModelSpec(model),
        cache=el.Cache(cache_dir),
    )


@pytest.fixture(scope="module")
def scalar_run(tiny_clip, tmp_path_factory):
    return _run(tiny_clip, tmp_path_factory.mktemp("c"), n_eig=8, clusters=4)


def test_nodes_are_exactly_the_valid_patch_token_entries(scalar_run):
    # 2 examples x 2 pairs; 7x7 patches without CLS; caption tokens without start/end
    run = scalar_run
    examples = get_dataset("demo").load([0, 1])
    captions = [c for ex in examples for c in ex.captions]
    assert [p.caption for p in run.pairs] == captions
    tokenizer = el.models.clip_tokenizer_from_vocab()
    n_tokens = [len(tokenizer(c).input_ids) - 2 for c in captions]
    assert [len(p.tokens) for p in run.pairs] == n_tokens
    assert run.result.eigvec.shape == (49 * sum(n_tokens), 8)
    assert set(run.result.index[:, 1]) == set(range(1, 50))  # CLS (row 0) is not a node


def test_no_special_or_padding_token_reaches_the_results(scalar_run):
    run = scalar_run
    for p, info in enumerate(run.pairs):
        assert not any("<|" in t for t in info.tokens)
        assert info.words == info.caption.split()
        scores = run.word_scores(p)
        assert scores.shape == (len(info.tokens), 8)
        assert not np.isnan(scores).any()
        assert run.word_level_scores(p).shape == (len(info.words), 8)


def test_scalar_word_scores_are_patch_means_of_node_values(scalar_run):
    run = scalar_run
    values = run.result.node_values(0)  # [50, T, k]
    token = run.pairs[0].token_positions[2]
    expected = values[1:, token].mean(0)  # patches 1..49
    np.testing.assert_allclose(run.result.word_scores(0)[token], expected, rtol=1e-5)
    np.testing.assert_allclose(run.result.patch_map(0, token)[1:], values[1:, token])


def test_include_special_adds_cls_and_start_end_nodes(tiny_clip, tmp_path, scalar_run):
    run = _run(tiny_clip, tmp_path, n_eig=8, clusters=4, include_special=True)
    assert run.pairs[0].tokens[0] == "<|startoftext|>"
    n_tokens = sum(len(p.tokens) for p in run.pairs)
    assert run.result.eigvec.shape[0] == 50 * n_tokens
    assert n_tokens == sum(len(p.tokens) + 2 for p in scalar_run.pairs)


def test_patch_grid_follows_the_model_config(tiny_clip_small_grid, tmp_path):
    run = _run(tiny_clip_small_grid, tmp_path, n_eig=6, clusters=3, mode="joint")
    assert run.result.n_patches == 1 + 4 * 4
    assert run.result.patch_map(0).shape == (17, 6)
    assert np.isnan(run.result.patch_map(0)[0]).all()  # CLS is not a node


def test_joint_mode_nodes_are_unique_patches_and_tokens(tiny_clip, tmp_path):
    run = _run(tiny_clip, tmp_path, n_eig=8, clusters=4, mode="joint")
    n_images = len({p.example * 2 + p.image for p in run.pairs})
    n_tokens = sum(len(p.tokens) for p in run.pairs)  # every caption differs in the demo
    assert run.result.eigvec.shape[0] == 49 * n_images + n_tokens
    assert not np.isnan(run.word_scores(0)).any()


def test_same_inputs_and_seed_give_identical_results_across_caches(tiny_clip, tmp_path):
    a = _run(tiny_clip, tmp_path / "a", n_eig=8, clusters=4)
    b = _run(tiny_clip, tmp_path / "b", n_eig=8, clusters=4)
    assert a.cache["cuts"] == b.cache["cuts"] == "miss"
    np.testing.assert_array_equal(a.result.eigvec, b.result.eigvec)
    np.testing.assert_array_equal(a.result.labels, b.result.labels)


def test_a_cache_hit_returns_identical_arrays_without_recomputing(tiny_clip, tmp_path,
                                                                  monkeypatch):
    first = _run(tiny_clip, tmp_path, n_eig=8, clusters=4)

    def fail(*args, **kwargs):
        raise AssertionError("a cache hit must not load the model")

    monkeypatch.setattr(el.pipeline, "load_model", fail)
    monkeypatch.setattr(el.pipeline, "run_ncut", fail)
    second = _run(tiny_clip, tmp_path, n_eig=8, clusters=4)
    assert second.cache["cuts"] == "hit"
    np.testing.assert_array_equal(first.result.eigvec, second.result.eigvec)
    assert second.timings["total"] < 1.0


def test_embeddings_are_reused_when_only_cut_parameters_change(tiny_clip, tmp_path):
    _run(tiny_clip, tmp_path, n_eig=8, clusters=4)
    run = _run(tiny_clip, tmp_path, n_eig=6, clusters=4)
    assert run.cache["cuts"] == "miss"
    assert run.cache["image_embeddings_cached"] == "4/4"
    assert run.cache["caption_embeddings_cached"] == "4/4"


def test_crossed_pairs_add_the_two_mismatched_pairs(tiny_clip, tmp_path):
    run = el.compute_cuts(el.SliceSpec("demo", 0, 1, crossed_pairs=True),
                          el.CutSpec(n_eig=6, clusters=3), el.ModelSpec(tiny_clip),
                          cache=el.Cache(tmp_path))
    assert [(p.image, p.caption_index) for p in run.pairs] == [(0, 0), (1, 1), (0, 1), (1, 0)]


@pytest.mark.parametrize("cut, message", [
    (dict(mode="nope"), "Unknown mode"),
    (dict(n_eig=1), "at least 2"),
    (dict(n_eig=4, clusters=6), "raise --n-eig"),
])
def test_bad_cut_settings_are_user_errors(tiny_clip, tmp_path, cut, message):
    with pytest.raises(el.UserError, match=message):
        _run(tiny_clip, tmp_path, **cut)


def test_outputs_follow_the_summary_contract(scalar_run, tmp_path):
    import json

    el.save(scalar_run, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in ["model", "demo_weights", "dataset", "mode", "n_eig", "n_nodes", "eigenvalues",
                "pairs", "timings", "provenance"]:
        assert key in summary
    assert summary["demo_weights"] is False
    eigenvalues = summary["eigenvalues"]
    assert eigenvalues == sorted(eigenvalues, reverse=True)
    assert abs(eigenvalues[0] - 1) < 0.05
    pair = summary["pairs"][0]
    assert set(pair) >= {"example", "caption", "tokens", "word_scores", "words",
                         "word_level_scores"}
    assert len(pair["word_scores"]) == len(pair["tokens"])
    assert len(pair["word_level_scores"]) == len(pair["words"])
    assert summary["provenance"]["weights"].startswith("local:")
    for name in ["torch", "transformers", "ncut-pytorch", "engineered_latents"]:
        assert summary["provenance"]["versions"][name]
    arrays = np.load(tmp_path / "cuts.npz")
    np.testing.assert_array_equal(arrays["eigenvectors"], scalar_run.result.eigvec)
    assert arrays["patch_rgb"].shape == (4, 50, 3)


def test_only_degenerate_graph_errors_become_messages(monkeypatch):
    """A degenerate graph is the user's (a message); any other ncut-pytorch failure, such as an
    API change, surfaces as itself."""
    import ncut_pytorch

    from engineered_latents.cuts import run_ncut
    from engineered_latents.errors import UserError

    x = np.random.default_rng(0).random((300, 1)).astype(np.float32)

    def broken(self, X):
        raise TypeError("fit_transform() got an unexpected keyword argument 'A_degree'")

    def renamed(self, X):
        raise RuntimeError("expected scalar type Float but found Half")

    for failure, kind in ((broken, TypeError), (renamed, RuntimeError)):
        monkeypatch.setattr(ncut_pytorch.Ncut, "fit_transform", failure)
        with pytest.raises(kind):
            run_ncut(x, 5)

    def degenerate(self, X):
        raise ValueError("math domain error")

    monkeypatch.setattr(ncut_pytorch.Ncut, "fit_transform", degenerate)
    with pytest.raises(UserError, match="share a few values"):
        run_ncut(x, 5)
