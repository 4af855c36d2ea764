"""Dataset registry: a name -> a small adapter that yields `Example` records.

Every adapter has `name`, `split`, `size()`, `identity()` (what changes its content: a Hub
revision, a fingerprint of a local copy, a generator version) and `load(indices) -> [Example]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ..errors import UserError
from .records import Example

__all__ = ["Example", "Adapter", "get_dataset", "dataset_names", "resolve_indices"]


class Adapter(Protocol):
    name: str
    split: str

    def size(self) -> int: ...

    def identity(self) -> str: ...

    def load(self, indices: Sequence[int]) -> list[Example]: ...


def _registry() -> dict:
    from .demo import DemoDataset

    return {"demo": DemoDataset}


def dataset_names() -> list[str]:
    return sorted(_registry())


def get_dataset(name: str, data_path: str | None = None) -> Adapter:
    """The adapter for a dataset name; `data_path` points it at a local copy of its Hub repo."""
    registry = _registry()
    if name not in registry:
        raise UserError(f"Unknown dataset {name!r}. Available: {', '.join(sorted(registry))}.")
    return registry[name](data_path=data_path)


def resolve_indices(
    size: int, start: int = 0, count: int = 8, indices: Sequence[int] | None = None,
    max_count: int | None = None,
) -> list[int]:
    """The example indices of a slice: explicit `indices`, else `start .. start+count-1`."""
    if indices is not None:
        chosen = [int(i) for i in indices]
        if len(set(chosen)) != len(chosen):
            raise UserError(f"Duplicate indices in {chosen}: list each example once.")
    else:
        if start < 0:
            raise UserError(f"Start {start} is negative: the first example is 0.")
        if count < 1:
            raise UserError(f"Count {count} must be at least 1.")
        chosen = list(range(start, start + count))
    if not chosen:
        raise UserError("The slice is empty: give a count of at least 1 or some indices.")
    bad = [i for i in chosen if not 0 <= i < size]
    if bad:
        raise UserError(
            f"Index {bad[0]} is outside the dataset, which has {size} examples (0..{size - 1})."
        )
    if max_count is not None and len(chosen) > max_count:
        raise UserError(
            f"{len(chosen)} examples is more than the limit of {max_count} per run; "
            "ask for fewer or raise the limit (--max-count or EL_MAX_COUNT)."
        )
    return chosen
