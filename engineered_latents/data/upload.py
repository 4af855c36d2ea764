"""The user's own images and captions: a folder (`--data-path DIR`) or entries held in memory.

The folder holds the images and one captions file (or name it with `captions=`), first found of:

- `groups.json`: Winoground-style groups, a JSON list of
  `{"images": ["a.jpg", "b.jpg"], "captions": ["caption for a", "caption for b"]}`; image k goes
  with caption k (pairs (0, 0), (1, 1)), so text/image/group scores work on your own data.
  Other keys of a group (e.g. "tag") are kept in `meta`.
- `captions.json`: a JSON object `{"a.jpg": "a caption", "b.png": ["one", "another"]}`, in the
  file's order; a JSON list in this file is read as groups.
- `captions.csv`: columns `file,caption` (a header row; `image`/`filename` and `text` are accepted
  too); several rows for one file give it several captions; in the file's order.
- `captions.txt`: one caption per line for the images of the folder in sorted filename order
  (blank lines ignored; the counts must match).

An image with several captions forms one pair per caption. Images are normalised like every
dataset's (`images.load_image`); an unreadable one is skipped and listed in `skipped`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError
from . import hub
from .images import ImageError, image_bytes, load_image
from .records import Example

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
CAPTION_FILES = ("groups.json", "captions.json", "captions.csv", "captions.txt")
_FILE_COLUMNS = ("file", "image", "filename")
_TEXT_COLUMNS = ("caption", "text")


class UploadDataset:
    """Your own examples: each is {"images": [...], "captions": [...]} (see module docstring)."""

    name = "upload"
    split = "files"
    repo_id = ""
    licence = "your own data"
    gated = False
    known_size = None

    def __init__(self, data_path: str | None = None, captions: str | None = None) -> None:
        if data_path is None:
            raise UserError(
                "The upload dataset needs --data-path DIR: a folder of images plus a captions "
                f"file ({', '.join(CAPTION_FILES)})."
            )
        folder = Path(data_path).expanduser()
        if not folder.is_dir():
            raise UserError(f"--data-path {data_path} is not a folder of images.")
        self.data_path = str(folder.resolve())
        self.entries = read_folder(folder, captions)
        self._identity = f"upload:{hub.data_dir_stamp(self.data_path)}"
        self.skipped: list[dict] = []
        self.warnings: list[str] = []

    @classmethod
    def from_entries(cls, entries: Sequence[dict]) -> UploadDataset:
        """Examples given in memory (the app): images as PIL images, bytes or paths."""
        self = cls.__new__(cls)
        self.data_path = None
        self.entries = [_checked_entry(dict(e), k) for k, e in enumerate(entries)]
        if not self.entries:
            raise UserError("No examples were given: add at least one image with a caption.")
        self._identity = f"upload-memory:{_entries_digest(self.entries)}"
        self.skipped, self.warnings = [], []
        return self

    def size(self) -> int:
        return len(self.entries)

    def identity(self) -> str:
        return self._identity

    def load(self, indices: Sequence[int]) -> list[Example]:
        self.skipped, self.warnings = [], []
        examples = []
        for index in (int(i) for i in indices):
            if not 0 <= index < len(self.entries):
                raise UserError(f"Index {index} is outside the upload, which has "
                                f"{len(self.entries)} examples (0..{len(self.entries) - 1}).")
            entry = self.entries[index]
            try:
                images = tuple(load_image(im) for im in entry["images"])
            except ImageError as e:
                self.skipped.append({"index": index, "reason": f"{_label(entry)}: {e}"})
                continue
            examples.append(_example(index, entry, images))
        if self.skipped:
            listed = "; ".join(f"#{s['index']} {s['reason']}" for s in self.skipped)
            message = f"Skipped {len(self.skipped)} unreadable image(s): {listed}."
            self.warnings.append(message)
            log.warning(message)
        return examples


def _example(index: int, entry: dict, images: tuple) -> Example:
    captions = tuple(entry["captions"])
    if len(images) > 1:  # a group: image k with caption k
        pairs = tuple((k, k) for k in range(len(images)))
    else:
        pairs = tuple((0, c) for c in range(len(captions)))
    meta = {k: v for k, v in entry.items() if k not in ("images", "captions", "names")}
    meta["files"] = _names(entry)
    return Example(index, images, captions, pairs, meta)


def _names(entry: dict) -> list[str | None]:
    """The file names of an entry's images as the user gave them (None for in-memory images)."""
    return entry.get("names") or [im if isinstance(im, str) else None for im in entry["images"]]


def _label(entry: dict) -> str:
    return ", ".join(Path(n).name for n in _names(entry) if n) or "image"


# ----------------------------------------------------------------------------- folder formats


def read_folder(folder: Path, captions: str | None = None) -> list[dict]:
    """The entries of an upload folder: [{"images": [path], "captions": [str], "names": [...]}]."""
    captions_file = _captions_file(folder, captions)
    suffix = captions_file.suffix.lower()
    if suffix == ".json":
        data = _read_json(captions_file)
        entries = (_groups(data, captions_file) if isinstance(data, list)
                   else _mapping(data, captions_file))
    elif suffix == ".csv":
        entries = _csv(captions_file)
    elif suffix == ".txt":
        entries = _lines(folder, captions_file)
    else:
        raise UserError(f"Captions file {captions_file.name}: use .txt, .json or .csv.")
    if not entries:
        raise UserError(f"{captions_file} lists no examples.")
    return [_resolve(folder, e, captions_file) for e in entries]


