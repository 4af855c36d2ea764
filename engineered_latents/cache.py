"""diskcache-backed memoization: stable keys, versioned, size-limited, never fatal.

Keys are dicts naming everything that changes a result; they are hashed as canonical JSON together
with `CACHE_VERSION`, so a change of code that changes results bumps the version, not the data.
A corrupt or unreadable entry is dropped and recomputed; an unwritable directory falls back to an
in-memory cache with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diskcache

from .config import Settings

log = logging.getLogger(__name__)

CACHE_VERSION = 1
_MISSING = object()


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

    def __init__(self, directory: str | os.PathLike | None = None, size_limit: int | None = None):
        self.directory = str(directory or default_cache_dir())
        self.warning = ""
        self._memory: dict[str, Any] | None = None
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            self._disk = diskcache.Cache(
                self.directory, size_limit=size_limit or default_size_limit()
            )
            self._disk.set("__probe__", 1)  # an unwritable directory fails here, not later
        except Exception as e:  # noqa: BLE001 - any failure to open means "work in memory"
            self.warning = (
                f"Cache directory {self.directory!r} is not usable ({type(e).__name__}: {e}); "
                "results are kept in memory only for this run. Set --cache-dir or EL_CACHE_DIR "
                "to a writable folder to keep them."
            )
            log.warning(self.warning)
            self._disk, self._memory = None, {}

    @property
    def persistent(self) -> bool:
        return self._disk is not None

    def get(self, key: str, default: Any = None) -> Any:
        if self._memory is not None and key in self._memory:
            return self._memory[key]
        if self._disk is None:
            return default
        try:
            return self._disk.get(key, default)
        except Exception as e:  # noqa: BLE001 - unpickling a damaged entry can raise anything
            log.warning("Dropping unreadable cache entry %s (%s); it will be recomputed.", key, e)
            self.delete(key)
            return default

    def set(self, key: str, value: Any) -> None:
        if self._memory is not None:
            self._memory[key] = value
            return
        try:
            self._disk.set(key, value)
        except Exception as e:  # noqa: BLE001 - a full disk must not lose the computed result
            log.warning("Could not write cache entry %s (%s); keeping it in memory.", key, e)
            self._memory_fallback()[key] = value

    def delete(self, key: str) -> None:
        try:
            if self._disk is not None:
                self._disk.delete(key)
        except Exception:  # noqa: BLE001
            pass
        if self._memory is not None:
            self._memory.pop(key, None)

    def get_or_compute(self, key: str, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """(value, hit): the cached value for `key`, or `compute()` stored under it."""
        value = self.get(key, _MISSING)
        if value is not _MISSING:
            return value, True
        value = compute()
        self.set(key, value)
        return value, False

    def _memory_fallback(self) -> dict:
        if self._memory is None:
            self._memory = {}
        return self._memory

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()
