"""`python -m engineered_latents train-toy`: train, evaluate and write the toy model's folder
(weights, processor, tokenizer, `metrics.json`, `README.md`); `--eval-only` re-measures it."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from .. import argtypes
from ..errors import UserError
from .card import TrainReport, model_card, summary_lines
from .model import ToyConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..models import TOY_DIR

    p.add_argument("--out", type=argtypes.check_out_dir, default=str(TOY_DIR),
                   help="where to write the model")
    p.add_argument("--steps", type=argtypes.positive_int, default=ToyConfig.steps,
                   help="training steps")
    p.add_argument("--batch-size", type=argtypes.int_range(2, 4096),
                   default=ToyConfig.batch_size, help="scenes per step (a contrastive batch "
                   "needs at least 2)")
    p.add_argument("--seed", type=argtypes.seed, default=ToyConfig.seed)
    p.add_argument("--aux-weight", type=argtypes.float_range(0, 100),
                   default=ToyConfig.aux_weight,
                   help="weight of the token-to-patch InfoNCE (0: plain CLIP loss)")
    p.add_argument("--threads", type=argtypes.int_range(1, 1024), default=ToyConfig.threads,
                   help="CPU threads (results are bit-identical only for the same thread count)")
    p.add_argument("--eval-only", action="store_true", help="measure the model in --out")
    p.add_argument("--eval-n", type=argtypes.int_range(1, 100_000), default=200,
                   help="held-out scenes per measurement")


def train_command(args) -> int:
    import torch

    from ..models import load_model, resolve_model
    from .evaluation import evaluate
    from .model import save
    from .training import train

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    out = Path(args.out)
    if args.eval_only:
        if not (out / "toy_config.json").is_file():
            raise UserError(f"--eval-only: {out} holds no toy model (no toy_config.json): give "
                            "the folder a train-toy run wrote.")
        cfg = ToyConfig(**json.loads((out / "toy_config.json").read_text()))
        training = json.loads((out / "metrics.json").read_text())["training"] \
            if (out / "metrics.json").is_file() else {}
    else:
        cfg = ToyConfig(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                        aux_weight=args.aux_weight, threads=args.threads)
        model, training = train(cfg, log)
        save(model, cfg, out)
        (out / "metrics.json").unlink(missing_ok=True)
    torch.set_num_threads(cfg.threads)
    lm = load_model(resolve_model(str(out)), "cpu", "float32")
    measured = evaluate(lm, cfg, args.eval_n, log=log)
    files = [f for f in out.iterdir() if f.is_file() and f.name not in ("README.md",
                                                                         "metrics.json")]
    report = TrainReport(asdict(cfg), training, measured,
                         round(sum(f.stat().st_size for f in files) / 2**20, 1))
    (out / "metrics.json").write_text(json.dumps(asdict(report), indent=1) + "\n")
    (out / "README.md").write_text(model_card(report))
    print(summary_lines(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    from . import __doc__ as overview

    p = argparse.ArgumentParser(prog="python -m engineered_latents.toy", description=overview,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return train_command(p.parse_args(argv))
