"""A heavy module (torch) imported on first use, so the modules a cached run passes through can
name it at top level and a cached `cuts` process still never imports it.

    from .lazy import inference_mode, torch   # instead of `import torch`
    @inference_mode                              # instead of `@torch.inference_mode()`

`torch.x` imports torch the first time and is then the real `torch.x`; setting or deleting an
attribute (a test's monkeypatch) goes to the real module. Annotations stay strings (`from
__future__ import annotations`), so they never trigger the import.
"""

from __future__ import annotations

import functools
import importlib


class LazyModule:
    """Stands for the module `name` and imports it the first time an attribute is read."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_module", None)

    def _load(self):
        module = self._module
        if module is None:
            module = importlib.import_module(self._name)
            object.__setattr__(self, "_module", module)
        return module

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __setattr__(self, attr: str, value) -> None:
        setattr(self._load(), attr, value)

    def __delattr__(self, attr: str) -> None:
        delattr(self._load(), attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not imported yet"
        return f"<lazy module {self._name!r} ({state})>"


torch = LazyModule("torch")


def inference_mode(fn):
    """`@torch.inference_mode()` that imports torch when `fn` is first called, not when it is
    defined."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with torch.inference_mode():
            return fn(*args, **kwargs)

    return wrapper
