"""Training data through the registry's adapters: coco/flickr30k train splits in the clip-benchmark
webdataset layout (every caption a pair; validation from test, first caption), upload folders with
a held-out fraction, and the warning for training on a test split."""

import copy
import json

import pytest
from conftest import save_tiny_clip

from engineered_latents.cache import Cache
from engineered_latents.errors import UserError
from engineered_latents.finetune import TrainSpec, fit
from engineered_latents.finetune.data import train_pairs
from tests.fixtures_data import pattern, retrieval_samples, write_tars


@pytest.fixture
def coco(tmp_path):
    root = tmp_path / "wds_mscoco_captions"
    write_tars(root, retrieval_samples(12), per_shard=5, split="train")
    write_tars(root, retrieval_samples(6, seed=1), per_shard=5, split="test")
    return str(root)


def _spec(tmp_path, **kw):
    base = dict(out=str(tmp_path / "out"), batch_size=4, val_count=4, steps=2, track="none")
    return TrainSpec(**{**base, **kw})


def test_coco_train_split_uses_every_caption_and_validates_on_test(tmp_path, coco):
    train, val, warnings = train_pairs(_spec(tmp_path, dataset="coco", data_path=coco),
                                       Cache(str(tmp_path / "cache")))
    # retrieval_samples: image i has 3 + i % 3 captions
    assert len(train) == sum(3 + i % 3 for i in range(12))
    first = list(train.pairs_in_order())[:4]  # (example, caption number, image bytes, caption)
    assert [c for *_, c in first[:3]] == ["caption 0 of image 0", "caption 1 of image 0",
                                          "caption 2 of image 0"]
    assert [(i, c) for i, c, *_ in first] == [(0, 0), (0, 1), (0, 2), (1, 0)]
    assert len(val) == 4 and val.captions[0] == "caption 0 of image 0"
    from engineered_latents.data.images import load_image

    train_image = load_image(first[0][2])
    assert train_image.tobytes() != val.image(0).tobytes()  # test images, not train ones
    assert not warnings
    assert "train" in train.identity and "test" in val.identity


def test_training_on_a_test_split_is_warned_about(tmp_path, coco):
    _, _, warnings = train_pairs(_spec(tmp_path, dataset="coco", data_path=coco, split="test"),
                                 Cache(str(tmp_path / "cache")))
    assert warnings and "contaminated" in warnings[0]


def test_a_short_run_on_coco_train_streams_and_resumes(tmp_path, coco):
    tiny = save_tiny_clip(tmp_path / "tiny", image_size=64, patch_size=16)
    record = fit(_spec(tmp_path, dataset="coco", data_path=coco, model=tiny, lr=1e-3),
                 lambda msg: None)
    assert record["steps_done"] == 2
    assert record["provenance"]["data"]["n_train"] == 48
    assert "each process its own shards" in record["provenance"]["data"]["stream"]
    assert record["val"][-1]["n_val"] == 4

    import threading
    from dataclasses import replace

    from engineered_latents.finetune import checkpoints

    stop = threading.Event()  # set after step 1: a checkpoint, then KeyboardInterrupt
    again = _spec(tmp_path, dataset="coco", data_path=coco, model=tiny, lr=1e-3,
                  out=str(tmp_path / "again"))
    with pytest.raises(KeyboardInterrupt):
        fit(again, lambda msg: None, on_step=lambda step: stop.set(), stop=stop)
    assert [s for s, _ in checkpoints.step_dirs(again.out)] == [1]
    resumed = fit(replace(again, workers=1), lambda msg: None)  # replays the stream to step 1
    assert resumed["history"][1]["loss"] == pytest.approx(record["history"][1]["loss"],
                                                          abs=1e-6)
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in record["history"]]


