"""COCO, Flickr30K and ImageNet from local webdataset tars in clip-benchmark's layout."""

import io
import logging
import math

import numpy as np
import pytest
from PIL import Image

from engineered_latents.data import get_dataset, hub, streamed
from engineered_latents.data.imagenet import imagenet_classnames, imagenet_templates
from tests.fixtures_data import imagenet_samples, retrieval_samples, write_tars


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _captions(sample: dict) -> list[str]:
    return [line for line in sample["txt"].decode().splitlines() if line]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    samples = retrieval_samples(36, "jpg")
    write_tars(root, samples, per_shard=3)  # 12 shards: 0.tar .. 11.tar (10 sorts before 2)
    return root, samples


@pytest.fixture
def opened(monkeypatch):
    """The data files each streamed read was given."""
    calls = []
    original = hub.open_files
    monkeypatch.setattr(hub, "open_files",
                        lambda b, s, files: calls.append(list(files)) or original(b, s, files))
    return calls


def test_coco_records_and_all_captions(coco):
    root, samples = coco
    first = get_dataset("coco", str(root))
    every = get_dataset("coco", str(root), all_captions=True)
    assert first.size() == 36
    for a, b in zip(first.load([0, 13, 35]), every.load([0, 13, 35])):
        sample = samples[a.index]
        assert a.captions == b.captions == tuple(_captions(sample))  # blank line dropped
        assert len(a.captions) >= 3
        assert a.pairs == ((0, 0),)
        assert b.pairs == tuple((0, c) for c in range(len(b.captions)))
        assert a.meta == {"key": f"s{a.index:07d}"}
        assert np.array_equal(np.asarray(a.images[0]), _decoded(sample["jpg"]))


def test_numeric_shard_order_and_slices(coco):
    root, samples = coco
    ds = get_dataset("coco", str(root))
    # 10.tar sorts before 2.tar as text; the order must still be the writer's.
    examples = ds.load([5, 6, 31, 7])
    assert [ex.index for ex in examples] == [5, 6, 31, 7]
    assert [ex.captions[0] for ex in examples] == [_captions(samples[i])[0]
                                                  for i in (5, 6, 31, 7)]


def test_late_start_skips_earlier_shards(coco, opened):
    root, samples = coco
    examples = get_dataset("coco", str(root)).load([31, 33])
    assert [ex.captions[0] for ex in examples] == [_captions(samples[i])[0] for i in (31, 33)]
    assert len(opened) == 1
    assert [f.rsplit("/", 1)[-1] for f in opened[0]] == ["10.tar", "11.tar"]


def test_start_found_by_key_probes_when_counts_unknown(coco, opened, monkeypatch):
    """The Hub path: shard starts from the first sample key of O(log n) shard headers."""
    root, samples = coco
    reads = []
    original = hub.read_head
    monkeypatch.setattr(hub, "read_head", lambda url, size=512: reads.append(url)
                        or original(url, size))
    monkeypatch.setattr(streamed.WebDatasetSplit, "_shard_starts", lambda self, shards: None)
    examples = get_dataset("coco", str(root)).load([22, 24])
    assert [ex.captions[0] for ex in examples] == [_captions(samples[i])[0] for i in (22, 24)]
    assert opened[0][0].endswith("/7.tar")  # 22 // 3
    assert len(reads) <= math.ceil(math.log2(12)) + 1


def test_keys_that_are_not_indices_fall_back_to_shard_zero(tmp_path, opened, monkeypatch):
    samples = retrieval_samples(9, "jpg")
    write_tars(tmp_path, samples, per_shard=3, key_format="img%03d_x")  # no trailing index
    monkeypatch.setattr(streamed.WebDatasetSplit, "_shard_starts", lambda self, shards: None)
    examples = get_dataset("coco", str(tmp_path)).load([7])
    assert examples[0].captions[0] == _captions(samples[7])[0]
    assert opened[0][0].endswith("/0.tar")


def test_find_shard_binary_search():
    starts = [0, 3, 6, 10, 10, 14, 20]
    probes = []

    def first(k):
        probes.append(k)
        return starts[k]

    assert streamed.find_shard(len(starts), 0, first) == (0, 0)
    assert streamed.find_shard(len(starts), 12, first) == (4, 10)
    assert streamed.find_shard(len(starts), 25, first) == (6, 20)
    assert streamed.find_shard(3, 5, lambda k: [4, 8, 12][k]) is None  # shard 0 must start at 0


def test_flickr_webp(tmp_path):
    samples = retrieval_samples(5, "webp", seed=1)
    write_tars(tmp_path, samples, per_shard=2)
    ds = get_dataset("flickr30k", str(tmp_path), all_captions=True)
    assert ds.size() == 5
    for ex in ds.load(range(5)):
        assert ex.captions == tuple(_captions(samples[ex.index]))
        assert np.array_equal(np.asarray(ex.images[0]), _decoded(samples[ex.index]["webp"]))


def test_corrupt_image_skipped_and_reported(tmp_path, caplog):
    samples = retrieval_samples(6, "jpg")
    samples[2]["jpg"] = b"this is not a jpeg"
    samples[4]["jpg"] = samples[4]["jpg"][:40]  # truncated
    write_tars(tmp_path, samples, per_shard=4)
    ds = get_dataset("coco", str(tmp_path))
    with caplog.at_level(logging.WARNING):
        examples = ds.load(range(6))
    assert [ex.index for ex in examples] == [0, 1, 3, 5]
    assert [s["index"] for s in ds.skipped] == [2, 4]
    assert all(s["reason"] for s in ds.skipped)
    assert ds.warnings and "#2" in ds.warnings[0] and "#4" in ds.warnings[0]
    assert "Skipped 2" in caplog.text
    again = get_dataset("coco", str(tmp_path))
    assert [ex.index for ex in again.load([2, 3])] == [3]  # from the cache, still skipped
    assert [s["index"] for s in again.skipped] == [2]


def test_imagenet_labels_and_prompt(tmp_path):
    labels = [0, 1, 999, 417, 5]
    samples = imagenet_samples(labels)
    write_tars(tmp_path, samples, per_shard=2)
    ds = get_dataset("imagenet", str(tmp_path))
    names = imagenet_classnames()
    assert len(names) == 1000 and len(imagenet_templates()) == 80
    for ex in ds.load(range(5)):
        label = labels[ex.index]
        assert ex.meta["label"] == label and ex.meta["classname"] == names[label]
        assert ex.captions == (f"a photo of a {names[label]}.",) and ex.pairs == ((0, 0),)
        assert np.array_equal(np.asarray(ex.images[0]), _decoded(samples[ex.index]["webp"]))
