"""SugarCrepe and ARO read through `datasets` from fixture copies in their published schemas."""

import numpy as np
import pytest
from fixtures_data import (
    pattern,
    write_aro_order,
    write_aro_pairs,
    write_parquet,
    write_sugarcrepe,
)

from engineered_latents.data import describe_datasets, get_dataset
from engineered_latents.data.aro import crop_to_box
from engineered_latents.errors import UserError

SUGARCREPE = ["sugarcrepe-add-obj", "sugarcrepe-add-att", "sugarcrepe-replace-obj",
              "sugarcrepe-replace-att", "sugarcrepe-replace-rel", "sugarcrepe-swap-obj",
              "sugarcrepe-swap-att"]
ARO = ["aro-vg-relation", "aro-vg-attribution", "aro-coco-order", "aro-flickr-order"]


def test_the_contract_names_are_registered_with_their_hub_ids():
    rows = {r["name"]: r for r in describe_datasets()}
    for name in SUGARCREPE:
        subset = name.removeprefix("sugarcrepe-").replace("-", "_")
        assert rows[name]["hub_id"] == f"HuggingFaceM4/SugarCrepe_{subset}"
        assert rows[name]["split"] == "test" and not rows[name]["gated"]
    assert rows["sugarcrepe-add-obj"]["size"] == 2062
    assert rows["aro-vg-relation"]["hub_id"] == "gowitheflow/ARO-Visual-Relation"
    assert rows["aro-vg-relation"]["size"] == 23937
    assert rows["aro-vg-attribution"]["hub_id"] == "gowitheflow/ARO-Visual-Attribution"
    assert rows["aro-coco-order"]["hub_id"] == "gowitheflow/ARO-COCO-order"
    assert rows["aro-flickr-order"]["hub_id"] == "gowitheflow/ARO-Flickr-Order"


def test_sugarcrepe_examples_have_the_positive_first(tmp_path):
    rows = write_sugarcrepe(tmp_path, n=5)
    ds = get_dataset("sugarcrepe-replace-rel", str(tmp_path), cache=False)
    assert ds.size() == 5 and ds.identity().startswith("local:")
    examples = ds.load([4, 1])
    assert [ex.index for ex in examples] == [4, 1]
    for ex in examples:
        row = rows[ex.index]
        assert ex.captions == tuple(row["tested_labels"])
        assert ex.pairs == ((0, 0), (0, 1))
        assert ex.meta == {"correct": 0, "subset": "sugarcrepe-replace-rel",
                           "tag": "replace-rel", "family": "replace", "label_checked": True}
        assert np.array_equal(np.asarray(ex.images[0]), np.asarray(row["image"]))


def test_a_row_whose_classlabel_disagrees_with_tested_labels_is_refused(tmp_path):
    rows = write_sugarcrepe(tmp_path, n=6, mismatch=(2, 4))
    ds = get_dataset("sugarcrepe-add-att", str(tmp_path), cache=False)
    examples = ds.load(range(6))
    assert [ex.index for ex in examples] == [0, 1, 3, 5]
    assert [s["index"] for s in ds.skipped] == [2, 4]
    reason = ds.skipped[0]["reason"]
    assert "refused" in reason and rows[2]["tested_labels"][1] in reason
    assert ds.warnings and "#2" in ds.warnings[0]


def test_aro_relation_keeps_relation_and_box_and_crops_like_aro(tmp_path):
    rows = write_aro_pairs(tmp_path, n=8)
    ds = get_dataset("aro-vg-relation", str(tmp_path), cache=False)
    ex3, ex5 = ds.load([3, 5])
    for ex in (ex3, ex5):
        row = rows[ex.index]
        assert ex.captions == (row["true_caption"], row["false_caption"])
        assert ex.meta["relation"] == row["tag"] and ex.meta["bbox"] == row["bbox"]
        assert ex.meta["crop"] == "applied"
        x, y, w, h = row["bbox"]
        expected = np.asarray(row["image"])[y:y + h, x:x + w]
        assert np.array_equal(np.asarray(ex.images[0]), expected)


def test_crop_rules():
    image = pattern((40, 30))
    assert crop_to_box(image, [0, 0, 40, 30])[1] == "image already the box"
    assert crop_to_box(image, [30, 0, 20, 10])[1] == "box outside the image: not applied"
    cropped, what = crop_to_box(image, [1, 2, 10, 5])
    assert what == "applied" and cropped.size == (10, 5)


def test_aro_attribution_joins_the_attribute_pair(tmp_path):
    write_aro_pairs(tmp_path, n=4, column="attributes", tags=["white_black", "big_small"],
                    bbox=False)
    examples = get_dataset("aro-vg-attribution", str(tmp_path), cache=False).load(range(4))
    assert [ex.meta.get("attribute") for ex in examples] == ["white_black", "big_small"] * 2
    assert all("bbox" not in ex.meta for ex in examples)


def test_aro_order_has_five_captions_correct_first(tmp_path):
    rows = write_aro_order(tmp_path, n=3)
    (ex,) = get_dataset("aro-flickr-order", str(tmp_path), cache=False).load([1])
    assert ex.captions == tuple(rows[1]["captions"]) and len(ex.captions) == 5
    assert ex.pairs == tuple((0, c) for c in range(5))


def test_a_repository_with_other_columns_names_the_columns_found(tmp_path):
    import datasets

    features = datasets.Features({"image": datasets.Image(),
                                  "caption": datasets.Value("string")})
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet",
                  {"image": [{"bytes": b"x", "path": "a.png"}], "caption": ["hello"]}, features)
    with pytest.raises(UserError, match=r"no true caption column.*found are: caption, image"):
        get_dataset("aro-vg-relation", str(tmp_path), cache=False).load([0])
    with pytest.raises(UserError, match=r"no caption column.*tested_labels.*caption, image"):
        get_dataset("sugarcrepe-swap-obj", str(tmp_path), cache=False).load([0])


def test_label_names_from_classlabel_text_or_nothing():
    from engineered_latents.data.streamed import Unusable
    from engineered_latents.data.sugarcrepe import _label_name

    assert _label_name(1, ["a", "b"]) == "b"
    assert _label_name("a cat", None) == "a cat"
    assert _label_name(1, None) is None  # no ClassLabel names: cannot be checked
    with pytest.raises(Unusable, match="outside its 2 ClassLabel names"):
        _label_name(2, ["a", "b"])
