"""engineered_latents: where CLIP puts each word. Computes CLIP patch x token affinities of a
dataset slice, runs one Nystrom Normalized Cut over the whole slice (so eigenvectors align across
pairs) and writes per-word eigenvector scores, patch maps and k-way clusters; runs the published
benchmark protocols with confidence intervals. Every result is cached, so a repeated command is
instant. Without network or a cached model, an offline toy model is used and every output says so.
Run `COMMAND --help` for a command's options."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from . import argtypes, output
from .cache import Cache
from .cli_options import (
    add_cut_options,
    add_device_options,
    add_slice_options,
    cut_spec,
    slice_spec,
)
from .config import CutSpec, ModelSpec, Settings, SliceSpec
from .controls import add_to_parser
from .errors import UserError
from .models import DEFAULT_MODEL
from .pipeline import CutsRun, compute_cuts


def _cuts_parser(sub) -> None:
    p = sub.add_parser("cuts", help="NCut a dataset slice; print a summary, write summary.json "
                       "and cuts.npz", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default=None,
                   help=f"Hub id or local save_pretrained directory (default {DEFAULT_MODEL}, "
                   "which falls back to the offline toy model when offline and not cached)")
    add_slice_options(p)
    p.add_argument("--max-count", type=argtypes.positive_int, help="most examples per run "
                   "(default EL_MAX_COUNT or 64)")
    p.add_argument("--info", action="store_true", help="list the datasets and exit")
    add_cut_options(p)
    p.add_argument("--rgb", type=argtypes.int_range(0), nargs=3, default=None, metavar="EIG",
                   help="three different eigenvectors shown as the RGB view (default 1 2 3, "
                   "capped at n-eig - 1)")
    add_to_parser(p, "colour", "perplexity")
    p.add_argument("--no-patch-norm", action="store_true", help="skip the vision post_layernorm "
                   "before projecting patches (as the original research code did)")
    add_to_parser(p, "layer", "recursive")
    add_device_options(p)
    p.add_argument("--out", type=argtypes.check_out_dir,
                   help="output directory (default out/<dataset>-<start>-<count>)")


def _specs(args) -> tuple[SliceSpec, CutSpec, ModelSpec]:
    model_spec = ModelSpec(args.model, args.device, args.dtype, args.layer,
                           not args.no_patch_norm)
    return slice_spec(args), cut_spec(args), model_spec


def _progress(stage: str, fraction: float) -> None:
    print(f"[{fraction:4.0%}] {stage}", file=sys.stderr, flush=True)


def _print_run(run: CutsRun, out_dir, tree=None) -> None:
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
    if tree is not None:
        from .recursive import describe_stops, describe_tree

        print(f"recursive   {describe_tree(tree)}")
        stops = describe_stops(tree)
        if stops:
            print(f"recursive   {stops}")
    print("timings     " + ", ".join(f"{k} {v}s" for k, v in run.timings.items() if v is not None))
    print("cache       " + ", ".join(f"{k} {v}" for k, v in run.cache.items()))
    for warning in run.warnings:
        print(f"WARNING     {warning}")
    print(f"wrote       {out_dir}/summary.json, {out_dir}/cuts.npz")


def write_result(path: str, text: str, what: str, again: str = "Run the same command again "
                 "with another path: the result is cached, so that is instant.") -> None:
    """Write a finished result; if that fails after all (disk full, folder removed), say so in
    one line and how to get it again, instead of losing it to a traceback."""
    from pathlib import Path

    try:
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        Path(path).expanduser().write_text(text)
    except OSError as e:
        raise UserError(f"Could not write {what} to {path} ({e.strerror or e}). {again}") from e
    print(f"wrote {path}")


def cmd_list(args) -> int:
    from .data import describe_datasets

    rows = [(d["name"], str(d["size"] if d["size"] is not None else "?"),
             "yes" if d["gated"] else "no", d["hub_id"] or "-", str(d["licence"]))
            for d in describe_datasets()]
    name_w = max(len("name"), *(len(r[0]) for r in rows)) + 2
    hub_w = max(len("hub id"), *(len(r[3]) for r in rows)) + 2
    print(f"{'name':<{name_w}}{'size':>8}  {'gated':<6}{'hub id':<{hub_w}}licence")
    for name, size, gated, hub, licence in rows:
        print(f"{name:<{name_w}}{size:>8}  {gated:<6}{hub:<{hub_w}}{licence}")
    return 0


def cmd_cuts(args) -> int:
    if args.info:
        return cmd_list(args)
    settings = Settings.from_env()
    if args.max_count:
        settings = dataclasses.replace(settings, max_count=args.max_count)
    out_dir = args.out or f"out/{args.dataset}-{args.start}-{args.count}"
    try:  # before the work: a result is never lost to a bad output path
        argtypes.check_out_dir(out_dir)
    except argparse.ArgumentTypeError as e:
        raise UserError(f"--out {e}.") from None
    cache = Cache(args.cache_dir or settings.cache_dir)
    slice_spec, cut_spec, model_spec = _specs(args)
    run = compute_cuts(slice_spec, cut_spec, model_spec, cache, _progress, settings)
    tree = _recursive(run, args.recursive, cache)
    try:
        output.save(run, out_dir, **({"tree": tree} if tree is not None else {}))
    except OSError as e:
        raise UserError(f"Could not write the results to {out_dir} ({e.strerror or e}). They "
                        f"are cached in {cache.directory}: run the same command with another "
                        "--out, which is instant.") from e
    _print_run(run, out_dir, tree)
    return 0


def _recursive(run: CutsRun, levels: int, cache: Cache):
    """The recursive cut's tree when more than one level is asked for (None otherwise)."""
    if levels <= 1:
        return None
    from .recursive import recursive_cut

    return recursive_cut(run, levels, cache, progress=lambda stage, f: _progress(
        f"recursive cut: {stage}", f))


