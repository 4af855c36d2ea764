"""Image-caption pairs to train and validate on, from the registry's adapters or the scene
generator, and the seeded order in which batches take them.

- `demo`: scenes drawn by `engineered_latents.data.scenes` (1-2 coloured shapes, varied captions).
  Training scene i comes from `random.Random("el-finetune-train-<seed>-<i>")`, validation scene i
  from `random.Random("el-finetune-val-<i>")`: string seeds, so they never overlap each other, the
  explorer's 24-scene demo slice (integer seeds) or the toy model's training and held-out scenes.
  Validation scenes have distinct objects, so exactly one caption describes each image.
- `coco`, `flickr30k`: the `train` split through the same webdataset adapters (every caption of an
  image is a pair), streamed shard by shard through a seeded shuffle buffer, each process its
  own share (`finetune.stream`); validation from their `test` split, first caption only.
- `upload`, `winoground`: the folder's / split's pairs; validation from `--val-fraction`.
Datasets whose captions are not positives (What'sUp answer options, ImageNet prompts) are refused.
Only captions and image keys stay in memory: a batch draws its scenes, or reads its images back
through the adapter (whose cache keeps the encoded bytes of every example read once).

Batches (the other datasets; streams: see `finetune.stream`): optimizer step s takes
micro-batches s*accum .. s*accum+accum-1; micro-batch g is rows g*B..(g+1)*B of epoch
(g // per_epoch)'s permutation (`torch.randperm` seeded by seed and epoch), so the data
position is the step and a resumed run takes the same batches.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import UserError

log = logging.getLogger(__name__)

PAIR_DATASETS = ("demo", "coco", "flickr30k", "upload", "winoground")
STREAMED = ("coco", "flickr30k")  # webdataset splits: streamed (finetune.stream)
DEMO_TRAIN_COUNT = 512
SCENE_SIZE = 224
CHUNK = 256  # examples read at a time while listing a dataset's pairs


@dataclass
class Pairs:
    """Pair i = (source(image_of[i]), captions[i]); `identity` names the content. Images are
    drawn or read back when a batch needs them, so only captions and keys stay in memory."""

    source: Callable  # image key -> PIL image
    captions: list[str]
    image_of: list  # per pair, the key of its image
    identity: str

    def __len__(self) -> int:
        return len(self.captions)

    def image(self, i: int):
        return self.source(self.image_of[i])


class AdapterImages:
    """An adapter's images by (example index, image index), read back through the adapter: its
    cache holds the encoded bytes of examples read once, an upload folder its files."""

    def __init__(self, adapter) -> None:
        self.adapter = adapter
        self._lock = threading.Lock()  # the prefetch thread and validation share an adapter

    def __call__(self, key: tuple[int, int]):
        index, image = key
        with self._lock:
            examples = self.adapter.load([index])
        if not examples:
            raise UserError(f"{self.adapter.name}: example {index} can no longer be read "
                            f"({'; '.join(s['reason'] for s in self.adapter.skipped)}).")
        return examples[0].images[image]


# ----------------------------------------------------------------------------- demo scenes


class DemoScenes:
    """Generated scenes: kind "train" (seeded by `seed`) or "val" (distinct objects)."""

    def __init__(self, kind: str, count: int, seed: int = 0, start: int = 0) -> None:
        self.kind, self.seed = kind, seed
        self.scenes = self._scenes(count, start)

    def _rng(self, i: int) -> random.Random:
        tag = f"train-{self.seed}" if self.kind == "train" else "val"
        return random.Random(f"el-finetune-{tag}-{i}")

    def _scenes(self, count: int, start: int) -> list:
        from ..data import scenes

        out, seen, i = [], set(), start
        while len(out) < count:
            rng = self._rng(i)
            i += 1
            objects = scenes.random_objects(rng, rng.randint(1, 2), size=SCENE_SIZE)
            named = frozenset((o.colour, o.shape) for o in objects)
            if self.kind == "val" and named in seen:
                continue
            seen.add(named)
            relation = None
            if len(objects) == 2:
                rel = scenes.dominant_relation(objects[0], objects[1])
                relation = (0, rel, 1) if rel else None
            out.append((objects, scenes.varied_caption(objects, rng, relation)))
        return out

    def image(self, i: int):
        from ..data import scenes

        return scenes.render_scene(self.scenes[i][0], size=SCENE_SIZE)

    def pairs(self) -> Pairs:
        captions = [c for _, c in self.scenes]
        identity = f"demo-{self.kind}-v1-seed{self.seed if self.kind == 'train' else ''}"
        return Pairs(self.image, captions, list(range(len(captions))),
                     f"{identity}-n{len(captions)}")


# ----------------------------------------------------------------------------- adapters


def _adapter(name: str, data_path: str | None, split: str | None, cache):
    from ..data import get_dataset

    if name not in PAIR_DATASETS:
        raise UserError(f"Dataset {name!r} has no image-caption pairs to train on (its captions "
                        "are answer options or class prompts): use one of "
                        f"{', '.join(PAIR_DATASETS)}.")
    options = {"all_captions": True} if name in ("coco", "flickr30k") else {}
    adapter = get_dataset(name, data_path, cache=cache, **options)
    if split is not None and split != adapter.split:
        if name not in ("coco", "flickr30k"):
            raise UserError(f"Dataset {name!r} has only the split {adapter.split!r}.")
        adapter.split = split
        adapter.known_size = None if split != "test" else adapter.known_size
    return adapter


def _indices(adapter, start: int, count: int | None) -> list[int]:
    if count is None:
        if adapter.data_path is None and getattr(adapter, "known_size", 1) is None:
            raise UserError(f"The size of {adapter.name}'s {adapter.split} split is not known "
                            "without reading all of it: give --count N, or --data-path.")
        count = adapter.size() - start
    if count < 1:
        raise UserError(f"{adapter.name}: no examples from start {start}.")
    return list(range(start, start + count))


def _adapter_pairs(adapter, images: AdapterImages, indices: list[int], identity: str,
                   first_caption_only: bool = False) -> Pairs:
    """The pairs of the examples at `indices`, read in chunks (images not kept)."""
    captions, keys = [], []
    for at in range(0, len(indices), CHUNK):
        for ex in adapter.load(indices[at:at + CHUNK]):
            for i, c in ex.pairs[:1] if first_caption_only else ex.pairs:
                captions.append(ex.captions[c])
                keys.append((ex.index, i))
    if not captions:
        raise UserError(f"{adapter.name}: none of the {len(indices)} examples from "
                        f"{indices[0]} could be read.")
    return Pairs(images, captions, keys, identity)


def train_pairs(spec, cache) -> tuple[Pairs, Pairs, list[str]]:
    """(train, validation, warnings) for a spec."""
    warnings = []
    if spec.dataset == "demo":
        train = DemoScenes("train", spec.count or DEMO_TRAIN_COUNT, spec.seed, spec.start).pairs()
        val = None
    else:
        split = spec.split or ("train" if spec.dataset in ("coco", "flickr30k") else None)
        adapter = _adapter(spec.dataset, spec.data_path, split, cache)
        if adapter.split == "test" and spec.dataset in ("coco", "flickr30k", "winoground"):
            warnings.append(f"Training on the test split of {spec.dataset}: its benchmark "
                            "numbers after this fine-tune are contaminated.")
        name = f"{adapter.name}-{adapter.split}-{adapter.identity()}"
        if spec.dataset in STREAMED:
            train, val = _streamed(spec, adapter, name)
            return _checked(spec, train, val if val is not None else validation_pairs(spec, cache),
                            warnings)
        indices, images = _indices(adapter, spec.start, spec.count), AdapterImages(adapter)
        val = None
        if spec.val_fraction is not None or (spec.val_dataset is None
                                             and spec.dataset not in ("coco", "flickr30k")):
            indices, held = _split_off(indices, spec.val_fraction or 0.1, spec.seed)
            val = _adapter_pairs(adapter, images, held, f"{name}-heldout-{len(held)}", True)
        train = _adapter_pairs(adapter, images, indices,
                               f"{name}-{spec.start}-{spec.count}")
    if val is None:
        val = validation_pairs(spec, cache)
    return _checked(spec, train, val, warnings)


def _streamed(spec, adapter, name: str):
    """(StreamedPairs, held-out validation Pairs or None) of a webdataset split."""
    from .stream import StreamedPairs

    held, val = (), None
    if spec.val_fraction is not None:
        indices = _indices(adapter, spec.start, spec.count)
        _, held = _split_off(indices, spec.val_fraction, spec.seed)
        val = _adapter_pairs(adapter, AdapterImages(adapter), held,
                             f"{name}-heldout-{len(held)}", True)
    train = StreamedPairs(adapter, spec.start, spec.count, held, spec.seed, spec.shuffle_buffer,
                          f"{name}-{spec.start}-{spec.count}-stream")
    return train, val


def n_pairs(train) -> int | None:
    """Pairs in a training set (None: a Hub stream, not counted)."""
    return train.n_pairs() if hasattr(train, "n_pairs") else len(train)


def _checked(spec, train, val, warnings):
    n = n_pairs(train)
    if n is not None and n < spec.batch_size:
        raise UserError(f"The training set has {n} pairs, fewer than --batch-size "
                        f"{spec.batch_size}: give more data (--count) or a smaller batch.")
    if len(val) < 2:
        raise UserError(f"The validation set has {len(val)} pairs; it needs at least 2 "
                        "(--val-count, --val-fraction).")
    return train, val, warnings


def validation_pairs(spec, cache) -> Pairs:
    name = spec.val_dataset or spec.dataset
    if name == "demo":
        return DemoScenes("val", spec.val_count).pairs()
    data_path = spec.val_data_path or (spec.data_path if name == spec.dataset else None)
    adapter = _adapter(name, data_path, "test" if name in ("coco", "flickr30k") else None, cache)
    indices = list(range(min(spec.val_count, adapter.size())))
    return _adapter_pairs(adapter, AdapterImages(adapter), indices,
                          f"{adapter.name}-{adapter.split}-{adapter.identity()}"
                          f"-{spec.val_count}", first_caption_only=True)


def _split_off(indices: list[int], fraction: float, seed: int) -> tuple[list, list]:
    """(kept, held out): a seeded `fraction` of the example indices (at least 2) held out."""
    n_held = max(2, round(len(indices) * fraction))
    if n_held >= len(indices):
        raise UserError(f"{len(indices)} examples are too few to hold out {n_held} for "
                        "validation: give more data or --val-dataset.")
    order = random.Random(f"el-finetune-val-split-{seed}").sample(indices, len(indices))
    held = set(order[:n_held])
    return [i for i in indices if i not in held], sorted(held)


# ----------------------------------------------------------------------------- batches


class BatchOrder:
    """Which pair indices micro-batch g takes (seeded per epoch; see the module docstring)."""

    def __init__(self, n_pairs: int, batch_size: int, seed: int) -> None:
        self.n, self.batch, self.seed = n_pairs, batch_size, seed
        self.per_epoch = n_pairs // batch_size
        self._perm: tuple[int, torch.Tensor] | None = None

    def rows(self, g: int) -> list[int]:
        epoch, offset = divmod(g, self.per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=gen))
        return self._perm[1][offset * self.batch:(offset + 1) * self.batch].tolist()


PIXEL_CACHE_MB = 1024  # per Collate: each image's normalised pixels, kept once computed


class Collate:
    """Pixels and tokens of a list of pair indices. Each image's pixels (the processor's output,
    computed per image, so the same whether cached or not) are kept after its first batch, up
    to `cache_mb` (the first images to arrive stay): later epochs do no image work. Measured
    (perf --train): the CLIP processor takes ~8 ms per 224 px image, more than the tiny model's
    whole step for a batch; 512 demo scenes at 224 px keep 308 MB. With --workers each worker
    keeps its own."""

    def __init__(self, pairs: Pairs, processor, tokenizer,
                 cache_mb: float = PIXEL_CACHE_MB) -> None:
        self.pairs, self.processor, self.tokenizer = pairs, processor, tokenizer
        self._pixels: dict = {}
        self._ids: dict[int, np.ndarray] = {}  # caption index -> its token ids (truncated)
        self._bytes, self._budget = 0, int(cache_mb * 2**20)
        self._buffer: torch.Tensor | None = None  # the pixels of the last `reusing` batch

    def cached(self, rows: list[int]) -> bool:
        """Whether every image of `rows` has its pixels kept (the batch is then cheap: a stack
        and padding)."""
        return all(self.pairs.image_of[i] in self._pixels for i in rows)

    def pixels(self, rows: list[int], out: torch.Tensor | None = None) -> torch.Tensor:
        keys = [self.pairs.image_of[i] for i in rows]
        missing = list(dict.fromkeys(k for k in keys if k not in self._pixels))
        fresh = {}
        if missing:
            images = [self.pairs.source(k) for k in missing]
            batch = self.processor(images=images, return_tensors="pt")["pixel_values"]
            for key, px in zip(missing, batch):
                fresh[key] = px
                if self._bytes + px.nbytes <= self._budget:
                    self._pixels[key] = px.clone()  # not a view of the whole batch
                    self._bytes += px.nbytes
        return torch.stack([self._pixels[k] if k in self._pixels else fresh[k] for k in keys],
                           out=out)

    def tokens(self, rows: list[int]) -> dict:
        """input_ids and attention_mask of the rows' captions, as `tokenizer(captions,
        padding=True, truncation=True)` gives them; each caption is tokenized once (a batch is
        then padded by hand: ~0.1 ms against the tokenizer's ~2.5 ms for 32 captions)."""
        missing = [i for i in dict.fromkeys(rows) if i not in self._ids]
        if missing:
            enc = self.tokenizer([self.pairs.captions[i] for i in missing], truncation=True)
            self._ids.update((i, np.asarray(seq, dtype=np.int64))
                             for i, seq in zip(missing, enc["input_ids"]))
        seqs = [self._ids[i] for i in rows]
        width = max(len(s) for s in seqs)
        ids = np.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for r, seq in enumerate(seqs):  # numpy: a row costs ~1 us here, ~10 us in torch
            span = slice(width - len(seq), width) if left else slice(0, len(seq))
            ids[r, span] = seq
            mask[r, span] = 1
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}

    def __call__(self, rows: list[int]) -> dict:
        return {"pixel_values": self.pixels(rows), **self.tokens(rows)}

    def reusing(self, rows: list[int]) -> dict:
        """As `__call__`, but the pixels are written into one buffer this Collate keeps,
        overwriting the previous `reusing` batch: only for a caller that is done with that
        batch (the training loop's in-line batches: a step's pixels are no longer needed once
        its backward pass has run). It spares allocating (and faulting in) a fresh 19 MB batch
        per step, and the buffer stays in the CPU's cache."""
        first = self._pixels.get(self.pairs.image_of[rows[0]]) if rows else None
        out = None
        if first is not None:
            shape = (len(rows), *first.shape)
            if self._buffer is None or self._buffer.shape != shape:
                self._buffer = torch.empty(shape, dtype=first.dtype)
            out = self._buffer
        return {"pixel_values": self.pixels(rows, out=out), **self.tokens(rows)}
