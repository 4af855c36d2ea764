"""The pointing game for word maps: does a word's map peak inside the box of what the word names?

For each (word, box) case: take the word's map over the patch grid, find its highest patch, and
count a hit when that patch's centre lies inside the box. The hit rate is compared with chance,
the box's share of the patches (what a uniformly random patch scores), averaged over the cases.

Boxes are mapped onto the model's input the way CLIP's processor sees the image: the short side
resized to the crop size, then a centred square crop (`box_in_crop`).

Maps, per case (the demo scenes, `demo_cases`: each object's colour word and shape word):
- `raw`: the cosine of each patch embedding with the word's token embeddings (their mean over the
  word's BPE pieces), no NCut;
- `scalar`: the word's column of scalar-mode node values on eigenvector 1, oriented to increase
  with the raw affinity (`toy.scalar_sign`: an eigenvector's sign is arbitrary);
- `joint`: the cosine, over eigenvectors 1..k-1, of the word's token node with each patch node
  (`toy.word_map`, the app's joint overlay).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

METHODS = ("raw", "scalar", "joint")


def box_in_crop(box: Sequence[float], width: int, height: int) -> tuple[float, ...]:
    """A pixel box (x0, y0, x1, y1) of a width x height image, in [0, 1] coordinates of the
    centred square crop CLIP takes after resizing the short side."""
    side = min(width, height)
    dx, dy = (width - side) / 2, (height - side) / 2
    x0, y0, x1, y1 = box
    return ((x0 - dx) / side, (y0 - dy) / side, (x1 - dx) / side, (y1 - dy) / side)


def patches_in_box(grid: int, unit_box: Sequence[float]) -> np.ndarray:
    """[grid * grid] bool (row-major): patches whose centre lies in a [0, 1] box (half-open)."""
    if grid < 1:
        raise ValueError(f"grid {grid} must be at least 1.")
    centres = (np.arange(grid) + 0.5) / grid  # [grid]
    x0, y0, x1, y1 = unit_box
    in_x = (centres >= x0) & (centres < x1)
    in_y = (centres >= y0) & (centres < y1)
    return (in_y[:, None] & in_x[None, :]).reshape(-1)


def pointing_hits(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """[cases] bool: whether each map's highest patch (NaN ignored) lies in its box mask.

    maps: [cases, patches] float; masks: [cases, patches] bool.
    """
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks, dtype=bool)
    if maps.ndim != 2 or maps.shape != masks.shape:
        raise ValueError(f"maps {maps.shape} and masks {masks.shape} must both be "
                         "[cases, patches].")
    if len(maps) and np.isnan(maps).all(axis=1).any():
        raise ValueError("a map has no finite value.")
    if not len(maps):
        return np.zeros(0, dtype=bool)
    peaks = np.nanargmax(maps, axis=1)  # [cases]
    return masks[np.arange(len(maps)), peaks]


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> dict:
    """{"hit_rate", "chance" (both %), "n"}: the share of cases whose map peaks in the box, and
    the mean share of patches inside the box."""
    hits = pointing_hits(maps, masks)
    masks = np.asarray(masks, dtype=bool)
    return {"hit_rate": float(hits.mean() * 100) if len(hits) else float("nan"),
            "chance": float(masks.mean(axis=1).mean() * 100) if len(hits) else float("nan"),
            "n": int(len(hits))}


# ----------------------------------------------------------------------------- demo scenes


def demo_cases(examples, pairs, grid: int) -> list[dict]:
    """(word, box) cases of demo examples: per pair, the colour and shape words of the objects
    of its image (`meta["objects"][image]`), with the box mask on the patch grid.

    `pairs`: the `PairInfo`s of the cut of `examples`, in order."""
    by_index = {ex.index: ex for ex in examples}
    cases = []
    for p, info in enumerate(pairs):
        ex = by_index[info.example]
        width, height = ex.images[info.image].size
        for obj in ex.meta["objects"][info.image]:
            mask = patches_in_box(grid, box_in_crop(obj["box"], width, height))
            for kind in ("colour", "shape"):
                positions = _word_positions(info, obj[kind])
                if positions is not None and mask.any():
                    cases.append({"pair": p, "index": ex.index, "word": obj[kind],
                                  "kind": kind, "positions": positions, "mask": mask})
    return cases


def _word_positions(info, word: str) -> list[int] | None:
    for w, positions in zip(info.words, info.word_positions):
        if w.lower() == word:
            return list(positions)
    return None


def raw_affinity(result, pair: int) -> np.ndarray:
    """[1 + patches, T] cosine of a pair's patch and token embeddings (kept by the cut)."""
    image, caption = result.pair_items[pair]
    patches = result.patch_embeddings[image].astype(np.float32)  # [1 + P, D]
    tokens = result.token_embeddings[caption].astype(np.float32)  # [T, D]
    patches /= np.maximum(np.linalg.norm(patches, axis=1, keepdims=True), 1e-12)
    tokens /= np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-12)
    return patches @ tokens.T


