"""The `train` command: a real run through main(), and every bad input of the issue gives one line
on stderr, exit status 2 and no traceback."""

import json
import math
import os

import pytest
import torch
from conftest import save_tiny_clip

from engineered_latents.__main__ import main


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("ft_cli_tiny"), image_size=64, patch_size=16)


def _args(tiny, out, *extra):
    return ["train", "--model", tiny, "--count", "16", "--val-count", "8", "--batch-size", "8",
            "--steps", "2", "--val-every", "2", "--track", "none", "--out", str(out), *extra]


def _one_line_error(capsys, rc, words):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "it/s" not in line
             and "step/s" not in line and "s/step" not in line and not line.startswith("train:")]
    assert rc == 2, err
    assert "Traceback" not in err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert words in errors[0], errors[0]


def test_train_command_runs_and_prints_the_summary(tmp_path, tiny, capsys):
    rc = main(_args(tiny, tmp_path / "out", "--loss", "clip_svd", "--k", "2", "--lr", "1e-3"))
    out = capsys.readouterr().out
    assert rc == 0
    assert "trained     2 steps" in out and "R@1 image->text" in out
    record = json.loads((tmp_path / "out" / "train.json").read_text())
    assert record["config"]["loss"] == "clip_svd" and record["config"]["k"] == 2
    assert {"clip_svd", "loss", "lr"} <= set(record["history"][0])
    assert main(["history"]) == 0
    assert "train demo loss=clip_svd steps=2" in capsys.readouterr().out


@pytest.mark.parametrize("extra, words", [
    (["--loss", "contrastiv"], "Unknown loss 'contrastiv'"),
    (["--loss", "contrastive+*cka"], "not a weighted sum"),
    (["--k", "0"], "argument --k"),
    (["--alpha", "-1"], "argument --alpha"),
    (["--beta", "nan"], "argument --beta"),
    (["--gamma", "inf"], "argument --gamma"),
    (["--lr", "0"], "argument --lr"),
    (["--lr", "-1e-3"], "argument --lr"),
    (["--batch-size", "1"], "at least 2 pairs per batch"),
    (["--steps", "0"], "argument --steps"),
    (["--dataset", "imagenet"], "no image-caption pairs"),
    (["--loss", "svd", "--k", "8"], "--k 8 needs a batch of more than k pairs"),
    (["--loss", "cluster", "--k", "15"], "beyond the batch graph"),
    (["--train", "last-0"], "argument --train"),
    (["--warmup", "ten"], "argument --warmup"),
    (["--early-stop", "loss:3"], "argument --early-stop"),
    (["--warmup", "5"], "not fewer than the 2 steps"),
])
def test_bad_options(tmp_path, tiny, capsys, extra, words):
    rc = main(_args(tiny, tmp_path / "out", *extra))
    _one_line_error(capsys, rc, words)
    assert not (tmp_path / "out" / "train.json").exists()


def test_out_is_a_file_or_below_a_file(tmp_path, tiny, capsys):
    target = tmp_path / "afile"
    target.write_text("x")
    _one_line_error(capsys, main(_args(tiny, target)), "existing file")
    _one_line_error(capsys, main(_args(tiny, target / "sub")), "cannot be created")


def test_out_holding_another_run(tmp_path, tiny, capsys):
    assert main(_args(tiny, tmp_path / "out")) == 0
    capsys.readouterr()
    rc = main(_args(tiny, tmp_path / "out", "--lr", "1e-4"))
    _one_line_error(capsys, rc, "holds another run: lr")


def test_nan_loss(tmp_path, tiny, capsys, monkeypatch):
    from engineered_latents.finetune import loop

    real = loop.combined
    monkeypatch.setattr(loop, "combined",
                        lambda *a, **k: (real(*a, **k)[0] * float("inf"), {}))
    rc = main(_args(tiny, tmp_path / "out"))
    _one_line_error(capsys, rc, "The loss is ")


def test_out_of_memory(tmp_path, tiny, capsys, monkeypatch):
    from engineered_latents.finetune import model

    def oom(self, **batch):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model.Encoder, "forward", oom)
    rc = main(_args(tiny, tmp_path / "out"))
    _one_line_error(capsys, rc, "Out of memory at --batch-size 8")


def test_full_disk_while_checkpointing(tmp_path, tiny, capsys, monkeypatch):
    from engineered_latents.finetune import checkpoints

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full)
    rc = main(_args(tiny, tmp_path / "out"))
    _one_line_error(capsys, rc, "No space left on device")
    assert not [p for p in os.listdir(tmp_path / "out" / "checkpoints") if p.startswith(".tmp")]


def test_dataset_without_pairs_named_in_the_registry(tmp_path, tiny, capsys):
    rc = main(_args(tiny, tmp_path / "out", "--dataset", "whatsup-a"))
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "no image-caption pairs" in err or "Unknown dataset" in err


def test_eval_before_and_after(tmp_path, tiny, capsys):
    out = tmp_path / "out"
    rc = main(_args(tiny, out, "--eval", "demo", "--eval-limit", "4", "--lr", "1e-2"))
    err = capsys.readouterr().err
    assert rc == 0, err
    payload = json.loads((out / "eval.json").read_text())
    rows = {r["metric"]: r for r in payload["rows"] if r["benchmark"] == "demo"}
    assert {"text", "image", "group"} <= set(rows)
    for r in rows.values():
        assert r["difference"] == pytest.approx(r["after"] - r["before"])
        assert len(r["before_ci95"]) == 2 and len(r["after_ci95"]) == 2
    assert payload["before"]["demo"]["n"] == 4 and payload["after"]["demo"]["n"] == 4
    assert "benchmark" in err and "before" in err and "after" in err


def test_eval_of_an_unknown_benchmark(tmp_path, tiny, capsys):
    rc = main(_args(tiny, tmp_path / "out", "--eval", "demo,nope"))
    _one_line_error(capsys, rc, "--eval 'nope' is not a benchmark")


def test_k_beyond_the_embedding_width(tmp_path, tiny, capsys):
    # the tiny model projects to 16 dimensions: 16 singular values; batch 32 allows k = 20
    rc = main(_args(tiny, tmp_path / "out", "--loss", "svd", "--k", "20", "--batch-size", "32",
                    "--count", "32"))
    _one_line_error(capsys, rc, "16 singular values")


def test_bfloat16_autocast_on_the_cpu(tmp_path, tiny, capsys):
    assert main(_args(tiny, tmp_path / "out", "--dtype", "bfloat16")) == 0
    record = json.loads((tmp_path / "out" / "train.json").read_text())
    assert record["config"]["dtype"] == "bfloat16"
    assert all(math.isfinite(h["loss"]) for h in record["history"])


def test_float16_needs_cuda(tmp_path, tiny, capsys):
    rc = main(_args(tiny, tmp_path / "out", "--dtype", "float16", "--device", "cpu"))
    _one_line_error(capsys, rc, "float16 needs CUDA")
