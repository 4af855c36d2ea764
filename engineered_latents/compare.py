"""Two models (or two layers of one) on the same slice, in one eigenvector basis.

A model is a `ModelSpec`: name or folder, layer, patch norm. `compare_cuts`:
- scalar mode: every pair's patch x token affinities of *both* models are scalar nodes of ONE
  NCut graph, so eigenvector j means the same for both; each model's word scores, patch maps and
  cluster labels are read in that shared basis (patch grids may differ: nodes are scalars);
- joint mode (the feature spaces differ): one cut per model, then the eigenvectors of b are matched
  one-to-one to those of a (Hungarian assignment on the absolute correlation of their word-level
  scores over the words both have) and sign-aligned; each match's correlation is reported, so an
  eigenvector without a counterpart shows as a weak match.
Cached like `compute_cuts`, keyed by both models' cut keys; embeddings come from the per-item
cache whenever either model encoded the items before.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from . import history
from .affinity import pair_affinities
from .cache import Cache, cache_key
from .config import CutSpec, ModelSpec, Settings, SliceSpec
from .cuts import CutResult, kway_labels, run_ncut, scalar_nodes
from .data import resolve_indices
from .eigen_analyses import analyze
from .errors import UserError
from .features import EncodeSettings, encode_images, encode_texts
from .models import check_layer, load_model, resolve_model
from .pipeline import (
    CutsRun,
    Progress,
    _check_cut_spec,
    _cut,
    _cuts_key,
    _ncut_device,
    _pair_info,
    _provenance,
    _timed,
    _unique_items,
    open_dataset,
)
from .siglip import model_scores

COMPARE_VERSION = 1  # bump when a change alters comparison results
WEAK_MATCH = 0.5  # joint mode: a match with |correlation| below this has no real counterpart
LABELS = ("a", "b")


@dataclass
class CompareRun:
    """Two cuts of one slice in one basis: `runs[0]` is model a, `runs[1]` model b."""

    mode: str
    slice: SliceSpec
    cut: CutSpec
    specs: tuple[ModelSpec, ModelSpec]
    runs: list[CutsRun]
    clip_scores: list[np.ndarray]  # per model [pairs]: its score of the pooled embeddings
    # (CLIP: their cosine; SigLIP: its sigmoid, siglip.model_scores)
    matches: list[dict] | None = None  # joint: {"a", "b", "correlation", "sign", "weak"}
    analyses: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)

    @property
    def grids(self) -> list[int]:
        """Patches per image of each model (49 for a 7 x 7 grid)."""
        return [r.result.n_patches - 1 for r in self.runs]

    def word_difference(self, pair: int) -> np.ndarray | None:
        """[words, k] word-level scores of b minus a for one pair (None: the two tokenizers
        split the caption into different words)."""
        a, b = self.runs
        if a.pairs[pair].words != b.pairs[pair].words:
            return None
        k = min(a.result.n_eig, b.result.n_eig)
        return b.word_level_scores(pair)[:, :k] - a.word_level_scores(pair)[:, :k]


def compare_cuts(
    slice_spec: SliceSpec = SliceSpec(),
    cut_spec: CutSpec = CutSpec(),
    specs: tuple[ModelSpec, ModelSpec] | list[ModelSpec] = (ModelSpec(), ModelSpec()),
    cache: Cache | None = None,
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> CompareRun:
    """Cut a slice with two models in one basis (see the module doc); from the cache when any
    run computed this comparison before."""
    started = time.perf_counter()
    specs = tuple(specs)
    if len(specs) != 2:
        raise UserError(f"Compare needs exactly two model specs, got {len(specs)}.")
    settings = settings or Settings.from_env()
    cache = cache if cache is not None else Cache(settings.cache_dir)
    report = progress or (lambda stage, fraction: None)
    _check_cut_spec(cut_spec)
    timings: dict = {}
    with _timed(timings, "resolve"):
        report("resolving models and data", 0.0)
        models = [_resolve(spec, label) for spec, label in zip(specs, LABELS)]
        dataset = open_dataset(slice_spec, cache)
        indices = resolve_indices(dataset.size(), slice_spec.start, slice_spec.count,
                                  slice_spec.indices, settings.max_count)
        cuts = [_cuts_key(m, s, dataset, indices, slice_spec, cut_spec)
                for m, s in zip(models, specs)]
        key = cache_key("compare", {"version": COMPARE_VERSION, "cuts": cuts})
    run = cache.get(key)
    if run is not None:
        run.timings = {**timings, "total": round(time.perf_counter() - started, 4),
                       "computed_in": run.timings.get("total")}
        run.cache = {"compare": "hit"}
    else:
        run = _compute(models, specs, dataset, indices, slice_spec, cut_spec, cache, report,
                       timings)
        run.timings["total"] = round(time.perf_counter() - started, 4)
        cache.set(key, run)
    report("done", 1.0)
    _record(cache, run)
    return run


def _resolve(spec: ModelSpec, label: str):
    try:
        model = resolve_model(spec.name)
        check_layer(model, spec.layer)
    except UserError as e:
        raise UserError(f"Model {label} ({spec.name or 'default'}): {e}") from e
    return model


def _load(model, spec: ModelSpec, label: str):
    try:
        return load_model(model, spec.device, spec.dtype)
    except UserError as e:
        raise UserError(f"Model {label} ({spec.name or 'default'}) failed to load: {e}") from e


def _compute(models, specs, dataset, indices, slice_spec, cut_spec, cache, report, timings):
    with _timed(timings, "load_data"):
        report("loading images", 0.05)
        examples = dataset.load(indices)
        if not examples:
            raise UserError(f"None of the {len(indices)} examples could be read: "
                            + "; ".join(getattr(dataset, "warnings", [])))
        if slice_spec.crossed_pairs:
            examples = [ex.crossed() for ex in examples]
    images, captions, pair_items, pair_meta = _unique_items(examples)
    encoded, lms, info = [], [], {}
    for m, (model, spec, label) in enumerate(zip(models, specs, LABELS)):
        with _timed(timings, f"encode_{label}"):
            report(f"model {label}: loading and encoding", 0.1 + 0.3 * m)
            lm = _load(model, spec, label)
            settings = EncodeSettings(spec.layer, spec.patch_norm)
            img, img_hits = encode_images(lm, images, settings, cache)
            txt, txt_hits = encode_texts(lm, captions, settings, cache)
        encoded.append((img, txt))
        lms.append(lm)
        info[f"embeddings_cached_{label}"] = f"{img_hits + txt_hits}/{len(images) + len(captions)}"
    report("NCut", 0.7)
    results, spans = cut_both(cut_spec, encoded, pair_items, timings, _ncut_device(specs[0]))
    runs, matches = [], None
    for m, (model, lm, (_, txt)) in enumerate(zip(models, lms, encoded)):
        pairs = [_pair_info(meta, txt[c], spans[m][p])
                 for p, (meta, (_, c)) in enumerate(zip(pair_meta, pair_items))]
        runs.append(CutsRun(model, slice_spec, cut_spec, results[m], pairs,
                            _provenance(model, lm, cut_spec, dataset, specs[m]), {},
                            {"cuts": "miss"},
                            [model.warning] if model.warning else []))
    if cut_spec.mode == "joint":
        with _timed(timings, "match"):
            aligned, matches = align_runs(runs[0], runs[1])
            runs[1] = aligned
    clip = [model_scores(lm, np.array([img[i].pooled @ txt[c].pooled for i, c in pair_items],
                                      np.float32)).astype(np.float32)  # SigLIP: its sigmoid
            for lm, (img, txt) in zip(lms, encoded)]
    run = CompareRun(cut_spec.mode, slice_spec, cut_spec, specs, runs, clip, matches,
                     notes=_notes(models, specs, runs, cut_spec), timings=timings,
                     cache={"compare": "miss", **info})
    with _timed(timings, "analyses"):
        run.analyses = analyze(runs[0], clip[0], runs[1], clip[1])
    return run


def cut_both(cut_spec: CutSpec, encoded, pair_items, timings: dict | None = None,
             device: str = "cpu") -> tuple[list[CutResult], list[list[tuple[int, int]]]]:
    """The NCut stage on both models' embeddings: scalar mode one graph over both node sets,
    joint mode one cut each (not yet matched: `align_runs`). `encoded` is per model (image
    features, caption features) of the slice's unique items; `pair_items` per pair (image,
    caption). Returns per model the CutResult and each pair's node token span."""
    timings = timings if timings is not None else {}
    if cut_spec.mode == "scalar":
        return _shared_scalar(cut_spec, encoded, pair_items, timings, device)
    cuts = [_cut(cut_spec, img, txt, pair_items, timings, device) for img, txt in encoded]
    return [r for r, _ in cuts], [s for _, s in cuts]


