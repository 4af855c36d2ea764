"""Run history (the research code's experiment tracking): one JSON line per cuts or bench run,
kept in the cache directory as `history.jsonl`; `python -m engineered_latents history` lists it."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from functools import lru_cache
from pathlib import Path

from . import __version__

log = logging.getLogger(__name__)
FILE = "history.jsonl"


@lru_cache(maxsize=1)
def code_version() -> str:
    """This package's version, with the git commit when run from a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, timeout=5,
                             capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def append(cache_dir: str, record: dict) -> None:
    """Add one run to the history; a history that cannot be written only logs a warning."""
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "code": code_version(), **record}
    try:
        with (Path(cache_dir) / FILE).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
    except OSError as e:
        log.warning("Could not append to the run history in %s: %s", cache_dir, e)


def read(cache_dir: str) -> list[dict]:
    """All recorded runs, oldest first (unreadable lines are skipped: see `read_counted`)."""
    return read_counted(cache_dir)[0]


def read_counted(cache_dir: str) -> tuple[list[dict], int]:
    """(runs oldest first, number of lines skipped): a line that is not UTF-8, not JSON or not
    a run record is skipped and counted, so one bad line never hides the others."""
    path = Path(cache_dir) / FILE
    try:
        data = path.read_bytes()
    except OSError:
        return [], 0
    runs, skipped = [], 0
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            run = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            skipped += 1
            continue
        if not isinstance(run, dict) or not isinstance(run.get("kind", ""), str) or \
                not all(isinstance(run.get(k, {}), dict) for k in ("parameters", "metrics")):
            skipped += 1
            continue
        runs.append(run)
    if skipped:
        log.warning("Skipped %d unreadable line(s) of the run history %s.", skipped, path)
    return runs, skipped


def cache_word(state) -> str:
    """How a run got its result, in words: "computed" (a cache miss) or "from cache"."""
    return {"hit": "from cache", "miss": "computed"}.get(state, str(state or "?"))


def describe_comparison(run: dict) -> str:
    """One line for a comparison record: a paired bench run or a compare (aligned cuts) run."""
    if run.get("kind") == "bench-compare":
        parts = []
        for label, stats in run.get("paired", {}).items():
            diffs = ", ".join(f"{m} {s.get('difference'):+} (p {s.get('p_value')})"
                              for m, s in stats.items())
            parts.append(f"vs {label}: {diffs}")
        return f"bench {run.get('benchmark')} n={run.get('n')} paired " + "; ".join(parts)
    s = run.get("parameters", {}).get("slice", {})
    return (f"compare vs {run.get('model_b')} ({run.get('mode')}) {s.get('dataset')} "
            f"start={s.get('start')} count={s.get('count')} ({run.get('cache')})")
