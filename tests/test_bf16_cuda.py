"""The GPU path (marked `cuda`, skipped without a CUDA GPU; scripts/gpu-check runs them):
float16 and bfloat16 encoders agree with float32, NCut on the GPU agrees with the CPU's, and a
whole cut on the GPU matches the CPU cut."""

import numpy as np
import pytest
import torch

import engineered_latents as el
from engineered_latents.cuts import run_ncut
from engineered_latents.data import get_dataset
from engineered_latents.features import encode_images, encode_texts
from engineered_latents.models import load_model, pick_device, pick_dtype, resolve_model
from engineered_latents.perf import eigvec_agreement

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return (a * b).sum(-1)


def test_auto_picks_the_gpu_and_float16():
    device = pick_device(None)
    assert device.type == "cuda"
    assert pick_dtype(None, device) == torch.float16


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_reduced_precision_encoders_agree_with_float32(tiny_clip, dtype):
    examples = get_dataset("demo").load([0, 1, 2, 3])
    images = [im for ex in examples for im in ex.images]
    captions = [c for ex in examples for c in ex.captions]
    resolved = resolve_model(tiny_clip)
    out = {}
    for dt in ("float32", dtype):
        lm = load_model(resolved, "cuda", dt)
        assert next(lm.model.parameters()).device.type == "cuda"
        out[dt] = (encode_images(lm, images)[0], encode_texts(lm, captions)[0])
    (img32, txt32), (img, txt) = out["float32"], out[dtype]
    for a, b in zip(img32, img):
        assert b.patches.dtype == np.float32  # features are float32 whatever the encoders ran in
        assert _cosines(a.patches, b.patches).min() >= 0.99
        assert _cosines(a.pooled, b.pooled) >= 0.999
    for a, b in zip(txt32, txt):
        assert _cosines(a.tokens, b.tokens).min() >= 0.99


def test_ncut_on_the_gpu_agrees_with_the_cpu():
    # a line of 1,000 nodes: eigenvalues well apart, so eigenvectors 1-5 are defined
    x = np.sort(np.random.default_rng(0).uniform(0, 1, 1000)).astype(np.float32)[:, None]
    cpu, cpu_val = run_ncut(x, 10, seed=0, device="cpu")
    gpu, gpu_val = run_ncut(x, 10, seed=0, device="cuda")
    assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
    assert min(eigvec_agreement(cpu, gpu)) >= 0.99
    np.testing.assert_allclose(gpu_val[:6], cpu_val[:6], atol=1e-3)


def test_a_cut_on_the_gpu_matches_the_cpu_cut(tiny_clip, tmp_path):
    runs = {dev: el.compute_cuts(el.SliceSpec("demo", 0, 2), el.CutSpec(n_eig=8),
                                 el.ModelSpec(tiny_clip, device=dev, dtype="float32"),
                                 cache=el.Cache(tmp_path / dev))
            for dev in ("cpu", "cuda")}
    assert runs["cuda"].provenance["device"].startswith("cuda")
    words = {dev: np.concatenate([r.word_level_scores(p) for p in range(len(r.pairs))])
             for dev, r in runs.items()}
    assert min(eigvec_agreement(words["cpu"], words["cuda"], range(1, 4))) >= 0.99