def _shared_scalar(cut_spec: CutSpec, encoded, pair_items, timings, device):
    """One NCut over both models' scalar nodes; each model's CutResult in that shared basis."""
    with _timed(timings, "affinities"):
        nodes = []
        for img, txt in encoded:
            aff = pair_affinities([img[i].patches for i, _ in pair_items],
                                  [txt[c].tokens for _, c in pair_items],
                                  cut_spec.similarity, cut_spec.include_special,
                                  [txt[c].special for _, c in pair_items])
            nodes.append((*scalar_nodes(aff), aff.token_span))
    (fa, ia, _), (fb, ib, _) = nodes
    # identical node sets (the same spec twice): a graph of every node twice has the spectrum and
    # (repeated) eigenvectors of one copy, so cut one copy and give both sides the same values
    same = fa.shape == fb.shape and np.array_equal(fa, fb) and np.array_equal(ia, ib)
    features = fa if same else np.concatenate([fa, fb])  # [N_a + N_b, 1]
    with _timed(timings, "ncut"):
        eigvec, eigval = run_ncut(features, cut_spec.n_eig, cut_spec.seed, cut_spec.sharpness,
                                  device)
        labels = kway_labels(eigvec, min(cut_spec.clusters, eigvec.shape[1]))
    if same:
        eigvec, labels = np.concatenate([eigvec, eigvec]), np.concatenate([labels, labels])
    bounds = np.cumsum([0] + [len(f) for f, _, _ in nodes])
    results = []
    for m, ((_, index, _), (img, txt)) in enumerate(zip(nodes, encoded)):
        rows = slice(bounds[m], bounds[m + 1])
        results.append(CutResult(
            "scalar", eigvec[rows], eigval, labels[rows], index, pair_items,
            img[0].patches.shape[0], [len(t.ids) for t in txt],
            [f.patches.astype(np.float16) for f in img],
            [t.tokens.astype(np.float16) for t in txt]))
    return results, [s for _, _, s in nodes]


