"""Performance against the hardware, and float32 against reduced-precision encoders.

- `matmul_peak`: the machine's GEMM rate per dtype (a 2048^2 matmul), measured in the run;
- `encoder_rates`: encoder FLOPs by torch's FLOP counter, achieved GFLOP/s and fraction of peak;
- `dtype_comparison`: the same slice cut with float32 and with each reduced dtype: time per
  stage, the speed-ups (end to end, the floor, each tower alone), and the agreement of the
  word-level scores (Pearson up to sign, eigenvectors 1-5) and eigenvalues.
"""

from __future__ import annotations

import statistics
import tempfile
import time

import torch

from .cache import Cache
from .config import CutSpec
from .features import EncodeSettings, _pixels, _tokens
from .models import demo_resolved, dtype_name, load_model
from .pipeline import _unique_items, cut_examples

MATMUL_N = 2048


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    """Fastest of `repeats` calls after one warm-up (the peak a loaded machine still allows)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(dtype: torch.dtype, device: torch.device, n: int = MATMUL_N,
                repeats: int = 5) -> float:
    """GFLOP/s of an n x n matmul in `dtype` on `device` (2 n^3 FLOPs)."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    seconds = _best_seconds(lambda: a @ b, device, repeats)
    return round(2 * n**3 / seconds / 1e9, 1)


def peaks(device: torch.device, dtypes, repeats: int = 5) -> dict[str, float]:
    return {dtype_name(dt): matmul_peak(dt, device, repeats=repeats) for dt in dtypes}


@torch.inference_mode()
def encoder_flops(lm, images, captions) -> dict:
    """FLOPs per image and per caption of the towers (torch's FLOP counter, one batch each)."""
    from torch.utils.flop_counter import FlopCounterMode

    pixels = _pixels(lm, images).to(lm.device, lm.dtype)
    enc, _ = _tokens(lm, captions)
    with FlopCounterMode(display=False) as counter:
        lm.model.vision_model(pixel_values=pixels)
    vision = counter.get_total_flops() / len(images)
    with FlopCounterMode(display=False) as counter:
        lm.model.text_model(input_ids=enc["input_ids"].to(lm.device),
                            attention_mask=enc["attention_mask"].to(lm.device))
    text = counter.get_total_flops() / len(captions)
    return {"vision_flop_per_image": int(vision), "text_flop_per_caption": int(text),
            "vision_gflop_per_image": round(vision / 1e9, 3),
            "text_gflop_per_caption": round(text / 1e9, 4),
            "text_tokens_per_caption": int(enc["input_ids"].shape[1])}


@torch.inference_mode()
def tower_seconds(lm, images, captions, repeats: int = 2) -> dict:
    """Seconds of each tower alone on preprocessed inputs (one batch), fastest of `repeats`."""
    pixels = _pixels(lm, images).to(lm.device, lm.dtype)
    enc, _ = _tokens(lm, captions)
    ids, mask = enc["input_ids"].to(lm.device), enc["attention_mask"].to(lm.device)
    return {"vision": _best_seconds(lambda: lm.model.vision_model(pixel_values=pixels),
                                    lm.device, repeats),
            "text": _best_seconds(lambda: lm.model.text_model(input_ids=ids, attention_mask=mask),
                                  lm.device, repeats)}


def encoder_rates(flops: dict, towers: dict, n_images: int, n_captions: int,
                  peak_gflops: float) -> dict:
    """Achieved throughput and GFLOP/s of each tower, and its fraction of the matmul peak."""
    vision = flops["vision_gflop_per_image"] * n_images / towers["vision"]
    text = flops["text_gflop_per_caption"] * n_captions / towers["text"]
    return {"images_per_s": round(n_images / towers["vision"], 1),
            "captions_per_s": round(n_captions / towers["text"], 1),
            "vision_gflops": round(vision, 1), "text_gflops": round(text, 1),
            "vision_of_peak": round(vision / peak_gflops, 3),
            "text_of_peak": round(text / peak_gflops, 3)}


def _cold_cut(lm, examples, device: str) -> tuple[float, dict, object]:
    """(seconds, stage timings, (result, pairs)) of a scalar cut with a fresh cache."""
    timings: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(tmp)
        start = time.perf_counter()
        result, pairs, _ = cut_examples(examples, lm, CutSpec(), EncodeSettings(), cache,
                                        timings=timings, ncut_device=device)
        if lm.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        cache.close()
    return seconds, timings, (result, pairs)


def reduced_dtypes(device: torch.device) -> list[torch.dtype]:
    """The encoder dtypes compared with float32: bfloat16 on the CPU, float16 and bfloat16 on
    CUDA."""
    return [torch.float16, torch.bfloat16] if device.type == "cuda" else [torch.bfloat16]


