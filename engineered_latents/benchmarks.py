"""Benchmark runners: generators that yield a partial result after each batch.

Protocols are those of REFERENCE.md section 2, computed by `metrics`: cosine similarities of
L2-normalized pooled embeddings in float32 (encoders in float32 by default: fp16 creates ties).
A SigLIP's scores are its own, `sigmoid(exp(logit_scale) * cos + logit_bias)` in float64
(`siglip.model_scores`: monotone, so the same rankings and strict ties); retrieval and ImageNet
rank by the cosine, the same ranking.
Every batch's scores or embeddings are cached, so an interrupted run resumes where it stopped and
a finished one is instant; the model is loaded only when a batch is missing from the cache.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import compositional, history, localization, metrics
from .cache import Cache, cache_key
from .config import ModelSpec
from .data import Example, get_dataset
from .data import images as image_files
from .errors import UserError
from .features import PREPROCESSING_VERSION, pooled_image_embeddings, pooled_text_embeddings
from .models import DEFAULT_MODEL, dtype_name, load_model, pick_device, pick_dtype, resolve_model
from .prefetch import prefetched
from .siglip import model_scores

REFERENCE_MODEL = DEFAULT_MODEL
BENCH_VERSION = 1  # bump when a change alters benchmark numbers


@dataclass(frozen=True)
class Benchmark:
    name: str
    dataset: str  # name in the data registry
    kind: str  # winoground | whatsup | retrieval | imagenet
    hub_folder: str  # its folder under --data-root (the Hub repository's name)
    reference: dict = field(default_factory=dict)  # published numbers for REFERENCE_MODEL, %
    # (other models' published numbers: `MODEL_REFERENCES`; read both through `published_for`)
    published_n: int | None = None  # examples in the published evaluation (None: whole split)
    options: dict = field(default_factory=dict)  # adapter options


_RETRIEVAL = dict(kind="retrieval", options={"all_captions": True})
BENCHMARKS = {b.name: b for b in [
    Benchmark("winoground", "winoground", "winoground", "winoground",
              {"text": 30.75, "image": 10.50, "group": 8.00}, 400),
    Benchmark("whatsup-a", "whatsup-a", "whatsup", "whatsup_all",
              {"accuracy": 30.3, "pair_accuracy": 0.5, "set_accuracy": 0.0}),
    Benchmark("whatsup-b", "whatsup-b", "whatsup", "whatsup_all",
              {"accuracy": 31.6, "pair_accuracy": 1.0, "set_accuracy": 0.0}),
    Benchmark("coco-spatial-one", "coco-spatial-one", "whatsup", "whatsup_all",
              {"accuracy": 43.7}),
    Benchmark("coco-spatial-two", "coco-spatial-two", "whatsup", "whatsup_all",
              {"accuracy": 51.1}),
    Benchmark("gqa-spatial-one", "gqa-spatial-one", "whatsup", "whatsup_all",
              {"accuracy": 46.5}),
    Benchmark("gqa-spatial-two", "gqa-spatial-two", "whatsup", "whatsup_all",
              {"accuracy": 47.4}),
    Benchmark("coco", "coco", hub_folder="wds_mscoco_captions", published_n=5000,
              reference={"t2i_r1": 30.44, "t2i_r5": 55.94, "t2i_r10": 66.87,
                         "i2t_r1": 50.12, "i2t_r5": 75.00, "i2t_r10": 83.52}, **_RETRIEVAL),
    Benchmark("flickr30k", "flickr30k", hub_folder="wds_flickr30k", published_n=1000,
              reference={"t2i_r1": 58.78, "t2i_r5": 83.56, "t2i_r10": 90.02,
                         "i2t_r1": 78.90, "i2t_r5": 94.90, "i2t_r10": 98.20}, **_RETRIEVAL),
    Benchmark("imagenet", "imagenet", "imagenet", "wds_imagenet1k",
              {"top1": 63.33, "top5": 88.78}, 50000),
    Benchmark("demo", "demo", "winoground", "demo"),  # the built-in slice, Winoground-style
    *[Benchmark(name, name, "choice", folder, reference)  # SugarCrepe and ARO
      for name, (folder, reference, _, _) in compositional.SPECS.items()],
    Benchmark("localization", "demo", "localization", "demo"),  # pointing game, demo scenes
]}
SUITES = compositional.SUITES  # names that run several benchmarks (bench --benchmark NAME)


@dataclass
class BenchResult:
    """A benchmark's numbers so far (`done` False) or final; `to_json` is the JSON contract."""

    benchmark: str
    model: str
    demo_weights: bool
    n: int  # examples (images for retrieval and ImageNet) evaluated so far
    total: int  # examples to evaluate
    metrics: dict
    ci95: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    examples: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)  # by_tag (Winoground), grouping (What'sUp), ...
    notes: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)
    done: bool = False
    from_cache: bool = False
    # per metric: per-item correctness (bool [n_m]) and the items' ids (dataset indices, or
    # [index, caption] for retrieval captions, or member indices for groups): for paired tests
    hits: dict = field(default_factory=dict)
    item_ids: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "model": self.model, "demo_weights": self.demo_weights, "benchmark": self.benchmark,
            "n": self.n, "metrics": self.metrics, "ci95": self.ci95, "reference": self.reference,
            "difference": {k: round(self.metrics[k] - v, 2) for k, v in self.reference.items()
                           if k in self.metrics},
            "examples": self.examples, **self.extra, "notes": self.notes,
            "provenance": self.provenance,
        }


