"""Streamed training data (coco/flickr30k train splits in webdataset tars, read through the
adapter's reader): the seeded shuffle buffer, each process's share of the shards, the replay to a
resume point, and a bad image inside a batch."""

import random

import pytest

from engineered_latents.cache import Cache
from engineered_latents.finetune import TrainSpec
from engineered_latents.finetune.data import train_pairs
from engineered_latents.finetune.stream import StreamCollate, shuffle_buffer
from tests.fixtures_data import retrieval_samples, write_tars

N = 12  # examples; retrieval_samples: image i has 3 + i % 3 captions


def _coco(root, per_shard):
    write_tars(root, retrieval_samples(N), per_shard=per_shard, split="train")
    write_tars(root, retrieval_samples(6, seed=1), per_shard=5, split="test")
    return str(root)


@pytest.fixture(scope="module")
def coco3(tmp_path_factory):  # shards of 5, 5, 2 examples
    return _coco(tmp_path_factory.mktemp("wds3") / "wds_mscoco_captions", 5)


@pytest.fixture(scope="module")
def coco4(tmp_path_factory):  # shards of 3 examples each
    return _coco(tmp_path_factory.mktemp("wds4") / "wds_mscoco_captions", 3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return Cache(str(tmp_path_factory.mktemp("stream_cache")))


def _stream(tmp_path, cache, data_path, **kw):
    spec = TrainSpec(**{**dict(out=str(tmp_path / "out"), dataset="coco", data_path=data_path,
                               batch_size=4, val_count=4, steps=2, track="none",
                               shuffle_buffer=8), **kw})
    return train_pairs(spec, cache)[0]


def _keys(items):
    return [(i, c) for i, c, *_ in items]


ALL = sorted((i, c) for i in range(N) for c in range(3 + i % 3))


def test_shuffle_buffer_is_a_seeded_windowed_permutation():
    items = list(range(200))
    out = list(shuffle_buffer(items, 16, random.Random(1)))
    assert sorted(out) == items and out != items
    assert out == list(shuffle_buffer(items, 16, random.Random(1)))
    assert out != list(shuffle_buffer(items, 16, random.Random(2)))
    # an item enters the buffer at its position and one leaves per item read: it cannot come
    # out more than 16 places early
    assert all(out.index(x) >= x - 16 for x in items)
    assert list(shuffle_buffer(items, 0, random.Random(1))) == items


def test_streamed_order_is_seeded_and_a_permutation_of_the_pairs(tmp_path, cache, coco3):
    train = _stream(tmp_path, cache, coco3)
    in_order = _keys(train.pairs_in_order())
    assert in_order == [(i, c) for i in range(N) for c in range(3 + i % 3)]  # file order
    epoch0 = _keys(train.epoch(0))
    assert sorted(epoch0) == ALL and epoch0 != in_order  # shuffled, every pair once
    again = _stream(tmp_path, cache, coco3)  # built anew: the same seed, the same order
    assert _keys(again.epoch(0)) == epoch0
    assert _keys(train.epoch(1)) != epoch0  # each epoch its own draw
    assert _keys(_stream(tmp_path, cache, coco3, seed=7).epoch(0)) != epoch0
    assert train.n_pairs() == len(ALL) == 48
    items = next(iter(train.epoch(0)))
    assert isinstance(items[2], bytes) and items[3].startswith("caption")  # still encoded


@pytest.mark.parametrize("data, world, mode", [("coco4", 2, "shard"), ("coco3", 2, "index"),
                                               ("coco3", 3, "shard")])
def test_process_shares_are_disjoint_and_cover_the_split(tmp_path, cache, data, world, mode,
                                                         request):
    train = _stream(tmp_path, cache, request.getfixturevalue(data))
    assert train.mode(world) == mode
    shares = [_keys(train.epoch(0, rank, world)) for rank in range(world)]
    seen = [set(s) for s in shares]
    assert sum(len(s) for s in shares) == len(ALL)  # no pair twice
    assert set().union(*seen) == set(ALL)
    for rank, share in enumerate(shares):
        indices = {i for i, _ in share}
        if mode == "index":
            assert all(i % world == rank for i in indices)
        else:  # by shard: process r has exactly the examples of shards r, r + W, ...
            per = 3 if data == "coco4" else 5
            assert {i // per for i in indices} == set(range(rank, -(-N // per), world))


def test_start_count_and_held_out_examples_select_the_stream(tmp_path, cache, coco3):
    train = _stream(tmp_path, cache, coco3, start=3, count=6)
    assert train.selected == [(0, 0), (1, 5)]  # the shards holding examples 3..8
    assert sorted({i for i, _ in _keys(train.epoch(0))}) == list(range(3, 9))
    assert train.n_pairs() == sum(3 + i % 3 for i in range(3, 9))
    held = _stream(tmp_path, cache, coco3, val_fraction=0.25)
    kept = {i for i, _ in _keys(held.epoch(0))}
    assert len(held.exclude) == 3 and not kept & held.exclude and len(kept) == N - 3
    assert held.n_pairs() == sum(3 + i % 3 for i in kept)


def test_micro_batches_replay_to_a_resume_point(tmp_path, cache, coco3):
    train = _stream(tmp_path, cache, coco3)
    stream = train.micro_batches(5)
    whole = [_keys(next(stream)) for _ in range(14)]  # 70 pairs: into the second epoch
    resumed = train.micro_batches(5, first=9)
    assert [_keys(next(resumed)) for _ in range(5)] == whole[9:]
    flat = [k for b in whole for k in b]
    assert sorted(flat[:48]) == ALL and flat[48:] == _keys(train.epoch(1))[:22]


def test_an_undecodable_image_takes_the_previous_pair_of_its_batch(tmp_path, cache, coco3):
    train = _stream(tmp_path, cache, coco3)
    items = list(train.pairs_in_order())[:4]
    items[2] = (*items[2][:2], b"not an image", items[2][3])
    collate = StreamCollate(train, None, None)
    images, captions = collate.pairs(items)
    assert len(images) == 4 and images[2] is images[1] and captions[2] == captions[1]
    assert train.skipped_images == 1


def test_collate_keeps_each_images_pixels_and_gives_the_same_batches():
    import torch

    from engineered_latents.finetune.data import Collate, DemoScenes
    from engineered_latents.models import _image_processor

    pairs = DemoScenes("train", 6).pairs()
    processor = _image_processor(None)
    calls = []
    source = pairs.source
    pairs.source = lambda key: calls.append(key) or source(key)
    cached, plain = Collate(pairs, processor, None), Collate(pairs, processor, None, 0)
    first = cached.pixels([0, 1, 2, 0])
    assert calls == [0, 1, 2]  # each image drawn and processed once, even twice in a batch
    again = cached.pixels([2, 3, 0, 1])
    assert calls == [0, 1, 2, 3]  # only the new one
    assert torch.equal(again, plain.pixels([2, 3, 0, 1]))  # bit-identical to no cache
    assert torch.equal(first[3], first[0])
    assert plain._bytes == 0 and cached._bytes == 4 * 3 * 224 * 224 * 4


def test_reusing_batches_share_one_buffer_and_equal_fresh_batches():
    """Collate.reusing (the training loop's in-line batches) writes each batch's pixels into
    the same buffer, and every batch equals the one `__call__` builds (the oracle) at the time
    it is built; a new batch size gets a buffer of its own shape."""
    import torch

    from engineered_latents.finetune.data import Collate, DemoScenes
    from engineered_latents.models import _image_processor, clip_tokenizer_from_vocab

    pairs = DemoScenes("train", 6).pairs()
    processor, tokenizer = _image_processor(None), clip_tokenizer_from_vocab()
    collate, plain = Collate(pairs, processor, tokenizer), Collate(pairs, processor, tokenizer)
    cold = collate.reusing([0, 1])  # nothing kept yet: a fresh batch
    assert torch.equal(cold["pixel_values"], plain([0, 1])["pixel_values"])
    collate.pixels([2, 3, 4, 5])
    first = collate.reusing([0, 1, 2, 3])
    kept = first["pixel_values"].clone()
    second = collate.reusing([5, 4, 3, 2])
    assert second["pixel_values"].data_ptr() == first["pixel_values"].data_ptr()
    assert torch.equal(kept, plain([0, 1, 2, 3])["pixel_values"])
    for rows, batch in (([5, 4, 3, 2], second), ([1, 0], collate.reusing([1, 0]))):
        want = plain(rows)
        assert batch.keys() == want.keys()
        for key in want:
            assert torch.equal(batch[key], want[key]), (rows, key)
            assert batch[key].dtype == want[key].dtype, key
