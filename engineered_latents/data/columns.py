"""Finding the columns an adapter needs in a row whose schema may differ from what was expected.

The compositionality datasets were described from their publishing code and other projects'
loaders, not from a download, so every adapter looks its columns up by a list of candidate names
and, when none is there, stops with a `UserError` naming the columns the row does have.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import UserError


def found(row: dict) -> str:
    """The row's column names, for a message ("none" when there are none)."""
    return ", ".join(sorted(k for k in row if not k.startswith("__"))) or "none"


def pick(row: dict, candidates: Sequence[str], what: str, dataset: str, source: str) -> str:
    """The first of `candidates` that is a column of `row`; a `UserError` when none is."""
    for name in candidates:
        if name in row:
            return name
    raise UserError(
        f"Dataset {dataset!r}: {source} has no {what} column (looked for "
        f"{', '.join(candidates)}); the columns found are: {found(row)}. Point --data-path at a "
        "copy of the Hub repository this dataset names, or report the changed schema."
    )


def optional(row: dict, candidates: Sequence[str]) -> str | None:
    """The first of `candidates` that is a column of `row`, or None."""
    return next((name for name in candidates if name in row), None)


def numbered(row: dict, prefix: str) -> list[str]:
    """Columns `<prefix>1`, `<prefix>2`, ... present in `row`, in numeric order."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    hits = [(int(m.group(1)), k) for k in row if (m := pattern.match(k))]
    return [k for _, k in sorted(hits)]


def first_image(value):
    """One image cell from a column holding an image or a list of images (the first)."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value