# ----------------------------------------------------------------------------- selection


def benchmark_indices(bench: Benchmark, size: int, limit: int | None, seed: int = 0) -> list[int]:
    """The examples to evaluate: all, the first `limit`, or for ImageNet (whose tars are in class
    order) a seeded subset stratified over the 50-image blocks of each class."""
    if limit is None or limit >= size:
        return list(range(size))
    if limit < 1:
        raise UserError(f"--limit {limit}: evaluate at least 1 example.")
    if bench.kind != "imagenet":
        return list(range(limit))
    rng = np.random.default_rng(seed)
    blocks = np.array_split(np.arange(size), min(1000, size))  # one block per class
    per_block = [rng.permutation(b).tolist() for b in blocks]
    chosen = [i for round_ in range(math.ceil(limit / len(blocks)))
              for b in rng.permutation(len(blocks)) for i in per_block[b][round_:round_ + 1]]
    return sorted(chosen[:limit])


# ----------------------------------------------------------------------------- per-kind scoring


def _winoground_batch(lm, examples: list[Example], context) -> dict:
    images = [im for ex in examples for im in ex.images[:2]]
    captions = [c for ex in examples for c in ex.captions[:2]]
    img = pooled_image_embeddings(lm, images).reshape(len(examples), 2, -1)  # [b, 2, D]
    txt = pooled_text_embeddings(lm, captions).reshape(len(examples), 2, -1)  # [b, 2, D]
    return {"index": [ex.index for ex in examples],
            "scores": model_scores(lm, np.einsum("bcd,bid->bci", txt, img)),  # s[e, c, i]
            "tags": [ex.meta.get("collapsed_tag", ex.meta.get("tag", "")) for ex in examples]}


def _winoground_summary(batches: list[dict]) -> tuple[dict, dict, list, dict]:
    scores = np.concatenate([b["scores"] for b in batches])
    tags = [t for b in batches for t in b["tags"]]
    hits = metrics.winoground_hits(scores)
    examples = [{"index": i, "scores": s.tolist(), "text": bool(t), "image": bool(m),
                 "group": bool(g)}
                for i, s, t, m, g in zip([i for b in batches for i in b["index"]], scores,
                                         hits["text"], hits["image"], hits["group"])]
    extra = {"by_tag": metrics.winoground_by_tag(scores, tags)} if any(tags) else {}
    return _means(hits), hits, examples, extra


