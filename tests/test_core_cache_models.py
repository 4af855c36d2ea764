"""The cache (hits, corruption, unwritable directories) and model resolution (offline fallback)."""

import time

import numpy as np
import pytest

import engineered_latents as el
from engineered_latents.cache import cache_key
from engineered_latents.models import DEFAULT_MODEL, resolve_model


def test_cache_hit_returns_identical_arrays(tmp_path):
    cache = el.Cache(tmp_path)
    value = np.random.default_rng(0).normal(size=(5, 3))
    key = cache_key("t", {"a": 1})
    assert cache.get_or_compute(key, lambda: value)[1] is False
    again, hit = el.Cache(tmp_path).get_or_compute(key, lambda: 1 / 0)
    assert hit
    np.testing.assert_array_equal(again, value)


def test_keys_name_every_part_and_are_stable():
    assert cache_key("t", {"a": 1, "b": 2}) == cache_key("t", {"b": 2, "a": 1})
    assert cache_key("t", {"a": 1}) != cache_key("t", {"a": 2})
    assert cache_key("t", {"a": 1}) != cache_key("u", {"a": 1})


def test_a_corrupted_entry_is_dropped_and_recomputed(tmp_path):
    cache = el.Cache(tmp_path)
    key = cache_key("t", {"big": True})
    cache.set(key, np.ones(100_000))  # large values live in their own file
    cache.close()
    files = [f for f in tmp_path.rglob("*.val")]
    assert files
    for f in files:
        f.write_bytes(b"not a pickle")
    value, hit = el.Cache(tmp_path).get_or_compute(key, lambda: "recomputed")
    assert (value, hit) == ("recomputed", False)
    assert el.Cache(tmp_path).get(key) == "recomputed"


def test_a_corrupted_index_database_falls_back_to_memory(tmp_path):
    el.Cache(tmp_path).set("k", 1)
    (tmp_path / "cache.db").write_bytes(b"garbage" * 100)
    cache = el.Cache(tmp_path)
    assert not cache.persistent and "not usable" in cache.warning
    assert cache.get_or_compute("k", lambda: 2) == (2, False)


def test_an_unwritable_cache_directory_still_runs(tmp_path, tiny_clip):
    blocker = tmp_path / "file"  # root can write anywhere, but not into a file
    blocker.write_text("x")
    cache = el.Cache(blocker)
    assert not cache.persistent
    run = el.compute_cuts(el.SliceSpec("demo", 0, 1), el.CutSpec(n_eig=6, clusters=3),
                          el.ModelSpec(tiny_clip), cache=cache)
    assert run.result.eigvec.shape[1] == 6
    assert any("not usable" in w for w in run.warnings)


def test_local_directory_identity_is_a_content_fingerprint(tiny_clip, tmp_path):
    import shutil

    resolved = resolve_model(tiny_clip)
    assert resolved.weights_id.startswith("local:") and not resolved.demo_weights
    copy = shutil.copytree(tiny_clip, tmp_path / "copy")
    assert resolve_model(str(copy)).weights_id == resolved.weights_id
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    assert resolve_model(str(copy)).weights_id != resolved.weights_id


def test_not_a_clip_directory_or_missing_path_is_a_user_error(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(el.UserError, match="not a CLIP model"):
        resolve_model(str(tmp_path))
    with pytest.raises(el.UserError, match="no config.json"):
        resolve_model(str(tmp_path.parent))
    with pytest.raises(el.UserError, match="does not exist"):
        resolve_model(str(tmp_path / "missing"))


def test_default_model_falls_back_to_demo_weights_fast_when_the_hub_is_unreachable(
        tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused
    start = time.perf_counter()
    resolved = resolve_model(None)
    assert time.perf_counter() - start < 5
    assert resolved.demo_weights and resolved.weights_id.startswith("toy-")  # assets/toy_clip
    assert "toy model trained on synthetic shapes" in resolved.warning


def test_an_explicitly_named_model_that_cannot_be_loaded_is_an_error():
    with pytest.raises(el.UserError, match="no network"):
        resolve_model(DEFAULT_MODEL)
    with pytest.raises(el.UserError, match="Cannot load model"):
        resolve_model("someone/not-a-model")


def test_demo_results_are_never_served_for_real_weights(tiny_clip, tmp_path, monkeypatch):
    from engineered_latents import models

    demo = models.ResolvedModel("tiny", "demo-seed-0", tiny_clip, demo_weights=True)
    real = resolve_model(tiny_clip)
    cache = el.Cache(tmp_path)
    spec = (el.SliceSpec("demo", 0, 1), el.CutSpec(n_eig=6, clusters=3), el.ModelSpec("x"))
    monkeypatch.setattr(el.pipeline, "resolve_model", lambda name: demo)
    first = el.compute_cuts(*spec, cache=cache)
    assert first.demo_weights
    monkeypatch.setattr(el.pipeline, "resolve_model", lambda name: real)
    second = el.compute_cuts(*spec, cache=cache)
    assert second.cache["cuts"] == "miss" and not second.demo_weights
    assert second.cache["image_embeddings_cached"] == "0/2"


def test_a_model_too_big_for_free_memory_is_refused_before_loading(tiny_clip, monkeypatch):
    import torch

    from engineered_latents import models

    resolved = resolve_model(tiny_clip)
    models.check_fits(resolved, torch.device("cpu"), torch.float32)  # fits
    monkeypatch.setattr(models, "available_memory", lambda device: 1000)
    with pytest.raises(el.UserError, match="only 0.0 GB are free"):
        models.check_fits(resolved, torch.device("cpu"), torch.float32)
