"""The upload adapter: a folder of the user's images plus a captions file, or groups."""

import csv
import json

import numpy as np
import pytest

from engineered_latents.data import get_dataset
from engineered_latents.data.upload import UploadDataset
from engineered_latents.errors import UserError
from tests.fixtures_data import pattern


@pytest.fixture
def folder(tmp_path):
    """b.png (RGBA), a.jpg (grayscale), c.webp: sorted order a.jpg, b.png, c.webp."""
    pattern((12, 9), seed=1, mode="RGBA").save(tmp_path / "b.png")
    pattern((10, 10), seed=2, mode="L").save(tmp_path / "a.jpg", quality=95)
    pattern((8, 8), seed=3).save(tmp_path / "c.webp", lossless=True)
    (tmp_path / "notes.md").write_text("not an image")
    return tmp_path


def test_captions_txt_in_sorted_filename_order(folder):
    (folder / "captions.txt").write_text("a gray square\n\na noisy patch\na small tile\n")
    ds = get_dataset("upload", str(folder))
    assert ds.size() == 3 and ds.identity().startswith("upload:")
    examples = ds.load(range(3))
    assert [ex.captions for ex in examples] == [("a gray square",), ("a noisy patch",),
                                                ("a small tile",)]
    assert [ex.meta["files"] for ex in examples] == [["a.jpg"], ["b.png"], ["c.webp"]]
    assert all(ex.images[0].mode == "RGB" and ex.pairs == ((0, 0),) for ex in examples)
    assert examples[1].images[0].size == (12, 9)
    assert np.array_equal(np.asarray(examples[2].images[0]), np.asarray(pattern((8, 8), seed=3)))


def test_captions_txt_count_must_match(folder):
    (folder / "captions.txt").write_text("only one\n")
    with pytest.raises(UserError, match="1 captions but .* 3 images"):
        get_dataset("upload", str(folder))


def test_json_mapping_keeps_file_order_and_several_captions(folder):
    mapping = {"c.webp": "a tile", "a.jpg": ["gray", "a gray square"]}
    (folder / "captions.json").write_text(json.dumps(mapping))
    examples = get_dataset("upload", str(folder)).load([0, 1])
    assert examples[0].captions == ("a tile",) and examples[0].meta["files"] == ["c.webp"]
    assert examples[1].captions == ("gray", "a gray square")
    assert examples[1].pairs == ((0, 0), (0, 1))


def test_csv(folder):
    with (folder / "captions.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerows([["file", "caption"], ["b.png", "one"], ["a.jpg", "two"],
                          ["b.png", "three"]])
    examples = get_dataset("upload", str(folder)).load([0, 1])
    assert examples[0].captions == ("one", "three") and examples[1].captions == ("two",)


def test_groups_winoground_style(folder):
    groups = [{"images": ["a.jpg", "b.png"], "captions": ["gray left", "noise right"],
               "tag": "mine"}]
    (folder / "groups.json").write_text(json.dumps(groups))
    (ex,) = get_dataset("upload", str(folder)).load([0])
    assert len(ex.images) == 2 and ex.captions == ("gray left", "noise right")
    assert ex.pairs == ((0, 0), (1, 1)) and ex.meta["tag"] == "mine" and ex.meta["group"]
    assert ex.crossed().pairs == ((0, 0), (1, 1), (0, 1), (1, 0))


@pytest.mark.parametrize("name, content, expected", [
    ("groups.json", [{"images": ["a.jpg"], "captions": ["x", "y"]}], "1 images but 2 captions"),
    ("groups.json", [{"images": ["zzz.png", "a.jpg"], "captions": ["x", "y"]}], "zzz.png"),
    ("captions.json", {"a.jpg": ""}, "empty"),
    ("captions.json", "just text", "must be an object"),
])
def test_bad_captions_files(folder, name, content, expected):
    (folder / name).write_text(json.dumps(content))
    with pytest.raises(UserError, match=expected):
        get_dataset("upload", str(folder))


def test_missing_captions_file_and_folder(folder, tmp_path):
    with pytest.raises(UserError, match="captions.txt"):
        get_dataset("upload", str(folder))
    with pytest.raises(UserError, match="--data-path"):
        get_dataset("upload")
    with pytest.raises(UserError, match="header row"):
        (folder / "captions.csv").write_text("a.jpg,hello\n")
        get_dataset("upload", str(folder))


def test_named_captions_file(folder):
    (folder / "mine.txt").write_text("x\ny\nz\n")
    assert get_dataset("upload", str(folder), captions="mine.txt").size() == 3


def test_corrupt_upload_skipped(folder):
    (folder / "d.png").write_bytes(b"broken")
    (folder / "captions.txt").write_text("a\nb\nc\nd\n")
    ds = get_dataset("upload", str(folder))
    examples = ds.load(range(4))
    assert [ex.index for ex in examples] == [0, 1, 2]
    assert ds.skipped[0]["index"] == 3 and "d.png" in ds.skipped[0]["reason"]


def test_in_memory_entries():
    image = pattern((6, 6), seed=9, mode="RGBA")
    ds = UploadDataset.from_entries([{"images": [image], "captions": ["x"]},
                                     {"images": [pattern(seed=1), pattern(seed=2)],
                                      "captions": ["l", "r"]}])
    assert ds.size() == 2 and ds.identity().startswith("upload-memory:")
    single, group = ds.load([0, 1])
    assert single.images[0].mode == "RGB" and single.meta["files"] == [None]
    assert group.pairs == ((0, 0), (1, 1))
    with pytest.raises(UserError, match="outside the upload"):
        ds.load([2])
