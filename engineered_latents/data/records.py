"""The record type every dataset adapter yields, so cuts and benchmarks see one interface."""

from __future__ import annotations

from dataclasses import dataclass, field

from PIL import Image


@dataclass(frozen=True)
class Example:
    """One dataset example: its images, its captions, and which (image, caption) pairs it forms.

    - Winoground-style: images (i0, i1), captions (c0, c1), pairs ((0, 0), (1, 1)).
    - What'sUp: one image, the caption options (correct first), pairs ((0, 0), (0, 1), ...).
    - Retrieval: one image with all its captions, pairs ((0, 0),) by default.
    - ImageNet: one image, one prompt caption, `meta["label"]` the class index.
    """

    index: int  # position in the dataset split
    images: tuple[Image.Image, ...]
    captions: tuple[str, ...]
    pairs: tuple[tuple[int, int], ...]  # (image index, caption index) into the two tuples above
    meta: dict = field(default_factory=dict, compare=False)

    def crossed(self) -> Example:
        """The same example with every image x caption combination as a pair."""
        pairs = tuple((i, c) for i in range(len(self.images)) for c in range(len(self.captions)))
        ordered = self.pairs + tuple(p for p in pairs if p not in self.pairs)
        return Example(self.index, self.images, self.captions, ordered, self.meta)
