"""The user's own images in the Explore tab: staged into a folder for the `upload` dataset.

The upload adapter (`engineered_latents/data/upload.py`) reads a folder of images plus a
captions file. `stage_upload` writes the images in upload order as `000_<name>`, `001_<name>`,
... and `captions.json` ({file name: caption}, in that order). The folder is named by a hash of
the content, so the same upload gives the same folder (and the adapter the same identity, so the
same cache keys).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError

UPLOAD_DATASET = "upload"


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
        raise UserError(f"{len(paths)} images is more than the limit of {max_files} per run.")
    if len(lines) != len(paths):
        raise UserError(
            f"{len(paths)} images but {len(lines)} captions: write one caption per line, one "
            "line per image, in the order of the uploaded files."
        )
    digest = hashlib.sha256()
    for path, caption in zip(paths, lines):
        digest.update(Path(path).read_bytes())
        digest.update(caption.encode() + b"\0")
    folder = (root or upload_root()) / digest.hexdigest()[:20]
    if not (folder / "captions.json").is_file():
        staging = Path(tempfile.mkdtemp(dir=_mkdir(folder.parent)))
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
