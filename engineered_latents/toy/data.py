"""The toy's scenes: training batches with hard negatives, and the held-out evaluation sets.

Scenes are drawn on the fly by `engineered_latents.data.scenes` (the demo slice's generator) at
224 px: 1-3 objects of 10 colours and 5 shapes, relations above / below / left of / right of,
captions in varied wording. Half of every training batch is hard-negative pairs: the same two
objects swapped (Winoground-style) or in another relation (What'sUp-style). Batch `s` is drawn
from `random.Random(seed * 1_000_003 + s)`; held-out sets use string seeds, which training's
integer seeds never produce.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from PIL import Image

from ..data.scenes import (
    PALETTE,
    RELATIONS,
    SHAPES,
    SceneObject,
    caption_for,
    dominant_relation,
    list_caption,
    random_objects,
    relation_holds,
    relation_layout,
    render_scene,
    varied_caption,
)
from .model import ToyConfig

RENDER_SIZE = 224  # scenes are drawn at the demo's size, then resized like the processor does

Claim = tuple[frozenset, tuple | None]  # (objects named, (subject, relation, object) or None)


@dataclass
class Sample:
    image: Image.Image
    caption: str
    objects: list[SceneObject]
    claim: Claim


def _claim(objects: Sequence[SceneObject], relation: tuple[int, str, int] | None) -> Claim:
    named = frozenset((o.colour, o.shape) for o in objects)
    if relation is None:
        return named, None
    i, rel, j = relation
    a, b = objects[i], objects[j]
    return named, ((a.colour, a.shape), rel, (b.colour, b.shape))


def claim_holds(claim: Claim, objects: Sequence[SceneObject]) -> bool:
    """Whether a caption's claim describes a scene: the same objects, and the relation holds."""
    named, relation = claim
    if frozenset((o.colour, o.shape) for o in objects) != named:
        return False
    if relation is None:
        return True
    by_name = {(o.colour, o.shape): o for o in objects}
    a, rel, b = relation
    return relation_holds(by_name[a], rel, by_name[b])


def distinct_pair(rng: random.Random, colours: Sequence[str] = tuple(PALETTE),
                  shapes: Sequence[str] = SHAPES) -> tuple[tuple[str, str], tuple[str, str]]:
    while True:
        a = (rng.choice(colours), rng.choice(shapes))
        b = (rng.choice(colours), rng.choice(shapes))
        if a != b:
            return a, b


def _sample(objects: list[SceneObject], caption: str, relation) -> Sample:
    return Sample(render_scene(objects, RENDER_SIZE), caption, objects, _claim(objects, relation))


def random_sample(rng: random.Random, n: int | None = None) -> Sample:
    """1-3 random objects, captioned in varied wording (with a relation when one is clear)."""
    objects = random_objects(rng, n, size=RENDER_SIZE)
    relation = None
    if len(objects) > 1 and rng.random() < 0.75:
        rel = dominant_relation(objects[0], objects[1])
        relation = (0, rel, 1) if rel else None
    return _sample(objects, varied_caption(objects, rng, relation), relation)


def hard_pair(rng: random.Random) -> list[Sample]:
    """Two scenes of the same two objects that differ only in their relation: swapped boxes
    (Winoground-style) or another relation (What'sUp-style)."""
    a, b = distinct_pair(rng)
    rel = rng.choice(RELATIONS)
    first = relation_layout(a, b, rel, RENDER_SIZE, rng)
    if rng.random() < 0.5:
        second, rel2 = [first[0].with_box(first[1].box), first[1].with_box(first[0].box)], rel
        relation2 = (1, rel2, 0)  # b is now `rel` of a
    else:
        rel2 = rng.choice([r for r in RELATIONS if r != rel])
        second, relation2 = relation_layout(a, b, rel2, RENDER_SIZE, rng), (0, rel2, 1)
    return [_sample(first, varied_caption(first, rng, (0, rel, 1)), (0, rel, 1)),
            _sample(second, varied_caption(second, rng, relation2), relation2)]


