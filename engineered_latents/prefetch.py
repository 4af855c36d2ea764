"""Overlap the next step's input work (decoding, preprocessing) with the current step's compute.

Each item is prepared in a thread of its own that ends when its item is ready, not in a pool
thread that stays: on the CPU, a live thread that has run a parallel torch op keeps an OpenMP
team of its own, and while it exists the caller's parallel ops ran about half as fast (the
2-core CPU, torch 2.13 with libgomp: a 512^2 matmul + backward loop 131 -> 289 ms with an idle
pool thread that had once called torch.stack, back to 137 ms when it ended; a training step of
the tiny model 24 -> 45-52 ms). OMP_WAIT_POLICY and GOMP_SPINCOUNT did not change it."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Ahead:
    """`prepare(item)` running in a thread that ends with it."""

    def __init__(self, prepare: Callable[[T], R], item: T) -> None:
        self._result = self._error = None
        self._thread = threading.Thread(target=self._run, args=(prepare, item),
                                        name="prefetch", daemon=True)
        self._thread.start()

    def _run(self, prepare, item) -> None:
        try:
            self._result = prepare(item)
        except BaseException as e:  # noqa: BLE001 (raised again in the caller, at this item)
            self._error = e

    def wait(self) -> None:
        self._thread.join()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def prefetched(items: Iterable[T], prepare: Callable[[T], R],
               cheap: Callable[[T], bool] | None = None,
               inline: Callable[[T], R] | None = None) -> Iterator[tuple[T, R]]:
    """(item, prepare(item)) in order, preparing the next item in a background thread while the
    caller works on the current one. Exceptions surface in the caller, at the item that raised;
    a generator closed early waits for the item in preparation (nothing is left running).

    `cheap(item)` True (asked when the item before it has been prepared): that item is prepared
    in the caller's thread when its turn comes instead, so a thread does not take a core from
    the caller's compute threads for work that is quick anyway. `inline(item)` (default
    `prepare`) prepares such an item; it runs when the caller asks for that item, so after the
    caller has moved on from the item before it (it may reuse that item's buffers)."""
    cheap = cheap or (lambda item: False)
    inline = inline or prepare

    def start(item: T):
        return item, (None if cheap(item) else Ahead(prepare, item))

    def finish(started) -> tuple:
        item, ahead = started
        return item, inline(item) if ahead is None else ahead.result()

    pending = None
    try:
        for item in items:
            if pending is None:
                pending = start(item)
                continue
            done = finish(pending)  # before `cheap` is asked of the next item
            pending = start(item)
            yield done
        if pending is not None:
            done, pending = finish(pending), None
            yield done
    finally:
        if pending is not None and pending[1] is not None:
            pending[1].wait()
