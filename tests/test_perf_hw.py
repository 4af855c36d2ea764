"""perf's hardware figures: encoder FLOPs against a hand count, the rates' arithmetic, a matmul
peak that is a rate (nothing here asserts wall-clock time)."""

import pytest
import torch

from engineered_latents.models import load_model, resolve_model
from engineered_latents.perf import synthetic_examples
from engineered_latents.perf_hw import encoder_flops, encoder_rates, matmul_peak, reduced_dtypes


def test_encoder_flops_match_a_hand_count(tiny_clip):
    # tiny CLIP: width 32, MLP 64, 2 layers, 224 px / 32 px patches -> 49 patches + CLS = 50
    lm = load_model(resolve_model(tiny_clip), "cpu", "float32")
    examples = synthetic_examples(4)
    images = [im for ex in examples for im in ex.images]
    captions = [c for ex in examples for c in ex.captions]
    flops = encoder_flops(lm, images, captions)
    conv = 2 * 49 * (3 * 32 * 32) * 32  # patch embedding
    layer = lambda t: 2 * t * 32 * 32 * 4 + 2 * t * 32 * 64 * 2  # noqa: E731 - qkvo + MLP
    # torch's counter counts linear layers and convolutions (not the CPU attention kernel)
    assert flops["vision_flop_per_image"] == conv + 2 * layer(50)
    tokens = flops["text_tokens_per_caption"]  # the batch padded to its longest caption
    assert tokens == max(len(lm.tokenizer(c).input_ids) for c in captions)
    assert flops["text_flop_per_caption"] == 2 * layer(tokens)


def test_encoder_rates_arithmetic():
    flops = {"vision_gflop_per_image": 8.0, "text_gflop_per_caption": 0.5}
    rates = encoder_rates(flops, {"vision": 2.0, "text": 0.25}, 10, 20, peak_gflops=100.0)
    assert rates["images_per_s"] == 5.0 and rates["captions_per_s"] == 80.0
    assert rates["vision_gflops"] == 40.0 and rates["text_gflops"] == 40.0
    assert rates["vision_of_peak"] == 0.4 and rates["text_of_peak"] == 0.4


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_matmul_peak_is_a_positive_rate(dtype):
    assert matmul_peak(dtype, torch.device("cpu"), n=128, repeats=2) > 0


def test_reduced_dtypes_per_device():
    assert reduced_dtypes(torch.device("cpu")) == [torch.bfloat16]
    assert reduced_dtypes(torch.device("cuda")) == [torch.float16, torch.bfloat16]
