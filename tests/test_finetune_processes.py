"""Fine-tuning in real processes: 2 CPU processes under torchrun (gloo) follow the history of one
process with the same batch, and a SIGKILL in the middle of a checkpoint save leaves the earlier
checkpoint loadable and the run resumable."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import save_tiny_clip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("ft_proc_tiny"), image_size=64, patch_size=16)


def _env(tmp_path):
    return {**os.environ, "HF_HUB_OFFLINE": "1", "EL_CACHE_DIR": str(tmp_path / "cache"),
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _train_args(tiny, out):
    return ["-m", "engineered_latents", "train", "--model", tiny, "--count", "32", "--val-count",
            "8", "--batch-size", "8", "--steps", "4", "--val-every", "2", "--lr", "1e-3",
            "--track", "none", "--out", str(out)]


# Under torchrun, one launch (process start-up is most of the cost) runs three commands in each
# of the two processes: the pooled run compared with one process, a tokens-graph run, and a
# command that fails with a user error.
_THREE_COMMANDS = """
import os, sys
from engineered_latents.__main__ import main
commands = " ".join(sys.argv[1:]).split(" :: ")  # no argument here holds a space
codes = [main(c.split()[2:]) for c in commands]  # each: -m engineered_latents train ...
sys.stdout.flush()
os.write(1, f"codes {os.environ['RANK']} {codes}\\n".encode())  # one write: the ranks' lines
"""                                                              # never run into each other


@pytest.mark.slow
def test_two_torchrun_processes_match_one_process(tmp_path, tiny, monkeypatch):
    from engineered_latents.__main__ import main

    env = _env(tmp_path)
    monkeypatch.setenv("EL_CACHE_DIR", env["EL_CACHE_DIR"])
    assert main(_train_args(tiny, tmp_path / "one")[2:]) == 0  # one process: this one
    script = tmp_path / "three.py"
    script.write_text(_THREE_COMMANDS)
    tokens = [*_train_args(tiny, tmp_path / "tokens"), "--loss", "contrastive+0.1*cluster",
              "--cluster-graph", "tokens", "--cluster-nodes", "24", "--steps", "2"]
    bad = ["-m", "engineered_latents", "train", "--model", tiny, "--dataset", "imagenet",
           "--track", "none", "--out", str(tmp_path / "bad")]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", str(script),
                          *_train_args(tiny, tmp_path / "two"), "::", *tokens, "::", *bad],
                         env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert sorted(line for line in two.stdout.splitlines() if line.startswith("codes")) == \
        ["codes 0 [0, 0, 2]", "codes 1 [0, 0, 2]"]
    a = json.loads((tmp_path / "one" / "train.json").read_text())
    b = json.loads((tmp_path / "two" / "train.json").read_text())
    assert a["provenance"]["processes"] == 1 and b["provenance"]["processes"] == 2
    assert two.stdout.count("trained ") == 2  # only the main process reports, per command
    # the user error: said once (by the main process), both processes exit with 2
    assert two.stderr.count("has no image-caption pairs") == 1, two.stderr[-2000:]
    t = json.loads((tmp_path / "tokens" / "train.json").read_text())
    assert t["provenance"]["processes"] == 2 and t["steps_done"] == 2
    assert all(math.isfinite(h["cluster"]) and math.isfinite(h["loss"]) for h in t["history"])
    # Tolerance: float32 sums in another order (the all-reduce), measured ~1e-6 on the loss.
    for x, y in zip(a["history"], b["history"], strict=True):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-4)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-4)
        assert y["logit_scale"] == pytest.approx(x["logit_scale"], rel=1e-5)
    assert b["val"][-1]["val_loss"] == pytest.approx(a["val"][-1]["val_loss"], abs=1e-4)


_SLOW_SAVE = """
import sys, time, torch
from engineered_latents.finetune import checkpoints, TrainSpec, fit
real = torch.save
def slow(obj, path, *a, **k):
    real(obj, path, *a, **k)
    if ".tmp-step-2" in str(path):
        print("SAVING", flush=True)
        time.sleep(60)  # killed here, half-way through step 2's checkpoint
