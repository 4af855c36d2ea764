"""What'sUp (`ServiceNow/whatsup_all`): one image and its caption options, the correct one first.

Splits and names: Controlled_Images_A -> whatsup-a (on / under / left / right, 4 options),
Controlled_Images_B -> whatsup-b (in front of / behind / left / right, 4 options),
COCO_QA_one_obj / COCO_QA_two_obj -> coco-spatial-one / -two, VG_QA_one_obj / VG_QA_two_obj ->
gqa-spatial-one / -two (2 options each). Columns: image_options (a list holding one image),
caption_options (list of str, correct first). The same repository also holds ARO splits whose
correct option is *second*; they are not offered.

Subset check: the Hub copy's Controlled A/B row counts (412/408) are swapped relative to the paper
(408/412), so the split names themselves may be swapped. `whatsup-a` must be the on/under set and
`whatsup-b` the in-front/behind set: the first example of the named split is read and its
prepositions decide; if they belong to the other set, the other split is used (with a warning).
The decision is cached with the dataset identity.

Example: images (the image,), captions = caption_options, pairs ((0, 0), (0, 1), ...),
meta {"correct": 0, "subset", "split"}.
"""

from __future__ import annotations

import logging
import re

from ..errors import UserError
from .records import Example
from .streamed import StreamedDataset, row_image

log = logging.getLogger(__name__)

SUBSETS = {
    "whatsup-a": "Controlled_Images_A",
    "whatsup-b": "Controlled_Images_B",
    "coco-spatial-one": "COCO_QA_one_obj",
    "coco-spatial-two": "COCO_QA_two_obj",
    "gqa-spatial-one": "VG_QA_one_obj",
    "gqa-spatial-two": "VG_QA_two_obj",
}
_CONTROLLED = {"whatsup-a": ("A", "whatsup-b"), "whatsup-b": ("B", "whatsup-a")}


def subset_name(subset: str) -> str:
    """The registry name for a subset given by name or Hub split name (any case)."""
    wanted = subset.strip().lower()
    for name, split in SUBSETS.items():
        if wanted in (name, split.lower()):
            return name
    valid = ", ".join(f"{n} ({s})" for n, s in SUBSETS.items())
    raise UserError(f"Unknown What'sUp subset {subset!r}. Valid subsets: {valid}.")


def controlled_kind(captions) -> str | None:
    """"A" for on/under options, "B" for in-front/behind options, None when unclear."""
    text = " ".join(captions).lower()
    is_b = "behind" in text or "in front of" in text or "in-front" in text
    is_a = re.search(r"\b(on|under)\b", text) is not None
    if is_a != is_b:
        return "A" if is_a else "B"
    return None


class WhatsUpDataset(StreamedDataset):
    """One What'sUp subset; `subset` is a registry name (whatsup-a, ...) or a Hub split name."""

    repo_id = "ServiceNow/whatsup_all"
    licence = "MIT (What'sUp annotations); images from COCO and GQA under their own terms"
    gated = False

    def __init__(self, data_path: str | None = None, subset: str = "whatsup-a",
                 cache=None) -> None:
        self.name = subset_name(subset)
        self.nominal_split = SUBSETS[self.name]
        self._split: str | None = None
        super().__init__(data_path, cache)

    @property
    def split(self) -> str:
        """The Hub split actually read (checked against the prepositions for whatsup-a/b)."""
        if self._split is None:
            self._split = self.nominal_split  # the check below reads through this split
            if self.name in _CONTROLLED:
                try:
                    self._split = self._cached(("checked-split", self.nominal_split),
                                               self._check_split)
                except BaseException:
                    self._split = None  # unchecked: check again next time
                    raise
        return self._split

    def _check_split(self) -> str:
        expected, other = _CONTROLLED[self.name]
        first = self._records([0]).get(0)  # cached under the named split, like any example
        kind = controlled_kind(first["captions"]) if first else None
        if kind is None or kind == expected:
            return self.nominal_split
        swapped = SUBSETS[other]
        log.warning("%s: the Hub split %s holds the %s prepositions; reading %s instead.",
                    self.name, self.nominal_split, kind, swapped)
        return swapped

    def _record(self, row: dict) -> dict:
        images = row["image_options"]
        images = images if isinstance(images, list) else [images]
        return {"images": [row_image(im) for im in images[:1]],
                "captions": [str(c) for c in row["caption_options"]], "meta": {}}

    def _example(self, index: int, record: dict, images: tuple) -> Example:
        captions = tuple(record["captions"])
        meta = {"correct": 0, "subset": self.name, "split": self.split}
        return Example(index, images, captions, tuple((0, c) for c in range(len(captions))), meta)
