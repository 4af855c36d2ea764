"""What the toy CLIP learned, measured on held-out scenes (`toy.data`'s string-seeded sets).

Retrieval, Winoground and What'sUp scores come from `engineered_latents.metrics`, the functions
the benchmarks use, so the model card and the benchmark tables share one protocol: a tie is never
correct (strict `>` for Winoground and What'sUp, ties ranked against the correct item for R@1).

Localization goes through the public pipeline (`cut_examples`) on scenes of 2-3 objects: how
much of the peak patch of a colour or shape word's map lies inside that object's box, against
the box's area fraction (what a uniformly random patch scores), the other objects' boxes (a map
that finds objects but not the named one) and the same architecture untrained.

Word maps (one map over the patches per word, from a `CutResult`):
- joint mode: cosine, over eigenvectors 1..k-1, between the word's token node and each patch
  node (as the app's overlay shows it);
- scalar mode: the word's column of node values on eigenvector 1 (the app's scalar overlay of
  eigenvector 1 for that word). With 1-d node features, eigenvector 1 orders the nodes by their
  affinity, but its sign is arbitrary: it is oriented to increase with the raw affinity (its
  correlation over all nodes of the slice). Rejected, and still reported as `scalar_zscore`:
  the eigenvector where the word's score is most extreme against the slice's other words,
  signed by that score; word scores average over all patches, so the background decides them
  and the peak lands about where chance puts it;
- raw (reference, no NCut): cosine of the word's token embedding with each patch embedding.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch

from .. import metrics
from .data import localization_set, retrieval_set, whatsup_set, winoground_set
from .model import ToyConfig, clip_config, save


def _embed(lm, images, captions) -> tuple[np.ndarray, np.ndarray]:
    """(images [N, D], captions [M, D]) pooled, L2-normalized embeddings, as the benchmarks
    compute them."""
    from ..features import pooled_image_embeddings, pooled_text_embeddings

    return pooled_image_embeddings(lm, images), pooled_text_embeddings(lm, captions)


def eval_retrieval(lm, n: int = 200) -> dict:
    """R@1 image->text and text->image (percent) among `n` held-out scenes; chance 100/n."""
    samples = retrieval_set(n)
    img, txt = _embed(lm, [s.image for s in samples], [s.caption for s in samples])
    recall = metrics.retrieval_recall(txt @ img.T, np.arange(n), ks=(1,))  # [captions, images]
    return {"n": n, "i2t_r1": recall["i2t_r1"], "t2i_r1": recall["t2i_r1"], "chance": 100 / n}


def _winoground(img: np.ndarray, txt: np.ndarray) -> dict:
    """img, txt [2n, D] (images and captions of each example in order) -> the three scores."""
    n = len(img) // 2
    scores = np.einsum("ncd,nid->nci", txt.reshape(n, 2, -1), img.reshape(n, 2, -1))
    return {"n": n, **metrics.winoground_scores(scores), "chance": [25.0, 25.0, 16.67]}


def eval_winoground(lm, n: int = 200) -> dict:
    data = winoground_set(n)
    return _winoground(*_embed(lm, [im for ims, _ in data for im in ims],
                               [c for _, cs in data for c in cs]))


def eval_demo_slice(lm) -> dict:
    """The Winoground scores on the shipped demo slice (24 examples)."""
    from ..data.demo import DemoDataset

    ds = DemoDataset()
    examples = ds.load(range(ds.size()))
    return _winoground(*_embed(lm, [im for ex in examples for im in ex.images],
                               [c for ex in examples for c in ex.captions]))


def eval_whatsup(lm, n: int = 200) -> dict:
    """One image 'A rel B' with four captions (the four relations); correct if the true one
    scores strictly highest. Chance 25 %."""
    data = whatsup_set(n)
    img, txt = _embed(lm, [im for im, _ in data], [c for _, cs in data for c in cs])
    scores = np.einsum("nod,nd->no", txt.reshape(n, 4, -1), img)  # [n, options], true first
    return {"n": n, "accuracy": metrics.whatsup_accuracy(scores), "chance": 25.0}


# ----------------------------------------------------------------------------- localization


def word_map(result, pair: int, positions: Sequence[int], mode: str, sign: float = 1.0,
             eig: int = 1) -> np.ndarray:
    """[patches] one map over the patch grid (the CLS row dropped) for the word at token
    `positions` of pair `pair`.

    joint: cosine, over eigenvectors 1..k-1, between the word's token node and each patch node
    (the app's word overlay in joint mode). scalar: the word's column of node values on
    eigenvector `eig` (the app's scalar overlay of that eigenvector), times `sign`.
    """
    if mode == "joint":
        word = result.word_scores(pair)[positions, 1:].mean(0)
        patches = result.patch_map(pair)[1:, 1:]
        norms = np.linalg.norm(patches, axis=1) * max(np.linalg.norm(word), 1e-12)
        return patches @ word / np.maximum(norms, 1e-12)
    return sign * np.nanmean(result.node_values(pair)[1:, positions, eig], axis=1)


def scalar_sign(result, pairs, raw: list[np.ndarray], eig: int = 1) -> float:
    """+1 or -1: the orientation of scalar-mode eigenvector `eig` that increases with the
    patch x token affinity (its correlation with the raw cosines over all of the slice's nodes).
    An eigenvector's sign is arbitrary, and in scalar mode (1-d node features) nothing in the
    eigenvectors themselves says which end is the high-affinity one."""
    values, affinities = [], []
    for p, info in enumerate(pairs):
        v = result.node_values(p)[1:, info.token_positions, eig]
        values.append(v.ravel())
        affinities.append(raw[p][1:, info.token_positions].ravel())
    v, a = np.concatenate(values), np.concatenate(affinities)
    ok = np.isfinite(v)
    return 1.0 if np.corrcoef(v[ok], a[ok])[0, 1] >= 0 else -1.0


def _zscore_choice(result, pair, positions, scores) -> tuple[float, int]:
    """(sign, eigenvector) where the word's score is most extreme against the slice's words."""
    own = np.nanmean(result.word_scores(pair)[positions, 1:], axis=0)  # [k-1]
    z = (own - np.nanmean(scores[:, 1:], 0)) / np.maximum(np.nanstd(scores[:, 1:], 0), 1e-12)
    eig = int(np.argmax(np.abs(z))) + 1
    return float(np.sign(z[eig - 1]) or 1.0), eig


def _patch_overlap(grid: int, image_size: int, box) -> np.ndarray:
    """[grid * grid] share of each patch's area inside `box` (image pixels, half-open)."""
    step = image_size / grid
    x0, y0, x1, y1 = box
    edges = np.arange(grid + 1) * step
    ox = np.clip(np.minimum(edges[1:], x1) - np.maximum(edges[:-1], x0), 0, None) / step
    oy = np.clip(np.minimum(edges[1:], y1) - np.maximum(edges[:-1], y0), 0, None) / step
    return (oy[:, None] * ox[None, :]).reshape(-1)  # row-major: patch r * grid + c


def _object_words(info, obj: dict) -> list[tuple[str, list[int]]]:
    """(kind, token positions) of the object's colour word and shape word in a pair's caption."""
    found = []
    for kind in ("colour", "shape"):
        for word, positions in zip(info.words, info.word_positions):
            if word.lower() == obj[kind]:
                found.append((kind, positions))
                break
    return found


def raw_affinities(lm, examples) -> list[np.ndarray]:
    """Per example [1 + patches, T] cosine of its patch and token embeddings (no NCut), from
    the same features the pipeline uses (`encode_images`, `encode_texts`)."""
    from ..features import encode_images, encode_texts

    img, _ = encode_images(lm, [ex.images[0] for ex in examples])
    txt, _ = encode_texts(lm, [ex.captions[0] for ex in examples])
    out = []
    for f, t in zip(img, txt):
        p = f.patches / np.linalg.norm(f.patches, axis=1, keepdims=True)
        w = t.tokens / np.linalg.norm(t.tokens, axis=1, keepdims=True)
        out.append(p @ w.T)
    return out


def localization(lm, n: int = 48, start: int = 0, cut_spec=None) -> dict:
    """Per word map ("scalar", "joint", "raw" and the rejected "scalar_zscore"): how much of
    the peak patch of each colour/shape word's map lies inside its object's box (percent,
    `peak_in_box`), inside the boxes of the scene's other objects (`peak_in_other`: a map that
    finds objects but not *which* one scores about as much there), against chance (the box's
    area fraction: a uniformly random patch's expected share) and the best any single patch
    could do (`oracle`).

    Runs the public pipeline (`cut_examples`, default `CutSpec` unless given) once per mode
    on `n` held-out scenes (`localization_set`)."""
    from ..config import CutSpec
    from ..pipeline import cut_examples

    examples = localization_set(n, start)
    grid = lm.patch_grid[0]
    base = asdict(cut_spec or CutSpec())
    cuts = {mode: cut_examples(examples, lm, CutSpec(**{**base, "mode": mode}))[:2]
            for mode in ("scalar", "joint")}
    raw = raw_affinities(lm, examples)
    scalar, pairs = cuts["scalar"]
    sign = scalar_sign(scalar, pairs, raw)
    scores = np.concatenate([scalar.word_scores(p)[info.token_positions]
                             for p, info in enumerate(pairs)])
    rows: dict[str, list] = {"scalar": [], "joint": [], "raw": [], "scalar_zscore": []}
    for p, ex in enumerate(examples):
        for obj in ex.meta["objects"]:
            overlap = _patch_overlap(grid, ex.meta["image_size"], obj["box"])
            other = sum(_patch_overlap(grid, ex.meta["image_size"], o["box"])
                        for o in ex.meta["objects"] if o is not obj)
            for kind, positions in _object_words(pairs[p], obj):
                maps = {
                    "scalar": word_map(scalar, p, positions, "scalar", sign),
                    "joint": word_map(cuts["joint"][0], p, positions, "joint"),
                    "raw": raw[p][1:, positions].mean(1),
                    "scalar_zscore": word_map(scalar, p, positions, "scalar",
                                              *_zscore_choice(scalar, p, positions, scores)),
                }
                for name, values in maps.items():
                    peak = int(np.nanargmax(values))
                    rows[name].append((overlap[peak], overlap.mean(), overlap.max(),
                                       other[peak], kind))
    return {"n_scenes": n, "grid": grid, "scalar_sign": sign,
            "modes": {name: _localization_summary(r) for name, r in rows.items()}}


def _localization_summary(rows: list[tuple]) -> dict:
    """Percentages over the words of one map kind; rows (hit, chance, oracle, other, kind)."""
    hit, chance, oracle, other = (np.array([x[i] for x in rows]) for i in range(4))
    kinds = np.array([x[4] for x in rows])
    return {"n_words": len(rows), "peak_in_box": 100 * float(hit.mean()),
            "chance": 100 * float(chance.mean()), "oracle": 100 * float(oracle.mean()),
            "peak_in_other": 100 * float(other.mean()),
            "colour_words": 100 * float(hit[kinds == "colour"].mean()),
            "shape_words": 100 * float(hit[kinds == "shape"].mean())}


def untrained_localization(cfg: ToyConfig, n: int = 48) -> dict:
    """`localization` of the same architecture with its seeded initial weights (no training):
    what image saliency alone gives (an untrained ViT's patches still differ on objects)."""
    import tempfile

    from transformers import CLIPModel

    from ..models import load_model, resolve_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = CLIPModel(clip_config(cfg)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        save(model, cfg, tmp)
        return localization(load_model(resolve_model(tmp), "cpu", "float32"), n)


def evaluate(lm, cfg: ToyConfig, n: int = 200, n_localization: int = 48,
             log: Callable[[str], None] = print) -> dict:
    """Every measurement of the model card, by name."""
    measures = {}
    for name, fn in [("retrieval", lambda: eval_retrieval(lm, n)),
                     ("winoground", lambda: eval_winoground(lm, n)),
                     ("demo_slice", lambda: eval_demo_slice(lm)),
                     ("whatsup", lambda: eval_whatsup(lm, n)),
                     ("localization", lambda: localization(lm, n_localization)),
                     ("localization_untrained",
                      lambda: untrained_localization(cfg, n_localization))]:
        measures[name] = fn()
        log(f"{name}: {json.dumps(measures[name])}")
    return measures
