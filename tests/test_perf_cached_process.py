"""A cached `cuts` as a whole process imports neither transformers nor torch (nor
huggingface_hub's download machinery, a second of imports): the key is computed and the result
unpickled without them, for a local model folder, a cached Hub snapshot and the default (offline
toy) model. A real subprocess is the point here; nothing asserts wall-clock time."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engineered_latents.__main__ import main

ROOT = Path(__file__).resolve().parent.parent
DRIVER = (
    "import runpy, sys\n"
    "sys.argv = ['engineered_latents'] + sys.argv[1:]\n"
    "try:\n"
    "    runpy.run_module('engineered_latents', run_name='__main__', alter_sys=True)\n"
    "except SystemExit as e:\n"
    "    assert not e.code, e.code\n"
    "heavy = ('transformers', 'torch', 'huggingface_hub.file_download', 'ncut_pytorch', 'scipy',\n"
    "         'plotly', 'gradio', 'datasets')\n"
    "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
)


def _hub_snapshot(hub_cache: Path, model_dir: str, repo: str = "someone/tiny-clip") -> str:
    """A Hugging Face cache holding `model_dir` as the snapshot of `repo` (the on-disk layout
    huggingface_hub writes: refs/main names the snapshot folder)."""
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = hub_cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(model_dir, repo_dir / "snapshots" / sha)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(sha)
    return repo


@pytest.mark.slow
def test_a_cached_cuts_process_imports_neither_transformers_nor_torch(tiny_clip, tmp_path,
                                                                     monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # the subprocess's
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = _hub_snapshot(tmp_path / "hub", tiny_clip)
    for model in ([tiny_clip], [repo], []):
        argv = ["cuts", *(["--model"] if model else []), *model, "--count", "2",
                "--out", str(tmp_path / "out")]
        assert main(argv) == 0  # computes and caches (EL_CACHE_DIR from conftest)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        run = subprocess.run([sys.executable, "-c", DRIVER, *argv], capture_output=True,
                             text=True, env=env, timeout=300, cwd=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "cache       cuts hit" in run.stdout, run.stdout
        assert "HEAVY []" in run.stdout, (model, run.stdout)


def test_the_cache_key_names_the_device_and_dtype_torch_would_pick(monkeypatch):
    """`device_type` / `dtype_choice` (the key's torch-free names) agree with `pick_device` /
    `pick_dtype`, the no-torch path included (torch hidden from sys.modules)."""
    import torch

    from engineered_latents import models

    expected = {r: models.pick_device(r).type for r in (None, "auto", "cpu")}
    monkeypatch.delitem(sys.modules, "torch")  # the path a fresh process takes
    assert {r: models.device_type(r) for r in expected} == expected
    monkeypatch.undo()
    for device in ("cpu", "cuda", "mps"):
        for requested in (None, "auto", "float32", "float16", "bfloat16"):
            for cpu_bf16 in (True, False):
                picked = models.pick_dtype(requested, torch.device(device), cpu_bf16)
                assert models.dtype_choice(requested, device, cpu_bf16) == \
                    models.dtype_name(picked)
