"""Deterministic procedural scenes: coloured shapes on a plain background, drawn with PIL.

A scene is a list of `SceneObject`s (a colour name, a shape name, a pixel box). Layout (where
the boxes go) is separate from rendering (`render_scene`), so the same boxes can be drawn with
the objects swapped, and every box is kept in the returned data.

Boxes are `(x0, y0, x1, y1)` integer pixels, half-open: the object covers columns x0..x1-1 and
rows y0..y1-1, inside the image. Shapes are filled without anti-aliasing, so every pixel of an
object is exactly its palette colour; the centre pixel of each box lies inside its shape.

Randomness always comes from a passed-in `random.Random` or `numpy.random.Generator`, never a
global RNG: the same generator state gives the same scene.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "INVERSE_RELATION",
    "PALETTE",
    "RELATIONS",
    "RELATION_PHRASES",
    "SHAPES",
    "SceneObject",
    "caption_for",
    "describe",
    "dominant_relation",
    "list_caption",
    "random_objects",
    "relation_holds",
    "relation_layout",
    "relation_scene",
    "render_scene",
    "varied_caption",
]

RGB = tuple[int, int, int]
Rng = random.Random | np.random.Generator
Box = tuple[int, int, int, int]

# Clearly distinct named colours, none of them close to the white background.
PALETTE: dict[str, RGB] = {
    "red": (220, 30, 30),
    "blue": (30, 80, 230),
    "green": (30, 160, 60),
    "yellow": (245, 210, 20),
    "purple": (140, 50, 180),
    "orange": (250, 130, 20),
    "black": (20, 20, 20),
    "pink": (245, 120, 190),
    "brown": (130, 80, 30),
    "gray": (128, 128, 128),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star")

RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")

# Other wordings of each relation (the first is the canonical one, as in RELATIONS).
RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "above": ("above", "over"),
    "below": ("below", "under", "beneath"),
    "left of": ("left of", "to the left of", "on the left of"),
    "right of": ("right of", "to the right of", "on the right of"),
}
INVERSE_RELATION: dict[str, str] = {
    "above": "below", "below": "above", "left of": "right of", "right of": "left of",
}


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: a palette colour name, a shape name and its pixel box."""

    colour: str
    shape: str
    box: Box  # (x0, y0, x1, y1), half-open, in pixels

    def __post_init__(self) -> None:
        if self.colour not in PALETTE:
            raise ValueError(f"Unknown colour {self.colour!r}; known: {', '.join(PALETTE)}.")
        if self.shape not in SHAPES:
            raise ValueError(f"Unknown shape {self.shape!r}; known: {', '.join(SHAPES)}.")
        x0, y0, x1, y1 = (int(v) for v in self.box)
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"Empty box {self.box!r}: need x0 < x1 and y0 < y1.")
        object.__setattr__(self, "box", (x0, y0, x1, y1))

    @property
    def rgb(self) -> RGB:
        return PALETTE[self.colour]

    @property
    def centre(self) -> tuple[float, float]:
        """The box centre (x, y) in continuous pixel coordinates."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    @property
    def centre_pixel(self) -> tuple[int, int]:
        """The integer pixel (x, y) at the box centre; it always lies inside the shape."""
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) // 2, (y0 + y1) // 2)

    def with_box(self, box: Sequence[int]) -> SceneObject:
        return SceneObject(self.colour, self.shape, tuple(box))

    def to_dict(self) -> dict:
        """A plain JSON-serialisable dict."""
        return {"colour": self.colour, "shape": self.shape, "box": list(self.box)}

    @classmethod
    def from_dict(cls, d: dict) -> SceneObject:
        return cls(d["colour"], d["shape"], tuple(d["box"]))


# --- rendering ---------------------------------------------------------------------------


def _star_points(x0: int, y0: int, x1: int, y1: int) -> list[tuple[float, float]]:
    cx, cy = (x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2
    rx, ry = (x1 - 1 - x0) / 2, (y1 - 1 - y0) / 2
    points = []
    for k in range(10):
        angle = -math.pi / 2 + k * math.pi / 5
        scale = 1.0 if k % 2 == 0 else 0.45
        points.append((cx + scale * rx * math.cos(angle), cy + scale * ry * math.sin(angle)))
    return points


def _draw_object(draw: ImageDraw.ImageDraw, obj: SceneObject) -> None:
    x0, y0, x1, y1 = obj.box
    xe, ye = x1 - 1, y1 - 1  # PIL's drawing boxes are inclusive
    fill = obj.rgb
    if obj.shape == "circle":
        draw.ellipse((x0, y0, xe, ye), fill=fill)
    elif obj.shape == "square":
        draw.rectangle((x0, y0, xe, ye), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(x0, ye), ((x0 + xe) / 2, y0), (xe, ye)], fill=fill)
    elif obj.shape == "diamond":
        cx, cy = (x0 + xe) / 2, (y0 + ye) / 2
        draw.polygon([(cx, y0), (xe, cy), (cx, ye), (x0, cy)], fill=fill)
    elif obj.shape == "star":
        draw.polygon(_star_points(x0, y0, x1, y1), fill=fill)
    else:  # pragma: no cover - SceneObject validates shapes
        raise ValueError(f"Unknown shape {obj.shape!r}.")


def render_scene(
    objects: Sequence[SceneObject], size: int = 224, background: RGB = (255, 255, 255)
) -> Image.Image:
    """Draw `objects` (later ones on top) as filled shapes on a `size` x `size` RGB image."""
    image = Image.new("RGB", (size, size), tuple(background))
    draw = ImageDraw.Draw(image)
    for obj in objects:
        _draw_object(draw, obj)
    return image


# --- randomness helpers (random.Random or numpy Generator) --------------------------------


def _randint(rng: Rng, lo: int, hi: int) -> int:
    """A uniform integer in lo..hi inclusive."""
    if hi < lo:
        raise ValueError(f"Empty range {lo}..{hi}.")
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(lo, hi + 1))
    return rng.randint(lo, hi)


def _choice(rng: Rng, items: Sequence):
    return items[_randint(rng, 0, len(items) - 1)]


# --- layout --------------------------------------------------------------------------------


def _as_pair(x) -> tuple[str, str]:
    """(colour, shape) from a SceneObject or a (colour, shape) pair."""
    if isinstance(x, SceneObject):
        return x.colour, x.shape
    colour, shape = x
    return colour, shape


def relation_layout(
    a, b, relation: str, size: int = 224, rng: Rng | None = None
) -> list[SceneObject]:
    """Boxes for objects `a` and `b` ((colour, shape) pairs or SceneObjects) so `a` is
    `relation` of `b`: their boxes are disjoint and separated along the relation's axis.

    With `rng=None` the layout is a fixed, centred one; otherwise sizes and positions vary.
    Returns `[a, b]` as SceneObjects with their boxes.
    """
    if relation not in RELATIONS:
        raise ValueError(f"Unknown relation {relation!r}; known: {', '.join(RELATIONS)}.")
    margin = max(2, size // 28)
    gap = max(2, size // 20)
    lo_side, hi_side = max(4, round(size * 0.22)), max(4, round(size * 0.32))
    if rng is None:
        side_a = side_b = (lo_side + hi_side) // 2
    else:
        side_a, side_b = _randint(rng, lo_side, hi_side), _randint(rng, lo_side, hi_side)

    # Place along the main axis: `first` is the top/left object, `second` the bottom/right one.
    a_first = relation in ("above", "left of")
    s_first, s_second = (side_a, side_b) if a_first else (side_b, side_a)
    free = size - 2 * margin - s_first - s_second - gap  # slack along the main axis
    if free < 0:
        raise ValueError(f"Image size {size} is too small for two objects.")
    if rng is None:
        start_first = margin + free // 2
        extra_gap = 0
    else:
        start_first = margin + _randint(rng, 0, free)
        extra_gap = _randint(rng, 0, size - margin - (start_first + s_first + gap + s_second))
    main_first = (start_first, start_first + s_first)
    second_start = main_first[1] + gap + extra_gap
    main_second = (second_start, second_start + s_second)

    # Across the main axis: the centres differ by at most half their distance along it, so
    # the named relation is the dominant one (a is not mostly beside b when it is "above").
    if rng is None:
        start_1, start_2 = (size - s_first) // 2, (size - s_second) // 2
    else:
        start_1 = _randint(rng, margin, size - margin - s_first)
        reach = ((second_start + s_second / 2) - (start_first + s_first / 2)) / 2
        centre_1 = start_1 + s_first / 2
        lo2 = max(margin, math.ceil(centre_1 - reach - s_second / 2))
        hi2 = min(size - margin - s_second, math.floor(centre_1 + reach - s_second / 2))
        start_2 = _randint(rng, lo2, hi2)
    cross_first, cross_second = (start_1, start_1 + s_first), (start_2, start_2 + s_second)
    vertical = relation in ("above", "below")

    def box(main: tuple[int, int], crs: tuple[int, int]) -> Box:
        return (
            (crs[0], main[0], crs[1], main[1]) if vertical else (main[0], crs[0], main[1], crs[1])
        )

    box_first, box_second = box(main_first, cross_first), box(main_second, cross_second)
    box_a, box_b = (box_first, box_second) if a_first else (box_second, box_first)
    (ca, sa), (cb, sb) = _as_pair(a), _as_pair(b)
    return [SceneObject(ca, sa, box_a), SceneObject(cb, sb, box_b)]


def relation_scene(
    a, b, relation: str, size: int = 224, rng: Rng | None = None
) -> tuple[Image.Image, list[SceneObject]]:
    """An image with `a` `relation` `b` (e.g. a red circle above a blue square), and `[a, b]`
    as SceneObjects with their boxes. `a`, `b`: (colour, shape) pairs or SceneObjects."""
    objects = relation_layout(a, b, relation, size=size, rng=rng)
    return render_scene(objects, size=size), objects


def _overlaps(p: Box, q: Box, pad: int = 0) -> bool:
    return not (
        p[2] + pad <= q[0] or q[2] + pad <= p[0] or p[3] + pad <= q[1] or q[3] + pad <= p[1]
    )


def random_objects(
    rng: Rng,
    n: int | None = None,
    size: int = 224,
    colours: Sequence[str] | None = None,
    shapes: Sequence[str] | None = None,
    min_side: float = 0.15,
    max_side: float = 0.4,
    max_tries: int = 200,
) -> list[SceneObject]:
    """1-3 (or `n`) random objects with disjoint boxes, for synthetic training scenes.

    Sides are fractions `min_side`..`max_side` of `size`. Colour/shape pairs are distinct, so
    every object can be named unambiguously. Raises ValueError if the boxes cannot be fitted.
    """
    colours = list(colours or PALETTE)
    shapes = list(shapes or SHAPES)
    n = _randint(rng, 1, 3) if n is None else n
    if n > len(colours) * len(shapes):
        raise ValueError(f"Cannot pick {n} distinct colour/shape pairs.")
    margin, pad = max(1, size // 56), max(1, size // 56)
    lo, hi = max(4, round(size * min_side)), max(4, round(size * max_side))
    objects: list[SceneObject] = []
    used: set[tuple[str, str]] = set()
    for _ in range(n):
        for _ in range(max_tries):
            side = _randint(rng, lo, hi)
            x0 = _randint(rng, margin, size - margin - side)
            y0 = _randint(rng, margin, size - margin - side)
            box = (x0, y0, x0 + side, y0 + side)
            if not any(_overlaps(box, o.box, pad) for o in objects):
                break
        else:
            raise ValueError(f"Could not fit {n} objects in a {size}px image.")
        while True:
            pair = (_choice(rng, colours), _choice(rng, shapes))
            if pair not in used:
                break
        used.add(pair)
        objects.append(SceneObject(pair[0], pair[1], box))
    return objects


def relation_holds(a: SceneObject, relation: str, b: SceneObject) -> bool:
    """Whether `a` is `relation` of `b`, judged by box centres (image y grows downwards)."""
    (ax, ay), (bx, by) = a.centre, b.centre
    if relation == "above":
        return ay < by
    if relation == "below":
        return ay > by
    if relation == "left of":
        return ax < bx
    if relation == "right of":
        return ax > bx
    raise ValueError(f"Unknown relation {relation!r}; known: {', '.join(RELATIONS)}.")


# --- captions ------------------------------------------------------------------------------


def describe(x) -> str:
    """'a red circle' / 'an orange square' for a SceneObject or a (colour, shape) pair."""
    colour, shape = _as_pair(x)
    article = "an" if colour[0] in "aeiou" else "a"
    return f"{article} {colour} {shape}"


def caption_for(a, relation: str, b) -> str:
    """'a red circle above a blue square'."""
    if relation not in RELATIONS:
        raise ValueError(f"Unknown relation {relation!r}; known: {', '.join(RELATIONS)}.")
    return f"{describe(a)} {relation} {describe(b)}"


def list_caption(objects: Sequence) -> str:
    """'a red circle', 'a red circle and a blue square', 'a red circle, a blue square and a
    green star': the objects (SceneObjects or (colour, shape) pairs) in the given order."""
    names = [describe(o) for o in objects]
    if not names:
        raise ValueError("No objects to describe.")
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def dominant_relation(a: SceneObject, b: SceneObject, ratio: float = 2.0) -> str | None:
    """The relation of `a` to `b` along the axis where their box centres differ most, when that
    distance is at least `ratio` times the distance across it (so the relation is clear);
    else None."""
    (ax, ay), (bx, by) = a.centre, b.centre
    dx, dy = ax - bx, ay - by
    if abs(dy) >= ratio * abs(dx) and dy != 0:
        return "above" if dy < 0 else "below"
    if abs(dx) >= ratio * abs(dy) and dx != 0:
        return "left of" if dx < 0 else "right of"
    return None


