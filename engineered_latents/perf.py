"""The performance command: where the time of a cut goes, measured as ratios in one run.

On the ViT-B/32 architecture with random weights (speed does not depend on the values) and
synthetic Winoground-shaped examples (two images, two captions each), it times:
- the floor: image preprocessing + tokenization + a bare batched forward pass;
- the project's cuts pipeline, cold cache, scalar and joint, and its ratio to the floor;
- the original research code's approach (one pair at a time, zero padding, scalar NCut) and the
  project's speed-up over it;
- a cache hit, NCut alone per mode, benchmark extraction throughput, peak memory;
- against the hardware and across dtypes (`perf_hw`): the matmul peak per dtype, the encoders'
  GFLOP/s and fraction of peak, and float32 against bfloat16 (CPU) or float16 and bfloat16
  (CUDA) on the same slice: time per stage, speed-ups, word-score and eigenvalue agreement;
- a 3-level recursive cut (`perf_recursive`) per mode, and its ratio to the slice's NCut;
- the RGB view's colouring (`perf_colouring`): rgb, t-SNE and UMAP on the 64-pair slice.
Medians over repeats; ratios are taken pair by pair within a repeat.
"""

from __future__ import annotations

import json
import platform
import random
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch

from . import perf_colouring, perf_hw, perf_recursive
from .cache import Cache
from .config import CutSpec
from .cuts import run_ncut
from .data import Example
from .data.scenes import PALETTE, RELATIONS, SHAPES, caption_for, relation_scene
from .features import EncodeSettings, pooled_image_embeddings, pooled_text_embeddings
from .models import demo_resolved, load_model
from .pipeline import cut_examples

BATCH = 32


