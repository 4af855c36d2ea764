"""Downloads: files written to the export folder, one fresh sub-folder per request.

The export folder is `EL_EXPORT_DIR`, else `el_exports` in Gradio's temp directory; folders
older than `KEEP_S` are removed when a new export is written. Every JSON goes through
`privacy.scrub` (no token, no server path); figures are standalone HTML with plotly.js inlined,
so they open offline.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import figures as F
from .. import output
from ..config import Settings
from ..errors import UserError
from ..pipeline import CutsRun
from .privacy import scrub

KEEP_S = 3600


def export_root() -> Path:
    configured = Settings.from_env().export_dir
    if configured:
        return Path(configured).expanduser().resolve()
    base = os.environ.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio")
    return Path(base).resolve() / "el_exports"


def new_folder(root: Path | None = None) -> Path:
    """A fresh folder for one export (and old ones pruned)."""
    root = root or export_root()
    root.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in root.iterdir():
        try:
            if old.is_dir() and now - old.stat().st_mtime > KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"
    folder.mkdir()
    return folder


def writes_files(fn):
    """Turn a failed write (a full disk, a folder removed or made read-only) into a message for
    the page, without the server's error text or paths; the results stay shown and cached."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as e:
            why = {errno.ENOSPC: "its disk is full", errno.EFBIG: "a file would be too large",
                   errno.EDQUOT: "its disk quota is used up"}.get(e.errno, "it cannot write files")
            raise UserError(f"The downloads could not be prepared: {why} on the server. The "
                            "results are still shown (and cached); try again later.") from None

    return wrapper


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(scrub(value), indent=1, ensure_ascii=False, default=_plain),
                    encoding="utf-8")
    return path


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def write_html(path: Path, figures: dict, title: str) -> Path:
    path.write_text(F.standalone_html(figures, title), encoding="utf-8")
    return path


@writes_files
def cuts_files(run: CutsRun, figures: dict, title: str, tree=None) -> list[str]:
    """cuts.npz (eigenvectors, eigenvalues, word scores, patch maps, ...: `output.save`),
    summary.json (the CLI's contract, scrubbed; with the recursive cut's tree when the page
    has one) and figures.html."""
    folder = new_folder()
    output.save(run, folder)
    write_json(folder / "summary.json", output.summary(run, tree=tree))
    write_html(folder / "figures.html", figures, title)
    return [str(folder / name) for name in ("cuts.npz", "summary.json", "figures.html")]


@writes_files
def bench_files(results: list[dict], figures: dict, title: str) -> list[str]:
    """benchmark.json (one result as the CLI's --json writes it, several as a list) and the
    chart as HTML."""
    folder = new_folder()
    write_json(folder / "benchmark.json", results[0] if len(results) == 1 else results)
    write_html(folder / "benchmark.html", figures, title)
    return [str(folder / "benchmark.json"), str(folder / "benchmark.html")]


@writes_files
def loss_files(arrays: dict[str, np.ndarray], figures: dict, title: str) -> list[str]:
    """loss_surfaces.npz (every plotted array) and loss_surfaces.html."""
    folder = new_folder()
    np.savez_compressed(folder / "loss_surfaces.npz", **arrays)
    write_html(folder / "loss_surfaces.html", figures, title)
    return [str(folder / "loss_surfaces.npz"), str(folder / "loss_surfaces.html")]
