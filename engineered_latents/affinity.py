"""Patch x token affinities of a slice's pairs, with masks instead of padding-as-data.

For every pair, `A[p, i, t]` is the similarity of patch i (row 0 is CLS) and token t (column 0 is
the start token, T-1 the end token). The mask says which entries are graph nodes: never padding,
and not the CLS patch or the start/end tokens unless `include_special`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .lazy import torch  # imported on first use (a cached run needs none)

SIMILARITIES = ("cosine", "dot")


@dataclass
class Affinities:
    values: np.ndarray  # [pairs, 1 + patches, T_max] float32 (0 where masked)
    mask: np.ndarray  # [pairs, 1 + patches, T_max] bool: which entries are nodes
    token_span: list[tuple[int, int]]  # per pair: [first, last) token positions that are nodes


def token_span(n_tokens: int, include_special: bool,
               special: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    """The token positions that become nodes: all, or all but the special tokens (`special`:
    how many lead and trail; CLIP's start and end token, SigLIP's end token alone)."""
    return (0, n_tokens) if include_special else (special[0], n_tokens - special[1])


def pair_affinities(
    patches: Sequence[np.ndarray],  # per pair [1 + patches, D]
    tokens: Sequence[np.ndarray],  # per pair [T_i, D]
    similarity: str = "cosine",
    include_special: bool = False,
    special: Sequence[tuple[int, int]] | None = None,  # per pair (lead, trail); None: (1, 1)
) -> Affinities:
    """Affinities of all pairs as one batched product, with the node mask."""
    if similarity not in SIMILARITIES:
        raise UserError(f"Unknown similarity {similarity!r}: use one of {', '.join(SIMILARITIES)}.")
    lengths = [len(t) for t in tokens]
    t_max = max(lengths)
    img = torch.from_numpy(np.stack(patches)).float()  # [pairs, 1 + patches, D]
    txt = torch.zeros(len(tokens), t_max, img.shape[-1])  # [pairs, T_max, D]
    for i, t in enumerate(tokens):
        txt[i, : len(t)] = torch.from_numpy(t)
    if similarity == "cosine":
        img = torch.nn.functional.normalize(img, dim=-1)
        txt = torch.nn.functional.normalize(txt, dim=-1)
    values = torch.einsum("bpd,btd->bpt", img, txt)  # [pairs, 1 + patches, T_max]

    special = special if special is not None else [(1, 1)] * len(lengths)
    spans = [token_span(n, include_special, s) for n, s in zip(lengths, special)]
    positions = torch.arange(t_max)
    token_ok = torch.stack([(positions >= a) & (positions < b) for a, b in spans])  # [pairs, T]
    patch_ok = torch.ones(img.shape[1], dtype=torch.bool)  # [1 + patches]
    patch_ok[0] = include_special
    mask = patch_ok[None, :, None] & token_ok[:, None, :]
    empty = [i for i, (a, b) in enumerate(spans) if b <= a]
    if empty:
        raise UserError(
            f"Pair {empty[0]} has a caption with no words (empty or only whitespace): "
            "give every image a caption with at least one word."
        )
    return Affinities((values * mask).numpy(), mask.numpy(), spans)
