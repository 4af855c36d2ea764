"""What the losses do to a tiny random CLIP on demo scenes: the cluster loss goes down on held-out
batches, CLIP+SVD raises the top singular values of the cross-covariance it rewards, the tokens
graph trains, and the contrastive loss lifts retrieval R@1 above chance (slow)."""

import pytest
import torch
from conftest import save_tiny_clip

from engineered_latents.finetune import TrainSpec, fit
from engineered_latents.finetune.losses import tokens_graph


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("ft_eff_tiny"), image_size=64, patch_size=16)


def _spec(tmp_path, tiny, **kw):
    base = dict(out=str(tmp_path / "out"), model=tiny, count=64, val_count=16, batch_size=16,
                steps=10, val_every=5, lr=1e-3, track="none")
    return TrainSpec(**{**base, **kw})


def _quiet(msg):
    pass


def test_cluster_loss_goes_down_on_held_out_batches(tmp_path, tiny):
    record = fit(_spec(tmp_path, tiny, loss="cluster"), _quiet)
    first, last = record["val"][0], record["val"][-1]
    assert first["step"] == 0
    assert last["val_cluster"] < first["val_cluster"] - 0.02


def _top_singular_values(model_dir, k=3, n=16):
    """Top-k singular values of X^T Y (rows normalized) on the validation scenes."""
    from engineered_latents.finetune.data import Collate, DemoScenes
    from engineered_latents.finetune.losses import row_normalize
    from engineered_latents.finetune.model import Encoder, load_base

    _, clip, tokenizer, processor = load_base(model_dir)
    batch = Collate(DemoScenes("val", n).pairs(), processor, tokenizer)(list(range(n)))
    with torch.no_grad():
        out = Encoder(clip.eval())(**batch)
    x, y = row_normalize(out["img"]), row_normalize(out["txt"])
    return torch.linalg.svdvals(x.T @ y)[:k + 1]


def test_clip_svd_raises_the_top_singular_values(tmp_path, tiny):
    spec = _spec(tmp_path, tiny, loss="clip_svd")
    record = fit(spec, _quiet)
    before, after = _top_singular_values(tiny), _top_singular_values(spec.out)
    assert after[:3].sum() > before[:3].sum() + 0.5  # the magnitude term asks for this
    assert record["val"][-1]["val_clip_svd"] < record["val"][0]["val_clip_svd"]
    assert record["val"][-1]["cosine"] > record["val"][0]["cosine"]  # the CLIP-score term


def test_tokens_graph_nodes_are_patches_and_word_tokens():
    out = {"patches": torch.randn(2, 9, 4), "tokens": torch.randn(2, 5, 4)}
    batch = {"input_ids": torch.tensor([[1, 7, 8, 2, 2], [1, 7, 8, 9, 2]]),
             "attention_mask": torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]])}
    nodes = tokens_graph(out, batch, max_nodes=100, seed=0)
    assert nodes.shape == (18 + 2 + 3, 4)  # all patches; words without start/end/padding
    assert tokens_graph(out, batch, max_nodes=10, seed=0).shape == (10, 4)
    assert torch.equal(tokens_graph(out, batch, 10, 3), tokens_graph(out, batch, 10, 3))


def test_cluster_on_the_tokens_graph_trains(tmp_path, tiny):
    record = fit(_spec(tmp_path, tiny, loss="contrastive+0.5*cluster", cluster_graph="tokens",
                       cluster_nodes=64, steps=2), _quiet)
    assert all("cluster" in h for h in record["history"])
    assert record["history"][0]["loss"] == pytest.approx(
        record["history"][0]["contrastive"] + 0.5 * record["history"][0]["cluster"], abs=1e-5)


@pytest.mark.slow
def test_contrastive_lifts_retrieval_above_chance(tmp_path, tiny):
    # the README's demo example (measured: R@1 1.6 / 3.1 -> 29.7 / 28.1, chance 1.6, ~35 s)
    spec = _spec(tmp_path, tiny, count=4096, val_count=64, batch_size=32, steps=300,
                 val_every=100, lr=1e-3, warmup="20", weight_decay=0.1)
    record = fit(spec, _quiet)
    first, last = record["val"][0], record["val"][-1]
    assert first["chance_r1"] == pytest.approx(100 / 64)
    assert last["r1_i2t"] >= 5 * first["chance_r1"] and last["r1_t2i"] >= 5 * first["chance_r1"]
    assert last["val_loss"] < first["val_loss"] - 1.0
