"""The dataset registry: names, options, and the rows of the `list` command."""

import pytest

from engineered_latents.data import dataset_names, describe_datasets, get_dataset
from engineered_latents.errors import UserError

NAMES = {"demo", "winoground", "whatsup-a", "whatsup-b", "coco-spatial-one", "coco-spatial-two",
         "gqa-spatial-one", "gqa-spatial-two", "coco", "flickr30k", "imagenet", "upload",
         "sugarcrepe-add-obj", "sugarcrepe-add-att", "sugarcrepe-replace-obj",
         "sugarcrepe-replace-att", "sugarcrepe-replace-rel", "sugarcrepe-swap-obj",
         "sugarcrepe-swap-att", "aro-vg-relation", "aro-vg-attribution", "aro-coco-order",
         "aro-flickr-order"}


def test_every_dataset_is_registered():
    assert set(dataset_names()) == NAMES


def test_describe_needs_no_data_or_network():
    rows = {r["name"]: r for r in describe_datasets()}
    assert set(rows) == NAMES
    assert rows["winoground"]["gated"] and rows["winoground"]["size"] == 400
    assert rows["winoground"]["hub_id"] == "facebook/winoground"
    assert rows["coco"]["size"] == 5000 and rows["flickr30k"]["size"] == 1000
    assert rows["imagenet"]["size"] == 50000 and rows["demo"]["size"] == 24
    assert rows["whatsup-b"]["split"] == "Controlled_Images_B"
    assert rows["coco"]["options"] == ["all_captions"]
    assert all(r["licence"] for r in rows.values())
    assert not any(r["gated"] for n, r in rows.items() if n != "winoground")


def test_options_checked():
    assert get_dataset("coco", all_captions=True).all_captions
    assert get_dataset("demo", all_captions=False, cache=None).name == "demo"  # not applicable
    with pytest.raises(UserError, match="'all_captions' does not apply to dataset 'imagenet'"):
        get_dataset("imagenet", all_captions=True)
