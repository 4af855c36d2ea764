"""The `train` subcommand: `python -m engineered_latents train --out DIR ...` (see `--help`)."""

from __future__ import annotations

import argparse
import sys

from ..argtypes import check_out_dir, float_range, int_range, positive_int, seed
from .spec import DTYPES, GRAPHS, OPTIMIZERS, SCHEDULERS, TRACKERS, TrainSpec

_NONNEG = float_range(0.0)


def _warmup(text: str) -> str:
    import re

    if not re.fullmatch(r"\d+|\d+(\.\d*)?ep", text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r}: give steps (100) or epochs (10ep)")
    return text.strip()


def _early_stop(text: str) -> str:
    from ..errors import UserError
    from .spec import _check_early_stop

    try:
        _check_early_stop(text)
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None
    return text


def _batch_size(text: str) -> int:
    value = int_range(None, 1 << 20)(text)
    if value < 2:
        raise argparse.ArgumentTypeError(
            f"{value}: the batch losses (contrastive, CKA, SVD) need at least 2 pairs per batch; "
            "give 2 or more (and --accum to save memory)")
    return value


def _train(text: str) -> str:
    import re

    if text in ("full", "lora", "projections") or re.fullmatch(r"last-[1-9]\d*", text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: use full, lora, projections or last-N "
                                     "(e.g. last-2)")


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="fine-tune a CLIP with the alignment losses; writes a "
                       "model every command loads (--model DIR)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d = TrainSpec.__dataclass_fields__
    g = p.add_argument_group("model and data")
    g.add_argument("--model", help="base model: Hub id or local directory (default "
                   "openai/clip-vit-base-patch32; the toy model offline)")
    g.add_argument("--dataset", default="demo", help="demo, coco, flickr30k, upload, winoground")
    g.add_argument("--data-path", help="local copy of the dataset (its Hub layout) or an "
                   "upload folder")
    g.add_argument("--split", help="coco, flickr30k: train (default) or test")
    g.add_argument("--start", type=int_range(0), default=0, help="first example")
    g.add_argument("--count", type=positive_int, help="examples to train on (demo: scenes, "
                   "default 512; others: the whole split)")
    g.add_argument("--val-dataset", help="validation dataset (default: the dataset's held-out "
                   "split: coco/flickr30k test, other demo seeds)")
    g.add_argument("--val-data-path", help="local copy of the validation dataset (default: "
                   "--data-path when it is the same dataset)")
    g.add_argument("--val-count", type=positive_int, default=d["val_count"].default,
                   help="validation examples")
    g.add_argument("--val-fraction", type=float_range(0, 1, lo_open=True),
                   help="hold out this fraction of the training examples for validation")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", default="contrastive", help="a loss or a weighted sum, e.g. "
                   "contrastive+0.1*cluster; names: contrastive, cka, svd, clip_svd, cluster, "
                   "cka_centered, svd_normalized, cluster_tight")
    g.add_argument("--k", type=int_range(1, 1000), default=3, help="clusters / singular values")
    g.add_argument("--alpha", type=float_range(0, 1e6), default=1.0, help="gap weight")
    g.add_argument("--beta", type=float_range(0, 1e6), default=0.5, help="magnitude weight")
    g.add_argument("--gamma", type=float_range(0, 1e6), default=1.0, help="CLIP-score weight "
                   "(clip_svd)")
    g.add_argument("--cluster-graph", choices=GRAPHS, default="pooled", help="pooled: the "
                   "batch's image and text embeddings; tokens: patches and word tokens")
    g.add_argument("--cluster-nodes", type=int_range(4, 100_000), default=256,
                   help="tokens graph: at most this many nodes (sampled)")
    g = p.add_argument_group("what trains and how")
    g.add_argument("--train", type=_train, default="full", help="full, lora, projections or "
                   "last-N (blocks of each tower)")
    g.add_argument("--lora-rank", type=int_range(1, 1024), default=8, help="LoRA rank")
    g.add_argument("--steps", type=positive_int, help="optimizer steps (default 100 unless "
                   "--epochs)")
    g.add_argument("--epochs", type=float_range(0, 1e6, lo_open=True), help="passes over the "
                   "training pairs")
    g.add_argument("--batch-size", type=_batch_size, default=32,
                   help="pairs per batch, over all processes (every batch loss sees them all)")
    g.add_argument("--accum", type=int_range(1, 4096), default=1,
                   help="batches whose gradients are summed per optimizer step")
    g.add_argument("--lr", type=float_range(0, 10, lo_open=True), default=5e-5,
                   help="peak learning rate")
    g.add_argument("--weight-decay", type=float_range(0, 10), default=0.01)
    g.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    g.add_argument("--scheduler", choices=SCHEDULERS, default="cosine")
    g.add_argument("--warmup", type=_warmup, default="0", help="linear warm-up: steps (100) "
                   "or epochs (10ep)")
    g.add_argument("--min-lr", type=_NONNEG, default=0.0, help="the schedule's floor")
    g.add_argument("--grad-clip", type=_NONNEG, default=1.0, help="max gradient norm (0: off)")
    g.add_argument("--workers", type=int_range(0, 256), default=0, help="DataLoader "
                   "processes preparing batches (0: one background thread; coco, flickr30k: "
                   "threads)")
    g.add_argument("--shuffle-buffer", type=int_range(0, 10_000_000),
                   default=d["shuffle_buffer"].default, help="coco, flickr30k (streamed): "
                   "pairs in the seeded shuffle buffer (0: file order)")
    g.add_argument("--seed", type=seed, default=42)
    g.add_argument("--device", help="cpu, cuda or mps (default: best available)")
    g.add_argument("--dtype", choices=DTYPES, help="float32, or autocast in bfloat16/float16 "
                   "(default: bfloat16 on CUDA, float32 elsewhere)")
    g = p.add_argument_group("validation, checkpoints, output")
    g.add_argument("--val-every", type=positive_int, default=50, help="steps between "
                   "validations")
    g.add_argument("--checkpoint-every", type=positive_int, default=100,
                   help="steps between checkpoints")
    g.add_argument("--keep", type=positive_int, default=3, help="checkpoints kept besides the "
                   "best")
    g.add_argument("--early-stop", type=_early_stop, help="METRIC:PATIENCE, e.g. val_loss:15 "
                   "(metrics: val_loss, cosine, r1_i2t, r1_t2i)")
    g.add_argument("--out", type=check_out_dir, required=True, help="output folder (rerun the "
                   "same command to resume)")
    g.add_argument("--overwrite", action="store_true", help="start over in an --out that "
                   "holds another run")
    g.add_argument("--cache-dir", help="cache directory (default EL_CACHE_DIR or ./cache)")
    g.add_argument("--track", choices=TRACKERS, default="trackio", help="trackio: local "
                   "SQLite under the cache dir (trackio show); none: off")
    g.add_argument("--eval", help="benchmarks before and after, e.g. winoground,coco")
    g.add_argument("--eval-limit", type=positive_int, help="examples per --eval benchmark")


