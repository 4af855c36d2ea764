"""From a slice spec to aligned NCut eigenvectors and per-word scores, cached end to end.

`compute_cuts` looks the whole result up first (keyed by the weights' identity, the data's
identity and every parameter), so a repeated run loads neither the model nor the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import __version__, colouring, history
from .affinity import pair_affinities
from .cache import Cache, cache_key
from .config import CutSpec, ModelSpec, Settings, SliceSpec, graph_fields
from .cuts import MODES, CutResult, joint_nodes, kway_labels, run_ncut, scalar_nodes
from .data import Example, get_dataset, resolve_indices
from .data import images as image_files
from .errors import UserError
from .features import (
    PREPROCESSING_VERSION,
    EncodeSettings,
    encode_images,
    encode_texts,
    image_digest,
    piece_text,
    whole_words,
)
from .models import (
    ResolvedModel,
    check_layer,
    device_type,
    dtype_choice,
    dtype_name,
    load_model,
    resolve_model,
)

PIPELINE_VERSION = 3  # bump when a change alters cut results (2: scalar NCut's n_sample2,
# 3: NCut without the repulsion-bandwidth search)
Progress = Callable[[str, float], None]  # (stage name, fraction of the run done)


@dataclass
class PairInfo:
    example: int  # dataset index
    image: int  # which image of the example (0, 1)
    caption_index: int  # which caption of the example
    caption: str
    tokens: list[str]  # node tokens, decoded
    token_positions: list[int]  # their positions in the tokenized caption
    words: list[str]  # whole words over the node tokens
    word_positions: list[list[int]]  # token positions of each word
    truncated: bool = False


@dataclass
class CutsRun:
    """A finished cut of a slice: the result, what each pair is, and how it was computed."""

    model: ResolvedModel
    slice: SliceSpec
    cut: CutSpec
    result: CutResult
    pairs: list[PairInfo]
    provenance: dict
    timings: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    colours: object = None  # the RGB view's colours (`colouring.slice_colours` memo), not cached

    @property
    def demo_weights(self) -> bool:
        return self.model.demo_weights

    def word_scores(self, pair: int) -> np.ndarray:
        """[node tokens, k] scores of the pair's caption tokens per eigenvector."""
        return self.result.word_scores(pair)[self.pairs[pair].token_positions]

    def word_level_scores(self, pair: int) -> np.ndarray:
        """[words, k] scores of whole words (their BPE pieces averaged)."""
        scores = self.result.word_scores(pair)
        return np.stack([scores[pos].mean(0) for pos in self.pairs[pair].word_positions])

    def patch_rgb(self) -> np.ndarray:
        """[pairs, 1 + patches, 3] RGB of each pair's patch map: the chosen eigenvectors, or
        the t-SNE / UMAP colouring (`cut.colour`; see `colouring`)."""
        return colouring.slice_colours(self).patch

    def token_rgb(self) -> list[np.ndarray]:
        """Per pair [node tokens, 3] RGB of its word scores (scaled over the whole slice)."""
        return colouring.slice_colours(self).tokens

    def top_words(self, eig: int, n: int = 5) -> dict[str, list[str]]:
        """The words scoring highest and lowest on eigenvector `eig`, averaged over the slice."""
        return self.top_words_all(n, [eig])[eig]

    def top_words_all(self, n: int = 5, eigs=None) -> dict[int, dict[str, list[str]]]:
        """`top_words` for several eigenvectors (default 1..k-1) in one pass over the pairs:
        each word's scores averaged over its occurrences (case-folded), then ranked."""
        totals: dict[str, list[np.ndarray]] = {}
        for p, info in enumerate(self.pairs):
            for word, row in zip(info.words, self.word_level_scores(p)):
                totals.setdefault(word.lower(), []).append(row)
        words = list(totals)
        means = np.stack([np.mean(totals[w], axis=0, dtype=np.float64) for w in words])  # [w, k]
        eigs = range(1, self.result.n_eig) if eigs is None else eigs
        ranked = {e: [words[i] for i in np.argsort(means[:, e], kind="stable")] for e in eigs}
        return {e: {"high": r[::-1][:n], "low": r[:n]} for e, r in ranked.items()}

    def cluster_sizes(self) -> list[int]:
        return np.bincount(self.result.labels, minlength=self.cut.clusters).tolist()


