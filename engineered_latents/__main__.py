"""CLI: `python -m engineered_latents cuts ...` (see `--help`)."""

from __future__ import annotations

import argparse
import logging
import sys

from . import output
from .cache import Cache
from .config import CutSpec, ModelSpec, Settings, SliceSpec
from .data import dataset_names
from .errors import UserError
from .models import DEFAULT_MODEL
from .pipeline import CutsRun, compute_cuts


def _cuts_parser(sub) -> None:
    p = sub.add_parser("cuts", help="NCut a dataset slice; print a summary, write summary.json "
                       "and cuts.npz", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None,
                   help=f"Hub id or local save_pretrained directory (default {DEFAULT_MODEL}, "
                   "which falls back to demo weights when offline and not cached)")
    p.add_argument("--dataset", default="demo", help=f"one of: {', '.join(dataset_names())}")
    p.add_argument("--data-path", help="local copy of the dataset laid out like its Hub repo")
    p.add_argument("--start", type=int, default=0, help="first example index")
    p.add_argument("--count", type=int, default=8, help="number of examples")
    p.add_argument("--indices", type=int, nargs="+", help="explicit example indices "
                   "(instead of --start/--count)")
    p.add_argument("--max-count", type=int, help="most examples per run (default EL_MAX_COUNT "
                   "or 64)")
    p.add_argument("--all-captions", action="store_true", help="coco, flickr30k: one pair per "
                   "caption of each image (default: the first caption only)")
    p.add_argument("--captions", help="upload: the captions file (default: groups.json, "
                   "captions.json, captions.csv or captions.txt in --data-path)")
    p.add_argument("--info", action="store_true", help="list the datasets and exit")
    p.add_argument("--crossed-pairs", action="store_true", help="Winoground-style examples: also "
                   "pair image_0 with caption_1 and image_1 with caption_0")
    p.add_argument("--mode", choices=["scalar", "joint"], default="scalar",
                   help="scalar: every patch x token affinity is a node (the original method); "
                   "joint: every patch and token embedding is a node")
    p.add_argument("--n-eig", type=int, default=20, help="number of eigenvectors")
    p.add_argument("--clusters", type=int, default=6, help="k for k-way clusters (<= n-eig)")
    p.add_argument("--sharpness", type=float, help="ncut-pytorch A_degree: lower is sharper "
                   "(default: its median-distance bandwidth)")
    p.add_argument("--seed", type=int, default=0, help="seed for NCut's sampling")
    p.add_argument("--rgb", type=int, nargs=3, default=[1, 2, 3], metavar="EIG",
                   help="three eigenvectors shown as the RGB view")
    p.add_argument("--similarity", choices=["cosine", "dot"], default="cosine",
                   help="patch x token affinity: cosine, or raw dot product as the original")
    p.add_argument("--include-special", action="store_true",
                   help="make the CLS patch and the start/end tokens graph nodes")
    p.add_argument("--no-patch-norm", action="store_true", help="skip the vision post_layernorm "
                   "before projecting patches (as the original research code did)")
    p.add_argument("--layer", type=int, help="hidden-state index for patch and token states "
                   "(0 = embeddings, -2 = second to last; default: last layer)")
    p.add_argument("--no-center", action="store_true", help="joint mode: do not centre and "
                   "normalize each modality (the first eigenvector then splits image from text)")
    p.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"],
                   help="encoder dtype (default float16 on CUDA, float32 elsewhere)")
    p.add_argument("--cache-dir", help="cache directory (default EL_CACHE_DIR or ./cache)")
    p.add_argument("--out", help="output directory (default out/<dataset>-<start>-<count>)")