def _bench_parser(sub) -> None:
    from .benchmarks import BENCHMARKS

    p = sub.add_parser("bench", help="run a benchmark with live scores; print a table",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    from .benchmarks import SUITES

    p.add_argument("--benchmark", required=True,
                   help=f"one of: {', '.join(BENCHMARKS)}, or all (every one but demo), or a "
                   f"suite: {', '.join(SUITES)}")
    p.add_argument("--limit", type=argtypes.positive_int, help="evaluate N examples: the first "
                   "N (ImageNet: a seeded subset stratified over classes); references are then "
                   "left blank")
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
                   "winoground, whatsup_all, wds_mscoco_captions, wds_flickr30k, wds_imagenet1k, "
                   "SugarCrepe_<subset>, ARO-Visual-Relation, ARO-Visual-Attribution, "
                   "ARO-COCO-order, ARO-Flickr-Order")
    p.add_argument("--show-items", type=argtypes.positive_int, metavar="N", help="also print "
                   "the N items with the smallest and the N with the largest margins (positive "
                   "score minus the best negative)")
    p.add_argument("--batch-size", type=argtypes.int_range(1, 4096), default=32,
                   help="examples per batch")
    p.add_argument("--cache-dir", help="cache directory (default EL_CACHE_DIR or ./cache)")
    p.add_argument("--json", type=argtypes.check_out_file,
                   help="write the result(s) to this JSON file")


def cmd_bench(args) -> int:
    import json
    from pathlib import Path

    from . import benchmarks, compositional

    suite = args.benchmark if args.benchmark in benchmarks.SUITES else None
    names = [n for n in benchmarks.BENCHMARKS if n != "demo"] if args.benchmark == "all" \
        else list(benchmarks.SUITES[suite]) if suite else [args.benchmark]
    cache = Cache(args.cache_dir or Settings.from_env().cache_dir)
    model_spec = ModelSpec(args.model, args.device, args.dtype)
    results, failed = [], []
    for name in names:
        data_path = args.data_path
        if args.data_root and name in benchmarks.BENCHMARKS:
            data_path = str(Path(args.data_root) / benchmarks.BENCHMARKS[name].hub_folder)
        try:
            base = compositional.finish(_run_bench(name, model_spec, args.limit, data_path,
                                                   cache, args.batch_size))
            result = _bench_compared(name, base, args, data_path, cache) if args.compare \
                else base
        except UserError as e:
            if len(names) == 1:
                raise
            print(f"error: {name}: {e}", file=sys.stderr)
            failed.append(name)
            continue
        results.append(result)
        if not suite or args.compare:
            print(bench_table(result) if not args.compare else _paired_table(result))
        if args.show_items:
            print(compositional.items_table(base, args.show_items))
    summary = compositional.suite_summary(suite, results) if suite and not args.compare else None
    if summary is not None:
        print(compositional.suite_table(suite, results, summary))
    if args.json:
        payload = results[0].to_json() if len(names) == 1 else [r.to_json() for r in results]
        payload = {**summary, "results": payload} if summary is not None else payload
        write_result(args.json, json.dumps(payload, indent=1), "the benchmark results")
    return 1 if failed else 0


