"""The perf figure of the RGB view's colouring: rgb, t-SNE and UMAP on one scalar slice.

On the slice's scalar cut (B/32 architecture, random weights, synthetic pairs) it times
`colouring.slice_colours` per method without a cache: the chosen eigenvectors (min-max), and
ncut-pytorch's t-SNE / UMAP over the slice's distinct patches and words (fitted on at most 1,000
anchors, propagated to the rest). UMAP's numba compilation is timed on its own first (the app
does it in a background thread at start-up), so the UMAP figure is a warm call's.
"""

from __future__ import annotations

import time

from . import colouring
from .config import CutSpec

PAIRS = 64  # the slice the figure is measured on (fewer when perf runs smaller slices only)


def pairs_to_measure(pairs: list[int]) -> int:
    return PAIRS if max(pairs) >= PAIRS else max(pairs)


def measure(lm, examples, device: str = "cpu", methods=None) -> dict:
    """{pairs, nodes, points, anchors, ncut_s, seconds {method}, umap_compile_s,
    over_ncut {method}} for the examples' scalar cut. `methods` (default): rgb and tsne, and
    umap from `PAIRS` pairs on (its compile, ~30 s or more, would dominate a small perf run)."""
    from .pipeline import CutsRun, cut_examples

    if methods is None:
        methods = ("rgb", "tsne", "umap") if 2 * len(examples) >= PAIRS else ("rgb", "tsne")

    timings: dict = {}
    result, pairs, _ = cut_examples(examples, lm, CutSpec(), timings=timings,
                                    ncut_device=device)
    run = CutsRun(None, None, CutSpec(), result, pairs, {})
    report = {"pairs": len(pairs), "nodes": int(result.eigvec.shape[0]),
              "ncut_s": timings.get("ncut"), "seconds": {}}
    if "umap" in methods:
        started = time.perf_counter()
        already = colouring.umap_ready()
        colouring.warm_umap(background=False)
        report["umap_compile_s"] = None if already else round(time.perf_counter() - started, 3)
    for method in methods:
        run.colours = None
        started = time.perf_counter()
        colours = colouring.slice_colours(run, CutSpec(colour=method))
        report["seconds"][method] = round(time.perf_counter() - started, 3)
        if method != "rgb":
            report["points"], report["anchors"] = colours.points, colours.anchors
    if report["ncut_s"]:
        report["over_ncut"] = {m: round(s / report["ncut_s"], 2)
                               for m, s in report["seconds"].items()}
    return report


def table_lines(report: dict) -> list[str]:
    sec = report["seconds"]
    parts = [f"{m} {s:.2f}s" for m, s in sec.items()]
    line = (f"{report['pairs']} pairs: colouring ({report['nodes']} scalar nodes, "
            f"{report.get('points', '?')} distinct patches and words, "
            f"{report.get('anchors', '?')} anchors) " + ", ".join(parts))
    if report.get("ncut_s"):
        line += f"; NCut {report['ncut_s']:.2f}s"
    if report.get("umap_compile_s") is not None:
        line += f"; UMAP's numba compile {report['umap_compile_s']:.1f}s (once per process)"
    return [line]
