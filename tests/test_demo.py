import json
import random
from collections import Counter

import numpy as np
import pytest

from engineered_latents.data import get_dataset
from engineered_latents.data.demo import DemoDataset
from engineered_latents.data.scenes import (
    PALETTE,
    RELATIONS,
    SHAPES,
    SceneObject,
    caption_for,
    random_objects,
    relation_scene,
    render_scene,
)
from engineered_latents.errors import UserError


@pytest.fixture(scope="module")
def ds():
    return DemoDataset()


@pytest.fixture(scope="module")
def examples(ds):
    return ds.load(range(ds.size()))


def _centre(box):
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2


def test_registry_and_identity(ds):
    assert get_dataset("demo", data_path="/nowhere").name == "demo"
    assert ds.split == "test"
    assert ds.size() >= 16
    assert isinstance(ds.identity(), str) and ds.identity()


def test_load_is_deterministic_and_independent(ds, examples):
    alone = ds.load([5])[0]
    within = ds.load([3, 4, 5])[2]
    again = DemoDataset().load([5])[0]
    for other in (within, again, examples[5]):
        assert other.index == alone.index == 5
        assert other.captions == alone.captions
        assert other.meta == alone.meta
        for im_a, im_b in zip(alone.images, other.images):
            assert np.array_equal(np.asarray(im_a), np.asarray(im_b))


def test_captions_are_permutations(examples):
    for ex in examples:
        c0, c1 = ex.captions
        assert c0 != c1
        assert Counter(c0.split()) == Counter(c1.split())
        assert ex.pairs == ((0, 0), (1, 1))
        assert ex.meta["tag"] == "relation"


def test_examples_vary(examples):
    assert len({ex.captions for ex in examples}) == len(examples)
    assert {ex.meta["relation"] for ex in examples} == set(RELATIONS)
    colours = {o["colour"] for ex in examples for o in ex.meta["objects"][0]}
    shapes = {o["shape"] for ex in examples for o in ex.meta["objects"][0]}
    assert len(colours) >= 4 and len(shapes) >= 3


def test_images_are_rgb_224_and_differ(examples):
    for ex in examples:
        assert len(ex.images) == 2
        for im in ex.images:
            assert im.mode == "RGB" and im.size == (224, 224)
        assert not np.array_equal(np.asarray(ex.images[0]), np.asarray(ex.images[1]))


def test_meta_is_json_serialisable(examples):
    for ex in examples:
        assert json.loads(json.dumps(ex.meta)) == ex.meta


def test_object_centres_have_palette_colour(examples):
    for ex in examples:
        for im, objs in zip(ex.images, ex.meta["objects"]):
            pixels = np.asarray(im)
            for o in objs:
                x0, y0, x1, y1 = o["box"]
                assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
                cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
                assert tuple(pixels[cy, cx]) == PALETTE[o["colour"]]


def test_captions_name_the_objects_in_order(examples):
    for ex in examples:
        for caption, (a, b) in zip(ex.captions, ex.meta["objects"]):
            words = caption.split()
            ia, ib = words.index(a["colour"]), words.index(b["colour"])
            assert ia < ib
            assert words[ia + 1] == a["shape"] and words[ib + 1] == b["shape"]
            assert ex.meta["relation"] in caption


def _relation_ok(relation, box_a, box_b):
    (ax, ay), (bx, by) = _centre(box_a), _centre(box_b)
    # The named relation dominates: the centres are further apart along its axis than across.
    main, across = (
        (abs(ay - by), abs(ax - bx))
        if relation in ("above", "below")
        else (abs(ax - bx), abs(ay - by))
    )
    if main <= across:
        return False
    return {
        "above": ay < by,
        "below": ay > by,
        "left of": ax < bx,
        "right of": ax > bx,
    }[relation]


def test_relation_geometry(examples):
    for ex in examples:
        for a, b in ex.meta["objects"]:
            assert _relation_ok(ex.meta["relation"], a["box"], b["box"])


@pytest.mark.parametrize("relation", RELATIONS)
def test_relation_scene_geometry_and_colours(relation):
    for seed in range(40):
        rng = random.Random(seed) if seed % 2 else np.random.default_rng(seed)
        image, (a, b) = relation_scene(("red", "circle"), ("blue", "star"), relation, rng=rng)
        assert _relation_ok(relation, a.box, b.box)
        pixels = np.asarray(image)
        for o in (a, b):
            x0, y0, x1, y1 = o.box
            assert tuple(pixels[(y0 + y1) // 2, (x0 + x1) // 2]) == PALETTE[o.colour]
    _, fixed = relation_scene(("red", "circle"), ("blue", "star"), relation)
    assert _relation_ok(relation, fixed[0].box, fixed[1].box)


def test_render_every_shape_fills_its_centre():
    for shape in SHAPES:
        obj = SceneObject("green", shape, (50, 60, 110, 130))
        pixels = np.asarray(render_scene([obj]))
        assert tuple(pixels[95, 80]) == PALETTE["green"]
        assert tuple(pixels[0, 0]) == (255, 255, 255)
        # Nothing is drawn outside the box.
        mask = np.any(pixels != 255, axis=2)
        ys, xs = np.nonzero(mask)
        assert xs.min() >= 50 and xs.max() < 110 and ys.min() >= 60 and ys.max() < 130


def test_random_objects_disjoint_and_seeded():
    for seed in range(10):
        objs = random_objects(random.Random(seed))
        assert 1 <= len(objs) <= 3
        assert objs == random_objects(random.Random(seed))
        pixels = np.asarray(render_scene(objs))
        for o in objs:
            cx, cy = o.centre_pixel
            assert tuple(pixels[cy, cx]) == PALETTE[o.colour]


def test_caption_for():
    assert caption_for(("red", "circle"), "above", ("blue", "square")) == (
        "a red circle above a blue square"
    )


@pytest.mark.parametrize("bad", [[-1], [24], [0, 100]])
def test_out_of_range_raises(ds, bad):
    with pytest.raises(UserError, match=str(ds.size())):
        ds.load(bad)
