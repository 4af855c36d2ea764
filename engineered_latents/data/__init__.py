"""Dataset registry: a name -> a small adapter that yields `Example` records.

Every adapter has `name`, `split`, `size()`, `identity()` (what changes its content: a Hub
revision, a fingerprint of a local copy, a generator version) and `load(indices) -> [Example]`.
Adapters are built as `Adapter(data_path=None, **options)`. Hub-backed ones also have `skipped`
(`[{"index", "reason"}]` of the last `load`: examples left out because an image could not be
read) and `warnings` (messages of the last `load` for the caller to show).

Options (passed through `get_dataset(name, data_path, **options)`; None means "default"):
- `all_captions` (coco, flickr30k): one pair per caption instead of the first caption only.
- `cache` (Hub-backed datasets): a `Cache` to keep examples in; default the project cache;
  False for none.
- `captions` (upload): the captions file, when it is not one of the standard names.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Protocol

from ..errors import UserError
from .records import Example

__all__ = ["Example", "Adapter", "get_dataset", "dataset_names", "resolve_indices",
           "describe_datasets"]


class Adapter(Protocol):
    name: str
    split: str

    def size(self) -> int: ...

    def identity(self) -> str: ...

    def load(self, indices: Sequence[int]) -> list[Example]: ...


def _registry() -> dict:
    """name -> a callable `(data_path=None, **options) -> Adapter` (a class or a partial)."""
    from .aro import DATASETS as ARO_DATASETS
    from .demo import DemoDataset
    from .imagenet import ImageNetDataset
    from .retrieval import CocoDataset, Flickr30kDataset
    from .sugarcrepe import subset_classes as sugarcrepe_classes
    from .upload import UploadDataset
    from .whatsup import SUBSETS, WhatsUpDataset
    from .winoground import WinogroundDataset

    registry = {"demo": DemoDataset, "winoground": WinogroundDataset, "coco": CocoDataset,
                "flickr30k": Flickr30kDataset, "imagenet": ImageNetDataset,
                "upload": UploadDataset}
    for subset in SUBSETS:
        registry[subset] = functools.partial(WhatsUpDataset, subset=subset)
    registry.update(sugarcrepe_classes())
    registry.update(ARO_DATASETS)
    return registry


def dataset_names() -> list[str]:
    return sorted(_registry())


def get_dataset(name: str, data_path: str | None = None, **options) -> Adapter:
    """The adapter for a dataset name; `data_path` points it at a local copy of its Hub repo.

    Options the adapter does not take are an error unless they are None or False (so a caller
    may pass e.g. `all_captions=False` to every dataset); `cache` is ignored where unused.
    """
    registry = _registry()
    if name not in registry:
        raise UserError(f"Unknown dataset {name!r}. Available: {', '.join(sorted(registry))}.")
    factory = registry[name]
    accepted = _options_of(factory)
    unused = {k: v for k, v in options.items() if k not in accepted and k != "cache"}
    wrong = [k for k, v in unused.items() if v is not None and v is not False]
    if wrong:
        raise UserError(f"Option {wrong[0]!r} does not apply to dataset {name!r}.")
    kept = {k: v for k, v in options.items() if k in accepted and v is not None}
    return factory(data_path=data_path, **kept)


def _options_of(factory) -> set[str]:
    bound = factory.keywords if isinstance(factory, functools.partial) else {}
    target = factory.func if isinstance(factory, functools.partial) else factory
    names = set(inspect.signature(target).parameters) - {"self", "data_path"}
    return names - set(bound)


def describe_datasets() -> list[dict]:
    """One row per dataset for a `list` command: name, hub_id, split, size (None when it is not
    known without downloading), licence, gated, url (the dataset page) and options (the keyword
    options `get_dataset` takes for it). Reads no data and touches no network.
    """
    rows = []
    for name, factory in sorted(_registry().items()):
        cls = factory.func if isinstance(factory, functools.partial) else factory
        split = getattr(cls, "split", None)
        if isinstance(factory, functools.partial) and "subset" in factory.keywords:
            from .whatsup import SUBSETS

            split = SUBSETS[factory.keywords["subset"]]
        rows.append({
            "name": name,
            "hub_id": getattr(cls, "repo_id", "") or None,
            "split": split if isinstance(split, str) else None,
            "size": getattr(cls, "known_size", None) if name != "demo" else _demo_size(),
            "licence": getattr(cls, "licence", "") or _DEFAULT_LICENCES.get(name, ""),
            "gated": bool(getattr(cls, "gated", False)),
            "url": f"https://huggingface.co/datasets/{cls.repo_id}"
            if getattr(cls, "repo_id", "") else None,
            "options": sorted(_options_of(factory) - {"cache"}),
        })
    return rows


_DEFAULT_LICENCES = {"demo": "generated by this package (no third-party content)"}


def _demo_size() -> int:
    from .demo import DemoDataset

    return DemoDataset().size()


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
        if start >= size:
            raise UserError(f"Start {start} is outside the dataset, which has {size} examples "
                            f"(0..{size - 1}).")
        if start + count > size:
            raise UserError(f"Start {start} + count {count} reaches outside the dataset, which "
                            f"has {size} examples (0..{size - 1}): ask for at most "
                            f"{size - start} from start {start}.")
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
