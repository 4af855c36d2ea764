"""The training figure of `perf --train`: the full loop (`finetune.fit`) against its floor.

For each architecture (the tiny 2-layer CLIP of the tests, and ViT-B/32 built from its config with
random weights; no download), on the demo scenes:
- the floor: a bare forward + contrastive loss + backward + AdamW step (the loop's own
  optimizer, `setup.build_optimizer`: fused on the CPU and CUDA) of one fixed, already
  collated batch (no data work, no logging, no validation), before and after the loop (median
  over both: the load of a shared machine drifts);
- the loop: `fit` with the same batch size (data prepared in the background until cached,
  tqdm, history, validation every `val_every` steps and checkpoints every
  `checkpoint_every`), timed between successive progress callbacks: the median step (steady
  state) and the mean step (everything, the periodic validations and checkpoints included),
  each over the floor's median;
- samples/s of both; memory: peak RSS growth during the run, the current RSS after the first
  epoch + `WARM` steps (by then the training Collate's pixel cache holds every scene) and at the
  end (growth over the run: a leak shows here), and on CUDA `torch.cuda.max_memory_allocated`.
Never asserted by tests (wall-clock time depends on the machine).
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

WARM = 10  # steps left out of the medians
COUNT = 512  # demo training scenes (the default): 16 steps per epoch at batch 32


def rss_mb() -> float:
    """The current resident set size (Linux /proc; else the peak, which only grows)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def save_model(kind: str, path: str) -> str:
    """A CLIP folder every command loads: `tiny` (2 layers, width 32, 224 px / 32 px patches,
    projection 16) or `b32` (CLIPConfig()'s defaults: ViT-B/32), random seeded weights."""
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    from .models import clip_tokenizer_from_vocab

    if kind == "tiny":
        small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=2)
        config = CLIPConfig(text_config=dict(small, vocab_size=49408,
                                             max_position_embeddings=77),
                            vision_config=dict(small, image_size=224, patch_size=32),
                            projection_dim=16)
    else:
        config = CLIPConfig()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        CLIPModel(config).save_pretrained(path)
    clip_tokenizer_from_vocab().save_pretrained(path)
    CLIPImageProcessorPil().save_pretrained(path)
    return path


