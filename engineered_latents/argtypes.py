"""Checked value types for command-line options: each refuses a bad value where it is parsed.

Every function here returns a converter for argparse's `type=`: it raises
`argparse.ArgumentTypeError` with a message that says what is allowed, and argparse turns that
into one line naming the option and exit status 2 (see `__main__.OneLineParser`).
Output paths are checked before the work starts, so a result is never lost to a bad path.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

SEED_MAX = 2**32 - 1  # numpy's and ncut-pytorch's seeds are 32-bit


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi] (either bound may be None: open)."""

    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"{value} is out of range: {_span(lo, hi)}")
        return value

    convert.__name__ = "integer"
    return convert


def float_range(lo: float | None = None, hi: float | None = None, *,
                lo_open: bool = False) -> Callable[[str], float]:
    """A finite float in [lo, hi] (or (lo, hi] with `lo_open`); NaN and infinities refused."""

    def convert(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        below = lo is not None and (value <= lo if lo_open else value < lo)
        if below or (hi is not None and value > hi):
            left = "(" if lo_open else "["
            raise argparse.ArgumentTypeError(
                f"{value:g} is out of range: {_span(lo, hi, left)}")
        return value

    convert.__name__ = "number"
    return convert


seed = int_range(0, SEED_MAX)
positive_int = int_range(1)


def _span(lo, hi, left: str = "[") -> str:
    if lo is not None and hi is not None:
        return f"allowed {left}{lo:g}, {hi:g}]"
    return f"at least {lo:g}" if lo is not None else f"at most {hi:g}"


def _existing_ancestor(path: Path) -> Path:
    """The nearest existing ancestor of `path` (where a new folder or file would be created)."""
    parent = path.absolute().parent
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    return parent


def _can_write_in(folder: Path) -> bool:
    """Whether a file can be created in `folder`: tried, not guessed (root passes os.access
    checks that the file system then refuses: immutable folders, read-only mounts)."""
    if not folder.is_dir():
        return False
    try:
        fd, name = tempfile.mkstemp(prefix=".el-write-check-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def check_out_dir(text: str) -> str:
    """A folder to write into: an existing writable folder, or one that can be created."""
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is an existing file, not a folder: give a folder path")
    where = path if path.is_dir() else _existing_ancestor(path)
    if not where.is_dir():
        raise argparse.ArgumentTypeError(
            f"{where} is a file, so {text} cannot be created: give a folder path")
    if not _can_write_in(where):
        raise argparse.ArgumentTypeError(f"cannot write in {where}: give a folder you can write "
                                         "to")
    return text


def check_out_file(text: str) -> str:
    """A file to write: not a folder, in a folder that exists (or can be created) and is
    writable."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder: give a file path")
    where = path.parent if path.parent.is_dir() else _existing_ancestor(path)
    if not where.is_dir():
        raise argparse.ArgumentTypeError(
            f"{where} is a file, so {text} cannot be created: give another file path")
    if not _can_write_in(where) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(
            f"cannot write {text}: give a file path in a folder you can write to")
    return text