def synthetic_examples(n_pairs: int, seed: int = 0) -> list[Example]:
    """Winoground-shaped examples: n_pairs // 2 examples of two scenes and two captions."""
    rng = random.Random(seed)
    examples = []
    for index in range(max(1, n_pairs // 2)):
        a = (rng.choice(list(PALETTE)), rng.choice(SHAPES))
        b = (rng.choice([c for c in PALETTE if c != a[0]]), rng.choice(SHAPES))
        relation = rng.choice(RELATIONS)
        image_0, objs = relation_scene(a, b, relation, rng=rng)
        image_1, _ = relation_scene(b, a, relation, rng=rng)
        captions = (caption_for(objs[0], relation, objs[1]), caption_for(objs[1], relation,
                                                                          objs[0]))
        examples.append(Example(index, (image_0, image_1), captions, ((0, 0), (1, 1))))
    return examples


def word_level_matrix(result, pairs) -> np.ndarray:
    """[words of the slice, k] word-level scores (each word's BPE pieces averaged), pair by
    pair, from a `CutResult` and its `PairInfo`s (what `CutsRun.word_level_scores` gives)."""
    rows = []
    for p, info in enumerate(pairs):
        scores = result.word_scores(p)  # [T, k]
        rows += [scores[pos].mean(0) for pos in info.word_positions]
    return np.stack(rows)


def eigvec_agreement(a: np.ndarray, b: np.ndarray, eigs=range(1, 6)) -> list[float]:
    """Pearson correlation, up to sign, of eigenvectors `eigs` between two [n, k] score matrices
    of the same nodes (eigenvectors are defined up to sign)."""
    if a.shape != b.shape:
        raise ValueError(f"score matrices differ in shape: {a.shape} vs {b.shape}")
    return [round(abs(float(np.corrcoef(a[:, e], b[:, e])[0, 1])), 5)
            for e in eigs if e < a.shape[1]]


def eigval_agreement(a: np.ndarray, b: np.ndarray, eigs=range(1, 6)) -> dict:
    """Eigenvalue differences of two cuts, and the eigenvectors whose eigenvalue nearly equals a
    neighbour's (gap under 1e-3 or under twice the largest difference): there the two cuts may
    mix or swap them, so a low correlation says little."""
    eigs = [e for e in eigs if e < min(len(a), len(b))]
    diffs = [round(float(b[e] - a[e]), 5) for e in eigs]
    tol = max(1e-3, 2 * max((abs(d) for d in diffs), default=0.0))
    near = [e for e in eigs if any(abs(a[e] - a[f]) < tol for f in (e - 1, e + 1)
                                   if 1 <= f < len(a))]
    return {"eigval_a": [round(float(a[e]), 5) for e in eigs],
            "eigval_diff": diffs, "near_equal": near}


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.inference_mode()
def floor(lm, examples: list[Example]) -> None:
    """Preprocessing, tokenization and a bare batched forward pass of every image and caption."""
    images = [im for ex in examples for im in ex.images]
    captions = [c for ex in examples for c in ex.captions]
    for start in range(0, len(images), BATCH):
        pixels = lm.processor(images=images[start:start + BATCH], return_tensors="pt")
        lm.model.vision_model(pixel_values=pixels["pixel_values"].to(lm.device, lm.dtype))
    for start in range(0, len(captions), BATCH * 2):
        enc = lm.tokenizer(captions[start:start + BATCH * 2], padding=True, return_tensors="pt")
        lm.model.text_model(**{k: v.to(lm.device) for k, v in enc.items()})


@torch.inference_mode()
def original_approach(lm, examples: list[Example], n_eig: int = 20, device: str = "cpu"):
    """The original research code: one pair at a time through the model, raw patch states
    projected without the layer norm, dot products, zero padding to the longest caption, and
    every scalar of the stack a node (padding included)."""
    mats = []
    for ex in examples:
        for i, c in ex.pairs:
            pixels = lm.processor(images=[ex.images[i]], return_tensors="pt")["pixel_values"]
            patches = lm.model.visual_projection(
                lm.model.vision_model(pixel_values=pixels.to(lm.device, lm.dtype))
                .last_hidden_state)[0]
            enc = lm.tokenizer([ex.captions[c]], return_tensors="pt")
            tokens = lm.model.text_projection(lm.model.text_model(
                **{k: v.to(lm.device) for k, v in enc.items()}).last_hidden_state)[0]
            mats.append((patches @ tokens.T).float().cpu())
    longest = max(m.shape[1] for m in mats)
    stack = torch.stack([torch.nn.functional.pad(m, (0, longest - m.shape[1])) for m in mats])
    return run_ncut(stack.reshape(-1, 1).numpy(), n_eig, seed=0, device=device)


def _pipeline(lm, examples, mode: str, device: str) -> Callable[[], object]:
    def run():
        with tempfile.TemporaryDirectory() as tmp:
            cache = Cache(tmp)
            cut_examples(examples, lm, CutSpec(mode=mode), EncodeSettings(), cache,
                         ncut_device=device)
            cache.close()
    return run


def _ncut_alone(lm, examples, mode: str, device: str) -> dict:
    """Nodes and seconds of the NCut stage alone (timed inside the pipeline)."""
    timings: dict = {}
    result, _, _ = cut_examples(examples, lm, CutSpec(mode=mode), EncodeSettings(), None,
                                timings=timings, ncut_device=device)
    n = int(result.eigvec.shape[0])
    return {"nodes": n, "seconds": timings["ncut"], "nodes_per_s": round(n / timings["ncut"])}


def _cache_hit_seconds(n_pairs: int, device: str | None) -> float:
    """`compute_cuts` answered from the cache (model and data resolution, key, lookup), on the
    demo slice with as many pairs as fit (it has 24 examples)."""
    from .config import ModelSpec, SliceSpec
    from .pipeline import compute_cuts

    spec = (SliceSpec("demo", 0, min(24, max(1, n_pairs // 2))), CutSpec(),
            ModelSpec(device=device))
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(tmp)
        compute_cuts(*spec, cache=cache)
        seconds = statistics.median(
            _seconds(lambda: compute_cuts(*spec, cache=cache)) for _ in range(3))
        cache.close()
    return seconds


def _extraction(lm, examples) -> dict:
    images = [im for ex in examples for im in ex.images]
    captions = [c for ex in examples for c in ex.captions]
    img_s = _seconds(lambda: [pooled_image_embeddings(lm, images[i:i + BATCH])
                              for i in range(0, len(images), BATCH)])
    txt_s = _seconds(lambda: [pooled_text_embeddings(lm, captions[i:i + BATCH * 2])
                              for i in range(0, len(captions), BATCH * 2)])
    return {"images_per_s": round(len(images) / img_s, 1),
            "captions_per_s": round(len(captions) / txt_s, 1)}


def measure(pairs: list[int], device: str | None = None, repeats: int = 3,
            log: Callable[[str], None] = print, dtype: str | None = None,
            dtypes: bool = True) -> dict:
    """Every measurement for each slice size; medians over `repeats`. The main table runs the
    encoders in `dtype` (None: what `--dtype auto` picks here); `dtypes` adds the comparison of
    float32 with the reduced dtypes."""
    lm = load_model(demo_resolved(), device, dtype)
    ncut_device = "cuda" if lm.device.type == "cuda" else "cpu"
    report = {"machine": machine(lm), "repeats": repeats, "sizes": []}
    log("measuring the matmul peak ...")
    report["peak_gflops"] = perf_hw.peaks(
        lm.device, dict.fromkeys([torch.float32, lm.dtype, *perf_hw.reduced_dtypes(lm.device)]),
        repeats=min(5, 2 + repeats))  # best of 5 (of 3 for a one-repeat quick look)
    floor(lm, synthetic_examples(4))  # warm-up: first calls allocate
    for n in pairs:
        log(f"measuring {n} pairs ...")
        examples = synthetic_examples(n)
        size = _measure_size(lm, examples, repeats, ncut_device)
        if dtypes:
            log(f"comparing dtypes at {n} pairs ...")
            size["dtypes"] = perf_hw.dtype_comparison(examples, device, repeats, floor,
                                                      loaded=lm)
        report["sizes"].append(size)
    n = perf_recursive.pairs_to_measure(pairs)
    log(f"recursive cut (3 levels, k=4) at {n} pairs ...")
    report["recursive"] = perf_recursive.measure(lm, synthetic_examples(n), ncut_device)
    n = perf_colouring.pairs_to_measure(pairs)
    log(f"colouring (rgb, t-SNE, UMAP) at {n} pairs ...")
    report["colouring"] = perf_colouring.measure(lm, synthetic_examples(n), ncut_device)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if torch.cuda.is_available():
        report["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return report


def _measure_size(lm, examples: list[Example], repeats: int, device: str) -> dict:
    rows = {k: [] for k in ("floor", "scalar", "joint", "original")}
    for _ in range(repeats):
        rows["floor"].append(_seconds(lambda: floor(lm, examples)))
        rows["scalar"].append(_seconds(_pipeline(lm, examples, "scalar", device)))
        rows["joint"].append(_seconds(_pipeline(lm, examples, "joint", device)))
        rows["original"].append(_seconds(lambda: original_approach(lm, examples, device=device)))
    return _size_report(lm, examples, rows, device)


def _size_report(lm, examples, rows: dict, device: str) -> dict:
    def med(values):
        return round(statistics.median(values), 4)

    def ratio(a, b):
        return round(statistics.median(x / y for x, y in zip(rows[a], rows[b])), 3)

    return {
        "pairs": len(examples) * 2,
        "seconds": {k: med(v) for k, v in rows.items()},
        "scalar_over_floor": ratio("scalar", "floor"),
        "joint_over_floor": ratio("joint", "floor"),
        "speedup_over_original": ratio("original", "scalar"),
        "cache_hit_s": round(_cache_hit_seconds(len(examples) * 2, str(lm.device)), 4),
        "ncut": {m: _ncut_alone(lm, examples, m, device) for m in ("scalar", "joint")},
        "extraction": _extraction(lm, examples),
        "floor_items_per_s": round(len(examples) * 4 / med(rows["floor"]), 1),
        "compare": _compare_figure(lm, examples, device, med(rows["scalar"])),
    }


def _compare_figure(lm, examples, device: str, scalar_s: float) -> dict:
    """Comparing two models (here the last layer and layer 6 of the same weights), cold cache:
    both encodings plus one scalar NCut over both node sets, and its ratio to two single cuts."""
    from .compare import cut_both
    from .features import encode_images, encode_texts
    from .pipeline import _unique_items

    def run():
        images, captions, pair_items, _ = _unique_items(examples)
        encoded = [(encode_images(lm, images, s)[0], encode_texts(lm, captions, s)[0])
                   for s in (EncodeSettings(), EncodeSettings(layer=6))]
        cut_both(CutSpec(), encoded, pair_items, timings, device)

    timings: dict = {}
    seconds = _seconds(run)
    return {"seconds": round(seconds, 4), "ncut_s": timings.get("ncut"),
            "over_two_cuts": round(seconds / (2 * scalar_s), 3)}


def machine(lm) -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "cores": torch.get_num_threads(),
            "device": str(lm.device), "dtype": str(lm.dtype).removeprefix("torch."),
            "torch": torch.__version__, "python": platform.python_version()}
    if lm.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(lm.device)
    return info


def table(report: dict) -> str:
    m = report["machine"]
    lines = [f"machine: {m.get('gpu') or m['cpu']} ({m['cores']} threads), {m['device']}, "
             f"{m['dtype']}; " + (f"medians of {report['repeats']} repeats" if report["repeats"] > 1
                                    else "one repeat (no median)"),
             "weights: random (the B/32 architecture; speed does not depend on the values)",
             f"{'pairs':>6}{'floor s':>9}{'scalar s':>10}{'joint s':>9}{'orig s':>9}"
             f"{'scal/floor':>11}{'joint/floor':>12}{'speed-up':>10}{'hit ms':>8}"]
    for s in report["sizes"]:
        sec = s["seconds"]
        lines.append(f"{s['pairs']:>6}{sec['floor']:>9.2f}{sec['scalar']:>10.2f}"
                     f"{sec['joint']:>9.2f}{sec['original']:>9.2f}{s['scalar_over_floor']:>11.2f}"
                     f"{s['joint_over_floor']:>12.2f}{s['speedup_over_original']:>10.2f}"
                     f"{s['cache_hit_s'] * 1000:>8.1f}")
    for s in report["sizes"]:
        if "compare" in s:
            c = s["compare"]
            lines.append(f"{s['pairs']} pairs: compare two models (scalar, one NCut over both) "
                         f"{c['seconds']:.2f}s, NCut {c['ncut_s']:.2f}s, "
                         f"{c['over_two_cuts']:.2f}x two single cuts")
    for s in report["sizes"]:
        nc = s["ncut"]
        ex = s["extraction"]
        lines.append(f"{s['pairs']} pairs: NCut scalar {nc['scalar']['nodes']} nodes "
                     f"{nc['scalar']['seconds']:.2f}s ({nc['scalar']['nodes_per_s']}/s), joint "
                     f"{nc['joint']['nodes']} nodes {nc['joint']['seconds']:.2f}s; extraction "
                     f"{ex['images_per_s']} images/s, {ex['captions_per_s']} captions/s "
                     f"(floor {s['floor_items_per_s']} items/s)")
    if "peak_gflops" in report:
        lines.append(perf_hw.peak_line(report["peak_gflops"]))
    for s in report["sizes"]:
        if "dtypes" in s:
            lines += perf_hw.dtype_table(s["dtypes"])
    if "arch" in report:  # perf --arch: another architecture next to B/32
        from .perf_siglip import table_lines

        lines += table_lines(report["arch"])
    if "recursive" in report:
        lines += perf_recursive.table_lines(report["recursive"])
    if "colouring" in report:
        lines += perf_colouring.table_lines(report["colouring"])
    lines.append(f"peak RSS {report['peak_rss_mb']} MB"
                 + (f", GPU {report['peak_gpu_mb']} MB" if "peak_gpu_mb" in report else "")
                 + f"; imports took {report.get('import_s', float('nan')):.2f}s")
    return "\n".join(lines)


def json_text(report: dict) -> str:
    """The report as JSON (numpy values as lists)."""
    return json.dumps(report, indent=1, default=lambda x: np.asarray(x).tolist())
