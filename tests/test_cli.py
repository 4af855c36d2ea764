"""The CLI end to end, in a subprocess as a user runs it."""

import json
import os
import subprocess
import sys

import pytest


def _cli(*args, cwd, env=None):
    return subprocess.run(
        [sys.executable, "-m", "engineered_latents", *args], cwd=cwd, capture_output=True,
        text=True, timeout=300, env={**os.environ, **(env or {})},
    )


@pytest.fixture
def repo_env(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return {"PYTHONPATH": root, "EL_CACHE_DIR": str(tmp_path / "cache")}


def test_cuts_on_the_demo_slice_writes_outputs_and_reruns_from_cache(tiny_clip, tmp_path,
                                                                     repo_env):
    args = ["cuts", "--model", tiny_clip, "--dataset", "demo", "--count", "2", "--n-eig", "8",
            "--out", str(tmp_path / "out")]
    first = _cli(*args, cwd=tmp_path, env=repo_env)
    assert first.returncode == 0, first.stderr
    assert "real weights local:" in first.stdout
    assert "eig  1" in first.stdout and "cuts miss" in first.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_eig"] == 8 and len(summary["pairs"]) == 4
    assert (tmp_path / "out" / "cuts.npz").is_file()
    second = _cli(*args, cwd=tmp_path, env=repo_env)
    assert second.returncode == 0 and "cuts hit" in second.stdout
    again = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert again["pairs"] == summary["pairs"] and again["eigenvalues"] == summary["eigenvalues"]


def test_default_output_directory_is_named_after_the_slice(tiny_clip, tmp_path, repo_env):
    result = _cli("cuts", "--model", tiny_clip, "--start", "3", "--count", "1", "--n-eig", "4",
                  "--clusters", "2", "--mode", "joint", cwd=tmp_path, env=repo_env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "demo-3-1" / "summary.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--start", "500"], "outside the dataset"),
    (["--dataset", "nope"], "Unknown dataset"),
    (["--model", "/no/such/dir"], "does not exist"),
    (["--n-eig", "4", "--clusters", "6"], "raise --n-eig"),
])
def test_user_errors_exit_nonzero_with_one_line_and_no_traceback(tmp_path, repo_env, args,
                                                                 message):
    result = _cli("cuts", *args, cwd=tmp_path, env=repo_env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if line.startswith("error:")]) == 1


def test_help_explains_every_option(tmp_path, repo_env):
    result = _cli("cuts", "--help", cwd=tmp_path, env=repo_env)
    assert result.returncode == 0
    for option in ["--model", "--dataset", "--data-path", "--start", "--count", "--indices",
                   "--mode", "--n-eig", "--seed", "--device", "--cache-dir", "--out",
                   "--similarity", "--include-special", "--no-patch-norm", "--layer",
                   "--no-center", "--clusters", "--sharpness", "--crossed-pairs"]:
        assert option in result.stdout
