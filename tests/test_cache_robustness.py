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


def test_changed_bytes_on_disk_are_dropped_and_recomputed_never_used(tmp_path, caplog):
    """Flip bytes inside every stored value (large values live in files, small ones in the
    SQLite file): each read then fails its checksum, is dropped, warned about and recomputed."""
    import sqlite3

    cache = el.Cache(tmp_path)
    big, small = np.arange(50_000, dtype=np.float64), np.arange(10, dtype=np.float64)
    cache.set("big", big)
    cache.set("small", small)
    cache.close()
    for f in tmp_path.rglob("*.val"):  # diskcache's file-backed values
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0xFF
        f.write_bytes(bytes(data))
    with sqlite3.connect(tmp_path / "cache.db") as db:  # the small value's blob, one byte off
        (blob,) = db.execute("SELECT value FROM Cache WHERE key = ?", ("small",)).fetchone()
        blob = bytearray(blob)
        blob[-3] ^= 0x01
        db.execute("UPDATE Cache SET value = ? WHERE key = ?", (bytes(blob), "small"))
    cache = el.Cache(tmp_path)
    with caplog.at_level("WARNING"):
        assert cache.get("big") is None and cache.get("small") is None
    assert caplog.text.count("checksum mismatch") == 2
    value, hit = cache.get_or_compute("small", lambda: small * 2)
    assert not hit
    np.testing.assert_array_equal(el.Cache(tmp_path).get("small"), small * 2)


def test_the_memory_fallback_is_bounded(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = el.Cache(blocker, memory_limit=3_000_000)
    assert not cache.persistent
    for i in range(10):
        cache.set(f"k{i}", np.zeros(100_000))  # 800 kB each
    kept = [i for i in range(10) if cache.get(f"k{i}") is not None]
    assert kept == [7, 8, 9]  # the newest that fit in 3 MB


_SERVE_AFTER_IMMUTABLE = """
import subprocess, sys
import numpy as np
import engineered_latents as el
d = sys.argv[1]
cache = el.Cache(d)
for i in range(200):
    cache.set(f"k{i}", np.full(5000, i))
cache.close()
cache = el.Cache(d)
assert cache.get("k1")[0] == 1
subprocess.run(["chattr", "-R", "+i", d], check=True)
try:
    got = [cache.get(f"k{i}") for i in range(200)]
    cache.set("new", np.zeros(10))
    print("served", sum(g is not None for g in got), "new", cache.get("new") is not None)
finally:
    subprocess.run(["chattr", "-R", "-i", d], check=True)
"""


def test_a_cache_made_immutable_while_serving_does_not_kill_the_process(tmp_path):
    """`chattr -R +i` on the cache folder while it is open (the SIGBUS case): reads and writes
    become errors the cache handles; the process lives on."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", _SERVE_AFTER_IMMUTABLE, str(tmp_path / "c")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "served" in result.stdout and "new True" in result.stdout


def test_sqlite_runs_without_memory_mapped_io(tmp_path):
    """With mmap, a file-system failure under a mapped page is a SIGBUS (the process dies); the
    cache asks SQLite for plain reads so it is an exception instead."""
    cache = el.Cache(tmp_path)
    assert cache._disk.sqlite_mmap_size == 0
    (size,) = cache._disk._sql("PRAGMA mmap_size").fetchone()
    assert size == 0