def test_upload_folder_with_a_held_out_fraction(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    captions = {}
    for i in range(10):
        pattern((16, 16), seed=i).save(folder / f"{i}.png")
        captions[f"{i}.png"] = [f"tile {i}", f"pattern {i}"]
    (folder / "captions.json").write_text(json.dumps(captions))
    spec = _spec(tmp_path, dataset="upload", data_path=str(folder), val_fraction=0.2)
    train, val, _ = train_pairs(spec, Cache(str(tmp_path / "cache")))
    assert len(train) == 16 and len(val) == 2  # 8 images x 2 captions; 2 held out, 1 each
    held = {c.split()[1] for c in val.captions}
    assert not held & {c.split()[1] for c in train.captions}


def test_too_little_data_for_the_batch(tmp_path, coco):
    with pytest.raises(UserError, match="fewer than --batch-size 64"):
        train_pairs(_spec(tmp_path, dataset="coco", data_path=coco, batch_size=64),
                    Cache(str(tmp_path / "cache")))


def test_a_hub_stream_of_unknown_size_needs_steps(tmp_path):
    from types import SimpleNamespace

    from engineered_latents.finetune.setup import schedule_length

    hub_stream = SimpleNamespace(per_epoch=None)  # what a Hub StreamedPairs has
    with pytest.raises(UserError, match="give --steps"):
        schedule_length(_spec(tmp_path, dataset="coco", steps=None, epochs=2), hub_stream)
    with pytest.raises(UserError, match="give --steps"):
        schedule_length(_spec(tmp_path, dataset="coco", warmup="1ep"), hub_stream)
    assert schedule_length(_spec(tmp_path, dataset="coco", steps=5), hub_stream) == (5, 0)
    with pytest.raises(UserError, match="cannot be reached"):  # offline: said, no traceback
        train_pairs(_spec(tmp_path, dataset="coco"), Cache(str(tmp_path / "cache")))


def test_images_are_read_back_when_a_batch_needs_them(tmp_path):
    from engineered_latents.finetune.data import AdapterImages

    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(6):
        pattern((16, 16), seed=i).save(folder / f"{i}.png")
    (folder / "captions.json").write_text(json.dumps({f"{i}.png": [f"tile {i}", f"p {i}"]
                                                      for i in range(6)}))
    train, _, _ = train_pairs(_spec(tmp_path, dataset="upload", data_path=str(folder)),
                              Cache(str(tmp_path / "cache")))
    assert isinstance(train.source, AdapterImages)  # no decoded images held
    first, again = train.image(0), train.image(1)  # pairs 0 and 1: captions of image 0
    assert first.tobytes() == again.tobytes()
    assert train.image(2).tobytes() != first.tobytes()  # pair 2: image 1


def test_validation_on_coco_test_while_training_on_demo(tmp_path, coco):
    spec = _spec(tmp_path, dataset="demo", count=8, val_dataset="coco", val_data_path=coco)
    train, val, _ = train_pairs(spec, Cache(str(tmp_path / "cache")))
    assert len(train) == 8 and len(val) == 4
    assert val.captions[1] == "caption 0 of image 1"  # the test split, first captions


@pytest.mark.parametrize("side", ["right", "left"])
def test_batch_tokens_equal_the_tokenizers_own_padding_and_truncation(side):
    """Collate tokenizes each caption once and pads a batch by hand: the same ids and mask as
    `tokenizer(captions, padding=True, truncation=True)` (the oracle), a caption longer than the
    77 positions and a pair repeated in the batch included."""
    from PIL import Image

    from engineered_latents.finetune.data import Collate, Pairs
    from engineered_latents.models import clip_tokenizer_from_vocab

    tokenizer = copy.deepcopy(clip_tokenizer_from_vocab())  # a shared, cached instance
    tokenizer.padding_side = side
    captions = ["a red cube left of a blue ball", "two dogs", "word " * 120,
                "<b>émoji</b> 🐱 and more", ""]
    pairs = Pairs(source=lambda key: Image.new("RGB", (8, 8)), captions=captions,
                  image_of=list(range(len(captions))), identity="t")
    collate = Collate(pairs, processor=None, tokenizer=tokenizer)
    for rows in ([0, 1, 2, 3, 4], [1, 0, 1], [4], [3, 1]):
        got = collate.tokens(rows)
        want = tokenizer([captions[i] for i in rows], padding=True, truncation=True,
                         return_tensors="pt")
        assert got["input_ids"].tolist() == want["input_ids"].tolist(), (side, rows)
        assert got["attention_mask"].tolist() == want["attention_mask"].tolist(), (side, rows)
    assert collate.tokens([2])["input_ids"].shape == (1, 77)