def _specs(args) -> tuple[SliceSpec, CutSpec, ModelSpec]:
    slice_spec = SliceSpec(args.dataset, args.start, args.count,
                           tuple(args.indices) if args.indices else None, args.data_path,
                           args.crossed_pairs, args.all_captions, args.captions)
    cut_spec = CutSpec(args.mode, args.n_eig, args.seed, args.similarity, args.include_special,
                       not args.no_center, args.clusters, args.sharpness, tuple(args.rgb))
    model_spec = ModelSpec(args.model, args.device, args.dtype, args.layer,
                           not args.no_patch_norm)
    return slice_spec, cut_spec, model_spec


def _progress(stage: str, fraction: float) -> None:
    print(f"[{fraction:4.0%}] {stage}", file=sys.stderr, flush=True)


def _print_run(run: CutsRun, out_dir) -> None:
    s = output.summary(run)
    prov = run.provenance
    weights = f"real weights {prov['weights']}"
    if run.demo_weights:  # a toy model trained on synthetic shapes, or random weights
        label = run.model.demo_label
        weights = f"DEMO WEIGHTS ({label})" if label != "random weights" \
            else "DEMO WEIGHTS (random: every number below is meaningless)"
    print(f"model       {run.model.name}: {weights}")
    print(f"device      {prov['device']}, encoders in {prov['dtype']}")
    print(f"slice       {run.slice.dataset}: {len({p.example for p in run.pairs})} examples, "
          f"{s['n_pairs']} pairs, mode {s['mode']}, {s['n_nodes']} nodes, n_eig {s['n_eig']}")
    shown = s["eigenvalues"][:20]
    more = f" ... ({len(s['eigenvalues'])} in all)" if len(s["eigenvalues"]) > 20 else ""
    print("eigenvalues " + " ".join(f"{v:.3f}" for v in shown) + more)
    print("top words   (eigenvector 0 is trivial and not shown)")
    for eig, words in s["top_words"].items():
        print(f"  eig {eig:>2}  + {', '.join(words['high'])}  |  - {', '.join(words['low'])}")
    print(f"clusters    k={s['clusters']['k']} sizes {s['clusters']['sizes']}")
    print("timings     " + ", ".join(f"{k} {v}s" for k, v in run.timings.items() if v is not None))
    print("cache       " + ", ".join(f"{k} {v}" for k, v in run.cache.items()))
    for warning in run.warnings:
        print(f"WARNING     {warning}")
    print(f"wrote       {out_dir}/summary.json, {out_dir}/cuts.npz")


def cmd_list(args) -> int:
    from .data import describe_datasets

    print(f"{'name':<18}{'size':>8}  {'gated':<6}{'hub id':<36}licence")
    for d in describe_datasets():
        size = d["size"] if d["size"] is not None else "?"
        print(f"{d['name']:<18}{size!s:>8}  {'yes' if d['gated'] else 'no':<6}"
              f"{d['hub_id'] or '-':<36}{d['licence']}")
    return 0


def cmd_cuts(args) -> int:
    if args.info:
        return cmd_list(args)
    settings = Settings.from_env()
    if args.max_count:
        settings = Settings(settings.cache_dir, settings.cache_size_gb, args.max_count)
    cache = Cache(args.cache_dir or settings.cache_dir)
    slice_spec, cut_spec, model_spec = _specs(args)
    run = compute_cuts(slice_spec, cut_spec, model_spec, cache, _progress, settings)
    out_dir = args.out or f"out/{args.dataset}-{args.start}-{args.count}"
    output.save(run, out_dir)
    _print_run(run, out_dir)
    return 0