def _whatsup_batch(lm, examples: list[Example], context) -> dict:
    img = pooled_image_embeddings(lm, [ex.images[0] for ex in examples])  # [b, D]
    txt = pooled_text_embeddings(lm, [c for ex in examples for c in ex.captions])
    bounds = np.cumsum([0] + [len(ex.captions) for ex in examples])
    scores = [model_scores(lm, txt[a:b] @ img[i])
              for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    return {"index": [ex.index for ex in examples], "scores": scores,
            "options": [tuple(ex.captions) for ex in examples]}


_AXES = {"left": "left-right", "right": "left-right", "on": "on-under", "under": "on-under",
         "front": "front-behind", "behind": "front-behind"}


def _relation_axis(caption: str) -> str | None:
    words = set(caption.lower().replace(".", " ").split())
    axes = {_AXES[w] for w in words if w in _AXES}
    return axes.pop() if len(axes) == 1 else None


def _whatsup_summary(batches: list[dict]) -> tuple[dict, dict, list, dict]:
    scores = [s for b in batches for s in b["scores"]]
    options = [o for b in batches for o in b["options"]]
    correct = metrics.whatsup_correct(scores)
    hits = {"accuracy": correct}
    examples = [{"index": i, "scores": s.tolist(), "correct": bool(c)}
                for i, s, c in zip([i for b in batches for i in b["index"]], scores, correct)]
    values = _means(hits)
    extra = _whatsup_groups(options, correct, values, hits)
    index = [int(i) for b in batches for i in b["index"]]
    if "pair_accuracy" in hits:  # a group's id: its members' dataset indices
        sets = [tuple(sorted(o)) for o in options]
        pairs = [(s, _relation_axis(o[0])) for s, o in zip(sets, options)]
        extra["item_ids"] = {"pair_accuracy": _members(pairs, index),
                             "set_accuracy": _members(sets, index)}
    return values, hits, examples, extra


def _members(groups: list, index: list[int]) -> list[list[int]]:
    """Per group (in `metrics.whatsup_group_hits`' order: sorted by str) its items' indices."""
    return [[i for g2, i in zip(groups, index) if g2 == g] for g in sorted(set(groups), key=str)]


def _whatsup_groups(options, correct, values, hits) -> dict:
    """Pair and set accuracy when the images of one object pair can be grouped: the images of a
    set share the same caption options; a pair is two images whose correct captions lie on the
    same axis (left/right, on/under, front/behind)."""
    sets = [tuple(sorted(o)) for o in options]
    axes = [_relation_axis(o[0]) for o in options]
    if len(options[0]) != 4 or None in axes or set(Counter(sets).values()) != {4}:
        return {"grouping": "pair and set accuracy not computed: the images of each object "
                "pair could not be grouped (options are not 4 shared captions per 4 images)"}
    pairs = [(s, a) for s, a in zip(sets, axes)]
    hits["pair_accuracy"] = metrics.whatsup_group_hits(correct, pairs, expected_size=2)
    hits["set_accuracy"] = metrics.whatsup_group_hits(correct, sets, expected_size=4)
    values["pair_accuracy"] = float(hits["pair_accuracy"].mean() * 100)
    values["set_accuracy"] = float(hits["set_accuracy"].mean() * 100)
    return {"grouping": "sets: images sharing the same 4 caption options; pairs: two images of "
            "a set whose correct captions lie on the same axis (left/right, on/under, "
            "front/behind)"}


def _retrieval_batch(lm, examples: list[Example], context) -> dict:
    return {"index": [ex.index for ex in examples],
            "img": pooled_image_embeddings(lm, [ex.images[0] for ex in examples]),
            "txt": pooled_text_embeddings(lm, [c for ex in examples for c in ex.captions]),
            "counts": [len(ex.captions) for ex in examples]}


def _retrieval_summary(batches: list[dict]) -> tuple[dict, dict, list, dict]:
    img = np.concatenate([b["img"] for b in batches])  # [images, D]
    txt = np.concatenate([b["txt"] for b in batches])  # [captions, D]
    owner = np.repeat(np.arange(len(img)), [c for b in batches for c in b["counts"]])
    scores = (txt @ img.T).astype(np.float32)  # [captions, images]
    hits = metrics.retrieval_hits(scores, owner)
    index = [i for b in batches for i in b["index"]]
    counts = [c for b in batches for c in b["counts"]]
    queries = {"t2i": [[int(i), j] for i, c in zip(index, counts) for j in range(c)],
               "i2t": [int(i) for i, c in zip(index, counts) if c > 0]}  # images with captions
    ids = {k: queries[k[:3]] for k in hits}
    return _means(hits), hits, [], {"captions": int(len(txt)), "images": int(len(img)),
                                    "item_ids": ids}


def _imagenet_batch(lm, examples: list[Example], context) -> dict:
    classifier = context()  # [classes, D]
    img = pooled_image_embeddings(lm, [ex.images[0] for ex in examples])
    labels = np.array([ex.meta["label"] for ex in examples])
    hits = metrics.topk_hits(img @ classifier.T, labels)
    return {"index": [ex.index for ex in examples], "labels": labels, **hits}


def _imagenet_summary(batches: list[dict]) -> tuple[dict, dict, list, dict]:
    hits = {k: np.concatenate([b[k] for b in batches]) for k in ("top1", "top5")}
    labels = np.concatenate([b["labels"] for b in batches])
    return _means(hits), hits, [], {"classes_seen": int(len(np.unique(labels)))}


def _means(hits: dict) -> dict:
    return {k: float(np.mean(v) * 100) if len(v) else float("nan") for k, v in hits.items()}


_KINDS = {
    "winoground": (_winoground_batch, _winoground_summary),
    "whatsup": (_whatsup_batch, _whatsup_summary),
    "retrieval": (_retrieval_batch, _retrieval_summary),
    "imagenet": (_imagenet_batch, _imagenet_summary),
    "choice": (compositional.choice_batch, compositional.choice_summary),
    "localization": (localization.localization_batch, localization.localization_summary),
}


def imagenet_classifier(lm, cache: Cache | None, batch_classes: int = 50) -> np.ndarray:
    """[classes, D] zero-shot weights: OpenAI's 80 templates per class name, each embedding
    normalized, averaged, re-normalized (computed in batches of classes, each cached)."""
    import json

    from .models import ASSETS

    meta = json.loads((ASSETS / "imagenet_openai.json").read_text())
    names, templates = meta["classnames"], meta["templates"]
    parts = []
    for start in range(0, len(names), batch_classes):
        chunk = names[start:start + batch_classes]
        key = cache_key("imagenet-classifier", {
            "weights": lm.resolved.weights_id, "dtype": dtype_name(lm.dtype),
            "prep": PREPROCESSING_VERSION, "classes": chunk, "templates": templates})

        def compute(chunk=chunk):
            texts = [t.format(c) for c in chunk for t in templates]
            return pooled_text_embeddings(lm, texts).reshape(len(chunk), len(templates), -1)

        emb = cache.get_or_compute(key, compute)[0] if cache is not None else compute()
        parts.append(metrics.zero_shot_classifier(emb))
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- the runner


def run_benchmark(
    name: str,
    model_spec: ModelSpec = ModelSpec(dtype="float32"),
    limit: int | None = None,
    data_path: str | None = None,
    cache: Cache | None = None,
    batch_size: int = 32,
    n_bootstrap: int = 1000,
) -> Iterator[BenchResult]:
    """Yield a partial `BenchResult` after each batch, then the final one (`done=True`)."""
    if name not in BENCHMARKS:
        raise UserError(f"Unknown benchmark {name!r}. Available: {', '.join(BENCHMARKS)}.")
    bench = BENCHMARKS[name]
    cache = cache if cache is not None else Cache()
    model = resolve_model(model_spec.name)
    dataset = get_dataset(bench.dataset, data_path, cache=cache, **bench.options)
    indices = benchmark_indices(bench, dataset.size(), limit)
    dtype = dtype_name(pick_dtype(model_spec.dtype or "float32", pick_device(model_spec.device)))
    identity = {"weights": model.weights_id, "dtype": dtype, "prep": PREPROCESSING_VERSION,
                "normalize": image_files.NORMALIZE_VERSION, "bench": BENCH_VERSION,
                "benchmark": name, "dataset": dataset.name, "split": dataset.split,
                "data": dataset.identity()}
    final_key = cache_key("bench", {**identity, "indices": indices, "boot": n_bootstrap,
                                    "per_item": 1})
    cached = cache.get(final_key)
    if cached is not None:
        cached.from_cache = True
        yield cached
        return
    lazy = _LazyModel(model, model_spec, dtype, cache)
    encode, summarize = _KINDS[bench.kind]
    batches, skipped = [], []
    started = time.perf_counter()
    chunks = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    _import_before_threads()

    def fetch(chunk):  # runs one chunk ahead, in a background thread
        key = cache_key("bench-batch", {**identity, "indices": chunk})
        payload = cache.get(key)
        return key, payload, dataset.load(chunk) if payload is None else None

    for number, (chunk, (key, payload, examples)) in enumerate(prefetched(chunks, fetch)):
        if payload is None:
            payload = _encode_chunk(chunk, examples, encode, lazy)
            cache.set(key, payload)
        skipped += payload.get("skipped", [])
        if payload.get("index"):
            batches.append(payload)
        done = number == len(chunks) - 1
        if batches and (done or _report_now(bench, number, len(indices), batch_size)):
            result = _result(bench, model, batches, summarize, len(indices), done, n_bootstrap)
            if done:
                _finish(result, bench, model, dataset, dtype, limit, skipped, started)
                cache.set(final_key, result)
                _record(cache, result)
            yield result
    if not batches:
        raise UserError(f"No example of {name} could be read (all {len(skipped)} skipped).")


def _import_before_threads() -> None:
    """Finish transformers' lazy imports in this thread: `datasets` (in the prefetch thread)
    probes `transformers.PreTrainedTokenizerBase`, which fails while another thread is still
    importing transformers' modules (its lazy module is not thread-safe)."""
    from transformers import CLIPModel, PreTrainedTokenizerBase  # noqa: F401


class _LazyModel:
    """Loads the model on first use only, so a fully cached run never loads it."""

    def __init__(self, model, model_spec: ModelSpec, dtype: str, cache: Cache):
        self.args = (model, model_spec.device, dtype)
        self.cache = cache
        self._lm = self._classifier = None

    def __call__(self):
        if self._lm is None:
            self._lm = load_model(*self.args)
        return self._lm

    def classifier(self) -> np.ndarray:
        if self._classifier is None:
            self._classifier = imagenet_classifier(self(), self.cache)
        return self._classifier


def _encode_chunk(chunk: Sequence[int], examples: list[Example], encode: Callable,
                  lazy: _LazyModel) -> dict:
    loaded = {ex.index for ex in examples}
    skipped = [i for i in chunk if i not in loaded]
    if not examples:
        return {"index": [], "skipped": skipped}
    return {**encode(lazy(), examples, lazy.classifier), "skipped": skipped}


PARTIAL_REPORTS = 50  # at most this many partial results per run (each costs a summary)
PARTIAL_RESAMPLES = 200  # bootstrap resamples of a partial result's interval (final: 1,000)


def _report_now(bench: Benchmark, batch: int, total: int, batch_size: int) -> bool:
    """Partial results after every batch, or about `PARTIAL_REPORTS` (retrieval: 20, each a full
    re-rank) times when there are more batches than that."""
    reports = 20 if bench.kind == "retrieval" else PARTIAL_REPORTS
    return batch % max(1, math.ceil(total / batch_size / reports)) == 0


def _result(bench, model, batches, summarize, total, done, n_bootstrap) -> BenchResult:
    """The numbers so far, with their 95% intervals (fewer resamples while running)."""
    values, hits, examples, extra = summarize(batches)
    ids = _item_ids(batches, hits, extra.pop("item_ids", {}))
    n = sum(len(b["index"]) for b in batches)
    resamples = n_bootstrap if done else min(n_bootstrap, PARTIAL_RESAMPLES)
    ci = {k: metrics.bootstrap_ci(v, n_resamples=resamples) for k, v in hits.items()}
    return BenchResult(bench.name, model.name, model.demo_weights, n, total,
                       {k: round(v, 2) for k, v in values.items()},
                       {k: [round(a, 2), round(b, 2)] for k, (a, b) in ci.items()},
                       examples=examples, extra=extra, done=done,
                       hits={k: np.asarray(v, bool) for k, v in hits.items()}, item_ids=ids)


def _item_ids(batches: list[dict], hits: dict, given: dict) -> dict:
    """Per metric the ids of its items: what the summary gave (`extra["item_ids"]`), else the
    dataset indices when there is one hit per example, else positions (`"#k"`)."""
    index = [i for b in batches for i in b["index"]]
    ids = {}
    for name, h in hits.items():
        if name in given:
            ids[name] = list(given[name])
        elif len(h) == len(index):
            ids[name] = [int(i) for i in index]
        else:
            ids[name] = [f"#{k}" for k in range(len(h))]
    return ids


# Published numbers of models other than REFERENCE_MODEL, with their sources:
# {model id: {benchmark: {metric: %}}} and {model id: source}. A number is shown only for the
# model it was published for. None are given for the LAION, DataComp or MetaCLIP presets: the
# project's references (REFERENCE.md) have none for them.
MODEL_REFERENCES: dict[str, dict[str, dict[str, float]]] = {}
MODEL_REFERENCE_SOURCES: dict[str, str] = {}


def published_for(bench: Benchmark | str, model_name: str | None,
                  demo_weights: bool = False) -> dict:
    """The published numbers of `bench` for the model `model_name` ({} when none were
    published for that model, and for demo weights, which are not the model named)."""
    bench = BENCHMARKS[bench] if isinstance(bench, str) else bench
    if demo_weights or model_name is None:
        return {}
    if model_name == REFERENCE_MODEL:
        return dict(bench.reference)
    return dict(MODEL_REFERENCES.get(model_name, {}).get(bench.name, {}))


def _record(cache: Cache, result: BenchResult) -> None:
    history.append(cache.directory, {
        "kind": "bench", "benchmark": result.benchmark, "model": result.model,
        "weights": result.provenance["weights"], "demo_weights": result.demo_weights,
        "parameters": {"limit": result.provenance["limit"], "dtype": result.provenance["dtype"]},
        "n": result.n, "metrics": result.metrics, "ci95": result.ci95,
    })


def _finish(result, bench, model, dataset, dtype, limit, skipped, started) -> None:
    from .pipeline import provenance_versions

    full = limit is None and (bench.published_n is None or result.n >= bench.published_n)
    published = published_for(bench, model.name)
    if model.demo_weights:
        result.notes.append({"warning": model.warning})
    elif published and full and not skipped:
        result.reference = published
        if model.name in MODEL_REFERENCE_SOURCES:
            result.notes.append({"reference_source": MODEL_REFERENCE_SOURCES[model.name]})
    elif bench.reference or published:
        result.notes.append({"reference": "left blank: " + (
            "none published for this model" if not published else
            "a subset (a retrieval subset also has a smaller gallery)" if limit is not None else
            f"{len(skipped)} examples could not be read" if skipped else
            f"{result.n} examples, fewer than the published {bench.published_n}")})
    if skipped:
        result.notes.append({"skipped": skipped[:50], "n_skipped": len(skipped)})
    result.provenance = {
        "weights": model.weights_id, "demo_weights": model.demo_weights, "dtype": dtype,
        "dataset": dataset.name, "split": dataset.split, "data_identity": dataset.identity(),
        "limit": limit, "seconds": round(time.perf_counter() - started, 2),
        "versions": provenance_versions(),
    }
