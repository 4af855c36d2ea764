"""Winoground and What'sUp read through `datasets` from local parquet copies (--data-path)."""

import numpy as np
import pytest

from engineered_latents.data import get_dataset, hub, resolve_indices
from engineered_latents.data.whatsup import SUBSETS, controlled_kind
from engineered_latents.errors import UserError
from tests.fixtures_data import whatsup_rows, write_whatsup, write_winoground


def _rgb(image):
    """What the normaliser must give for a fixture image (RGBA over white, L replicated)."""
    pixels = np.asarray(image)
    if image.mode == "RGBA":
        return np.where(pixels[..., 3:] == 255, pixels[..., :3], 255).astype(np.uint8)
    if image.mode == "L":
        return np.repeat(pixels[..., None], 3, axis=2)
    return pixels


@pytest.fixture(scope="module")
def wino(tmp_path_factory):
    root = tmp_path_factory.mktemp("winoground")
    return root, write_winoground(root, n=6, rgba_index=1)


@pytest.fixture(scope="module")
def whatsup(tmp_path_factory):
    root = tmp_path_factory.mktemp("whatsup")
    # As on the Hub copy (per the issue): the "A" split holds the in-front/behind set.
    splits = {"Controlled_Images_A": whatsup_rows("B", 6, seed=1),
              "Controlled_Images_B": whatsup_rows("A", 5, seed=2),
              "COCO_QA_one_obj": whatsup_rows("two", 4, seed=3),
              "VG_QA_two_obj": whatsup_rows("two", 3, seed=4)}
    write_whatsup(root, splits)
    return root, splits


def test_winoground_records_match_fixture(wino):
    root, rows = wino
    ds = get_dataset("winoground", str(root))
    assert ds.size() == 6 and ds.split == "test" and ds.identity().startswith("local:")
    examples = ds.load(range(6))
    assert [ex.index for ex in examples] == list(range(6))
    for ex, row in zip(examples, rows):
        assert ex.captions == (row["caption_0"], row["caption_1"])
        assert ex.pairs == ((0, 0), (1, 1))
        assert ex.meta == {k: row[k] for k in ("id", "tag", "secondary_tag", "num_main_preds",
                                              "collapsed_tag")}
        for image, source in zip(ex.images, (row["image_0"], row["image_1"])):
            assert image.mode == "RGB"
            assert np.array_equal(np.asarray(image), _rgb(source))
    assert rows[1]["image_0"].mode == "RGBA"  # the RGBA one was composited (checked above)


def test_winoground_slicing(wino):
    root, rows = wino
    ds = get_dataset("winoground", str(root))
    chosen = resolve_indices(ds.size(), start=2, count=3)
    assert [ex.index for ex in ds.load(chosen)] == [2, 3, 4]
    picked = ds.load(resolve_indices(ds.size(), indices=[5, 0, 3]))
    assert [ex.index for ex in picked] == [5, 0, 3]
    assert [ex.captions[0] for ex in picked] == [rows[i]["caption_0"] for i in (5, 0, 3)]
    with pytest.raises(UserError, match="has 6 examples"):
        resolve_indices(ds.size(), start=4, count=3)
    with pytest.raises(UserError, match="EL_MAX_COUNT"):
        resolve_indices(ds.size(), start=0, count=5, max_count=4)


def test_second_load_comes_from_the_cache(wino, monkeypatch):
    root, _ = wino
    calls = []
    original = hub.open_split
    monkeypatch.setattr(hub, "open_split", lambda *a, **k: calls.append(a) or original(*a, **k))
    first = get_dataset("winoground", str(root)).load([2, 4])
    assert len(calls) == 1
    again = get_dataset("winoground", str(root)).load([4, 2])  # a new adapter, same cache
    assert len(calls) == 1
    assert [ex.index for ex in again] == [4, 2]
    assert np.array_equal(np.asarray(again[1].images[0]), np.asarray(first[0].images[0]))
    get_dataset("winoground", str(root)).load([2, 3])  # only 3 is missing: one more read
    assert len(calls) == 2


def test_changed_local_copy_changes_identity(tmp_path):
    write_winoground(tmp_path, n=2)
    before = get_dataset("winoground", str(tmp_path)).identity()
    write_winoground(tmp_path, n=3)
    assert get_dataset("winoground", str(tmp_path)).identity() != before


def test_not_a_copy_of_the_dataset(whatsup):
    root, _ = whatsup
    with pytest.raises(UserError, match="no split 'test'"):
        get_dataset("winoground", str(root)).load([0])


def test_data_path_must_be_a_folder(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        get_dataset("winoground", str(tmp_path / "missing"))


def test_whatsup_options_in_order_correct_first(whatsup):
    root, splits = whatsup
    ds = get_dataset("coco-spatial-one", str(root))
    assert ds.split == "COCO_QA_one_obj" and ds.size() == 4
    for ex, row in zip(ds.load(range(4)), splits["COCO_QA_one_obj"]):
        assert ex.captions == tuple(row["captions"])
        assert ex.pairs == ((0, 0), (0, 1))
        assert ex.meta["correct"] == 0
        assert len(ex.images) == 1 and ex.images[0].mode == "RGB"
        assert np.array_equal(np.asarray(ex.images[0]), _rgb(row["image"]))
    assert any(r["image"].mode == "L" for r in splits["COCO_QA_one_obj"])  # grayscale covered


def test_whatsup_subset_checked_against_prepositions(whatsup):
    root, splits = whatsup
    a = get_dataset("whatsup-a", str(root))
    assert a.split == "Controlled_Images_B"  # the on/under rows, whatever the split is called
    assert a.size() == 5
    examples = a.load(range(5))
    assert [ex.captions for ex in examples] == [tuple(r["captions"])
                                                for r in splits["Controlled_Images_B"]]
    assert all(controlled_kind(ex.captions) == "A" for ex in examples)
    assert all(len(ex.pairs) == 4 for ex in examples)
    b = get_dataset("whatsup-b", str(root))
    assert b.split == "Controlled_Images_A" and b.size() == 6
    assert controlled_kind(b.load([3])[0].captions) == "B"


def test_whatsup_subset_kept_when_names_are_right(tmp_path):
    write_whatsup(tmp_path, {"Controlled_Images_A": whatsup_rows("A", 4),
                             "Controlled_Images_B": whatsup_rows("B", 4)})
    assert get_dataset("whatsup-a", str(tmp_path)).split == "Controlled_Images_A"
    assert get_dataset("whatsup-b", str(tmp_path)).split == "Controlled_Images_B"


def test_whatsup_unknown_subset_lists_valid_names(whatsup):
    from engineered_latents.data.whatsup import WhatsUpDataset

    with pytest.raises(UserError) as info:
        WhatsUpDataset(subset="whatsup-c")
    assert all(name in str(info.value) for name in SUBSETS)
    assert WhatsUpDataset(subset="VG_QA_two_obj").name == "gqa-spatial-two"
    with pytest.raises(UserError, match="Available:.*whatsup-a"):
        get_dataset("whatsup-c")


def test_whatsup_split_missing_from_copy(whatsup):
    root, _ = whatsup
    with pytest.raises(UserError, match="VG_QA_one_obj"):
        get_dataset("gqa-spatial-one", str(root)).size()