checkpoints.torch.save = slow
fit(TrainSpec(out=sys.argv[2], model=sys.argv[1], count=16, val_count=8, batch_size=8,
              steps=4, val_every=100, checkpoint_every=1, lr=1e-3, track="none"))
"""


@pytest.mark.slow
def test_sigkill_during_a_checkpoint_save_leaves_a_loadable_checkpoint(tmp_path, tiny):
    from engineered_latents.finetune import TrainSpec, checkpoints, fit

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_SAVE, tiny, str(out)],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 240
    while time.time() < deadline and "SAVING" not in proc.stdout.readline():
        pass
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert [s for s, _ in checkpoints.step_dirs(out)] == [1]
    assert any(p.name.startswith(".tmp-step-2") for p in checkpoints.folder(out).iterdir())
    state = json.loads((checkpoints.step_dirs(out)[0][1] / "state.json").read_text())
    assert state["step"] == 1
    record = fit(TrainSpec(out=str(out), model=tiny, count=16, val_count=8, batch_size=8,
                           steps=4, val_every=100, checkpoint_every=1, lr=1e-3, track="none"),
                 lambda msg: None)
    assert record["steps_done"] == 4 and len(record["history"]) == 4
    assert not any(p.name.startswith(".tmp") for p in checkpoints.folder(out).iterdir())


def test_local_tokens_graph_loss_is_the_mean_over_the_processes(monkeypatch):
    """Several processes with --cluster-graph tokens: each process's graph term is on its own
    tokens graph; the loss is the pooled terms plus the mean of the processes' graph terms, in
    value (all-reduced) and in gradient (this process's share: 1 / W of its own term's)."""
    from types import SimpleNamespace

    import torch
    import torch.distributed as dist

    from engineered_latents.finetune.loop import _local_graph_loss
    from engineered_latents.finetune.losses import (
        LossParams,
        combined,
        contrastive,
        parse_loss,
        row_normalize,
    )

    gen = torch.Generator().manual_seed(0)
    img = row_normalize(torch.randn(8, 6, generator=gen, dtype=torch.float64))
    txt = row_normalize(torch.randn(8, 6, generator=gen, dtype=torch.float64))
    scale = torch.tensor(2.0, dtype=torch.float64)
    nodes = [torch.randn(20, 6, generator=gen, dtype=torch.float64) for _ in range(2)]
    mine = nodes[0].clone().requires_grad_(True)
    params = LossParams()
    cluster = [combined(parse_loss("cluster"), img, txt, scale, params, n)[0] for n in nodes]
    other = float(cluster[1])  # what process 1 contributes to the all-reduce

    def all_reduce(t):
        t += torch.tensor([0.1 * other, other], dtype=t.dtype)

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    run = SimpleNamespace(accelerator=SimpleNamespace(num_processes=2), params=params,
                          terms=parse_loss("contrastive+0.1*cluster"))
    total, values = _local_graph_loss(run, img, txt, scale, mine)
    pooled = float(contrastive(img, txt, scale))
    mean = (float(cluster[0]) + other) / 2
    assert values["cluster"] == pytest.approx(mean, abs=1e-12)
    assert values["contrastive"] == pytest.approx(pooled, abs=1e-12)
    assert float(total.detach()) == pytest.approx(pooled + 0.1 * mean, abs=1e-12)
    total.backward()
    own = nodes[0].clone().requires_grad_(True)
    combined(parse_loss("cluster"), img, txt, scale, params, own)[0].backward()
    assert torch.allclose(mine.grad, 0.1 * own.grad / 2, atol=1e-12)


@pytest.mark.parametrize("rank, said", [("0", 1), ("1", 0)])
def test_a_user_error_is_said_by_the_main_process_only(monkeypatch, capsys, rank, said):
    from engineered_latents.__main__ import main

    monkeypatch.setenv("RANK", rank)  # what torchrun sets in each process
    assert main(["perf", "--pairs", "1"]) == 2  # a user error raised inside the command
    assert capsys.readouterr().err.count("error: --pairs") == said
    assert main(["perf", "--repeats", "0"]) == 2  # a bad option (argparse)
    assert capsys.readouterr().err.count("--repeats") == said