def _bench_parser(sub) -> None:
    from .benchmarks import BENCHMARKS

    p = sub.add_parser("bench", help="run a benchmark with live scores; print a table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--benchmark", required=True,
                   help=f"one of: {', '.join(BENCHMARKS)}, or all (every one but demo)")
    p.add_argument("--limit", type=int, help="evaluate N examples: the first N (ImageNet: a "
                   "seeded subset stratified over classes); references are then left blank")
    p.add_argument("--model", default=None, help=f"Hub id or local directory (default "
                   f"{DEFAULT_MODEL})")
    p.add_argument("--compare", nargs="+", metavar="MODEL", help="also run these models on "
                   "exactly the same items and print paired statistics against --model: "
                   "difference, paired bootstrap 95%% interval, McNemar p, flipped items")
    p.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="encoder dtype (fp16 creates ties that move the numbers)")
    p.add_argument("--data-path", help="local copy of the benchmark's dataset (its Hub layout)")
    p.add_argument("--data-root", help="folder with one local copy per Hub repository: "
                   "winoground, whatsup_all, wds_mscoco_captions, wds_flickr30k, wds_imagenet1k")
    p.add_argument("--batch-size", type=int, default=32, help="examples per batch")
    p.add_argument("--cache-dir", help="cache directory (default EL_CACHE_DIR or ./cache)")
    p.add_argument("--json", help="write the result(s) to this JSON file")


def cmd_bench(args) -> int:
    import json
    from pathlib import Path

    from . import benchmarks

    names = [n for n in benchmarks.BENCHMARKS if n != "demo"] if args.benchmark == "all" \
        else [args.benchmark]
    cache = Cache(args.cache_dir or Settings.from_env().cache_dir)
    model_spec = ModelSpec(args.model, args.device, args.dtype)
    results, failed = [], []
    for name in names:
        data_path = args.data_path
        if args.data_root and name in benchmarks.BENCHMARKS:
            data_path = str(Path(args.data_root) / benchmarks.BENCHMARKS[name].hub_folder)
        try:
            result = _run_bench(name, model_spec, args.limit, data_path, cache, args.batch_size)
            if args.compare:
                result = _bench_compared(name, result, args, data_path, cache)
        except UserError as e:
            if len(names) == 1:
                raise
            print(f"error: {name}: {e}", file=sys.stderr)
            failed.append(name)
            continue
        results.append(result)
        print(bench_table(result) if not args.compare else _paired_table(result))
    if args.json:
        payload = results[0].to_json() if len(names) == 1 else [r.to_json() for r in results]
        Path(args.json).write_text(json.dumps(payload, indent=1))
        print(f"wrote {args.json}")
    return 1 if failed else 0


def _bench_compared(name, base, args, data_path, cache):
    """Each --compare model on the same items as `base`, paired against it (and recorded)."""
    from . import bench_compare

    print(bench_table(base))
    others = []
    for model in args.compare:
        try:
            other = _run_bench(name, ModelSpec(model, args.device, args.dtype), args.limit,
                               data_path, cache, args.batch_size)
        except UserError as e:
            raise UserError(f"--compare model {model!r}: {e}") from e
        print(bench_table(other))
        others.append(other)
    paired = bench_compare.pair_results(base, others)
    bench_compare.record(cache.directory, paired)
    return paired


def _paired_table(result) -> str:
    from .bench_compare import table

    return table(result)


def _run_bench(name, model_spec, limit, data_path, cache, batch_size):
    from tqdm import tqdm

    from .benchmarks import run_benchmark

    bar = tqdm(desc=name, unit="ex", file=sys.stderr, dynamic_ncols=True)
    for result in run_benchmark(name, model_spec, limit, data_path, cache, batch_size):
        bar.total = result.total
        bar.update(result.n - bar.n)
        bar.set_postfix({k: f"{v:.1f}" for k, v in list(result.metrics.items())[:3]})
    bar.close()
    return result


