"""`perf`'s figure for the recursive cut: what a 3-level tree (`recursive.recursive_cut`, k = 4
as `cuts --recursive 3 --clusters 4`) costs on top of the slice's cut, per graph mode, on the
synthetic Winoground-shaped slice the rest of `perf` uses (random B/32 weights)."""

from __future__ import annotations

import time

from .config import CutSpec, SliceSpec
from .features import EncodeSettings
from .models import demo_resolved
from .pipeline import CutsRun, cut_examples
from .recursive import node_features, recursive_cut

LEVELS, K = 3, 4
MAX_PAIRS = 64  # measured at the largest perf size up to this (scalar: ~23k nodes at 64 pairs)


def measure_run(run: CutsRun, levels: int = LEVELS, device: str = "cpu") -> dict:
    """Seconds of one tree of a finished cut (no cache), the share of it spent recomputing the
    node features, and how many sub-cuts it ran."""
    start = time.perf_counter()
    node_features(run)
    features_s = time.perf_counter() - start
    start = time.perf_counter()
    tree = recursive_cut(run, levels, None, device=device)
    seconds = time.perf_counter() - start
    return {"nodes": int(len(run.result.labels)), "tree_nodes": len(tree.nodes),
            "sub_cuts": sum(n.eigenvalues is not None for n in tree.nodes),
            "stopped": len(tree.stops), "seconds": round(seconds, 4),
            "features_s": round(features_s, 4)}


def measure(lm, examples, device: str = "cpu", levels: int = LEVELS, k: int = K) -> dict:
    """Per mode: the slice's NCut (level 1) and the tree below it, and their ratio."""
    modes = {}
    for mode in ("scalar", "joint"):
        spec = CutSpec(mode=mode, clusters=k)
        timings: dict = {}
        result, pairs, _ = cut_examples(examples, lm, spec, EncodeSettings(), None,
                                        timings=timings, ncut_device=device)
        run = CutsRun(demo_resolved(), SliceSpec(), spec, result, pairs, {"device": device})
        row = measure_run(run, levels, device)
        row["level1_ncut_s"] = timings["ncut"]
        row["over_level1_ncut"] = round(row["seconds"] / max(timings["ncut"], 1e-9), 2)
        modes[mode] = row
    return {"pairs": len(pairs), "levels": levels, "k": k, "modes": modes}


def pairs_to_measure(sizes: list[int]) -> int:
    """The perf size the tree is measured at: the largest up to MAX_PAIRS, else the smallest."""
    small = [n for n in sizes if n <= MAX_PAIRS]
    return max(small) if small else min(sizes)


def table_lines(report: dict) -> list[str]:
    lines = []
    for mode, row in report["modes"].items():
        lines.append(f"{report['pairs']} pairs: recursive cut {report['levels']} levels, "
                     f"k={report['k']}, {mode}: {row['seconds']:.2f}s for {row['sub_cuts']} "
                     f"sub-cuts ({row['tree_nodes']} tree nodes, {row['stopped']} stopped) over "
                     f"{row['nodes']} nodes, {row['over_level1_ncut']:.1f}x the slice's NCut "
                     f"({row['level1_ncut_s']:.2f}s); features {row['features_s']:.2f}s")
    return lines
