"""A run killed mid-way leaves the cache intact, and the next run completes."""

import os
import signal
import subprocess
import sys
import time

import engineered_latents as el


def test_a_cuts_run_killed_mid_way_leaves_no_half_written_entry(tiny_clip, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root, "EL_CACHE_DIR": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "engineered_latents", "cuts", "--model", tiny_clip,
            "--count", "12", "--n-eig", "8", "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            text=True)
    for line in proc.stderr:  # kill it while it encodes (an idle machine encodes 12 pairs of
        if "encoding" in line:  # the tiny model in well under 0.1 s: kill at once)
            time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out" / "summary.json").exists()
    cache = el.Cache(tmp_path / "cache")
    assert cache.persistent  # the index database survived
    from engineered_latents.cache import _unpack

    for key in list(cache._disk.iterkeys()):
        if key != "__probe__":  # every entry that is there reads back, checksum verified
            _unpack(cache._disk.get(key))  # raises on a damaged entry (Cache.get would drop it)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "cuts miss" in done.stdout
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert "cuts hit" in again.stdout
