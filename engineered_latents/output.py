"""What a cuts run writes: `summary.json` (a contract other tools read) and `cuts.npz`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .pipeline import CutsRun


def _rows(x: np.ndarray) -> list:
    """A float array as nested lists, NaN as null (JSON has no NaN)."""
    return [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in x]


def summary(run: CutsRun, n_top: int = 5, tree=None) -> dict:
    """The summary.json contract: model, demo_weights, dataset, mode, n_eig, n_nodes, eigenvalues,
    pairs (example, caption, tokens, word_scores, words, word_level_scores), timings, provenance;
    with a recursive cut (`recursive.ClusterTree`), `recursive`: levels, k, min_nodes, n_nodes,
    seconds and nodes (id, parent, level, cluster, size, words, patch_nodes, pairs, eigenvalues,
    stopped, children)."""
    result = run.result
    extra = {"recursive": tree.to_json()} if tree is not None else {}
    return {
        "model": run.model.name,
        "demo_weights": run.demo_weights,
        "warning": run.model.warning,
        "dataset": run.slice.dataset,
        "mode": run.cut.mode,
        "n_eig": result.n_eig,
        "n_nodes": int(result.eigvec.shape[0]),
        "n_pairs": len(run.pairs),
        "eigenvalues": [round(float(v), 6) for v in result.eigval],
        "trivial_eigenvector": "eigenvector 0 (eigenvalue ~1) is constant: views start from 1",
        "top_words": {str(e): words for e, words in
                      run.top_words_all(n_top, range(1, min(result.n_eig, 6))).items()},
        "clusters": {"k": run.cut.clusters, "sizes": run.cluster_sizes()},
        "pairs": [
            {
                "example": info.example, "image": info.image, "caption_index": info.caption_index,
                "caption": info.caption, "tokens": info.tokens,
                "word_scores": _rows(run.word_scores(p)),
                "words": info.words, "word_level_scores": _rows(run.word_level_scores(p)),
                "truncated": info.truncated,
            }
            for p, info in enumerate(run.pairs)
        ],
        "settings": {"slice": asdict(run.slice), "cut": asdict(run.cut)},
        "timings": run.timings,
        "cache": run.cache,
        "warnings": run.warnings,
        "provenance": run.provenance,
        **extra,
    }


def _padded(rows: list[np.ndarray], length: int) -> np.ndarray:
    out = np.full((len(rows), length, 3), np.nan, np.float32)
    for p, r in enumerate(rows):
        out[p, : len(r)] = r
    return out


def save(run: CutsRun, out_dir: str | Path, tree=None) -> Path:
    """Write summary.json (with the recursive cut's `tree`, if any) and cuts.npz to `out_dir`;
    returns the directory."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary(run, tree=tree), indent=1,
                                                 ensure_ascii=False))
    result = run.result
    scores = [run.word_scores(p) for p in range(len(run.pairs))]
    t_max = max(len(s) for s in scores)
    padded = np.full((len(scores), t_max, result.n_eig), np.nan, np.float32)
    for p, s in enumerate(scores):
        padded[p, : len(s)] = s
    np.savez_compressed(
        out / "cuts.npz",
        eigenvectors=result.eigvec,  # [nodes, k]
        eigenvalues=result.eigval,  # [k] descending
        cluster_labels=result.labels,  # [nodes]
        node_index=result.index,  # [nodes, 3] scalar (pair, patch, token); joint (kind, item, pos)
        word_scores=padded,  # [pairs, max node tokens, k], NaN padded
        patch_maps=np.stack([result.patch_map(p) for p in range(len(run.pairs))]),  # [pairs, P, k]
        patch_rgb=run.patch_rgb(),  # [pairs, 1 + patches, 3], the RGB view (settings' colour)
        token_rgb=_padded(run.token_rgb(), t_max),  # [pairs, max node tokens, 3], NaN padded
        pair_items=np.array(result.pair_items),  # [pairs, 2] (unique image, unique caption)
    )
    return out
