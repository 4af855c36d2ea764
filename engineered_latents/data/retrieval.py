"""Image-text retrieval test sets in clip-benchmark's webdataset layout.

- `coco`: `clip-benchmark/wds_mscoco_captions`, the 5,000 Karpathy test images (25,010 captions).
- `flickr30k`: `clip-benchmark/wds_flickr30k`, the 1,000 test images (5,000 captions).

Shards `test/<n>.tar`; per sample `<key>.jpg` or `<key>.webp` and `<key>.txt`, the captions joined
by newlines. Example: images (the image,), captions = every caption of the image (empty lines
dropped), pairs ((0, 0),) by default or one pair per caption with `all_captions=True`;
meta {"key"}.
"""

from __future__ import annotations

from .records import Example
from .streamed import Unusable, WebDatasetSplit, webdataset_image


class _RetrievalDataset(WebDatasetSplit):
    split = "test"

    def __init__(self, data_path: str | None = None, all_captions: bool = False,
                 cache=None) -> None:
        super().__init__(data_path, cache)
        self.all_captions = bool(all_captions)

    def _record(self, row: dict) -> dict:
        captions = [line.strip() for line in str(row["txt"] or "").splitlines() if line.strip()]
        if not captions:
            raise Unusable("the sample has no captions")
        return {"images": [webdataset_image(row)], "captions": captions,
                "meta": {"key": row.get("__key__")}}

    def _example(self, index: int, record: dict, images: tuple) -> Example:
        captions = tuple(record["captions"])
        count = len(captions) if self.all_captions else 1
        return Example(index, images, captions, tuple((0, c) for c in range(count)),
                       dict(record["meta"]))


class CocoDataset(_RetrievalDataset):
    """COCO 5k Karpathy test: each image with all its captions."""

    name = "coco"
    repo_id = "clip-benchmark/wds_mscoco_captions"
    licence = "COCO: annotations CC BY 4.0; images under the Flickr terms of their authors"
    known_size = 5000


class Flickr30kDataset(_RetrievalDataset):
    """Flickr30K 1k test: each image with all its captions."""

    name = "flickr30k"
    repo_id = "clip-benchmark/wds_flickr30k"
    licence = "Flickr30K: non-commercial research use (images under Flickr terms)"
    known_size = 1000
