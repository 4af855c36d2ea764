"""Training jobs of a server: `fit(spec)` in a background thread, its progress, Stop and Resume.

A job runs outside any request queue, so the app's views and cuts keep their own pool: the
training thread shares the device with them step by step (each of its steps is short), it never
holds a request slot. At most `max_jobs` jobs run at once (EL_MAX_TRAIN_JOBS, default 1); one
more is refused with who holds the slot and how far that run is.

Runs live in `<cache>/models/<name>` (a safe folder name). Starting a name that exists is
refused unless it is a resume, and a resume reruns the same spec in the same folder: `fit`
continues from the last checkpoint (and refuses a different configuration).
Stop sets the event the loop reads after each step: a checkpoint is written, then the run ends.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from . import checkpoints as ckpt
from .outputs import TRAIN_FILE

MODELS_FOLDER = "models"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RUNNING, STOPPING, STOPPED, FINISHED, FAILED = "running", "stopping", "stopped", "finished", \
    "failed"


def models_root(cache_dir: str | Path) -> Path:
    return Path(cache_dir) / MODELS_FOLDER


def check_name(name: str | None) -> str:
    """A run name that is a safe folder name (letters, digits, . _ -; no leading dot)."""
    name = (name or "").strip()
    if not _NAME.match(name) or ".." in name:
        raise UserError(f"Run name {name[:60]!r} is not a safe folder name: use 1-64 letters, "
                        "digits, '.', '_' or '-', starting with a letter or digit.")
    return name


def run_folder(cache_dir: str | Path, name: str) -> Path:
    return models_root(cache_dir) / check_name(name)


def saved_record(out: str | Path) -> dict | None:
    """What a run folder holds: train.json when the run finished, else its last checkpoint's
    history and validations (a stopped run), with the run's identity; None for no run."""
    out = Path(out)
    run_file = out / ckpt.RUN_FILE
    if not run_file.is_file():
        return None
    try:
        identity = json.loads(run_file.read_text()).get("identity", {})
        if (out / TRAIN_FILE).is_file():
            record = json.loads((out / TRAIN_FILE).read_text())
            found = ckpt.step_dirs(out)
            if found and found[-1][0] > record.get("steps_done", 0):  # resumed since, stopped
                return _from_checkpoint(found[-1], identity)
            return {**record, "identity": identity, "state": FINISHED}
        found = ckpt.step_dirs(out)
        if not found:
            return {"identity": identity, "history": [], "val": [], "steps_done": 0,
                    "state": STOPPED}
        return _from_checkpoint(found[-1], identity)
    except (OSError, ValueError):
        return None


def _from_checkpoint(found: tuple[int, Path], identity: dict) -> dict:
    step, path = found
    state = json.loads((path / ckpt.STATE_FILE).read_text())
    return {"identity": identity, "history": state.get("history", []),
            "val": state.get("val", []), "steps_done": step, "best_step": state.get("best_step"),
            "seconds": state.get("seconds"), "state": STOPPED}


@dataclass
class TrainJob:
    """One run: its spec, what it reported so far and how it ended."""

    name: str
    spec: object  # TrainSpec
    owner: str = "someone"
    started: float = field(default_factory=time.time)
    state: str = RUNNING
    step: int = 0
    total_steps: int | None = None
    history: list = field(default_factory=list)
    val: list = field(default_factory=list)
    samples_s: float | None = None
    eta_s: float | None = None
    reports: int = 0
    messages: list = field(default_factory=list)
    error: str | None = None
    record: dict | None = None
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def active(self) -> bool:
        return self.state in (RUNNING, STOPPING)

    def where(self) -> str:
        total = f" of {self.total_steps}" if self.total_steps else ""
        pct = f" ({100 * self.step / self.total_steps:.0f}%)" if self.total_steps else ""
        return f"step {self.step}{total}{pct}"

    def on_progress(self, report: dict) -> None:
        with self.lock:
            self.step, self.total_steps = report["step"], report["total_steps"]
            if report["entry"] is not None:
                self.history.append(report["entry"])
            if report["val"] is not None:
                self.val.append(report["val"])
            self.samples_s, self.eta_s = report["samples_s"], report["eta_s"]
            self.reports += 1

    def end(self, state: str, error: str | None = None) -> None:
        with self.lock:
            self.state, self.error = state, error

    def say(self, message: str) -> None:
        with self.lock:
            self.messages = [*self.messages[-19:], message]

    def status(self) -> dict:
        """A JSON-able snapshot (what the page and the API show)."""
        with self.lock:
            return {"name": self.name, "state": self.state, "owner": self.owner,
                    "started": self.started, "step": self.step,
                    "total_steps": self.total_steps, "history": list(self.history),
                    "val": list(self.val), "samples_s": self.samples_s, "eta_s": self.eta_s,
                    "reports": self.reports, "messages": list(self.messages),
                    "error": self.error, "config": self.spec.to_json()}