def training_batch(cfg: ToyConfig, step: int) -> list[Sample]:
    """Batch `step` of training: depends only on (seed, step)."""
    rng = random.Random(cfg.seed * 1_000_003 + step)
    n_hard = int(cfg.batch_size * cfg.hard_fraction) // 2
    samples = [s for _ in range(n_hard) for s in hard_pair(rng)]
    samples += [random_sample(rng) for _ in range(cfg.batch_size - len(samples))]
    return samples


def positives(samples: Sequence[Sample]) -> torch.Tensor:
    """[B, B] bool: caption j describes image i (the diagonal, and duplicates of meaning)."""
    n = len(samples)
    out = torch.eye(n, dtype=torch.bool)
    groups: dict[frozenset, list[int]] = {}
    for k, s in enumerate(samples):
        groups.setdefault(s.claim[0], []).append(k)
    for members in groups.values():
        for i in members:
            for j in members:
                if i != j and claim_holds(samples[j].claim, samples[i].objects):
                    out[i, j] = True
    return out


# ----------------------------------------------------------------------------- held-out sets


def _rng(kind: str, i: int) -> random.Random:
    return random.Random(f"toy-heldout-{kind}-{i}")  # string seeds: disjoint from training's


def retrieval_set(n: int) -> list[Sample]:
    """`n` held-out scenes (1-3 objects, varied captions), no two with the same objects, so
    exactly one caption describes each image and chance R@1 is 1/n."""
    out, seen, i = [], set(), 0
    while len(out) < n:
        s = random_sample(_rng("retrieval", i))
        i += 1
        if s.claim[0] not in seen:
            seen.add(s.claim[0])
            out.append(s)
    return out


def winoground_set(n: int) -> list[tuple[list[Image.Image], list[str]]]:
    """Held-out examples built like the demo slice: 'A rel B' and the same boxes swapped."""
    out = []
    for i in range(n):
        rng = _rng("winoground", i)
        a, b = distinct_pair(rng)
        rel = RELATIONS[i % len(RELATIONS)]
        first = relation_layout(a, b, rel, RENDER_SIZE, rng)
        second = [first[1].with_box(first[0].box), first[0].with_box(first[1].box)]
        out.append(([render_scene(o, RENDER_SIZE) for o in (first, second)],
                    [caption_for(o[0], rel, o[1]) for o in (first, second)]))
    return out


def whatsup_set(n: int) -> list[tuple[Image.Image, list[str]]]:
    """Held-out (image 'A rel B', the four relation captions with the true one first)."""
    out = []
    for i in range(n):
        rng = _rng("whatsup", i)
        a, b = distinct_pair(rng)
        rel = RELATIONS[i % len(RELATIONS)]
        objects = relation_layout(a, b, rel, RENDER_SIZE, rng)
        options = [rel] + [r for r in RELATIONS if r != rel]
        out.append((render_scene(objects, RENDER_SIZE), [caption_for(a, r, b) for r in options]))
    return out


def localization_set(n: int, start: int = 0):
    """`n` held-out Examples (one image, one caption) with 2 or 3 objects of distinct colours
    and distinct shapes, so every colour and shape word names exactly one object and a map that
    merely finds *an* object is not enough. Captions: a relation for two objects (as in the
    demo), a list for three."""
    from ..data import Example

    examples = []
    for i in range(start, start + n):
        rng = _rng("localization", i)
        k = 2 + i % 2
        colours = rng.sample(list(PALETTE), k)
        shapes = rng.sample(list(SHAPES), k)
        if k == 2:
            rel = RELATIONS[(i // 2) % len(RELATIONS)]
            objects = relation_layout((colours[0], shapes[0]), (colours[1], shapes[1]), rel,
                                      RENDER_SIZE, rng)
            caption = caption_for(objects[0], rel, objects[1])
        else:
            objects = random_objects(rng, k, RENDER_SIZE, min_side=0.2, max_side=0.4)
            objects = [SceneObject(c, s, o.box) for c, s, o in zip(colours, shapes, objects)]
            caption = list_caption(objects)
        meta = {"objects": [o.to_dict() for o in objects], "image_size": RENDER_SIZE}
        examples.append(Example(i, (render_scene(objects, RENDER_SIZE),), (caption,), ((0, 0),),
                                meta))
    return examples
