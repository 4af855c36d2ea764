"""Experiment tracking behind one small interface: `none`, or trackio (local-first: an SQLite file
under `<cache dir>/trackio`, dashboard with `TRACKIO_DIR=<cache dir>/trackio trackio show`).
Nothing here needs the network."""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)
PROJECT = "engineered_latents"


class Tracker:
    """Records nothing (`--track none`)."""

    def log(self, values: dict, step: int) -> None:
        pass

    def finish(self) -> None:
        pass


class TrackioTracker(Tracker):
    def __init__(self, cache_dir: str, name: str, config: dict) -> None:
        self.dir = Path(cache_dir) / "trackio"
        self.dir.mkdir(parents=True, exist_ok=True)
        os.environ["TRACKIO_DIR"] = str(self.dir)
        import trackio

        self._trackio = trackio
        self._run = trackio.init(project=PROJECT, name=name, config=config, resume="allow",
                                 embed=False, auto_log_gpu=False, auto_log_cpu=False)

    def log(self, values: dict, step: int) -> None:
        self._run.log({k: v for k, v in values.items()
                       if k != "step" and isinstance(v, (int, float))}, step=step)

    def finish(self) -> None:
        self._run.finish()


def make_tracker(kind: str, cache_dir: str, name: str, config: dict, main: bool) -> Tracker:
    """The tracker for `--track`; only the main process records."""
    if kind == "none" or not main:
        return Tracker()
    return TrackioTracker(cache_dir, name, config)
