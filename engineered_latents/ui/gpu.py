"""GPU work on Hugging Face ZeroGPU Spaces: the calls that encode with the model or cut run under
`spaces.GPU`, which attaches a GPU for their duration. Elsewhere (no `SPACES_ZERO_GPU` in the
environment, or no `spaces` package) `call` and `stream` just run the function: `spaces` is an
optional import, not a requirement.

On ZeroGPU the function runs in a worker process, so what goes in and out must pickle: the
callers pass specs, a cache and no progress callback there (see `enabled`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator

from ..config import Settings


def enabled(env: dict | None = None) -> bool:
    """True on a ZeroGPU Space (the `spaces` package installed and SPACES_ZERO_GPU set)."""
    env = os.environ if env is None else env
    if not env.get("SPACES_ZERO_GPU"):
        return False
    try:
        import spaces  # noqa: F401
    except ImportError:
        return False
    return True


def on_gpu(fn: Callable, duration: int) -> Callable:
    """`spaces.GPU(duration=...)(fn)` on ZeroGPU, else `fn` itself."""
    if not enabled():
        return fn
    import spaces

    return spaces.GPU(duration=duration)(fn)


def _call(fn: Callable, *args, **kwargs):
    return fn(*args, **kwargs)


def _stream(fn: Callable, *args, **kwargs) -> Iterator:
    yield from fn(*args, **kwargs)


@functools.lru_cache(maxsize=2)
def _wrapped(kind: str, duration: int) -> Callable:
    return on_gpu(_call if kind == "call" else _stream, duration)


def _duration(duration: int | None) -> int:
    """The most one call may hold the GPU: `duration`, else EL_GPU_DURATION (default 120 s)."""
    return duration if duration is not None else Settings.from_env().gpu_duration_s


def call(fn: Callable, *args, duration: int | None = None, **kwargs):
    """`fn(*args, **kwargs)`, on a ZeroGPU GPU where there is one."""
    return _wrapped("call", _duration(duration))(fn, *args, **kwargs)


def stream(fn: Callable, *args, duration: int | None = None, **kwargs) -> Iterator:
    """Iterate the generator `fn(*args, **kwargs)`, on a ZeroGPU GPU where there is one."""
    return _wrapped("stream", _duration(duration))(fn, *args, **kwargs)
