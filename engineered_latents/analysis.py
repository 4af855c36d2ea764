"""Analyses of a finished cut that need no model: raw affinities of each pair (from the
embeddings the run keeps), k-way cluster summaries, each patch's cluster, and the joint mode's
word x patch map. The app's views and the CLI read these; they never load a model.
"""

from __future__ import annotations

import warnings

import numpy as np

from .affinity import pair_affinities
from .errors import UserError
from .pipeline import CutsRun


def pair_affinity_maps(run: CutsRun) -> list[np.ndarray]:
    """Per pair [1 + patches, node tokens]: the raw patch x token similarities, from the
    projected embeddings the run keeps (float16 copies, computed in float32)."""
    res = run.result
    if res.patch_embeddings is None or res.token_embeddings is None:
        raise UserError("This cut keeps no embeddings (computed by an older version): run it "
                        "again to see raw affinities.")
    patches = [np.asarray(res.patch_embeddings[i], np.float32) for i, _ in res.pair_items]
    tokens = [np.asarray(res.token_embeddings[c], np.float32) for _, c in res.pair_items]
    aff = pair_affinities(patches, tokens, run.cut.similarity, include_special=True)
    return [aff.values[p][:, info.token_positions] for p, info in enumerate(run.pairs)]


def word_patch_map(run: CutsRun, pair: int, positions: list[int], eig: int) -> np.ndarray:
    """[1 + patches] how strongly each patch goes with the word at token `positions`.

    Scalar mode: the word's columns of the node values on eigenvector `eig`, averaged over its
    pieces. Joint mode (a node per patch and per token): the cosine between the word's token
    nodes and each patch node over eigenvectors 1..k-1.
    """
    res = run.result
    if res.mode == "scalar":
        with warnings.catch_warnings():  # the CLS row is all NaN unless special tokens are nodes
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(res.node_values(pair)[:, positions, eig], axis=1)
    word_vec = res.word_scores(pair)[positions, 1:].mean(axis=0)
    patches = res.patch_map(pair)[:, 1:]
    norms = np.linalg.norm(patches, axis=1) * max(np.linalg.norm(word_vec), 1e-12)
    with np.errstate(all="ignore"):
        return (patches @ word_vec) / np.maximum(norms, 1e-12)


def cluster_summaries(run: CutsRun, n_words: int = 6) -> list[dict]:
    """Per k-way cluster: node count, most frequent words, patch nodes and the pairs they are in."""
    res = run.result
    k = int(res.labels.max()) + 1 if len(res.labels) else 0
    k = max(k, run.cut.clusters)
    tables = node_tables(run)
    return [{"cluster": c, **summarize_nodes(tables, res.labels == c, n_words)}
            for c in range(k)]


def node_tables(run: CutsRun) -> dict:
    """Per graph node: its word id (-1: none), its patch id (pair or image x patch; -1: not a
    patch), the pair it is shown in, whether it is a patch; and the case-folded word names.
    What `summarize_nodes` reads for any set of nodes (a k-way cluster, a recursive-cut node)."""
    res = run.result
    vocab: dict[str, int] = {}
    if res.mode == "scalar":
        t_max = max(res.n_tokens)
        table = np.full((len(run.pairs), t_max), -1, np.int64)  # [pairs, T] -> word id
        for p, info in enumerate(run.pairs):
            for word, positions in zip(info.words, info.word_positions):
                table[p, positions] = vocab.setdefault(word.lower(), len(vocab))
        word_ids = table[res.index[:, 0], res.index[:, 2]]
        patch_ids = res.index[:, 0] * res.n_patches + res.index[:, 1]
        pair_of = res.index[:, 0]
        is_patch = np.ones(len(res.index), bool)
    else:
        items = np.array(res.pair_items, dtype=np.int64).reshape(-1, 2)  # [pairs, (image, caption)]
        image_pair = np.full(int(items[:, 0].max()) + 1, -1, np.int64)
        caption_pair = np.full(len(res.n_tokens), -1, np.int64)
        image_pair[items[::-1, 0]] = np.arange(len(items))[::-1]  # first pair showing each item
        caption_pair[items[::-1, 1]] = np.arange(len(items))[::-1]
        table = np.full((len(res.n_tokens), max(res.n_tokens)), -1, np.int64)  # [captions, T]
        for c, p in enumerate(caption_pair):
            if p < 0:
                continue
            info = run.pairs[p]
            for word, positions in zip(info.words, info.word_positions):
                table[c, positions] = vocab.setdefault(word.lower(), len(vocab))
        is_patch = res.index[:, 0] == 0
        item, position = res.index[:, 1], res.index[:, 2]
        word_ids = np.where(is_patch, -1, table[np.where(is_patch, 0, item),
                                                np.where(is_patch, 0, position)])
        patch_ids = np.where(is_patch, item * res.n_patches + position, -1)
        pair_of = np.where(is_patch, image_pair[np.where(is_patch, item, 0)],
                           caption_pair[np.where(is_patch, 0, item)])
    return {"word_ids": word_ids, "patch_ids": patch_ids, "pair_of": pair_of,
            "is_patch": is_patch, "names": np.array(list(vocab) or [""], dtype=object)}


def summarize_nodes(tables: dict, members: np.ndarray, n_words: int = 6) -> dict:
    """Node count, most frequent words, distinct patch nodes and the (up to 4) pairs most of
    them are in, of the nodes where `members` (bool [N]) is true (`node_tables`)."""
    word_ids, patch_ids, pair_of = tables["word_ids"], tables["patch_ids"], tables["pair_of"]
    names, n_vocab = tables["names"], len(tables["names"])
    ids = word_ids[members]
    ids = ids[ids >= 0]
    counts = np.bincount(ids, minlength=n_vocab) if len(ids) else np.zeros(0, int)
    top = [str(names[i]) for i in np.argsort(-counts, kind="stable")[:n_words] if counts[i]]
    patches = patch_ids[members & tables["is_patch"]]
    pairs = np.bincount(pair_of[members & (pair_of >= 0)], minlength=1)
    return {
        "size": int(members.sum()), "words": top,
        "patch_nodes": int(len(np.unique(patches[patches >= 0]))),
        "pairs": [int(p) for p in np.argsort(-pairs, kind="stable")[:4] if pairs[p]],
    }


def patch_clusters(run: CutsRun, pair: int) -> np.ndarray:
    """[1 + patches] k-way cluster of each patch (scalar: its most frequent over the tokens)."""
    res = run.result
    out = np.full(res.n_patches, np.nan)
    if res.mode == "scalar":
        rows = res.index[:, 0] == pair
        k = int(res.labels.max()) + 1
        counts = np.zeros((res.n_patches, k), np.int64)
        np.add.at(counts, (res.index[rows, 1], res.labels[rows]), 1)
        has = counts.sum(1) > 0
        out[has] = counts[has].argmax(1)
    else:
        image = res.pair_items[pair][0]
        rows = (res.index[:, 0] == 0) & (res.index[:, 1] == image)
        out[res.index[rows, 2]] = res.labels[rows]
    return out