def _bench_compared(name, base, args, data_path, cache):
    """Each --compare model on the same items as `base`, paired against it (and recorded)."""
    from . import bench_compare, compositional

    print(bench_table(base))
    others = []
    for model in args.compare:
        try:
            other = compositional.finish(_run_bench(name, ModelSpec(model, args.device,
                                                                    args.dtype),
                                                    args.limit, data_path, cache,
                                                    args.batch_size))
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
    p.add_argument("--last", type=argtypes.positive_int, default=20, help="show the last N runs")


def cmd_history(args) -> int:
    from . import history

    runs, skipped = history.read_counted(args.cache_dir or Settings.from_env().cache_dir)
    if skipped:
        print(f"({skipped} unreadable line(s) of the history skipped)", file=sys.stderr)
    if not runs:
        print("no runs recorded yet")
    for run in runs[-args.last:]:
        demo = " DEMO" if run.get("demo_weights") else ""
        if run.get("kind") == "bench":
            numbers = ", ".join(f"{k} {v}" for k, v in run.get("metrics", {}).items())
            what = f"bench {run.get('benchmark')} n={run.get('n')}: {numbers}"
        elif run.get("kind") in ("bench-compare", "compare"):
            what = history.describe_comparison(run)
        elif run.get("kind") == "train":
            val = ", ".join(f"{k} {v}" for k, v in (run.get("val") or {}).items())
            what = (f"train {run.get('dataset')} loss={run.get('loss')} "
                    f"steps={run.get('steps_done')} -> {run.get('out')}: {val}")
        else:
            s = run.get("parameters", {}).get("slice")
            s = s if isinstance(s, dict) else {}
            what = (f"cuts {s.get('dataset')} start={s.get('start')} count={s.get('count')} "
                    f"nodes={run.get('n_nodes')} ({history.cache_word(run.get('cache'))})")
        print(f"{run.get('time')}  {run.get('model')}{demo}  {what}  [{run.get('code')}]")
    return 0


def _perf_parser(sub) -> None:
    p = sub.add_parser("perf", help="measure where the time of a cut goes (ratios, one run)")
    p.add_argument("--device", help="cpu or cuda (default: best available)")
    p.add_argument("--pairs", default="16,64,256", help="comma-separated slice sizes in pairs")
    p.add_argument("--repeats", type=argtypes.int_range(1, 100), default=3,
                   help="repeats per measurement (median)")
    p.add_argument("--json", type=argtypes.check_out_file,
                   help="write the measurements to this JSON file")
    p.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"],
                   help="encoder dtype of the main table (default auto, as cuts picks it)")
    p.add_argument("--no-dtypes", action="store_true", help="skip comparing float32 with "
                   "bfloat16 (and float16 on CUDA) on the same slices")
    p.add_argument("--bf16-train", action="store_true", help="the bf16 training figure "
                   "instead: fine-tuning in float32 against bfloat16 autocast on the same data "
                   "and seed, loss-curve agreement and step time (perf_bf16_train)")
    p.add_argument("--arch", choices=["siglip-b16"], help="also time this architecture (random "
                   "weights) next to CLIP B/32 at 64 pairs, one repeat")
    p.add_argument("--train", action="store_true", help="the training figure instead: the "
                   "train loop against a bare forward + backward + step (perf_train)")
    p.add_argument("--train-steps", type=argtypes.int_range(2, 100_000), default=200,
                   help="--train: steps of the tiny model")
    p.add_argument("--b32-steps", type=argtypes.int_range(0, 10_000), default=6,
                   help="--train: steps of the B/32 architecture (0: skip it)")
    p.add_argument("--train-repeats", type=argtypes.int_range(1, 100), default=3,
                   help="--train: measure the tiny model this many times (the median repeat "
                   "is reported, every repeat's ratio beside it)")


