"""SugarCrepe (Hsieh et al. 2023): one COCO val2017 image, a positive and a hard negative caption.

One Hub repository per subset, `HuggingFaceM4/SugarCrepe_<subset>`, split `test`; registry names
`sugarcrepe-add-obj`, ... (`SUBSETS`). Columns, as the script that published them wrote them (not
read from a download): `image`, `tested_labels` = [positive caption, negative caption], and
`true_label`, a ClassLabel whose *name* is the positive caption (its names are every caption of
all subsets). The name is checked against `tested_labels[0]`: a row where they disagree is
refused (skipped and listed in `adapter.skipped`), since which caption is correct is then unknown.
A `true_label` stored as plain text is compared the same way; an integer without ClassLabel names
cannot be checked and is accepted (`meta["label_checked"]` says which).

Revisions are pinned on first use, like every Hub dataset here (`hub.pinned_revision`); no sha is
hard-coded. Example: images (the image,), captions (positive, negative), pairs ((0, 0), (0, 1)),
meta {"correct": 0, "subset", "tag", "family", "label_checked"}.
"""

from __future__ import annotations

from collections.abc import Iterator

from .columns import first_image, pick
from .records import Example
from .streamed import StreamedDataset, Unusable, row_image

SUBSETS = ("add_obj", "add_att", "replace_obj", "replace_att", "replace_rel", "swap_obj",
           "swap_att")
FAMILIES = ("replace", "swap", "add")
# Rows per subset as REFERENCE.md gives them (from the publishing script); others are counted.
_KNOWN_SIZES = {"add_obj": 2062, "add_att": 692, "replace_obj": 1652, "replace_att": 788,
                "replace_rel": 1406}
_LABEL_NAMES = "__true_label_names"  # ClassLabel names, attached to each streamed row


def dataset_name(subset: str) -> str:
    """`add_obj` -> `sugarcrepe-add-obj`."""
    return "sugarcrepe-" + subset.replace("_", "-")


def repo_id(subset: str) -> str:
    return f"HuggingFaceM4/SugarCrepe_{subset}"


class SugarCrepeDataset(StreamedDataset):
    """One SugarCrepe subset (subclassed per subset by `subset_classes`)."""

    subset = ""
    split = "test"
    licence = ("MIT (SugarCrepe captions, per its repository); images from COCO val2017 under "
               "their own terms")
    gated = False
    layout = "data/test-00000-of-00001.parquet (columns image, tested_labels, true_label)"

    def _rows(self, indices: list[int]) -> Iterator[tuple[int, dict]]:
        first, last = indices[0], indices[-1]
        stream = self._open_split(self.split)
        names = _label_names(stream.features)
        for index, row in enumerate(stream.skip(first).take(last - first + 1), start=first):
            yield index, {**row, _LABEL_NAMES: names}

    def _record(self, row: dict) -> dict:
        image = row[pick(row, ("image", "images"), "image", self.name, self.source)]
        captions = row[pick(row, ("tested_labels",), "caption", self.name, self.source)]
        label = row[pick(row, ("true_label",), "label", self.name, self.source)]
        if not isinstance(captions, (list, tuple)) or len(captions) != 2:
            raise Unusable(f"tested_labels is {captions!r}, not [positive, negative]")
        positive, negative = (str(c) for c in captions)
        name = _label_name(label, row.get(_LABEL_NAMES))
        if name is not None and name.strip() != positive.strip():
            raise Unusable(f"refused: true_label names {name!r} but tested_labels[0] is "
                           f"{positive!r}, so which caption is correct is unknown")
        return {"images": [row_image(first_image(image))], "captions": [positive, negative],
                "meta": {"label_checked": name is not None}}

    def _example(self, index: int, record: dict, images: tuple) -> Example:
        tag = self.subset.replace("_", "-")
        meta = {"correct": 0, "subset": self.name, "tag": tag, "family": tag.split("-")[0],
                **record["meta"]}
        return Example(index, images[:1], tuple(record["captions"]), ((0, 0), (0, 1)), meta)


def _label_names(features) -> list[str] | None:
    feature = (features or {}).get("true_label")
    names = getattr(feature, "names", None)
    return list(names) if names else None


def _label_name(label, names: list[str] | None) -> str | None:
    """The caption `true_label` names: its ClassLabel name, its text, or None (uncheckable)."""
    if isinstance(label, str):
        return label
    if isinstance(label, bool) or not isinstance(label, int) or names is None:
        return None
    if not 0 <= label < len(names):
        raise Unusable(f"true_label {label} is outside its {len(names)} ClassLabel names")
    return names[label]


def subset_classes() -> dict[str, type]:
    """Registry name -> adapter class, one per subset (each with its own repo_id and size)."""
    return {dataset_name(s): type(f"SugarCrepe_{s}", (SugarCrepeDataset,), {
        "name": dataset_name(s), "subset": s, "repo_id": repo_id(s),
        "known_size": _KNOWN_SIZES.get(s), "__doc__": f"SugarCrepe {s} ({repo_id(s)})."})
        for s in SUBSETS}
