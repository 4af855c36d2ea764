"""Image-caption pairs to train and validate on, from the registry's adapters or the scene
generator, and the seeded order in which batches take them.

- `demo`: scenes drawn by `engineered_latents.scenes` (1-2 coloured shapes, varied captions).
  Training scene i comes from `random.Random("el-finetune-train-<seed>-<i>")`, validation scene i
  from `random.Random("el-finetune-val-<i>")`: string seeds, so they never overlap each other, the
  explorer's 24-scene demo slice (integer seeds) or the toy model's training and held-out scenes.
  Validation scenes have distinct objects, so exactly one caption describes each image.
- `coco`, `flickr30k`: the `train` split through the same webdataset adapters (every caption of an
  image is a pair); validation from their `test` split, first caption only.
- `upload`, `winoground`: the folder's / split's pairs; validation from `--val-fraction`.
Datasets whose captions are not positives (What'sUp answer options, ImageNet prompts) are refused.

Batches: optimizer step s takes micro-batches s*accum .. s*accum+accum-1; micro-batch g is rows
g*B..(g+1)*B of epoch (g // per_epoch)'s permutation (`torch.randperm` seeded by seed and epoch),
so the data position is the step and a resumed run takes the same batches.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch

from ..errors import UserError

log = logging.getLogger(__name__)

PAIR_DATASETS = ("demo", "coco", "flickr30k", "upload", "winoground")
DEMO_TRAIN_COUNT = 512
SCENE_SIZE = 224


@dataclass
class Pairs:
    """Pairs i = (images[image_of[i]], captions[i]); `identity` names the content."""

    images: list  # PIL images, or None for generated ones (drawn on demand)
    captions: list[str]
    image_of: list[int]
    identity: str
    generator: object = None  # DemoScenes when images are drawn on demand

    def __len__(self) -> int:
        return len(self.captions)

    def image(self, i: int):
        if self.generator is not None:
            return self.generator.image(i)
        return self.images[self.image_of[i]]


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
        from .. import scenes

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
        from .. import scenes

        return scenes.render_scene(self.scenes[i][0], size=SCENE_SIZE)

    def pairs(self) -> Pairs:
        captions = [c for _, c in self.scenes]
        identity = f"demo-{self.kind}-v1-seed{self.seed if self.kind == 'train' else ''}"
        return Pairs([], captions, list(range(len(captions))), f"{identity}-n{len(captions)}",
                     self)


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


def _from_examples(examples, identity: str, first_caption_only: bool = False) -> Pairs:
    images, captions, image_of = [], [], []
    for ex in examples:
        base = len(images)
        images.extend(ex.images)
        pairs = ex.pairs[:1] if first_caption_only else ex.pairs
        for i, c in pairs:
            captions.append(ex.captions[c])
            image_of.append(base + i)
    return Pairs(images, captions, image_of, identity)


def _load(adapter, start: int, count: int | None) -> list:
    if count is None:
        count = adapter.size() - start
    if count < 1:
        raise UserError(f"{adapter.name}: no examples from start {start}.")
    examples = adapter.load(range(start, start + count))
    if not examples:
        raise UserError(f"{adapter.name}: none of examples {start}..{start + count - 1} could "
                        "be read.")
    return examples


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
        examples = _load(adapter, spec.start, spec.count)
        if spec.val_fraction is not None or (spec.val_dataset is None
                                             and spec.dataset not in ("coco", "flickr30k")):
            examples, held = _split_off(examples, spec.val_fraction or 0.1, spec.seed)
            val = _from_examples(held, f"{adapter.identity()}-heldout", first_caption_only=True)
        else:
            val = None
        train = _from_examples(examples, f"{adapter.name}-{adapter.split}-{adapter.identity()}"
                               f"-{spec.start}-{spec.count}")
    if val is None:
        val = validation_pairs(spec, cache)
    if len(train) < spec.batch_size:
        raise UserError(f"The training set has {len(train)} pairs, fewer than --batch-size "
                        f"{spec.batch_size}: give more data (--count) or a smaller batch.")
    if len(val) < 2:
        raise UserError(f"The validation set has {len(val)} pairs; it needs at least 2 "
                        "(--val-count, --val-fraction).")
    return train, val, warnings


def validation_pairs(spec, cache) -> Pairs:
    name = spec.val_dataset or spec.dataset
    if name == "demo":
        return DemoScenes("val", spec.val_count).pairs()
    data_path = spec.data_path if name == spec.dataset else None
    adapter = _adapter(name, data_path, "test" if name in ("coco", "flickr30k") else None, cache)
    examples = _load(adapter, 0, min(spec.val_count, adapter.size()))
    return _from_examples(examples, f"{adapter.name}-{adapter.split}-{adapter.identity()}"
                          f"-{spec.val_count}", first_caption_only=True)


def _split_off(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """(kept, held out): a seeded `fraction` of the examples (at least 2) held out."""
    n_held = max(2, round(len(examples) * fraction))
    if n_held >= len(examples):
        raise UserError(f"{len(examples)} examples are too few to hold out {n_held} for "
                        "validation: give more data or --val-dataset.")
    order = random.Random(f"el-finetune-val-split-{seed}").sample(range(len(examples)),
                                                                  len(examples))
    held = set(order[:n_held])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


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


class Collate:
    """Pixels and tokens of a list of pair indices."""

    def __init__(self, pairs: Pairs, processor, tokenizer) -> None:
        self.pairs, self.processor, self.tokenizer = pairs, processor, tokenizer

    def __call__(self, rows: list[int]) -> dict:
        images = [self.pairs.image(i) for i in rows]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        enc = self.tokenizer([self.pairs.captions[i] for i in rows], padding=True,
                             truncation=True, return_tensors="pt")
        return {"pixel_values": pixels, "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"]}
