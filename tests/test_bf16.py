"""bfloat16 encoders on CPUs with bf16 units: the auto choice, where it shows, and that the
cut barely moves (word-level scores of float32 and bfloat16 cuts of one slice correlate)."""

import numpy as np
import pytest
import torch

import engineered_latents as el
from engineered_latents import models
from engineered_latents.config import Settings
from engineered_latents.errors import UserError
from engineered_latents.perf import eigval_agreement, eigvec_agreement

CPU = torch.device("cpu")
SAPPHIRE = "fpu vme avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8"
ZEN4 = "fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni"
SKYLAKE = "fpu sse2 avx2 avx512f avx512bw avx512_vnni"


@pytest.mark.parametrize("flags, native", [
    (SAPPHIRE, True), (ZEN4, True), ("amx_bf16", True), (SKYLAKE, False),
    ("amx_tile amx_int8 avx512_fp16", False), ("", False), ("xavx512_bf16 amx_bf16x", False),
])
def test_native_bf16_is_read_from_the_cpu_flags(flags, native):
    assert models.cpu_has_native_bf16(flags) is native


@pytest.mark.parametrize("flags, expected", [(SAPPHIRE, torch.bfloat16), (ZEN4, torch.bfloat16),
                                             (SKYLAKE, torch.float32)])
def test_auto_dtype_on_the_cpu_follows_the_flags(monkeypatch, flags, expected):
    monkeypatch.delenv("EL_CPU_BF16")
    monkeypatch.setattr(models, "_cpu_flags", lambda: flags)
    for requested in (None, "auto"):
        assert models.pick_dtype(requested, CPU) == expected
    # asked for explicitly, a dtype is used as given; CUDA and MPS keep their defaults
    assert models.pick_dtype("float32", CPU) == torch.float32
    assert models.pick_dtype("float16", CPU) == torch.float16
    assert models.pick_dtype(None, torch.device("cuda")) == torch.float16
    assert models.pick_dtype(None, torch.device("mps")) == torch.float32


@pytest.mark.parametrize("value, expected", [("0", torch.float32), ("off", torch.float32),
                                             ("1", torch.bfloat16), ("true", torch.bfloat16)])
def test_el_cpu_bf16_overrides_the_flags(monkeypatch, value, expected):
    native = expected == torch.bfloat16
    monkeypatch.setattr(models, "_cpu_flags", lambda: SKYLAKE if native else SAPPHIRE)
    monkeypatch.setenv("EL_CPU_BF16", value)
    assert Settings.from_env().cpu_bf16 is native
    assert models.pick_dtype(None, CPU) == expected
    assert models.pick_dtype("float32", CPU) == torch.float32  # an explicit dtype wins


def test_a_bad_el_cpu_bf16_says_what_to_give(monkeypatch):
    monkeypatch.setenv("EL_CPU_BF16", "maybe")
    with pytest.raises(UserError, match="EL_CPU_BF16='maybe' is not a switch: give 1 or 0"):
        Settings.from_env()


def _cut(model, cache_dir, dtype=None):
    return el.compute_cuts(el.SliceSpec("demo", 0, 2), el.CutSpec(n_eig=8),
                           el.ModelSpec(model, dtype=dtype), cache=el.Cache(cache_dir))


def _words(run) -> np.ndarray:
    return np.concatenate([run.word_level_scores(p) for p in range(len(run.pairs))])


@pytest.fixture(scope="module")
def both(tiny_clip, tmp_path_factory):
    """float32 and bfloat16 cuts of the same demo slice (2 examples, 4 pairs), fresh caches."""
    return {dt: _cut(tiny_clip, tmp_path_factory.mktemp(dt), dt)
            for dt in ("float32", "bfloat16")}


def test_bf16_word_scores_agree_with_float32(both):
    # measured on the tiny CLIP: 0.99996, 0.99961, 0.99859 for eigenvectors 1-3
    a, b = _words(both["float32"]), _words(both["bfloat16"])
    assert a.dtype == b.dtype == np.float32  # the scores stay float32
    agreement = eigvec_agreement(a, b, range(1, 4))
    assert min(agreement) >= 0.99, agreement
    values = eigval_agreement(both["float32"].result.eigval, both["bfloat16"].result.eigval)
    assert max(abs(d) for d in values["eigval_diff"]) < 0.05, values


def test_the_dtype_is_in_provenance_and_the_key(both):
    assert both["float32"].provenance["dtype"] == "float32"
    assert both["bfloat16"].provenance["dtype"] == "bfloat16"
    assert both["bfloat16"].result.eigvec.dtype == np.float32
    assert not np.array_equal(both["float32"].result.eigvec, both["bfloat16"].result.eigvec)


def test_auto_picks_bf16_on_a_bf16_cpu_with_its_own_cache_entry(both, tiny_clip, tmp_path,
                                                                monkeypatch):
    cache = tmp_path / "shared"
    monkeypatch.setenv("EL_CPU_BF16", "0")
    first = _cut(tiny_clip, cache)
    monkeypatch.setenv("EL_CPU_BF16", "1")
    second = _cut(tiny_clip, cache)
    assert first.provenance["dtype"] == "float32" and second.provenance["dtype"] == "bfloat16"
    assert first.cache["cuts"] == second.cache["cuts"] == "miss"  # dtype is part of the key
    assert np.array_equal(first.result.eigvec, both["float32"].result.eigvec)
    assert np.array_equal(second.result.eigvec, both["bfloat16"].result.eigvec)
    assert _cut(tiny_clip, cache).cache["cuts"] == "hit"


def test_the_same_dtype_gives_identical_results(both, tiny_clip, tmp_path):
    again = _cut(tiny_clip, tmp_path, "bfloat16")
    assert again.cache["cuts"] == "miss"
    assert np.array_equal(again.result.eigvec, both["bfloat16"].result.eigvec)
    assert np.array_equal(again.result.eigval, both["bfloat16"].result.eigval)
    assert np.array_equal(_words(again), _words(both["bfloat16"]))


def test_agreement_helpers_against_hand_values():
    x = np.array([[1.0, 1, 2], [1, 2, 0], [1, 3, 1], [1, 4, 5]])
    flipped = x * np.array([1, -1, 2])  # sign and scale do not change the correlation
    assert eigvec_agreement(x, flipped, range(1, 3)) == [1.0, 1.0]
    # column 2 against (0, 2, 1, 5): deviations (0, -2, -1, 3) and (-2, 0, -1, 3) -> 10 / 14
    y = x.copy()
    y[:, 2] = [0, 2, 1, 5]
    assert eigvec_agreement(x, y, [2]) == [pytest.approx(5 / 7, abs=1e-5)]
    values = eigval_agreement(np.array([1, 0.5, 0.4995, 0.2]), np.array([1, 0.5, 0.4990, 0.21]),
                              range(1, 4))
    assert values["eigval_diff"] == [0.0, -0.0005, 0.01]
    # tolerance 2 x 0.01: eigenvalues 1 and 2 are 0.0005 apart (flagged), 3 stands alone
    assert values["near_equal"] == [1, 2]