def floor(model_dir: str, batch_size: int, steps: int, device: str | None) -> dict:
    """Wall and CPU seconds of each bare step after warm-up, on one fixed batch of demo
    scenes."""
    from .finetune.data import Collate, DemoScenes
    from .finetune.losses import contrastive, row_normalize
    from .finetune.model import Encoder, load_base, param_groups
    from .finetune.setup import build_optimizer
    from .models import pick_device

    dev = pick_device(device)
    _, clip, tokenizer, processor = load_base(model_dir)
    enc = Encoder(clip).to(dev)
    optimizer = build_optimizer("adamw", param_groups(enc, 0.01), 1e-5, dev.type)  # the loop's
    pairs = DemoScenes("train", batch_size).pairs()
    batch = {k: v.to(dev) for k, v in
             Collate(pairs, processor, tokenizer)(list(range(batch_size))).items()}
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        out = enc(**batch)
        loss = contrastive(row_normalize(out["img"]), row_normalize(out["txt"]),
                           out["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()  # wait for the device, as the loop's history does
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    warm = min(WARM, steps // 2)
    return {"times": times[warm:], "cpu": cpu[warm:]}


def _floor_figure(runs: list[dict]) -> dict:
    """Medians over the steps of the floor runs before and after the loop (the load of a shared
    machine changes between them)."""
    times = [t for r in runs for t in r["times"]]
    cpu = [t for r in runs for t in r["cpu"]]
    return {"step_s": round(statistics.median(times), 5),
            "cpu_step_s": round(statistics.median(cpu), 5), "steps": len(times),
            "before_s": round(statistics.median(runs[0]["times"]), 5),
            "after_s": round(statistics.median(runs[-1]["times"]), 5)}


def loop(model_dir: str, batch_size: int, steps: int, device: str | None,
         val_every: int, checkpoint_every: int) -> dict:
    """`fit` on demo scenes; per-step times from its progress callback; memory."""
    from .finetune import TrainSpec, fit

    stamps: list[float] = []
    cpu: list[float] = []
    rss: list[float] = []

    def progress(report: dict) -> None:
        stamps.append(time.perf_counter())
        cpu.append(time.process_time())
        rss.append(rss_mb())

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    peak_before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        spec = TrainSpec(out=str(Path(tmp) / "out"), model=model_dir, count=COUNT,
                         batch_size=batch_size, steps=steps, val_every=val_every,
                         checkpoint_every=checkpoint_every, val_count=batch_size, lr=1e-5,
                         track="none", device=device, cache_dir=str(Path(tmp) / "cache"))
        t0 = time.perf_counter()
        fit(spec, lambda msg: None, progress=progress)
        total_s = time.perf_counter() - t0
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]  # stamps[0]: after the base val
    cpu_intervals = [b - a for a, b in zip(cpu, cpu[1:])]
    warm = min(WARM, steps // 2)
    # memory baseline: after the first epoch (the pixel cache then holds every image) + WARM
    base = min(len(rss) - 1, -(-COUNT // batch_size) + WARM)
    figure = {"steps": steps, "val_every": val_every, "checkpoint_every": checkpoint_every,
              "train_scenes": COUNT,
              "step_s": round(statistics.median(intervals[warm:]), 5),
              "cpu_step_s": round(statistics.median(cpu_intervals[warm:]), 5),
              "mean_step_s": round((stamps[-1] - stamps[0]) / steps, 5),
              "fit_s": round(total_s, 2), "rss_baseline_step": base,
              "rss_baseline_mb": round(rss[base], 1), "rss_end_mb": round(rss[-1], 1),
              "rss_growth_mb": round(rss[-1] - rss[base], 1),
              "peak_rss_growth_mb": round(peak_rss_mb() - peak_before, 1)}
    if torch.cuda.is_available():
        figure["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return figure


def measure_one(kind: str, batch_size: int, steps: int, device: str | None = None,
                val_every: int = 50, checkpoint_every: int = 100,
                log: Callable[[str], None] = print, *, model_dir: str) -> dict:
    """One architecture's figure on `model_dir`, a saved model of that kind (`save_model`)."""
    n = min(steps, 50)
    log(f"train figure, {kind}: floor ({n} bare steps, batch {batch_size}) ...")
    before = floor(model_dir, batch_size, n, device)
    log(f"train figure, {kind}: the loop ({steps} steps) ...")
    run = loop(model_dir, batch_size, steps, device, val_every, checkpoint_every)
    log(f"train figure, {kind}: floor again ({n} bare steps) ...")
    base = _floor_figure([before, floor(model_dir, batch_size, n, device)])
    figure = {"model": kind, "batch_size": batch_size, "floor": base, "loop": run,
              "loop_over_floor": round(run["step_s"] / base["step_s"], 3),
              "cpu_loop_over_floor": round(run["cpu_step_s"] / base["cpu_step_s"], 3),
              "mean_over_floor": round(run["mean_step_s"] / base["step_s"], 3),
              "floor_samples_s": round(batch_size / base["step_s"], 1),
              "loop_samples_s": round(batch_size / run["step_s"], 1)}
    log(f"train figure, {kind}: {figure}")  # each model's figure as soon as it is measured
    return figure


def measure_repeated(kind: str, batch_size: int, steps: int, repeats: int,
                     device: str | None = None, log: Callable[[str], None] = print,
                     **kw) -> dict:
    """`measure_one` `repeats` times on one saved model, in this process: the figure of the
    median repeat (by loop / floor; with an even count the lower middle), with every repeat's
    ratios under `repeats` (a shared machine's spread shows there), and the largest peak RSS
    growth of any repeat (the first's: the process's peak only grows)."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_model(kind, str(Path(tmp) / kind))
        figures = [measure_one(kind, batch_size, steps, device, log=log, model_dir=model_dir,
                               **kw) for _ in range(repeats)]
    ranked = sorted(figures, key=lambda f: f["loop_over_floor"])
    figure = dict(ranked[(len(ranked) - 1) // 2])
    # the process's peak RSS only grows: a later repeat's own peak growth reads ~0
    figure["loop"] = {**figure["loop"], "peak_rss_growth_mb": max(
        f["loop"]["peak_rss_growth_mb"] for f in figures)}
    figure["repeats"] = [{"floor_s": f["floor"]["step_s"], "loop_s": f["loop"]["step_s"],
                          "loop_over_floor": f["loop_over_floor"],
                          "cpu_loop_over_floor": f["cpu_loop_over_floor"]} for f in figures]
    return figure


def measure(device: str | None = None, tiny_steps: int = 200, b32_steps: int = 6,
            batch_size: int = 32, log: Callable[[str], None] = print,
            tiny_repeats: int = 3) -> dict:
    """The figure for the tiny model (`tiny_steps`, validation every 50, checkpoint every 100;
    `tiny_repeats` times, the median repeat reported) and for B/32 (`b32_steps`, validation
    and checkpoint only at the end; once); 0 steps skips one."""
    from .models import pick_device

    report = {"device": str(pick_device(device)), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "load_before": _load(), "models": []}
    if tiny_steps:
        report["models"].append(measure_repeated("tiny", batch_size, tiny_steps, tiny_repeats,
                                                 device, log=log))
    if b32_steps:
        report["models"].append(measure_repeated("b32", batch_size, b32_steps, 1, device,
                                                 log=log, val_every=b32_steps,
                                                 checkpoint_every=b32_steps))
    report["load_after"] = _load()
    return report


def _load() -> list[float] | None:
    """The machine's 1, 5 and 15 minute load averages (a shared machine shows here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def table(report: dict) -> str:
    lines = [f"training loop against its floor on {report['device']} "
             f"({report['threads']} threads, load average {report.get('load_before')} before, "
             f"{report.get('load_after')} after); random weights, demo scenes",
             f"{'model':>6}{'batch':>6}{'steps':>6}{'floor s':>9}{'loop s':>9}{'loop/fl':>8}"
             f"{'mean/fl':>8}{'cpu/fl':>7}{'floor/s':>9}{'loop/s':>8}{'RSS +MB':>8}"
             f"{'peak +MB':>9}  repeats (loop/fl)"]
    for m in report["models"]:
        lp = m["loop"]
        lines.append(f"{m['model']:>6}{m['batch_size']:>6}{lp['steps']:>6}"
                     f"{m['floor']['step_s']:>9.4f}{lp['step_s']:>9.4f}"
                     f"{m['loop_over_floor']:>8.2f}{m['mean_over_floor']:>8.2f}"
                     f"{m['cpu_loop_over_floor']:>7.2f}"
                     f"{m['floor_samples_s']:>9.1f}{m['loop_samples_s']:>8.1f}"
                     f"{lp['rss_growth_mb']:>8.1f}{lp['peak_rss_growth_mb']:>9.1f}  "
                     + " ".join(f"{r['loop_over_floor']:.2f}" for r in m.get("repeats", []))
                     + (f"  GPU peak {lp['peak_gpu_mb']} MB" if "peak_gpu_mb" in lp else ""))
    lines.append("each row: the median of its repeats (every repeat's loop/fl at the end); "
                 "loop s: median step of fit (steady state); mean/fl: every step with the "
                 "validations and checkpoints; cpu/fl: process CPU seconds per step (all "
                 "threads, the data thread's too) over the floor's; RSS +MB: current RSS at "
                 f"the end minus after the first epoch + {WARM} steps (growth); peak +MB: peak "
                 "RSS growth during the run")
    return "\n".join(lines)
