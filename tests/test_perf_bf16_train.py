"""The bf16 training figure: fine-tuning in bfloat16 autocast follows float32's loss curve on the
same model, data and seed (an agreement bound on a tiny CLIP, a few steps; never the time)."""

import pytest
from conftest import save_tiny_clip

from engineered_latents import perf_bf16_train


def test_agreement_is_computed_from_the_curves():
    a = perf_bf16_train.agreement([2.0, 1.0, 0.5], [2.02, 0.99, 0.5])
    assert a["first_rel_diff"] == pytest.approx(0.01)
    assert a["max_rel_diff"] == pytest.approx(0.01)
    assert a["mean_rel_diff"] == pytest.approx((0.01 + 0.01 + 0) / 3, abs=1e-6)
    x, y = [2.0, 1.0, 0.5], [2.02, 0.99, 0.5]
    mx, my = sum(x) / 3, sum(y) / 3
    cov = sum((u - mx) * (v - my) for u, v in zip(x, y))
    pearson = cov / (sum((u - mx) ** 2 for u in x) * sum((v - my) ** 2 for v in y)) ** 0.5
    assert a["loss_corr"] == pytest.approx(pearson, abs=1e-5)
    assert perf_bf16_train.agreement([1.0, 1.0], [1.0, 1.1])["loss_corr"] is None  # no variance


def test_bf16_autocast_training_follows_the_float32_loss_curve(tmp_path):
    model = save_tiny_clip(tmp_path / "tiny", image_size=64, patch_size=16)
    fig = perf_bf16_train.compare(model, steps=4, batch_size=4, device="cpu", lr=1e-3,
                                  workdir=str(tmp_path))
    f32, bf16 = fig["float32"], fig["bfloat16"]
    assert (f32["dtype"], bf16["dtype"]) == ("float32", "bfloat16")  # what train.json recorded
    assert len(f32["losses"]) == len(bf16["losses"]) == 4
    assert f32["losses"] != bf16["losses"]  # autocast ran: bf16 rounding moves the losses
    # same weights and batch at step 1: only the forward's bf16 rounding (~0.1 %)
    assert fig["first_rel_diff"] < 0.02
    assert fig["max_rel_diff"] < 0.05 and fig["val_rel_diff"] < 0.05
    assert fig["loss_corr"] > 0.99
    assert "speedup" in fig and f32["step_s"] > 0 and bf16["step_s"] > 0
    bare = perf_bf16_train.interleaved_steps(model, batch_size=4, steps=1, device="cpu")
    assert bare["float32_s"] > 0 and bare["bfloat16_s"] > 0
    assert bare["speedup"] == pytest.approx(bare["float32_s"] / bare["bfloat16_s"], rel=1e-2)
    text = perf_bf16_train.table({"device": "cpu", "native_bf16": False,
                                  "models": [{"model": "tiny", **fig, "interleaved": bare}]})
    assert "bfloat16 autocast" in text and "bare steps interleaved" in text
