"""A run killed mid-way leaves the cache intact, and the next run completes."""

import os
import signal
import subprocess
import sys
import time

import engineered_latents as el


def test_a_cuts_run_killed_mid_way_leaves_no_half_written_entry(tiny_clip, tmp_path, monkeypatch,
                                                                capsys):
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
    cache.close()
    # The next runs (in this process: the kill above is the process-level part) complete on
    # what the killed one left, then answer from the cache.
    from engineered_latents.__main__ import main

    monkeypatch.setenv("EL_CACHE_DIR", env["EL_CACHE_DIR"])
    assert main(args[3:]) == 0, capsys.readouterr().err
    assert "cuts miss" in capsys.readouterr().out
    assert main(args[3:]) == 0
    assert "cuts hit" in capsys.readouterr().out
