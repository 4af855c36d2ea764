"""The user's own images in the Explore tab: staged into a folder for the `upload` dataset.

The upload adapter (`engineered_latents/data/upload.py`) reads a folder of images plus a
captions file. `stage_upload` writes the images in upload order as `000_<name>`, `001_<name>`,
... and `captions.json` ({file name: caption}, in that order). The folder is named by a hash of
the content, so the same upload gives the same folder (and the adapter the same identity, so the
same cache keys).

Staged folders live under `upload_root()` (`el_uploads` in Gradio's temp directory, which the app
does not serve). Each staging prunes them: a folder not used for `KEEP_S` seconds goes, and so do
the oldest beyond `MAX_FOLDERS`; using a folder again (the same upload) keeps it fresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError

UPLOAD_DATASET = "upload"
KEEP_S = 3600  # a staged upload not used for this long is removed
MAX_FOLDERS = 64  # the most staged uploads kept (the oldest go first)
_STAGING_PREFIX = "staging-"


def upload_root() -> Path:
    base = os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()
    return Path(base) / "el_uploads"


def parse_captions(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _safe_name(name: str) -> str:
    stem = re.sub(r"[^\w.-]+", "_", Path(name).name).strip("._") or "image"
    return stem[-80:]


def stage_upload(
    files: Sequence[str] | None, captions: str | None, max_files: int, root: Path | None = None,
) -> str:
    """A folder holding the uploaded images and their captions, for SliceSpec(data_path=...)."""
    paths = [str(f) for f in (files or [])]
    lines = parse_captions(captions)
    if not paths:
        raise UserError("Upload some images first (the 'upload' dataset uses your own images).")
    if len(paths) > max_files:
        raise UserError(f"{len(paths)} images is more than the limit of {max_files} per run: "
                        f"upload at most {max_files} at a time.")
    if len(lines) != len(paths):
        raise UserError(
            f"{len(paths)} images but {len(lines)} captions (blank lines do not count): write "
            "one caption per line, one line per image, in the order of the uploaded files."
        )
    digest = hashlib.sha256()
    for path, caption in zip(paths, lines):
        digest.update(Path(path).read_bytes())
        digest.update(caption.encode() + b"\0")
    root = root or upload_root()
    folder = root / digest.hexdigest()[:20]
    if (folder / "captions.json").is_file():
        _touch(folder)  # in use again: keep it
    prune(root, keep=folder)
    if not (folder / "captions.json").is_file():
        staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=_mkdir(root)))
        names = [f"{i:03d}_{_safe_name(p)}" for i, p in enumerate(paths)]
        for name, path in zip(names, paths):
            shutil.copyfile(path, staging / name)
        (staging / "captions.json").write_text(
            json.dumps(dict(zip(names, lines)), ensure_ascii=False, indent=1), encoding="utf-8")
        try:
            staging.rename(folder)
        except OSError:  # another request staged the same upload first
            shutil.rmtree(staging, ignore_errors=True)
    return str(folder)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _touch(folder: Path) -> None:
    try:
        os.utime(folder)
    except OSError:
        pass


def prune(root: Path | None = None, keep: Path | None = None, keep_s: float = KEEP_S,
          max_folders: int = MAX_FOLDERS) -> list[Path]:
    """Remove staged uploads unused for `keep_s` seconds, then the oldest beyond `max_folders`
    (never `keep`); half-written staging folders go after `keep_s` too. Returns what went."""
    root = root or upload_root()
    entries = []
    try:
        for path in root.iterdir():
            try:
                if path.is_dir():
                    entries.append((path.stat().st_mtime, path))
            except OSError:  # removed meanwhile by another request's prune
                pass
    except OSError:
        return []
    now = time.time()
    entries.sort(reverse=True)  # newest first
    removed, kept = [], 0
    for mtime, path in entries:
        if keep is not None and path == keep:
            continue
        staging = path.name.startswith(_STAGING_PREFIX)
        if now - mtime > keep_s or (not staging and kept >= max_folders - 1):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        elif not staging:
            kept += 1
    return removed
