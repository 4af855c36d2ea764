"""Command-line options that several commands share (cuts, compare): the slice, the cut and the
device, with their specs. Defaults, ranges and help come from the control table."""

from __future__ import annotations

import argparse

from . import argtypes
from .config import CutSpec, SliceSpec
from .controls import CONTROLS, add_to_parser
from .data import dataset_names


def add_slice_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="demo", help=f"one of: {', '.join(dataset_names())}")
    p.add_argument("--data-path", help="local copy of the dataset laid out like its Hub repo")
    add_to_parser(p, "start", "count")
    p.add_argument("--indices", type=argtypes.int_range(0), nargs="+", help="explicit example "
                   "indices (instead of --start/--count)")
    p.add_argument("--all-captions", action="store_true", help=CONTROLS["all_captions"].help)
    p.add_argument("--crossed-pairs", action="store_true", help=CONTROLS["crossed_pairs"].help)
    p.add_argument("--captions", help="upload: the captions file (default: groups.json, "
                   "captions.json, captions.csv or captions.txt in --data-path)")


def add_cut_options(p: argparse.ArgumentParser) -> None:
    add_to_parser(p, "mode", "n_eig", "clusters", "sharpness", "seed", "similarity")
    p.add_argument("--include-special", action="store_true",
                   help=CONTROLS["include_special"].help)
    p.add_argument("--no-center", action="store_true", help="joint mode: do not centre and "
                   "normalize each modality (the first eigenvector then splits image from text)")


def add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"],
                   help="encoder dtype (auto, the default: float16 on CUDA, bfloat16 on a CPU "
                   "with bf16 units unless EL_CPU_BF16=0, float32 elsewhere)")
    p.add_argument("--cache-dir", help="cache directory (default EL_CACHE_DIR or ./cache)")


def slice_spec(args) -> SliceSpec:
    return SliceSpec(args.dataset, args.start, args.count,
                     tuple(args.indices) if args.indices else None, args.data_path,
                     args.crossed_pairs, args.all_captions, args.captions)


def cut_spec(args) -> CutSpec:
    rgb = getattr(args, "rgb", None)
    return CutSpec(args.mode, args.n_eig, args.seed, args.similarity, args.include_special,
                   not args.no_center, args.clusters, args.sharpness,
                   tuple(rgb) if rgb else None,
                   colour=getattr(args, "colour", None) or "rgb",
                   perplexity=getattr(args, "perplexity", None) or CONTROLS["perplexity"].default)