def case_maps(cases: list[dict], scalar, joint, pairs) -> dict[str, np.ndarray]:
    """{method: [cases, patches]} word maps (CLS dropped) from a scalar and a joint cut."""
    from .toy import scalar_sign, word_map

    raw = [raw_affinity(scalar, p) for p in range(len(pairs))]
    sign = scalar_sign(scalar, pairs, raw)
    maps = {m: [] for m in METHODS}
    for case in cases:
        p, positions = case["pair"], case["positions"]
        maps["raw"].append(raw[p][1:, positions].mean(1))
        maps["scalar"].append(word_map(scalar, p, positions, "scalar", sign))
        maps["joint"].append(word_map(joint, p, positions, "joint"))
    return {m: np.stack(v) for m, v in maps.items()}


def localization_batch(lm, examples, context=None, cut_spec=None) -> dict:
    """The pointing game on one slice of demo examples: a scalar and a joint cut of the slice,
    then each (word, box) case's hit for every method and its chance."""
    from dataclasses import asdict

    from .config import CutSpec
    from .pipeline import cut_examples

    base = asdict(cut_spec or CutSpec())
    scalar, pairs, _ = cut_examples(examples, lm, CutSpec(**{**base, "mode": "scalar"}))
    joint, _, _ = cut_examples(examples, lm, CutSpec(**{**base, "mode": "joint"}))
    grid = int(round(np.sqrt(scalar.n_patches - 1)))
    cases = demo_cases(examples, pairs, grid)
    masks = np.stack([c["mask"] for c in cases])  # [cases, patches]
    maps = case_maps(cases, scalar, joint, pairs)
    return {"index": [ex.index for ex in examples],
            "cases": [{"index": c["index"], "word": c["word"], "kind": c["kind"],
                       "caption": pairs[c["pair"]].caption} for c in cases],
            "chance": masks.mean(axis=1),  # [cases]
            **{m: pointing_hits(maps[m], masks) for m in METHODS}}


def localization_summary(batches: list[dict]) -> tuple[dict, dict, list, dict]:
    hits = {m: np.concatenate([b[m] for b in batches]) for m in METHODS}
    chance = np.concatenate([b["chance"] for b in batches])
    cases = [c for b in batches for c in b["cases"]]
    values = {m: float(h.mean() * 100) for m, h in hits.items()}
    values["chance"] = float(chance.mean() * 100)
    examples = [{**c, **{m: bool(hits[m][k]) for m in METHODS},
                 "chance": round(float(chance[k]), 4)} for k, c in enumerate(cases)]
    extra = {"cases": len(cases), "localization": "pointing game: the share of (word, box) "
             "cases whose word map peaks in the word's object box; chance = the box's share "
             "of the patches; the NCut maps come from one cut per batch of examples"}
    return values, hits, examples, extra
