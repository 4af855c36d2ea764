"""Winoground (`facebook/winoground`, gated): 400 examples of two images and two captions that
use the same words in a different order.

Columns (parquet, split `test`): id, image_0, image_1, caption_0, caption_1, tag, secondary_tag,
num_main_preds, collapsed_tag. Some images are RGBA: `images.load_image` composites them on white.
Example: images (image_0, image_1), captions (caption_0, caption_1), pairs ((0, 0), (1, 1)),
meta {id, tag, secondary_tag, num_main_preds, collapsed_tag}.
"""

from __future__ import annotations

from .records import Example
from .streamed import StreamedDataset, row_image

_META = ("id", "tag", "secondary_tag", "num_main_preds", "collapsed_tag")


class WinogroundDataset(StreamedDataset):
    """Winoground's 400 test examples, streamed from the Hub (gated) or read from --data-path."""

    name = "winoground"
    repo_id = "facebook/winoground"
    split = "test"
    licence = "Winoground licence (research use; accept the terms on the dataset page)"
    gated = True
    known_size = 400

    def _record(self, row: dict) -> dict:
        return {
            "images": [row_image(row["image_0"]), row_image(row["image_1"])],
            "captions": [str(row["caption_0"]), str(row["caption_1"])],
            "meta": {k: _plain(row.get(k)) for k in _META},
        }

    def _example(self, index: int, record: dict, images: tuple) -> Example:
        return Example(index, images, tuple(record["captions"]), ((0, 0), (1, 1)),
                       dict(record["meta"]))


def _plain(value):
    """JSON-friendly metadata: numbers stay numbers, anything else becomes text (None stays)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
