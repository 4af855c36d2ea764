"""Checkpoints `DIR/checkpoints/step-<N>/`, written atomically, and the run record `DIR/run.json`.

A checkpoint holds the trainable weights, the optimizer and scheduler states, the RNG states and
`state.json` (step, history, validations, early-stopping state). It is written under a temporary
name (`.tmp-step-<N>-<pid>`) and renamed when complete, so a kill or a full disk during a save
leaves the previous checkpoints intact; a temporary folder is never read back.
Kept: the best (by the early-stopping metric) and the last `keep`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError

RUN_FILE = "run.json"
STATE_FILE = "state.json"


def folder(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def step_dirs(out: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, by step."""
    root = folder(out)
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        if p.name.startswith("step-") and (p / STATE_FILE).is_file():
            try:
                found.append((int(p.name[5:]), p))
            except ValueError:
                continue
    return sorted(found)


def trainable_state(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save(out: str | Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    """Write step-<step> atomically; a failure (e.g. a full disk) is a UserError and leaves
    the earlier checkpoints as they were."""
    root = folder(out)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-step-{step}-{os.getpid()}"
    final = root / f"step-{step}"
    try:
        for stale in root.glob(".tmp-step-*"):  # left by a process killed while saving
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        torch.save(trainable_state(model), tmp / "model.pt")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"scheduler": scheduler.state_dict(), "rng": rng_state()}, tmp / "extra.pt")
        (tmp / STATE_FILE).write_text(json.dumps({**state, "step": step}))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = step_dirs(out)
        previous = f"the previous checkpoint {kept[-1][1]} is intact" if kept else \
            "no earlier checkpoint exists"
        raise UserError(f"Could not write the checkpoint of step {step} in {root} ({e}); "
                        f"{previous}. Free disk space and rerun the same command to resume.") \
            from e
    return final


def load(path: Path, model, optimizer, scheduler) -> dict:
    """Restore a checkpoint into the (prepared) model, optimizer and scheduler; its state."""
    weights = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise UserError(f"Checkpoint {path} does not fit this model (no parameter "
                        f"{missing[0]!r}): use --overwrite to start over.")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location="cpu",
                                         weights_only=False))
    extra = torch.load(path / "extra.pt", map_location="cpu", weights_only=False)
    scheduler.load_state_dict(extra["scheduler"])
    set_rng_state(extra["rng"])
    return json.loads((path / STATE_FILE).read_text())


def prune(out: str | Path, keep: int, best_step: int | None) -> None:
    """Delete all but the last `keep` checkpoints and the best one."""
    found = step_dirs(out)
    last = {s for s, _ in found[-keep:]}
    for step, path in found:
        if step not in last and step != best_step:
            shutil.rmtree(path, ignore_errors=True)


# ----------------------------------------------------------------------------- the run record


def check_out(out: str | Path, identity: dict, overwrite: bool, main: bool = True) -> dict | None:
    """The earlier run's record in `out` when it is the same configuration (to resume), None
    for a fresh start; a different run is refused, naming the fields that differ. With
    `overwrite` only the main process deletes the earlier run (the others then wait for it)."""
    from .spec import differing

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder: give a folder path.")
    if out.is_dir() and not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out} is not writable: give a folder you can write to.")
    record = out / RUN_FILE
    if overwrite:
        if record.is_file() and main:
            shutil.rmtree(folder(out), ignore_errors=True)
            for name in (RUN_FILE, "train.json", "eval.json"):
                (out / name).unlink(missing_ok=True)
        return None
    if not record.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise UserError(f"--out {out} holds other files but no training run: give a new or "
                            "empty folder (or --overwrite to write into it anyway).")
        return None
    try:
        old = json.loads(record.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{record} is unreadable ({e}): use --overwrite to start over.") from e
    diff = differing(old.get("identity", {}), identity)
    if diff:
        shown = ", ".join(f"{n} ({old['identity'].get(n)!r} there, {identity.get(n)!r} now)"
                          for n in diff[:6])
        raise UserError(f"--out {out} holds another run: {shown} differ. Use the same options "
                        "to resume it, another --out, or --overwrite to start over.")
    return old


def write_run(out: str | Path, identity: dict, base_model: str) -> None:
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps({"identity": identity, "base_model": base_model}, indent=1))
    os.replace(tmp, path / RUN_FILE)