class JobRunner:
    """The server's training jobs (thread-safe)."""

    def __init__(self, max_jobs: int = 1) -> None:
        self.max_jobs = max_jobs
        self._jobs: dict[str, TrainJob] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> TrainJob | None:
        with self._lock:
            return self._jobs.get(name)

    def active(self) -> list[TrainJob]:
        with self._lock:
            return [j for j in self._jobs.values() if j.active]

    def latest(self) -> TrainJob | None:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.started)
        return jobs[-1] if jobs else None

    def start(self, spec, name: str, owner: str = "someone", resume: bool = False) -> TrainJob:
        """Start `fit(spec)` in a thread; `spec.out` must be the run's folder. A name that
        exists is refused unless `resume`; a resume needs one."""
        from .loop import fit

        name = check_name(name)
        if spec.overwrite:
            raise UserError("A page run never overwrites: pick a new name.")
        saved = saved_record(spec.out)
        if saved is None and Path(spec.out).exists() and any(Path(spec.out).iterdir()):
            raise UserError(f"A folder named {name!r} exists and holds no training run: pick "
                            "another name.")
        if saved is not None and not resume:
            raise UserError(f"A run named {name!r} exists ({saved['state']} at step "
                            f"{saved['steps_done']}): press Resume to continue it, or pick "
                            "another name.")
        if saved is None and resume:
            raise UserError(f"There is no run named {name!r} to resume: press Run to start it.")
        with self._lock:
            busy = [j for j in self._jobs.values() if j.active]
            if any(j.name == name for j in busy):
                raise UserError(f"Run {name!r} is already training ({busy[0].where()}).")
            if len(busy) >= self.max_jobs:
                holder = busy[0]
                raise UserError(
                    f"Training is busy: {holder.owner} started run {holder.name!r} at "
                    f"{time.strftime('%H:%M', time.localtime(holder.started))} and it is at "
                    f"{holder.where()}. This server trains {self.max_jobs} run(s) at a time "
                    "(EL_MAX_TRAIN_JOBS): wait for it or stop it.")
            job = TrainJob(name, spec, owner)
            if saved is not None:  # the curves so far, continued by the resumed run
                job.history, job.val = list(saved["history"]), list(saved["val"])
                job.step = saved["steps_done"]
            self._jobs[name] = job

        def work() -> None:
            try:
                job.record = fit(spec, job.say, progress=_resumed(job), stop=job.stop_event)
                job.end(FINISHED)
            except KeyboardInterrupt:
                job.end(STOPPED)
            except UserError as e:
                job.end(FAILED, str(e))
            except Exception as e:  # noqa: BLE001 - the thread must record every ending
                job.end(FAILED, f"{type(e).__name__}: {e}")
                raise

        job.thread = threading.Thread(target=work, name=f"train-{name}", daemon=True)
        job.thread.start()
        return job

    def stop(self, name: str) -> TrainJob:
        """Ask a running job to stop: it writes a checkpoint after its current step, then ends."""
        job = self.get(name)
        if job is None or not job.active:
            raise UserError(f"Run {name!r} is not training: nothing to stop.")
        job.stop_event.set()
        with job.lock:
            if job.state == RUNNING:  # not if it ended meanwhile
                job.state = STOPPING
        return job


def _resumed(job: TrainJob):
    """The job's progress callback; a resume's first report (the steps already done) replaces
    what was read from the folder rather than duplicating it."""
    def progress(report: dict) -> None:
        if report["entry"] is not None:
            with job.lock:
                step = report["entry"]["step"]
                job.history = [e for e in job.history if e["step"] < step]
                if report["val"] is not None:
                    job.val = [v for v in job.val if v["step"] < report["val"]["step"]]
        elif report["val"] is not None:  # the base model's validation of a fresh run
            with job.lock:
                job.val = [v for v in job.val if v["step"] < report["val"]["step"]]
        job.on_progress(report)

    return progress