def shared_word_rows(run_a: CutsRun, run_b: CutsRun) -> tuple[np.ndarray, np.ndarray]:
    """([n, k_a], [n, k_b]) word-level scores of every word occurrence of the pairs whose
    captions both models split into the same words."""
    rows_a, rows_b = [], []
    for p, (pa, pb) in enumerate(zip(run_a.pairs, run_b.pairs)):
        if pa.words == pb.words:
            rows_a.append(run_a.word_level_scores(p))
            rows_b.append(run_b.word_level_scores(p))
    if not rows_a:
        raise UserError("The two models share no words on this slice (their tokenizers split "
                        "every caption differently): eigenvectors cannot be matched.")
    return np.concatenate(rows_a), np.concatenate(rows_b)


def match_eigenvectors(a: np.ndarray, b: np.ndarray) -> list[dict]:
    """One-to-one matching of the columns of b ([n, k]) to those of a ([n, k]) over the same rows.

    Column 0 (trivial) goes to 0; columns 1..k-1 by the Hungarian assignment maximising the total
    absolute Pearson correlation. Returns per column i of a: {"a": i, "b": j, "correlation":
    |r| after sign alignment, "sign": sign(r) (b's column times sign follows a's), "weak"}.
    """
    from scipy.optimize import linear_sum_assignment

    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"match_eigenvectors needs two [n, k] arrays, got {a.shape}, {b.shape}.")
    corr = _correlation(a[:, 1:], b[:, 1:])  # [k-1, k-1]
    rows, cols = linear_sum_assignment(-np.abs(corr))
    out = [{"a": 0, "b": 0, "correlation": 1.0, "sign": 1, "weak": False}]
    for i, j in zip(rows, cols):
        r = float(corr[i, j])
        out.append({"a": int(i) + 1, "b": int(j) + 1, "correlation": round(abs(r), 6),
                    "sign": 1 if r >= 0 else -1, "weak": abs(r) < WEAK_MATCH})
    return out


