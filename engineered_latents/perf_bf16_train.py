"""The bf16 training figure of `perf --bf16-train`: fine-tuning in float32 against bfloat16
autocast (`train --dtype bfloat16`: Accelerate's bf16 mixed precision, float32 weights and
optimizer) on the same model, data, seed and batches, measured the way the cuts' dtypes are:

- agreement: the two loss curves step by step (Pearson correlation, the largest and the mean
  relative difference, the first step's: same weights and batch, so only the forward's
  rounding), and the final validation loss of each;
- speed: the median step of each (timed between `fit`'s progress callbacks, validation and
  checkpoint only at the end), float32 over bfloat16; and, since the two runs are sequential on
  a machine whose load changes, bare steps (forward, contrastive loss, backward, AdamW) of the
  two dtypes interleaved step by step on one fixed batch: the ratio a changing load moves least.

Architectures: the tiny 2-layer CLIP of the tests and ViT-B/32 built from its config (random
seeded weights, no download), on the demo scenes. The CPU default stays float32; on a CPU with
native bf16 units (`models.cpu_has_native_bf16`) this is the figure that says whether to ask
for bfloat16. Tests assert the agreement bound on a tiny model, never the time.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .perf_train import save_model  # the same random CLIP folders

WARM = 2  # steps left out of the step-time medians


def run(model_dir: str, dtype: str, steps: int, batch_size: int, device: str | None,
        lr: float = 1e-4, workdir: str | None = None) -> dict:
    """`fit` for `steps` steps in `dtype`: its loss per step, final validation loss, the median
    step seconds and the dtype train.json records."""
    from .finetune import TrainSpec, fit

    stamps: list[float] = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        spec = TrainSpec(out=str(Path(tmp) / "out"), model=model_dir, count=max(32, batch_size),
                         val_count=batch_size, batch_size=batch_size, steps=steps,
                         val_every=steps, checkpoint_every=steps, lr=lr, warmup="0",
                         track="none", device=device, dtype=dtype,
                         cache_dir=str(Path(tmp) / "cache"))
        record = fit(spec, lambda msg: None, progress=lambda report: stamps.append(
            time.perf_counter()))
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]  # stamps[0]: the base validation
    # the last interval holds the final validation: left out, as are the warm-up steps
    timed = intervals[min(WARM, len(intervals) // 2):-1] or intervals
    return {"dtype": record["config"]["dtype"],
            "losses": [e["loss"] for e in record["history"]],
            "val_loss": record["val"][-1]["val_loss"],
            "step_s": round(statistics.median(timed), 5) if timed else None}


def interleaved_steps(model_dir: str, batch_size: int, steps: int, device: str | None) -> dict:
    """Median seconds of bare training steps, float32 and bfloat16 autocast taking turns (one
    model and optimizer each, the same initial weights and batch), after one warm-up step each."""
    import torch

    from .finetune.data import Collate, DemoScenes
    from .finetune.losses import contrastive, row_normalize
    from .finetune.model import Encoder, load_base, param_groups
    from .models import pick_device

    dev = pick_device(device)
    runs = {}
    for dtype in ("float32", "bfloat16"):
        _, clip, tokenizer, processor = load_base(model_dir)
        enc = Encoder(clip).to(dev)
        runs[dtype] = (enc, torch.optim.AdamW(param_groups(enc, 0.01), lr=1e-5))
    pairs = DemoScenes("train", batch_size).pairs()
    batch = {k: v.to(dev) for k, v in
             Collate(pairs, processor, tokenizer)(list(range(batch_size))).items()}
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for _ in range(steps + 1):
        for dtype, (enc, optimizer) in runs.items():
            t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                out = enc(**batch)
            loss = contrastive(row_normalize(out["img"].float()), row_normalize(out["txt"].float()),
                               out["logit_scale"].float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss.item()  # wait for the device
            times[dtype].append(time.perf_counter() - t0)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}
    return {"steps": steps, "float32_s": round(med["float32"], 5),
            "bfloat16_s": round(med["bfloat16"], 5),
            "speedup": round(med["float32"] / med["bfloat16"], 3)}


def agreement(f32: list[float], bf16: list[float]) -> dict:
    """How closely a bf16 loss curve follows the float32 one, step by step."""
    a, b = np.asarray(f32, np.float64), np.asarray(bf16, np.float64)
    rel = np.abs(b - a) / np.maximum(np.abs(a), 1e-12)
    corr = float(np.corrcoef(a, b)[0, 1]) if len(a) > 2 and a.std() > 0 and b.std() > 0 \
        else None
    return {"loss_corr": None if corr is None else round(corr, 5),
            "first_rel_diff": round(float(rel[0]), 6),
            "max_rel_diff": round(float(rel.max()), 6),
            "mean_rel_diff": round(float(rel.mean()), 6)}


def compare(model_dir: str, steps: int, batch_size: int, device: str | None = None,
            lr: float = 1e-4, workdir: str | None = None) -> dict:
    """float32 against bfloat16 autocast on one model: both runs, their agreement, the speed."""
    f32 = run(model_dir, "float32", steps, batch_size, device, lr, workdir)
    bf16 = run(model_dir, "bfloat16", steps, batch_size, device, lr, workdir)
    figure = {"steps": steps, "batch_size": batch_size, "float32": f32, "bfloat16": bf16,
              **agreement(f32["losses"], bf16["losses"]),
              "val_rel_diff": round(abs(bf16["val_loss"] - f32["val_loss"])
                                    / max(abs(f32["val_loss"]), 1e-12), 6)}
    if f32["step_s"] and bf16["step_s"]:
        figure["speedup"] = round(f32["step_s"] / bf16["step_s"], 3)
    return figure


def measure(device: str | None = None, tiny_steps: int = 30, b32_steps: int = 6,
            batch_size: int = 16, log: Callable[[str], None] = print,
            bare_steps: int = 4) -> dict:
    """The figure for the tiny model and for B/32 (0 steps skips one), with `bare_steps`
    interleaved bare steps of each dtype (0: none)."""
    from .models import cpu_has_native_bf16, pick_device

    dev = pick_device(device)
    report = {"device": str(dev), "native_bf16": cpu_has_native_bf16() if dev.type == "cpu"
              else None, "models": []}
    for kind, steps in (("tiny", tiny_steps), ("b32", b32_steps)):
        if not steps:
            continue
        log(f"bf16 training figure, {kind}: float32 and bfloat16, {steps} steps each ...")
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = save_model(kind, str(Path(tmp) / kind))
            figure = {"model": kind, **compare(model_dir, steps, batch_size, device,
                                                workdir=tmp)}
            if bare_steps:
                log(f"bf16 training figure, {kind}: {bare_steps} bare steps of each, "
                    "interleaved ...")
                figure["interleaved"] = interleaved_steps(model_dir, batch_size, bare_steps,
                                                          device)
            report["models"].append(figure)
    return report


def table(report: dict) -> str:
    native = {True: "native bf16 units", False: "no native bf16 units", None: ""}[
        report["native_bf16"]]
    lines = [f"training: float32 against bfloat16 autocast on {report['device']}"
             + (f" ({native})" if native else "") + "; random weights, demo scenes, same seed",
             f"{'model':>6}{'batch':>6}{'steps':>6}{'f32 s':>9}{'bf16 s':>9}{'speedup':>8}"
             f"{'corr':>8}{'1st rel':>9}{'max rel':>9}{'val rel':>9}"]
    for m in report["models"]:
        corr = "-" if m["loss_corr"] is None else f"{m['loss_corr']:.4f}"
        speed = f"{m['speedup']:.2f}x" if "speedup" in m else "-"
        lines.append(f"{m['model']:>6}{m['batch_size']:>6}{m['steps']:>6}"
                     f"{m['float32']['step_s'] or 0:>9.4f}{m['bfloat16']['step_s'] or 0:>9.4f}"
                     f"{speed:>8}{corr:>8}{m['first_rel_diff']:>9.2%}{m['max_rel_diff']:>9.2%}"
                     f"{m['val_rel_diff']:>9.2%}")
    for m in report["models"]:
        if "interleaved" in m:
            b = m["interleaved"]
            lines.append(f"{m['model']:>6}: bare steps interleaved ({b['steps']} of each): "
                         f"float32 {b['float32_s']:.4f} s, bfloat16 {b['bfloat16_s']:.4f} s, "
                         f"{b['speedup']:.2f}x")
    lines.append("s: median step; corr: Pearson correlation of the two loss curves; rel: "
                 "|bf16 - f32| / f32 of the loss at step 1, its largest over the run, and of "
                 "the final validation loss")
    return "\n".join(lines)
