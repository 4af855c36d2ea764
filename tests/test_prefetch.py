"""prefetch.prefetched: order, errors, in-line items, and no thread left behind (a live pool
thread that once ran a parallel torch op halved the caller's CPU speed; see the module)."""

import threading

import pytest

from engineered_latents.prefetch import prefetched


def _prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prefetch"]


def test_items_come_in_order_prepared_ahead_in_threads_that_end():
    where, alive = {}, []

    def prepare(i):
        where[i] = threading.current_thread()
        return i * i

    out = []
    for item, result in prefetched(range(6), prepare):
        alive.append(len(_prefetch_threads()))
        out.append((item, result))
    assert out == [(i, i * i) for i in range(6)]
    assert all(t is not threading.main_thread() for t in where.values())
    assert len({id(t) for t in where.values()}) == 6  # a thread per item, not a pool
    assert max(alive) <= 1  # at most the next item is in preparation
    assert _prefetch_threads() == []


def test_cheap_items_are_prepared_in_the_callers_thread():
    where = {}

    def prepare(i):
        where[i] = threading.current_thread()
        return i

    assert [r for _, r in prefetched(range(5), prepare, cheap=lambda i: i >= 2)] == list(range(5))
    assert {i for i, t in where.items() if t is threading.main_thread()} == {2, 3, 4}
    assert where[1] is not threading.main_thread()


def test_cheap_items_go_through_inline_once_the_caller_asks_for_them():
    """`inline` prepares the cheap items (and only those), each after the caller has asked for
    it, so after the caller is done with the item before (what lets Collate.reusing overwrite
    that item's buffer)."""
    events = []

    def inline(i):
        events.append(("inline", i))
        return -i

    gen = prefetched(range(4), lambda i: i, cheap=lambda i: i % 2 == 1, inline=inline)
    got = []
    for item, result in gen:
        got.append(result)
        events.append(("done", item))
    assert got == [0, -1, 2, -3]
    for i in (1, 3):
        assert events.index(("inline", i)) > events.index(("done", i - 1))


def test_an_error_surfaces_at_its_item_in_the_caller():
    def prepare(i):
        if i == 3:
            raise ValueError("bad item 3")
        return i

    seen = []
    with pytest.raises(ValueError, match="bad item 3"):
        for item, _ in prefetched(range(6), prepare):
            seen.append(item)
    assert seen == [0, 1, 2]
    assert _prefetch_threads() == []


def test_an_error_of_a_cheap_item_surfaces_too():
    def prepare(i):
        if i == 1:
            raise KeyError(i)
        return i

    with pytest.raises(KeyError):
        list(prefetched(range(3), prepare, cheap=lambda i: True))


def test_closing_early_waits_for_the_item_in_preparation():
    started, release, finished = threading.Event(), threading.Event(), []

    def prepare(i):
        if i == 1:
            started.set()
            release.wait(5)
        finished.append(i)
        return i

    gen = prefetched(range(10), prepare)
    assert next(gen) == (0, 0)
    started.wait(5)
    threading.Timer(0.2, release.set).start()
    gen.close()  # returns once item 1's preparation is done
    assert 1 in finished and _prefetch_threads() == []


def test_no_items():
    assert list(prefetched([], lambda i: i)) == []