def _correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[k1, k2] Pearson correlation of the columns of x and y (0 where a column is constant)."""
    x = np.nan_to_num(x.astype(np.float64))
    y = np.nan_to_num(y.astype(np.float64))
    x = x - x.mean(0)
    y = y - y.mean(0)
    nx, ny = np.linalg.norm(x, axis=0), np.linalg.norm(y, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = (x.T @ y) / np.outer(nx, ny)
    return np.nan_to_num(c)


def align_runs(run_a: CutsRun, run_b: CutsRun) -> tuple[CutsRun, list[dict]]:
    """run_b with its eigenvectors permuted and sign-flipped to match run_a's (joint mode), and
    the match table. Both keep min(k_a, k_b) eigenvectors."""
    k = min(run_a.result.n_eig, run_b.result.n_eig)
    words_a, words_b = shared_word_rows(run_a, run_b)
    matches = match_eigenvectors(words_a[:, :k], words_b[:, :k])
    order = [m["b"] for m in matches]
    signs = np.array([m["sign"] for m in matches], np.float32)
    rb = run_b.result
    result = replace(rb, eigvec=rb.eigvec[:, order] * signs, eigval=rb.eigval[order])
    return replace(run_b, result=result), matches


def _notes(models, specs, runs, cut_spec) -> list[str]:
    notes = []
    a, b = models
    if a.weights_id == b.weights_id and specs[0].layer == specs[1].layer and \
            specs[0].patch_norm == specs[1].patch_norm:
        notes.append("Both sides are the same model spec: differences are zero by construction.")
    grids = [r.result.n_patches - 1 for r in runs]
    if grids[0] != grids[1]:
        side = [int(round(g ** 0.5)) for g in grids]
        notes.append(f"Patch grids differ: a {side[0]}x{side[0]} ({grids[0]} patches), b "
                     f"{side[1]}x{side[1]} ({grids[1]} patches). "
                     + ("Scalar nodes are comparable anyway; node-level agreement is not "
                        "computed." if cut_spec.mode == "scalar" else "Matched on words."))
    differing = sum(pa.words != pb.words for pa, pb in zip(runs[0].pairs, runs[1].pairs))
    if differing:
        notes.append(f"{differing} captions are split into different words by the two "
                     "tokenizers: no word difference for those pairs.")
    if any(m.demo_weights for m in models):
        notes.append("DEMO WEIGHTS on at least one side: the comparison says nothing about CLIP.")
    return notes


def _record(cache: Cache, run: CompareRun) -> None:
    a, b = run.runs
    history.append(cache.directory, {
        "kind": "compare", "model": a.model.name, "model_b": b.model.name, "mode": run.mode,
        "demo_weights": a.demo_weights or b.demo_weights,
        "parameters": {"slice": asdict(run.slice), "cut": asdict(run.cut),
                       "models": [asdict(s) for s in run.specs]},
        "n_pairs": len(a.pairs), "cache": run.cache.get("compare"),
        "seconds": run.timings.get("total"),
        "matches": [[m["a"], m["b"], m["correlation"]] for m in run.matches or []],
    })