def _captions_file(folder: Path, captions: str | None) -> Path:
    if captions:
        path = Path(captions).expanduser()
        path = path if path.is_absolute() else folder / path
        if not path.is_file():
            raise UserError(f"Captions file {captions} was not found.")
        return path
    for name in CAPTION_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(
        f"{folder} has no captions file. Add one of: groups.json (Winoground-style groups), "
        "captions.json ({\"file\": \"caption\"}), captions.csv (columns file,caption) or "
        "captions.txt (one caption per image, in sorted filename order)."
    )


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path.name} is not valid JSON: {e}") from e


def _texts(value, where: str) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise UserError(f"{where}: captions must be text or a list of texts.")
    texts = [t.strip() for t in texts if t.strip()]
    if not texts:
        raise UserError(f"{where}: the caption is empty.")
    return texts


def _groups(data: list, path: Path) -> list[dict]:
    entries = []
    for k, group in enumerate(data):
        where = f"{path.name}, group {k}"
        if not isinstance(group, dict) or "images" not in group or "captions" not in group:
            raise UserError(f"{where}: each group needs \"images\" and \"captions\" lists.")
        images, captions = group["images"], _texts(group["captions"], where)
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
            raise UserError(f"{where}: \"images\" must be a list of file names.")
        if len(images) != len(captions):
            raise UserError(f"{where}: {len(images)} images but {len(captions)} captions; a "
                            "group pairs image k with caption k.")
        extra = {key: v for key, v in group.items() if key not in ("images", "captions")}
        entries.append({**extra, "images": images, "captions": captions, "group": True})
    return entries


def _mapping(data, path: Path) -> list[dict]:
    if not isinstance(data, dict):
        raise UserError(f"{path.name} must be an object {{\"file\": \"caption\"}} or a list of "
                        "groups.")
    return [{"images": [str(name)], "captions": _texts(text, f"{path.name}, {name}")}
            for name, text in data.items()]


def _csv(path: Path) -> list[dict]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path.name} could not be read as CSV: {e}") from e
    columns = {c.strip().lower(): c for c in (rows[0].keys() if rows else []) if c}
    file_col = next((columns[c] for c in _FILE_COLUMNS if c in columns), None)
    text_col = next((columns[c] for c in _TEXT_COLUMNS if c in columns), None)
    if file_col is None or text_col is None:
        raise UserError(f"{path.name} needs a header row with columns file,caption "
                        f"(found: {', '.join(columns) or 'none'}).")
    by_file: dict[str, list[str]] = {}
    for line, row in enumerate(rows, start=2):
        name, text = (row.get(file_col) or "").strip(), (row.get(text_col) or "").strip()
        if not name or not text:
            raise UserError(f"{path.name}, line {line}: both file and caption are needed.")
        by_file.setdefault(name, []).append(text)
    return [{"images": [name], "captions": texts} for name, texts in by_file.items()]


def _lines(folder: Path, path: Path) -> list[dict]:
    images = image_files(folder)
    captions = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()]
    if len(captions) != len(images):
        raise UserError(
            f"{path.name} has {len(captions)} captions but {folder} has {len(images)} images; "
            "give one caption per line for each image, in sorted filename order "
            f"({', '.join(images[:3])}{', ...' if len(images) > 3 else ''})."
        )
    return [{"images": [name], "captions": [text]} for name, text in zip(images, captions)]


def image_files(folder: Path) -> list[str]:
    """The image files directly in `folder`, sorted by name."""
    return sorted(p.name for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _resolve(folder: Path, entry: dict, captions_file: Path) -> dict:
    paths = []
    for name in entry["images"]:
        path = (folder / name).resolve()
        if not path.is_file():
            raise UserError(f"{captions_file.name} names {name}, which is not in {folder}.")
        paths.append(str(path))
    return {**entry, "images": paths, "names": list(entry["images"])}


# ----------------------------------------------------------------------------- in memory


def _checked_entry(entry: dict, k: int) -> dict:
    if "images" not in entry or "captions" not in entry:
        raise UserError(f"Example {k}: give \"images\" and \"captions\".")
    images = entry["images"] if isinstance(entry["images"], (list, tuple)) else [entry["images"]]
    captions = _texts(list(entry["captions"]) if isinstance(entry["captions"], tuple)
                      else entry["captions"], f"Example {k}")
    if not images:
        raise UserError(f"Example {k} has no image.")
    if len(images) > 1 and len(images) != len(captions):
        raise UserError(f"Example {k}: {len(images)} images but {len(captions)} captions; a "
                        "group pairs image k with caption k.")
    return {**entry, "images": list(images), "captions": captions}


def _entries_digest(entries: list[dict]) -> str:
    from PIL import Image

    digest = hashlib.sha256()
    for entry in entries:
        for image in entry["images"]:
            if isinstance(image, Image.Image):
                digest.update(f"{image.mode}{image.size}".encode())
                digest.update(image.tobytes())
            else:
                try:
                    digest.update(image_bytes(image))
                except ImageError:
                    digest.update(str(image).encode())
        digest.update(json.dumps(entry["captions"]).encode())
    return digest.hexdigest()[:16]
