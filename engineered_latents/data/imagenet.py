"""ImageNet-1k validation (`clip-benchmark/wds_imagenet1k`, 50,000 images) for zero-shot use.

Shards `test/<n>.tar`; per sample `<key>.webp` (or jpg) and `<key>.cls`, the class index. The
tars are most likely in class order, so "the first N" covers few classes. OpenAI's 1000 class
names and 80 prompt templates ship with the package
(`engineered_latents/assets/imagenet_openai.json`).
Example: images (the image,), captions ("a photo of a {classname}.",), pairs ((0, 0),),
meta {"label": int, "classname": str, "key"}.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from .records import Example
from .streamed import Unusable, WebDatasetSplit, webdataset_image

ASSET = Path(__file__).resolve().parents[1] / "assets" / "imagenet_openai.json"
PROMPT = "a photo of a {}."


@lru_cache(maxsize=1)
def _openai() -> dict:
    return json.loads(ASSET.read_text())


def imagenet_classnames() -> list[str]:
    """OpenAI's curated names of the 1000 ImageNet classes, in label order."""
    return list(_openai()["classnames"])


def imagenet_templates() -> list[str]:
    """OpenAI's 80 zero-shot prompt templates ("a bad photo of a {}.", ...)."""
    return list(_openai()["templates"])


class ImageNetDataset(WebDatasetSplit):
    """ImageNet validation images with "a photo of a {class}." as the caption."""

    name = "imagenet"
    repo_id = "clip-benchmark/wds_imagenet1k"
    split = "test"
    licence = "ImageNet terms of access: non-commercial research and education"
    known_size = 50000

    def _record(self, row: dict) -> dict:
        try:
            label = int(row["cls"])
        except (TypeError, ValueError) as e:
            raise Unusable(f"the sample has no usable class label ({row['cls']!r})") from e
        names = imagenet_classnames()
        if not 0 <= label < len(names):
            raise Unusable(f"class label {label} is outside 0..{len(names) - 1}")
        return {"images": [webdataset_image(row)], "captions": [PROMPT.format(names[label])],
                "meta": {"label": label, "classname": names[label], "key": row.get("__key__")}}

    def _example(self, index: int, record: dict, images: tuple) -> Example:
        return Example(index, images, tuple(record["captions"]), ((0, 0),), dict(record["meta"]))