def dtype_comparison(examples, device: str | None, repeats: int, floor_fn,
                     loaded=None) -> dict:
    """float32 against each reduced dtype on the same slice, models already loaded; `loaded`
    (the run's model, if any) is used for its own dtype instead of loading it again."""
    from .perf import eigval_agreement, eigvec_agreement, word_level_matrix

    def model(name: str):
        if loaded is not None and dtype_name(loaded.dtype) == name:
            return loaded
        return load_model(demo_resolved(), device, name)

    lms = {"float32": model("float32")}
    for dt in reduced_dtypes(lms["float32"].device):
        lms[dtype_name(dt)] = model(dtype_name(dt))
    ncut_device = "cuda" if lms["float32"].device.type == "cuda" else "cpu"
    images, captions, _, _ = _unique_items(examples)
    batch_images, batch_captions = images[:32], captions[:64]
    flops = encoder_flops(lms["float32"], batch_images[:8], batch_captions)
    rows = {name: {"cut": [], "floor": [], "stages": []} for name in lms}
    cuts = {}
    for _ in range(repeats):  # interleaved, so load changes hit every dtype alike
        for name, lm in lms.items():
            seconds, stages, cuts[name] = _cold_cut(lm, examples, ncut_device)
            rows[name]["cut"].append(seconds)
            rows[name]["stages"].append(stages)
            start = time.perf_counter()
            floor_fn(lm, examples)
            _sync(lm.device)
            rows[name]["floor"].append(time.perf_counter() - start)
    towers, local_peak = _towers_beside_peaks(lms, batch_images, batch_captions, repeats)
    reference = word_level_matrix(*cuts["float32"])
    out = {"flops": flops, "pairs": len(cuts["float32"][1]), "dtypes": {}}
    for name in lms:
        stages = {k: round(statistics.median(s[k] for s in rows[name]["stages"]), 4)
                  for k in rows[name]["stages"][0]}
        entry = {"cut_s": round(statistics.median(rows[name]["cut"]), 4),
                 "floor_s": round(statistics.median(rows[name]["floor"]), 4), "stages": stages,
                 "towers_s": {k: round(v, 4) for k, v in towers[name].items()},
                 "peak_gflops": local_peak[name],
                 "rates": encoder_rates(flops, towers[name], len(batch_images),
                                        len(batch_captions), local_peak[name])}
        if name != "float32":
            entry["speedup"] = _speedups(rows, towers, name)
            entry["word_score_corr"] = eigvec_agreement(reference,
                                                        word_level_matrix(*cuts[name]))
            entry["eigval"] = eigval_agreement(cuts["float32"][0].eigval, cuts[name][0].eigval)
        out["dtypes"][name] = entry
    return out


def _towers_beside_peaks(lms: dict, images, captions, repeats: int) -> tuple[dict, dict]:
    """Each tower's seconds and the matmul peak of its dtype, measured next to each other and
    interleaved across dtypes (fastest of `repeats`), so that a shared machine's changing load
    hits the rate and the peak it is divided by alike."""
    towers = {name: [] for name in lms}
    peaks = {name: [] for name in lms}
    for _ in range(max(2, repeats)):
        for name, lm in lms.items():
            peaks[name].append(matmul_peak(lm.dtype, lm.device, repeats=min(3, 1 + repeats)))
            towers[name].append(tower_seconds(lm, images, captions, repeats=1))
    best = {name: {k: min(t[k] for t in rows) for k in rows[0]} for name, rows in towers.items()}
    return best, {name: max(values) for name, values in peaks.items()}


def _speedups(rows: dict, towers: dict, name: str) -> dict:
    """float32 time over `name`'s: end to end (pairwise per repeat), floor, towers alone."""
    def ratio(key):
        return round(statistics.median(a / b for a, b in zip(rows["float32"][key],
                                                             rows[name][key])), 3)

    return {"cut": ratio("cut"), "floor": ratio("floor"),
            "vision_tower": round(towers["float32"]["vision"] / towers[name]["vision"], 3),
            "text_tower": round(towers["float32"]["text"] / towers[name]["text"], 3)}


def peak_line(peak: dict[str, float]) -> str:
    return "matmul peak (2048^2): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peak.items())


def dtype_table(comparison: dict) -> list[str]:
    """Lines of the perf table for one size's dtype comparison."""
    f = comparison["flops"]
    lines = [f"encoder FLOPs: vision {f['vision_gflop_per_image']} GFLOP/image, text "
             f"{f['text_gflop_per_caption']} GFLOP/caption ({f['text_tokens_per_caption']} "
             "tokens)"]
    for name, d in comparison["dtypes"].items():
        r, st = d["rates"], d["stages"]
        lines.append(
            f"{comparison['pairs']} pairs {name}: scalar cut {d['cut_s']:.2f}s (images "
            f"{st['encode_images']:.2f}, texts {st['encode_texts']:.2f}, affinities "
            f"{st['affinities']:.2f}, NCut {st['ncut']:.2f}), floor {d['floor_s']:.2f}s; vision "
            f"{r['images_per_s']} images/s = {r['vision_gflops']:.0f} GFLOP/s "
            f"({r['vision_of_peak']:.0%} of a {d['peak_gflops']:.0f} GFLOP/s peak measured "
            f"beside it), text {r['text_gflops']:.0f} GFLOP/s ({r['text_of_peak']:.0%})")
        if "speedup" in d:
            s, ev = d["speedup"], d["eigval"]
            near = (f"; near-equal eigenvalues at {ev['near_equal']} (those eigenvectors may "
                    "mix)") if ev["near_equal"] else ""
            lines.append(
                f"  {name} vs float32: cut {s['cut']:.2f}x, floor {s['floor']:.2f}x, vision "
                f"tower {s['vision_tower']:.2f}x, text tower {s['text_tower']:.2f}x; word-score "
                f"correlation eig 1-5 {d['word_score_corr']}; eigenvalue diffs "
                f"{ev['eigval_diff']}{near}")
    return lines