@contextmanager
def _timed(timings: dict, stage: str):
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 4)


def compute_cuts(
    slice_spec: SliceSpec = SliceSpec(),
    cut_spec: CutSpec = CutSpec(),
    model_spec: ModelSpec = ModelSpec(),
    cache: Cache | None = None,
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> CutsRun:
    """Cut a slice: from the cache when any run computed it before, else end to end."""
    started = time.perf_counter()
    settings = settings or Settings.from_env()
    cache = cache if cache is not None else Cache(settings.cache_dir)
    report = progress or (lambda stage, fraction: None)
    _check_cut_spec(cut_spec)
    timings: dict = {}
    with _timed(timings, "resolve"):
        report("resolving model and data", 0.0)
        model = resolve_model(model_spec.name)
        check_layer(model, model_spec.layer)
        dataset = open_dataset(slice_spec, cache)
        indices = resolve_indices(dataset.size(), slice_spec.start, slice_spec.count,
                                  slice_spec.indices, settings.max_count)
        key = _cuts_key(model, model_spec, dataset, indices, slice_spec, cut_spec)
    run = cache.get(key)
    if run is not None:
        # the colour fields are not in the key: the cached cut with this request's colouring
        run = replace(run, cut=cut_spec, colours=None)
        run.timings = {**timings, "total": round(time.perf_counter() - started, 4),
                       "computed_in": run.timings.get("total")}
        run.cache = {"cuts": "hit"}
        _colour(run, cache, report)
        report("done (from cache)", 1.0)
    else:
        run = _compute(model, model_spec, dataset, indices, slice_spec, cut_spec, cache, report,
                       timings)
        run.timings["total"] = round(time.perf_counter() - started, 4)
        if cache.warning:
            run.warnings.append(cache.warning)
        cache.set(key, run)
        _colour(run, cache, report)
        report("done", 1.0)
    _record(cache, run, model_spec)
    return run


def _colour(run: CutsRun, cache: Cache, report: Progress) -> None:
    """The run's RGB-view colours (t-SNE / UMAP: their own cache entry), timed."""
    colours = colouring.slice_colours(run, cache=cache, progress=report)
    if run.cut.colour != "rgb":
        run.timings["colour"] = colours.seconds
        run.cache["colour"] = colours.cache


def _record(cache: Cache, run: CutsRun, model_spec: ModelSpec) -> None:
    history.append(cache.directory, {
        "kind": "cuts", "model": run.model.name, "weights": run.model.weights_id,
        "demo_weights": run.demo_weights,
        "parameters": {"slice": asdict(run.slice), "cut": asdict(run.cut),
                       "model": asdict(model_spec)},
        "n_pairs": len(run.pairs), "n_nodes": int(run.result.eigvec.shape[0]),
        "eigenvalues": [round(float(v), 4) for v in run.result.eigval[:6]],
        "seconds": run.timings.get("total"), "cache": run.cache.get("cuts"),
    })


def preload_model(spec: ModelSpec) -> None:
    """Load a model spec's weights now (once per process), so the first cut does not wait."""
    load_model(resolve_model(spec.name), spec.device, spec.dtype)


def open_dataset(spec: SliceSpec, cache: Cache | None = None):
    """The adapter of a slice's dataset, with the slice's options and the run's cache."""
    return get_dataset(spec.dataset, spec.data_path, cache=cache,
                       all_captions=spec.all_captions or None, captions=spec.captions_file)


def _check_cut_spec(spec: CutSpec) -> None:
    if spec.mode not in MODES:
        raise UserError(f"Unknown mode {spec.mode!r}: use one of {', '.join(MODES)}.")
    if spec.n_eig < 2:
        raise UserError(f"n_eig is {spec.n_eig}: ask for at least 2 eigenvectors (default 20).")
    colouring.check_rgb(spec.rgb, spec.n_eig)
    colouring.check_method(spec.colour, spec.perplexity)
    if spec.clusters > spec.n_eig:
        raise UserError(
            f"{spec.clusters} clusters need at least as many eigenvectors, but n_eig is "
            f"{spec.n_eig}: raise --n-eig or lower --clusters."
        )


def _ncut_device(model_spec: ModelSpec) -> str:
    return "cuda" if device_type(model_spec.device) == "cuda" else "cpu"


def _cuts_key(model, model_spec, dataset, indices, slice_spec, cut_spec) -> str:
    # device and dtype by name: computing the key (a cache hit) imports no torch
    dtype = dtype_choice(model_spec.dtype, device_type(model_spec.device))
    return cache_key("cuts", {
        "weights": model.weights_id, "dtype": dtype,
        "layer": model_spec.layer, "patch_norm": model_spec.patch_norm,
        "prep": PREPROCESSING_VERSION, "normalize": image_files.NORMALIZE_VERSION,
        "pipeline": PIPELINE_VERSION, "dataset": dataset.name, "split": dataset.split,
        "data": dataset.identity(),
        "indices": indices, "crossed": slice_spec.crossed_pairs, "cut": graph_fields(cut_spec),
        "ncut_device": _ncut_device(model_spec),
    })


def _compute(model, model_spec, dataset, indices, slice_spec, cut_spec, cache, report, timings):
    with _timed(timings, "load_data"):
        report("loading images", 0.05)
        examples = dataset.load(indices)
        if not examples:
            raise UserError(f"None of the {len(indices)} examples could be read: "
                            + "; ".join(getattr(dataset, "warnings", []))
                            + " Use other examples, or replace the unreadable files.")
        if slice_spec.crossed_pairs:
            examples = [ex.crossed() for ex in examples]
    with _timed(timings, "load_model"):
        report("loading model", 0.15)
        lm = load_model(model, model_spec.device, model_spec.dtype)
    settings = EncodeSettings(model_spec.layer, model_spec.patch_norm)
    result, pairs, info = cut_examples(examples, lm, cut_spec, settings, cache, report, timings,
                                       _ncut_device(model_spec))
    warnings = [model.warning] if model.warning else []
    warnings += list(getattr(dataset, "warnings", []))
    if result.n_eig < cut_spec.n_eig:
        warnings.append(f"n_eig {cut_spec.n_eig} was capped at {result.n_eig}: the graph has "
                        f"{len(result.eigvec)} nodes.")
    warnings += [f"Caption truncated to {lm.tokenizer.model_max_length} tokens: {p.caption!r}"
                 for p in pairs if p.truncated]
    return CutsRun(model, slice_spec, cut_spec, result, pairs,
                   _provenance(model, lm, cut_spec, dataset, model_spec), timings, info, warnings)


def cut_examples(
    examples: list[Example], lm, cut_spec: CutSpec = CutSpec(),
    settings: EncodeSettings = EncodeSettings(), cache: Cache | None = None,
    report: Progress | None = None, timings: dict | None = None, ncut_device: str = "cpu",
) -> tuple[CutResult, list[PairInfo], dict]:
    """Encode (each unique image and caption once), build affinities and cut the slice graph.

    Returns the result, what each pair is, and which embeddings came from the cache.
    """
    report = report or (lambda stage, fraction: None)
    timings = timings if timings is not None else {}
    images, captions, pair_items, pair_meta = _unique_items(examples)
    with _timed(timings, "encode_images"):
        report("encoding images", 0.3)
        img_feats, img_hits = encode_images(lm, images, settings, cache)
    with _timed(timings, "encode_texts"):
        report("encoding captions", 0.5)
        txt_feats, txt_hits = encode_texts(lm, captions, settings, cache)
    report("affinities and NCut", 0.65)
    result, spans = _cut(cut_spec, img_feats, txt_feats, pair_items, timings, ncut_device)
    pairs = [_pair_info(meta, txt_feats[c], spans[p])
             for p, (meta, (_, c)) in enumerate(zip(pair_meta, pair_items))]
    info = {"cuts": "miss", "image_embeddings_cached": f"{img_hits}/{len(images)}",
            "caption_embeddings_cached": f"{txt_hits}/{len(captions)}"}
    return result, pairs, info


def _unique_items(examples: list[Example]):
    """Unique images and captions of a slice, and per pair (image item, caption item) + meta."""
    image_ids: dict[str, int] = {}
    caption_ids: dict[str, int] = {}
    images, pair_items, pair_meta = [], [], []
    for ex in examples:
        for i, c in ex.pairs:
            digest = image_digest(ex.images[i])
            if digest not in image_ids:
                image_ids[digest] = len(images)
                images.append(ex.images[i])
            caption_ids.setdefault(ex.captions[c], len(caption_ids))
            pair_items.append((image_ids[digest], caption_ids[ex.captions[c]]))
            pair_meta.append((ex.index, i, c, ex.captions[c]))
    return images, list(caption_ids), pair_items, pair_meta


def _cut(spec: CutSpec, img_feats, txt_feats, pair_items, timings, device):
    """The slice graph's NCut in the chosen mode; (CutResult, node token span per pair)."""
    with _timed(timings, "affinities"):
        aff = pair_affinities([img_feats[i].patches for i, _ in pair_items],
                              [txt_feats[c].tokens for _, c in pair_items],
                              spec.similarity, spec.include_special,
                              [txt_feats[c].special for _, c in pair_items])
        if spec.mode == "scalar":
            features, index = scalar_nodes(aff)
        else:
            caption_spans = {c: aff.token_span[p] for p, (_, c) in enumerate(pair_items)}
            features, index = joint_nodes(
                [f.patches for f in img_feats], [t.tokens for t in txt_feats],
                [caption_spans[c] for c in range(len(txt_feats))], spec.include_special,
                spec.center)
    with _timed(timings, "ncut"):
        eigvec, eigval = run_ncut(features, spec.n_eig, spec.seed, spec.sharpness, device)
        labels = kway_labels(eigvec, min(spec.clusters, eigvec.shape[1]))
    result = CutResult(spec.mode, eigvec, eigval, labels, index, pair_items,
                       img_feats[0].patches.shape[0], [len(t.ids) for t in txt_feats],
                       [f.patches.astype(np.float16) for f in img_feats],
                       [t.tokens.astype(np.float16) for t in txt_feats])
    return result, aff.token_span


def _pair_info(meta, text, span) -> PairInfo:
    example, image, caption_index, caption = meta
    positions = list(range(*span))
    words = whole_words(text, *span)
    return PairInfo(
        example, image, caption_index, caption,
        [piece_text(text.pieces[p]) for p in positions], positions,
        [w for w, _ in words], [pos for _, pos in words], text.truncated,
    )


def provenance_versions() -> dict:
    """Versions of what computed a result: torch, transformers, ncut-pytorch, this package."""
    from importlib.metadata import version

    import torch
    import transformers

    # plain str: torch's TorchVersion would make unpickling a cached result import torch
    return {"torch": str(torch.__version__), "transformers": transformers.__version__,
            "ncut-pytorch": version("ncut-pytorch"), "engineered_latents": __version__}


def _provenance(model: ResolvedModel, lm, cut_spec: CutSpec, dataset,
                model_spec: ModelSpec | None = None) -> dict:
    spec = model_spec or ModelSpec()
    return {
        "weights": model.weights_id, "demo_weights": model.demo_weights,
        # the hidden state read (None: the last layer) and the patch layer norm
        "layer": spec.layer, "patch_norm": spec.patch_norm,
        "dtype": dtype_name(lm.dtype), "device": str(lm.device), "seed": cut_spec.seed,
        "dataset": dataset.name, "split": dataset.split, "data_identity": dataset.identity(),
        "versions": provenance_versions(),
    }