def cmd_perf(args) -> int:
    import subprocess
    import time

    from . import perf

    if args.train:
        from . import perf_train

        report = perf_train.measure(args.device, args.train_steps, args.b32_steps,
                                    log=lambda msg: print(msg, file=sys.stderr, flush=True),
                                    tiny_repeats=args.train_repeats)
        print(perf_train.table(report))
        if args.json:
            write_result(args.json, perf.json_text(report), "the measurements")
        return 0
    if args.bf16_train:
        from . import perf_bf16_train

        report = perf_bf16_train.measure(
            args.device, log=lambda msg: print(msg, file=sys.stderr, flush=True))
        print(perf_bf16_train.table(report))
        if args.json:
            write_result(args.json, perf.json_text(report), "the measurements")
        return 0
    try:
        pairs = [int(p) for p in args.pairs.split(",") if p.strip()]
    except ValueError as e:
        raise UserError(f"--pairs {args.pairs!r}: give sizes like 16,64,256.") from e
    if not pairs or min(pairs) < 2 or max(pairs) > 4096:
        raise UserError(f"--pairs {args.pairs!r}: give sizes from 2 to 4096 pairs.")
    start = time.perf_counter()
    # the child finds this package wherever perf runs from (a checkout is not on its path)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    subprocess.run([sys.executable, "-c", "import engineered_latents.pipeline, transformers"],
                   check=True, env=env)
    import_s = time.perf_counter() - start
    report = perf.measure(pairs, args.device, args.repeats,
                          lambda msg: print(msg, file=sys.stderr, flush=True), args.dtype,
                          not args.no_dtypes)
    report["import_s"] = round(import_s, 2)
    if args.arch:
        from . import perf_siglip

        report["arch"] = perf_siglip.measure(args.arch, 64, args.device, args.dtype,
                                             lambda msg: print(msg, file=sys.stderr, flush=True))
    print(perf.table(report))
    if args.json:
        write_result(args.json, perf.json_text(report), "the measurements")
    return 0


def _train_toy_parser(sub) -> None:
    from .toy import add_arguments

    add_arguments(sub.add_parser("train-toy", help="train the offline toy CLIP on synthetic "
                                 "shapes (writes assets/toy_clip) and measure it"))


def cmd_train_toy(args) -> int:
    from .toy import train_command

    return train_command(args)


def _compare_parser(sub) -> None:
    from .compare_cli import add_parser

    add_parser(sub)


def cmd_compare(args) -> int:
    from .compare_cli import cmd_compare as run

    return run(args)


def _train_parser(sub) -> None:
    from .finetune.cli import add_parser

    add_parser(sub)


def _cmd_train(args) -> int:
    from .finetune.cli import cmd_train

    return cmd_train(args)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line on stderr (exit 2), without the usage."""

    def error(self, message: str):
        if os.environ.get("RANK", "0") != "0":  # under torchrun: the main process says it
            self.exit(2)
        self.exit(2, f"error: {self.prog}: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m engineered_latents", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")
    _cuts_parser(sub)
    sub.add_parser("list", help="list the datasets: sizes, licences, gating")
    _bench_parser(sub)
    _history_parser(sub)
    _perf_parser(sub)
    _train_toy_parser(sub)
    _compare_parser(sub)
    _train_parser(sub)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad option (one line printed) or --help: its status
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        commands = {"cuts": cmd_cuts, "list": cmd_list, "bench": cmd_bench, "history": cmd_history,
                    "perf": cmd_perf, "train-toy": cmd_train_toy, "compare": cmd_compare,
                    "train": _cmd_train}
        return commands[args.command](args)
    except UserError as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun: the main process says it
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)  # one line
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