_FIELDS = ("model", "dataset", "data_path", "split", "start", "count", "val_dataset",
           "val_data_path",
           "val_count", "val_fraction", "loss", "k", "alpha", "beta", "gamma", "cluster_graph",
           "cluster_nodes", "train", "lora_rank", "steps", "epochs", "batch_size", "accum",
           "lr", "weight_decay", "optimizer", "scheduler", "warmup", "min_lr", "grad_clip",
           "val_every", "checkpoint_every", "keep", "early_stop", "seed", "device", "dtype",
           "cache_dir", "overwrite", "track", "eval", "eval_limit", "workers",
           "shuffle_buffer")


def spec_from_args(args) -> TrainSpec:
    return TrainSpec(out=args.out, **{name: getattr(args, name) for name in _FIELDS})


def cmd_train(args) -> int:
    import os

    from .loop import fit

    record = fit(spec_from_args(args))
    if os.environ.get("RANK", "0") != "0":  # torchrun / accelerate launch: the main one prints
        return 0
    last = record["val"][-1] if record["val"] else {}
    print(f"trained     {record['steps_done']} steps in {record['seconds']:.1f} s "
          f"({record['seconds'] / max(1, len(record['history'])):.3f} s/step this run)")
    if last:
        print(f"validation  loss {last['val_loss']:.4f}, cosine {last['cosine']:.4f}, R@1 "
              f"image->text {last['r1_i2t']:.1f}, text->image {last['r1_t2i']:.1f} (chance "
              f"{last['chance_r1']:.1f}), best step {record['best_step']}")
    if record.get("stopped"):
        print(f"stopped     {record['stopped']}")
    print(f"wrote       {args.out} (load it with --model {args.out}), {args.out}/train.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Same as `python -m engineered_latents train ...`."""
    from ..__main__ import main as top

    return top(["train", *(argv if argv is not None else sys.argv[1:])])
