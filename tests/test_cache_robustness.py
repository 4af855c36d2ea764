"""The cache under stress: shared between processes, full disks, size limits."""

import multiprocessing as mp

import numpy as np

import engineered_latents as el
from engineered_latents.cache import cache_key


def _writer(directory, worker, n):
    cache = el.Cache(directory)
    for i in range(n):
        cache.set(cache_key("w", {"worker": worker, "i": i}), np.full(1000, worker * 1000 + i))
    cache.close()


def test_two_processes_share_one_cache_directory(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), w, 30)) for w in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = el.Cache(tmp_path)
    for w in (1, 2):
        for i in range(30):
            value = cache.get(cache_key("w", {"worker": w, "i": i}))
            np.testing.assert_array_equal(value, np.full(1000, w * 1000 + i))


def test_the_size_limit_evicts_old_entries(tmp_path):
    cache = el.Cache(tmp_path, size_limit=2_000_000)
    for i in range(40):
        cache.set(f"k{i}", np.zeros(100_000))  # 800 kB each
    cache._disk.cull()
    assert cache._disk.volume() <= 2_000_000 + 1_000_000
    assert cache.get("k39") is not None  # the newest survives
    assert sum(cache.get(f"k{i}") is not None for i in range(40)) < 40


def test_a_full_disk_keeps_the_result_in_memory(tmp_path, monkeypatch):
    cache = el.Cache(tmp_path)
    cache.set("old", 1)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache._disk, "set", full)
    value, hit = cache.get_or_compute("k", lambda: 42)
    assert (value, hit) == (42, False)
    assert cache.get_or_compute("k", lambda: 0) == (42, True)
    assert cache.get("old") == 1  # what is on disk is still served