def bench_table(result) -> str:
    """The final table: metric, value, 95% interval, n, published reference, difference."""
    demo = "  (DEMO WEIGHTS: the numbers say nothing about CLIP)" if result.demo_weights else ""
    cached = "  (from cache)" if result.from_cache else ""
    lines = [f"{result.benchmark}: {result.model}{demo}{cached}",
             f"{'metric':<16}{'value':>8}  {'95% CI':<16}{'n':>7}{'reference':>11}{'diff':>8}"]
    for name, value in result.metrics.items():
        lo, hi = result.ci95.get(name, [float("nan")] * 2)
        ref = result.reference.get(name)
        ref_text = f"{ref:>11.2f}{value - ref:>+8.2f}" if ref is not None else f"{'':>11}{'':>8}"
        lines.append(f"{name:<16}{value:>8.2f}  [{lo:6.2f}, {hi:6.2f}]{result.n:>7}{ref_text}"
                     + ("  demo weights: meaningless" if result.demo_weights else ""))
    for note in result.notes:
        lines.append("note: " + "; ".join(f"{k}: {v}" for k, v in note.items()))
    return "\n".join(lines)


def _history_parser(sub) -> None:
    p = sub.add_parser("history", help="list earlier cuts and bench runs")
    p.add_argument("--cache-dir", help="cache directory (default EL_CACHE_DIR or ./cache)")
    p.add_argument("--last", type=int, default=20, help="show the last N runs")


def cmd_history(args) -> int:
    from . import history

    runs = history.read(args.cache_dir or Settings.from_env().cache_dir)
    if not runs:
        print("no runs recorded yet")
    for run in runs[-args.last:]:
        demo = " DEMO" if run.get("demo_weights") else ""
        if run.get("kind") == "bench":
            numbers = ", ".join(f"{k} {v}" for k, v in run.get("metrics", {}).items())
            what = f"bench {run.get('benchmark')} n={run.get('n')}: {numbers}"
        elif run.get("kind") in ("bench-compare", "compare"):
            what = history.describe_comparison(run)
        else:
            s = run.get("parameters", {}).get("slice", {})
            what = (f"cuts {s.get('dataset')} start={s.get('start')} count={s.get('count')} "
                    f"nodes={run.get('n_nodes')} ({run.get('cache')})")
        print(f"{run.get('time')}  {run.get('model')}{demo}  {what}  [{run.get('code')}]")
    return 0


def _perf_parser(sub) -> None:
    p = sub.add_parser("perf", help="measure where the time of a cut goes (ratios, one run)")
    p.add_argument("--device", help="cpu or cuda (default: best available)")
    p.add_argument("--pairs", default="16,64,256", help="comma-separated slice sizes in pairs")
    p.add_argument("--repeats", type=int, default=3, help="repeats per measurement (median)")
    p.add_argument("--json", help="write the measurements to this JSON file")


def cmd_perf(args) -> int:
    import subprocess
    import time

    from . import perf

    try:
        pairs = [int(p) for p in args.pairs.split(",") if p.strip()]
    except ValueError as e:
        raise UserError(f"--pairs {args.pairs!r}: give sizes like 16,64,256.") from e
    if not pairs or min(pairs) < 2:
        raise UserError("--pairs needs sizes of at least 2 pairs.")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import engineered_latents.pipeline, transformers"],
                   check=True)
    import_s = time.perf_counter() - start
    report = perf.measure(pairs, args.device, args.repeats,
                          lambda msg: print(msg, file=sys.stderr, flush=True))
    report["import_s"] = round(import_s, 2)
    print(perf.table(report))
    if args.json:
        perf.write_json(report, args.json)
        print(f"wrote {args.json}")
    return 0


def _train_toy_parser(sub) -> None:
    from .toy import add_arguments

    add_arguments(sub.add_parser("train-toy", help="train the offline toy CLIP on synthetic "
                                 "shapes (writes assets/toy_clip) and measure it"))


def cmd_train_toy(args) -> int:
    from .toy import train_command

    return train_command(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engineered_latents", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _cuts_parser(sub)
    sub.add_parser("list", help="list the datasets: sizes, licences, gating")
    _bench_parser(sub)
    _history_parser(sub)
    _perf_parser(sub)
    _train_toy_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        commands = {"cuts": cmd_cuts, "list": cmd_list, "bench": cmd_bench, "history": cmd_history,
                    "perf": cmd_perf, "train-toy": cmd_train_toy}
        return commands[args.command](args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
