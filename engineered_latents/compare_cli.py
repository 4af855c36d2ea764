"""`python -m engineered_latents compare`: two models (or layers) on one slice, in one basis.

Writes `compare.json` (per model the pairs with words and word-level scores in the shared basis,
the difference b - a, the eigenvector match table in joint mode, the analyses) and
`compare.npz`, and prints the words that changed most per eigenvector.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from . import argtypes
from .cache import Cache
from .cli_options import (
    add_cut_options,
    add_device_options,
    add_slice_options,
    cut_spec,
    slice_spec,
)
from .compare import CompareRun, compare_cuts
from .config import CutSpec, ModelSpec, Settings, SliceSpec
from .controls import CONTROLS, add_to_parser
from .models import DEFAULT_MODEL
from .output import _rows


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="two models (or two layers) on the same slice in one "
                       "eigenvector basis; write compare.json and compare.npz",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None, help=f"model a: Hub id or local directory "
                   f"(default {DEFAULT_MODEL})")
    p.add_argument("--model-b", default=None, help="model b (default: the same as --model, so "
                   "that --layer-b alone compares two layers)")
    add_to_parser(p, "layer")
    p.add_argument("--layer-b", type=CONTROLS["layer"].arg_type(), help="model b's layer "
                   "(default: --layer)")
    p.add_argument("--no-patch-norm", action="store_true", help="model a: skip the vision "
                   "post_layernorm before projecting patches")
    p.add_argument("--no-patch-norm-b", action="store_true", help="model b: the same")
    add_slice_options(p)
    add_cut_options(p)
    add_device_options(p)
    p.add_argument("--top", type=argtypes.int_range(1, 100), default=5,
                   help="words printed per eigenvector")
    p.add_argument("--out", type=argtypes.check_out_dir,
                   help="output directory (default out/compare-<dataset>-<start>-<count>)")


def specs(args) -> tuple[SliceSpec, CutSpec, tuple[ModelSpec, ModelSpec]]:
    a = ModelSpec(args.model, args.device, args.dtype, args.layer, not args.no_patch_norm)
    b = ModelSpec(args.model_b if args.model_b is not None else args.model, args.device,
                  args.dtype, args.layer_b if args.layer_b is not None else args.layer,
                  not args.no_patch_norm_b)
    return slice_spec(args), cut_spec(args), (a, b)


def cmd_compare(args) -> int:
    settings = Settings.from_env()
    cache = Cache(args.cache_dir or settings.cache_dir)
    slice_spec, cut_spec, model_specs = specs(args)
    run = compare_cuts(slice_spec, cut_spec, model_specs, cache,
                       lambda s, f: print(f"[{f:4.0%}] {s}", file=sys.stderr, flush=True),
                       settings)
    out = args.out or f"out/compare-{args.dataset}-{args.start}-{args.count}"
    save(run, out)
    print(report(run, args.top))
    print(f"wrote       {out}/compare.json, {out}/compare.npz")
    return 0


# ----------------------------------------------------------------------------- output


def _model_json(run: CompareRun, m: int) -> dict:
    r = run.runs[m]
    return {
        "label": "ab"[m], "model": r.model.name, "weights": r.model.weights_id,
        "demo_weights": r.demo_weights, "spec": asdict(run.specs[m]),
        "patches": run.grids[m], "n_nodes": int(r.result.eigvec.shape[0]),
        "eigenvalues": [round(float(v), 6) for v in r.result.eigval],
        "clip_scores": [round(float(v), 6) for v in run.clip_scores[m]],
        "pairs": [{"example": p.example, "image": p.image, "caption_index": p.caption_index,
                   "caption": p.caption, "words": p.words,
                   "word_level_scores": _rows(r.word_level_scores(i))}
                  for i, p in enumerate(r.pairs)],
    }


def to_json(run: CompareRun) -> dict:
    """The compare.json contract (see the module doc)."""
    a = run.runs[0]
    return {
        "mode": run.mode, "shared_basis": run.mode == "scalar",
        "models": [_model_json(run, m) for m in range(2)],
        "difference": [{"example": p.example, "caption": p.caption, "words": p.words,
                        "b_minus_a": None if (d := run.word_difference(i)) is None
                        else _rows(d)} for i, p in enumerate(a.pairs)],
        "matches": run.matches, "analyses": run.analyses,
        "settings": {"slice": asdict(run.slice), "cut": asdict(run.cut)},
        "notes": run.notes, "warnings": [w for r in run.runs for w in r.warnings],
        "timings": run.timings, "cache": run.cache,
        "trivial_eigenvector": "eigenvector 0 (eigenvalue ~1) is constant: analyses start at 1",
    }


def _padded_words(run: CompareRun, m: int | None) -> np.ndarray:
    """[pairs, max words, k] word-level scores of model m (None: the difference), NaN padded."""
    k = min(r.result.n_eig for r in run.runs)
    rows = [run.word_difference(p) if m is None else run.runs[m].word_level_scores(p)[:, :k]
            for p in range(len(run.runs[0].pairs))]
    width = max(len(p.words) for r in run.runs for p in r.pairs)
    out = np.full((len(rows), width, k), np.nan, np.float32)
    for p, r in enumerate(rows):
        if r is not None:
            out[p, :len(r)] = r
    return out


def save(run: CompareRun, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(to_json(run), indent=1, ensure_ascii=False,
                                                 default=_plain))
    arrays = {"word_difference": _padded_words(run, None)}  # [pairs, words, k] b - a
    for m, label in enumerate("ab"):
        result = run.runs[m].result
        arrays.update({
            f"eigenvectors_{label}": result.eigvec,  # [nodes, k] (b: aligned in joint mode)
            f"eigenvalues_{label}": result.eigval,  # [k]
            f"node_index_{label}": result.index,  # [nodes, 3]
            f"cluster_labels_{label}": result.labels,  # [nodes]
            f"word_scores_{label}": _padded_words(run, m),  # [pairs, words, k]
            f"patch_maps_{label}": np.stack([result.patch_map(p) for p in
                                             range(len(run.runs[m].pairs))]),  # [pairs, P, k]
            f"clip_scores_{label}": run.clip_scores[m],  # [pairs]
        })
    agreement = run.analyses.get("agreement", {})
    if agreement.get("words") is not None:
        arrays["agreement_words"] = np.array(agreement["words"], np.float32)  # [k-1, k-1]
    if agreement.get("nodes") is not None:
        arrays["agreement_nodes"] = np.array(agreement["nodes"], np.float32)
    np.savez_compressed(out / "compare.npz", **arrays)
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def report(run: CompareRun, top: int = 5) -> str:
    """The printed summary: models, notes, the match table (joint), and per eigenvector the
    words whose score changed most (b - a) and the CLIP-score correlations."""
    a, b = run.runs
    lines = [f"model a     {_describe(run, 0)}", f"model b     {_describe(run, 1)}",
             f"slice       {run.slice.dataset}: {len(a.pairs)} pairs, mode {run.mode} ("
             + ("one graph, shared basis" if run.mode == "scalar" else
                "one cut per model, b matched to a") + f"), nodes {a.result.eigvec.shape[0]}"
             f" + {b.result.eigvec.shape[0]}"]
    lines += [f"note        {n}" for n in run.notes]
    if run.matches:
        lines.append("matches     a <- b (|r| over shared words; * weak: no real counterpart)")
        lines += [f"  eig {m['a']:>2} <- {'-' if m['sign'] < 0 else '+'}b{m['b']:<3} "
                  f"r {m['correlation']:.2f}{' *' if m['weak'] else ''}"
                  for m in run.matches[1:]]
    corr = run.analyses.get("clip_correlation", {})
    lines.append(f"changed     top {top} words per eigenvector by |b - a|  (CLIP-score "
                 "Spearman a / b)")
    for eig, rows in list(run.analyses.get("word_emphasis", {}).items())[:10]:
        words = ", ".join(f"{r['word']} {r['change']:+.3f}" for r in rows[:top])
        rho = [_rho(corr.get(side, []), int(eig)) for side in ("a", "b")]
        lines.append(f"  eig {int(eig):>2}  {words}   (rho {rho[0]} / {rho[1]})")
    lines.append("timings     " + ", ".join(f"{k} {v}s" for k, v in run.timings.items()
                                            if v is not None))
    lines.append("cache       " + ", ".join(f"{k} {v}" for k, v in run.cache.items()))
    return "\n".join(lines)


def _describe(run: CompareRun, m: int) -> str:
    r, spec = run.runs[m], run.specs[m]
    layer = "last layer" if spec.layer is None else f"layer {spec.layer}"
    norm = "" if spec.patch_norm else ", no patch norm"
    demo = "  DEMO WEIGHTS" if r.demo_weights else ""
    return f"{r.model.name} ({layer}{norm}, {run.grids[m]} patches){demo}"


def _rho(rows: list[dict], eig: int) -> str:
    for row in rows:
        if row["eig"] == eig and row["spearman"] is not None:
            return f"{row['spearman']:+.2f}"
    return "-"
