"""Overlap the next step's input work (decoding, preprocessing) with the current step's compute."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetched(items: Iterable[T], prepare: Callable[[T], R]) -> Iterator[tuple[T, R]]:
    """(item, prepare(item)) in order, preparing the next item in a background thread while the
    caller works on the current one. Exceptions surface in the caller, at the item that raised."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as pool:
        pending = None
        for item in items:
            future = pool.submit(prepare, item)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (item, future)
        if pending is not None:
            yield pending[0], pending[1].result()
