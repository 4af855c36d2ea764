"""What a run leaves in `--out DIR`: a model every command loads (`--model DIR`), `train.json`
(the contract other tools read), `eval.json` with `--eval`, and a `train` entry in the history.

train.json: `config` (every option, resolved), `base_model` (the base weights' identity),
`history` (`{"step", "loss", "lr", <each loss term>, "grad_norm", "logit_scale", "seconds"}` per
optimizer step), `val` (`{"step", "val_loss", "val_<term>", "cosine", "r1_i2t", "r1_t2i",
"chance_r1", "n_val"}`), `best_step`, `steps_done`, `seconds`, `stopped`, `provenance`.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from ..errors import UserError

TRAIN_FILE = "train.json"
EVAL_FILE = "eval.json"


def save_model(trained, train: str, tokenizer, processor, out: str) -> None:
    """save_pretrained of the plain CLIPModel (LoRA merged), with tokenizer and processor."""
    from .model import finished_model

    model = finished_model(trained, train)
    try:
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        processor.save_pretrained(out)
    except OSError as e:
        raise UserError(f"Could not write the model to {out} ({e}); the checkpoints in "
                        f"{out}/checkpoints are intact: free space and rerun to finish.") from e


def provenance(run, extra: dict) -> dict:
    import accelerate
    import peft
    import transformers

    from ..history import code_version

    return {"code": code_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__,
            "accelerate": accelerate.__version__, "python": platform.python_version(),
            "device": str(run.accelerator.device), "processes": run.accelerator.num_processes,
            "threads": torch.get_num_threads(), "parameters": extra["parameters"],
            "data": extra["data"], "demo_weights": extra["resolved"].demo_weights}


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    os.replace(tmp, path)


def finish(run, extra: dict, before: dict | None) -> dict:
    """Write the outputs (main process), return the train.json contents."""
    spec, state = run.spec, run.state
    steps_done = state.history[-1]["step"] if state.history else run.start_step
    record = {"config": extra["config"], "base_model": extra["resolved"].weights_id,
              "history": state.history, "val": state.val, "best_step": state.best_step,
              "steps_done": steps_done, "seconds": round(state.seconds, 3),
              "stopped": state.stopped, "provenance": provenance(run, extra)}
    acc = run.accelerator
    if acc.is_main_process:
        save_model(extra["trained"], spec.train, extra["tokenizer"], extra["processor"], spec.out)
        write_json(Path(spec.out) / TRAIN_FILE, record)
        if before is not None:
            record["eval"] = evaluate_after(spec, extra, before, run.say)
        _append_history(spec, extra, record)
    acc.wait_for_everyone()
    return record


def _append_history(spec, extra: dict, record: dict) -> None:
    from .. import history

    last_val = record["val"][-1] if record["val"] else {}
    history.append(extra["cache_dir"], {
        "kind": "train", "model": extra["resolved"].name, "weights": extra["resolved"].weights_id,
        "demo_weights": extra["resolved"].demo_weights, "out": str(spec.out),
        "dataset": spec.dataset, "loss": spec.loss, "train": spec.train,
        "steps_done": record["steps_done"], "best_step": record["best_step"],
        "val": {k: v for k, v in last_val.items() if k in ("val_loss", "cosine", "r1_i2t",
                                                           "r1_t2i")},
        "seconds": record["seconds"]})


# ----------------------------------------------------------------------------- before / after


def _benchmarks(spec) -> list[str]:
    from ..benchmarks import BENCHMARKS

    names = [n.strip() for n in (spec.eval or "").split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise UserError(f"--eval {unknown[0]!r} is not a benchmark: use {', '.join(BENCHMARKS)}.")
    return names


def _bench(name: str, model: str | None, spec, cache_dir: str) -> dict:
    from ..benchmarks import run_benchmark
    from ..cache import Cache
    from ..config import ModelSpec

    results = run_benchmark(name, ModelSpec(model, spec.device, "float32"), spec.eval_limit,
                            None, Cache(cache_dir))
    result = list(results)[-1]  # the final one (done=True)
    return {"model": result.model, "n": result.n, "metrics": result.metrics,
            "ci95": result.ci95, "demo_weights": result.demo_weights}


def evaluate_before(spec, extra: dict, say) -> dict | None:
    """The benchmarks of --eval on the base model (before training starts)."""
    names = _benchmarks(spec)
    if not names:
        return None
    say(f"eval before: {', '.join(names)} on the base model")
    return {n: _bench(n, spec.model, spec, extra["cache_dir"]) for n in names}


def evaluate_after(spec, extra: dict, before: dict, say) -> dict:
    """The same benchmarks on the trained model; eval.json and a printed table."""
    rows, after = [], {}
    for name in before:
        after[name] = _bench(name, str(spec.out), spec, extra["cache_dir"])
        for metric, value in after[name]["metrics"].items():
            old = before[name]["metrics"].get(metric)
            rows.append({"benchmark": name, "metric": metric, "before": old, "after": value,
                         "difference": None if old is None else value - old,
                         "before_ci95": before[name]["ci95"].get(metric),
                         "after_ci95": after[name]["ci95"].get(metric)})
    payload = {"base_model": extra["resolved"].weights_id, "trained": str(spec.out),
               "before": before, "after": after, "rows": rows}
    write_json(Path(spec.out) / EVAL_FILE, payload)
    say(eval_table(rows))
    return payload


def eval_table(rows: list[dict]) -> str:
    def ci(v):
        return f"[{v[0]:6.2f}, {v[1]:6.2f}]" if v else " " * 16

    lines = [f"{'benchmark':<14}{'metric':<16}{'before':>8}  {'95% CI':<18}{'after':>8}  "
             f"{'95% CI':<18}{'diff':>8}"]
    for r in rows:
        before = f"{r['before']:>8.2f}" if r["before"] is not None else f"{'':>8}"
        diff = f"{r['difference']:>+8.2f}" if r["difference"] is not None else ""
        lines.append(f"{r['benchmark']:<14}{r['metric']:<16}{before}  {ci(r['before_ci95'])}  "
                     f"{r['after']:>8.2f}  {ci(r['after_ci95'])}  {diff}")
    return "\n".join(lines)