_PREFIXES = ("", "", "there is ", "a picture of ", "an image of ")
_SINGLE = ("{}", "{}", "a picture of {}", "{} on a white background", "there is {}", "just {}")


def varied_caption(objects: Sequence[SceneObject], rng: Rng,
                   relation: tuple[int, str, int] | None = None) -> str:
    """A caption of a scene in one of several wordings (for training): a single object with a
    template, a relation `(i, relation, j)` between objects i and j (said either way round,
    e.g. 'a red circle above a blue square' or 'a blue square under a red circle'), or a list;
    a third object not in the relation is added as ', and ...'. Deterministic given `rng`."""
    objects = list(objects)
    if len(objects) == 1:
        return _choice(rng, _SINGLE).format(describe(objects[0]))
    if relation is None:
        order = list(objects)
        for k in range(len(order) - 1, 0, -1):  # Fisher-Yates with the passed-in rng
            m = _randint(rng, 0, k)
            order[k], order[m] = order[m], order[k]
        return _choice(rng, _PREFIXES[:3]) + list_caption(order)
    i, rel, j = relation
    if _randint(rng, 0, 1):  # say it the other way round
        i, rel, j = j, INVERSE_RELATION[rel], i
    prefix = _choice(rng, _PREFIXES)
    verb = " is" if not prefix and _randint(rng, 0, 3) == 0 else ""
    text = (f"{prefix}{describe(objects[i])}{verb} {_choice(rng, RELATION_PHRASES[rel])} "
            f"{describe(objects[j])}")
    rest = [o for k, o in enumerate(objects) if k not in (i, j)]
    if rest:
        text += ", and " + list_caption(rest)
    return text
