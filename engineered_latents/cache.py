"""diskcache-backed memoization: stable keys, versioned, size-limited, checksummed, never fatal.

Keys are dicts naming everything that changes a result; they are hashed as canonical JSON together
with `CACHE_VERSION`, so a change of code that changes results bumps the version, not the data.
Every value is stored as its pickle with a BLAKE2 checksum in front: an entry whose bytes changed
on disk (a damaged file, a bad write) fails the check and is dropped, warned about and recomputed,
never used as a result. SQLite runs without memory-mapped I/O, so a file-system failure while
serving (e.g. the folder made immutable) is a Python error, not a SIGBUS that kills the process.
An unwritable directory falls back to an in-memory cache with a warning, bounded in size.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from .config import Settings

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: values stored as checksummed pickles
_MISSING = object()
_DIGEST = 16  # bytes of the BLAKE2b checksum in front of every stored pickle
MEMORY_LIMIT = 512 * 2**20  # the in-memory fallback keeps at most this many pickled bytes


def default_cache_dir() -> str:
    return Settings.from_env().cache_dir


def default_size_limit() -> int:
    return int(Settings.from_env().cache_size_gb * 2**30)


def cache_key(kind: str, parts: dict) -> str:
    """A stable key: `kind:` + sha256 of the canonical JSON of `parts` and the cache version."""
    text = json.dumps({"v": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return f"{kind}:{hashlib.sha256(text.encode()).hexdigest()}"


class Cache:
    """A persistent key -> value store; `get_or_compute` is the one call most code needs."""

    def __init__(self, directory: str | os.PathLike | None = None, size_limit: int | None = None,
                 memory_limit: int = MEMORY_LIMIT):
        self.directory = str(directory or default_cache_dir())
        self.warning = ""
        self._memory: _Memory | None = None
        self._memory_limit = memory_limit
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            self._disk = diskcache.Cache(
                self.directory, size_limit=size_limit or default_size_limit(),
                sqlite_mmap_size=0,  # no mmap: an I/O failure raises instead of SIGBUS
            )
            self._disk.set("__probe__", 1)  # an unwritable directory fails here, not later
        except Exception as e:  # noqa: BLE001 - any failure to open means "work in memory"
            self.warning = (
                f"Cache directory {self.directory!r} is not usable ({type(e).__name__}: {e}); "
                "results are kept in memory only for this run. Set --cache-dir or EL_CACHE_DIR "
                "to a writable folder to keep them."
            )
            log.warning(self.warning)
            self._disk, self._memory = None, _Memory(memory_limit)

    @property
    def persistent(self) -> bool:
        return self._disk is not None

    def get(self, key: str, default: Any = None) -> Any:
        if self._memory is not None and key in self._memory:
            return self._memory[key]
        if self._disk is None:
            return default
        try:
            raw = self._disk.get(key, _MISSING)
            if raw is _MISSING:
                return default
            return _unpack(raw)
        except Exception as e:  # noqa: BLE001 - a damaged entry or a failing disk
            log.warning("Dropping unreadable cache entry %s (%s); it will be recomputed.", key, e)
            self.delete(key)
            return default

    def set(self, key: str, value: Any) -> None:
        try:
            data = pickle.dumps(value, protocol=5)
        except Exception as e:  # noqa: BLE001 - what cannot be pickled stays in memory
            log.warning("Cache entry %s cannot be stored (%s); keeping it in memory.", key, e)
            self._memory_fallback().put(key, value, 0)
            return
        if self._memory is not None and self._disk is None:
            self._memory.put(key, value, len(data))
            return
        try:
            self._disk.set(key, hashlib.blake2b(data, digest_size=_DIGEST).digest() + data)
        except Exception as e:  # noqa: BLE001 - a full disk must not lose the computed result
            log.warning("Could not write cache entry %s (%s); keeping it in memory.", key, e)
            self._memory_fallback().put(key, value, len(data))

    def delete(self, key: str) -> None:
        try:
            if self._disk is not None:
                self._disk.delete(key)
        except Exception:  # noqa: BLE001
            pass
        if self._memory is not None:
            self._memory.pop(key)

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """(value, hit): the cached value for `key`, or `compute()` stored under it."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value, True
        value = compute()
        self.set(key, value)
        return value, False

    def _memory_fallback(self) -> _Memory:
        if self._memory is None:
            self._memory = _Memory(self._memory_limit)
        return self._memory

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()


def _unpack(raw) -> Any:
    """The value of a stored entry, after its checksum is verified (ValueError if not)."""
    if not isinstance(raw, bytes) or len(raw) <= _DIGEST:
        raise ValueError("not a checksummed entry")
    digest, data = raw[:_DIGEST], raw[_DIGEST:]
    if hashlib.blake2b(data, digest_size=_DIGEST).digest() != digest:
        raise ValueError("checksum mismatch: the entry's bytes changed on disk")
    return pickle.loads(data)


class _Memory:
    """The in-memory fallback: least recently stored entries go first above `limit` bytes."""

    def __init__(self, limit: int):
        self.limit, self.used = limit, 0
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._items

    def __getitem__(self, key: str) -> Any:
        return self._items[key][0]

    def put(self, key: str, value: Any, size: int) -> None:
        self.pop(key)
        self._items[key] = (value, size)
        self.used += size
        while self.used > self.limit and len(self._items) > 1:
            _, (_, dropped) = self._items.popitem(last=False)
            self.used -= dropped

    def pop(self, key: str) -> None:
        if key in self._items:
            self.used -= self._items.pop(key)[1]
