"""ARO (Yuksekgonul et al. 2023, "When and why vision-language models behave like bags-of-words"):
one image, the correct caption and its perturbations, the correct one first.

- aro-vg-relation: gowitheflow/ARO-Visual-Relation; image, true_caption, false_caption,
  relation_name, bbox
- aro-vg-attribution: gowitheflow/ARO-Visual-Attribution; image, true_caption, false_caption
  (and attributes, if the copy has it)
- aro-coco-order: gowitheflow/ARO-COCO-order; images, correct_caption, hard_text_1..hard_text_4
- aro-flickr-order: gowitheflow/ARO-Flickr-Order; the same as COCO-order

(split `test`; columns from other projects' loaders, not from a download.)
The Flickr id is the one mteb's AROFlickrOrder task reads (seen in its source, not opened here).
Columns are found by candidate names (`columns.pick`); a repository without them stops with a
`UserError` naming the columns it has. Revisions are pinned on first use, like every Hub dataset
here (`hub.pinned_revision`); no sha is hard-coded.

Boxes: the ARO code crops each VG image to the test case's box (`bbox_x, bbox_y, bbox_w,
bbox_h`, "the bounding box that contains the relation") before scoring; it is the region of the
whole relation (subject *and* object), not a box per word, so it is not used for the pointing
game. Whether the Hub copy's images are already cropped is not known here, so: a box is read from
`bbox` ([x, y, w, h] or {x, y, w, h}) or `bbox_x..bbox_h`; an image whose size equals the box's is
taken as already cropped; otherwise, when the box lies inside the image, the image is cropped to
it (ARO's protocol); otherwise it is left whole. `meta["crop"]` says which happened.

Example: images (the image,), captions (correct, negatives...), pairs ((0, 0), (0, 1), ...),
meta {"correct": 0, "subset", and where present "relation", "attribute", "bbox", "crop"}.
"""

from __future__ import annotations

from .columns import first_image, found, numbered, optional, pick
from .records import Example
from .streamed import StreamedDataset, Unusable, row_image

_IMAGE = ("image", "images", "image_options")
_RELATION = ("relation_name", "relation", "predicate")
_ATTRIBUTE = ("attributes", "attribute", "attribute_name")
_BOX_KEYS = ("bbox_x", "bbox_y", "bbox_w", "bbox_h")


class AroDataset(StreamedDataset):
    """One ARO test set; `order` sets have five captions, the others two."""

    split = "test"
    licence = ("MIT (ARO annotations, per mteb's metadata); images from Visual Genome, COCO and "
               "Flickr30k under their own terms")
    gated = False
    order = False

    def _record(self, row: dict) -> dict:
        image = row_image(first_image(row[pick(row, _IMAGE, "image", self.name, self.source)]))
        return {"images": [image], "captions": self._captions(row), "meta": _meta(row)}

    def _captions(self, row: dict) -> list[str]:
        if self.order:
            correct = pick(row, ("correct_caption", "true_caption"), "correct caption",
                           self.name, self.source)
            hard = numbered(row, "hard_text_")
            if not hard:
                pick(row, ("hard_text_1",), "negative caption", self.name, self.source)
            return [str(row[correct])] + [str(row[k]) for k in hard]
        true = pick(row, ("true_caption", "correct_caption"), "true caption", self.name,
                    self.source)
        false = pick(row, ("false_caption",), "false caption", self.name, self.source)
        return [str(row[true]), str(row[false])]

    def _example(self, index: int, record: dict, images: tuple) -> Example:
        meta = {"correct": 0, "subset": self.name, **record["meta"]}
        image = images[0]
        if meta.get("bbox"):
            image, meta["crop"] = crop_to_box(image, meta["bbox"])
        captions = tuple(record["captions"])
        return Example(index, (image,), captions, tuple((0, c) for c in range(len(captions))),
                       meta)


def _meta(row: dict) -> dict:
    meta = {}
    if (key := optional(row, _RELATION)) is not None and row[key] is not None:
        meta["relation"] = str(row[key])
    if (key := optional(row, _ATTRIBUTE)) is not None and row[key] is not None:
        value = row[key]
        meta["attribute"] = "_".join(map(str, value)) if isinstance(value, (list, tuple)) \
            else str(value)
    box = read_box(row)
    if box is not None:
        meta["bbox"] = box
    return meta


def read_box(row: dict) -> list[float] | None:
    """[x, y, w, h] from `bbox` (a list or a dict) or `bbox_x..bbox_h`; None when absent."""
    value = row.get("bbox")
    if isinstance(value, dict):
        value = [value.get(k) for k in ("x", "y", "w", "h")]
    if value is None and all(k in row for k in _BOX_KEYS):
        value = [row[k] for k in _BOX_KEYS]
    if value is None:
        return None
    try:
        box = [float(v) for v in value]
    except (TypeError, ValueError) as e:
        raise Unusable(f"bbox {value!r} is not four numbers (columns: {found(row)})") from e
    if len(box) != 4:
        raise Unusable(f"bbox {value!r} is not [x, y, w, h]")
    return box


def crop_to_box(image, box):
    """(image, what was done): ARO's crop to [x, y, w, h] when the box lies inside the image."""
    x, y, w, h = box
    width, height = image.size
    if w <= 0 or h <= 0:
        return image, "box empty: not applied"
    if abs(width - w) <= 1 and abs(height - h) <= 1:
        return image, "image already the box"
    if x >= 0 and y >= 0 and x + w <= width + 1 and y + h <= height + 1:
        right, bottom = min(width, round(x + w)), min(height, round(y + h))
        return image.crop((round(x), round(y), right, bottom)), "applied"
    return image, "box outside the image: not applied"


def _aro(name: str, repo: str, order: bool = False, size: int | None = None) -> type:
    return type(name.replace("-", "_"), (AroDataset,), {
        "name": name, "repo_id": repo, "order": order, "known_size": size,
        "layout": "data/test-00000-of-00001.parquet (columns image, " + (
            "correct_caption, hard_text_1..4)" if order else "true_caption, false_caption)"),
        "__doc__": f"ARO {name} ({repo})."})


# Sizes: VG-Relation's 23,937 rows as REFERENCE.md gives them; the others are counted.
DATASETS = {
    "aro-vg-relation": _aro("aro-vg-relation", "gowitheflow/ARO-Visual-Relation", size=23937),
    "aro-vg-attribution": _aro("aro-vg-attribution", "gowitheflow/ARO-Visual-Attribution"),
    "aro-coco-order": _aro("aro-coco-order", "gowitheflow/ARO-COCO-order", order=True),
    "aro-flickr-order": _aro("aro-flickr-order", "gowitheflow/ARO-Flickr-Order", order=True),
}
