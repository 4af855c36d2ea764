"""The alignment losses as differentiable torch functions (a contract for outside tools).

Every function takes torch tensors (`img`, `txt`: `[n, d]` pooled projected embeddings, one row
per pair, row i of each from the same pair) and returns a scalar tensor; lower is better.

The research's losses, exactly as its code and report wrote them (REFERENCE section 7), with
X = img and Y = txt:
- `contrastive`: CLIP's symmetric InfoNCE, logits = exp(logit_scale) * cos(X_i, Y_j).
- `cka`: -CKA with Gram matrices K = X X^T, L = Y Y^T centred by H = I - 11^T/n,
  CKA = sum(K * L) / (sqrt(sum(K * K) * sum(L * L)) + 1e-8).
- `svd`: rows divided by (norm + 1e-8) when `normalize`; C = X^T Y (no centring, no 1/n);
  s = singular values descending; alpha * -(s[k-1] - s[k]) + beta * -(s[0] + ... + s[k-1]).
- `clip_svd`: -gamma * mean_i sum(X_i * Y_i) (the rows as given) + `svd`.
- `cluster_from_eigenvalues`: on ascending normalized-Laplacian eigenvalues lam,
  alpha * -(lam[k] - lam[k-1]) + beta * -(lam[1] + ... + lam[k]).
- `cluster`: that, on the eigenvalues of the batch graph (`graph_eigenvalues`), exact gradients
  through `torch.linalg.eigvalsh`.

The normalized variants of `engineered_latents.losses` (the loss-surface views), each equal to its
numpy counterpart on the same inputs: `cka_centered` (1 - linear CKA), `svd_normalized`
(centred cross-covariance / (n - 1), singular values divided by their sum, gap 0 when k is the
last), `cluster_tight_from_eigenvalues` / `cluster_tight` (the eigenvalue sum is *added*).

`parse_loss("contrastive+0.1*cluster")` reads a weighted sum of these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import UserError
from ..lazy import LazyModule, torch  # imported on first use: the CLI's parser reads LOSSES

F = LazyModule("torch.nn.functional")

EPS = 1e-8  # the research's epsilon in row norms and the CKA denominator


def _check_pair(img: torch.Tensor, txt: torch.Tensor) -> None:
    if img.ndim != 2 or txt.ndim != 2:
        raise ValueError(f"img and txt must be [n, d], got {tuple(img.shape)} and "
                         f"{tuple(txt.shape)}")
    if img.shape[0] != txt.shape[0]:
        raise ValueError(f"img and txt need the same rows, got {img.shape[0]} and {txt.shape[0]}")
    if img.shape[0] < 2:
        raise ValueError(f"a batch loss needs at least 2 rows, got {img.shape[0]}")


def _check_k(k: int, limit: int, what: str) -> None:
    if not 1 <= k < limit:
        raise ValueError(f"k must be in [1, {limit - 1}] ({what}), got {k}")


def row_normalize(x: torch.Tensor) -> torch.Tensor:
    """Each row divided by (its L2 norm + 1e-8), as the research did. [n, d] -> [n, d]."""
    return x / (x.norm(dim=-1, keepdim=True) + EPS)


# ----------------------------------------------------------------------------- research losses


def contrastive(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP's symmetric InfoNCE; `logit_scale` is the log of the scale (as CLIPModel stores it)."""
    _check_pair(img, txt)
    logits = logit_scale.exp() * row_normalize(img) @ row_normalize(txt).T  # [n, n]
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _centred_gram(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    h = torch.eye(n, dtype=x.dtype, device=x.device) - 1.0 / n  # [n, n]
    return h @ (x @ x.T) @ h


def cka(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """Minus linear CKA of the batch's Gram matrices (centred), the research's formula."""
    _check_pair(img, txt)
    k, m = _centred_gram(img), _centred_gram(txt)  # [n, n] each
    value = (k * m).sum() / (torch.sqrt((k * k).sum() * (m * m).sum()) + EPS)
    return -value


def svd(img: torch.Tensor, txt: torch.Tensor, k: int = 3, alpha: float = 1.0, beta: float = 0.5,
        normalize: bool = True) -> torch.Tensor:
    """The research's cross-covariance SVD loss on C = X^T Y (raw singular values)."""
    _check_pair(img, txt)
    x, y = (row_normalize(img), row_normalize(txt)) if normalize else (img, txt)
    s = torch.linalg.svdvals(x.T @ y)  # [min(dx, dy)], descending
    _check_k(k, len(s), "singular values")
    gap = -(s[k - 1] - s[k])
    magnitude = -s[:k].sum()
    return alpha * gap + beta * magnitude


def mean_paired_cosine(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """The research's "CLIP score": mean over rows of cos(X_i, Y_i)."""
    return (row_normalize(img) * row_normalize(txt)).sum(-1).mean()


def clip_svd(img: torch.Tensor, txt: torch.Tensor, k: int = 3, alpha: float = 1.0,
             beta: float = 0.5, gamma: float = 1.0, normalize: bool = True) -> torch.Tensor:
    """-gamma * mean_i sum(X_i * Y_i) (rows as given) plus `svd` (on row-normalized copies)."""
    _check_pair(img, txt)
    clip_term = -(img * txt).sum(-1).mean()
    return gamma * clip_term + svd(img, txt, k, alpha, beta, normalize)


def cluster_from_eigenvalues(lam_ascending: torch.Tensor, k: int = 3, alpha: float = 1.0,
                             beta: float = 0.5) -> torch.Tensor:
    """The research's NCut cluster loss on ascending Laplacian eigenvalues (lam[0] ~ 0)."""
    lam = lam_ascending.reshape(-1)
    _check_k(k, len(lam), "eigenvalues")
    gap = -(lam[k] - lam[k - 1])
    cluster_term = -lam[1 : k + 1].sum()
    return alpha * gap + beta * cluster_term


# ----------------------------------------------------------------------------- the batch graph


def _centre_normalize(x: torch.Tensor) -> torch.Tensor:
    """Column-centre, then L2-normalize the rows (the joint mode's treatment of a modality)."""
    return row_normalize(x - x.mean(dim=0, keepdim=True))


def graph_eigenvalues(nodes: torch.Tensor) -> torch.Tensor:
    """Ascending eigenvalues of the normalized Laplacian of the nodes' affinity graph.

    nodes: [m, d] (rows already centred/normalized as wanted). Affinity
    A_ij = exp(-(1 - cos_ij) / h) off the diagonal (0 on it), h = the mean of (1 - cos) over the
    off-diagonal pairs (a bandwidth that follows the batch, differentiable);
    L = I - D^-1/2 A D^-1/2. Returns [m]; gradients are exact (`torch.linalg.eigvalsh`).
    """
    m = nodes.shape[0]
    z = row_normalize(nodes)
    dist = 1.0 - z @ z.T  # [m, m]
    off = ~torch.eye(m, dtype=torch.bool, device=nodes.device)
    h = dist[off].mean().clamp_min(EPS)
    a = torch.exp(-dist / h) * off  # [m, m]
    d = a.sum(-1).clamp_min(EPS).rsqrt()  # [m]
    lap = torch.eye(m, dtype=nodes.dtype, device=nodes.device) - d[:, None] * a * d[None, :]
    return torch.linalg.eigvalsh((lap + lap.T) / 2)


def pooled_graph(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """The pooled batch graph's nodes: the image rows then the text rows, each modality centred
    and normalized (else the first cut only splits images from texts). [2n, d]."""
    _check_pair(img, txt)
    return torch.cat([_centre_normalize(img), _centre_normalize(txt)])


def cluster(img: torch.Tensor, txt: torch.Tensor, k: int = 3, alpha: float = 1.0,
            beta: float = 0.5) -> torch.Tensor:
    """The research's cluster loss, computed for real on the pooled batch graph (2n nodes)."""
    return cluster_from_eigenvalues(graph_eigenvalues(pooled_graph(img, txt)), k, alpha, beta)


def tokens_graph(out: dict, batch: dict, max_nodes: int, seed: int) -> torch.Tensor:
    """The joint patch + word-token graph of the batch, each modality centred and normalized,
    sampled (seeded) to at most `max_nodes` nodes, half patches. [m, D]."""
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    words = mask.clone()
    words[:, 0] = False  # the start token
    words[torch.arange(len(ids)), mask.sum(1) - 1] = False  # the end token
    patches = out["patches"].reshape(-1, out["patches"].shape[-1]).float()
    tokens = out["tokens"][words].float()
    gen = torch.Generator().manual_seed(seed)
    n_p = min(len(patches), max_nodes // 2)
    n_t = min(len(tokens), max_nodes - n_p)
    pick_p = torch.randperm(len(patches), generator=gen)[:n_p].to(patches.device)
    pick_t = torch.randperm(len(tokens), generator=gen)[:n_t].to(tokens.device)
    return torch.cat([_centre_normalize(patches[pick_p]), _centre_normalize(tokens[pick_t])])


# ----------------------------------------------------------------------------- normalized views


def cka_centered(img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
    """1 - linear CKA with column-centred features (`engineered_latents.losses.cka_loss`)."""
    _check_pair(img, txt)
    xc, yc = img - img.mean(0, keepdim=True), txt - txt.mean(0, keepdim=True)
    cross = torch.linalg.matrix_norm(yc.T @ xc) ** 2
    denom = torch.linalg.matrix_norm(xc.T @ xc) * torch.linalg.matrix_norm(yc.T @ yc)
    return 1.0 - cross / denom


def svd_normalized(img: torch.Tensor, txt: torch.Tensor, k: int = 3, alpha: float = 1.0,
                   beta: float = 0.5) -> torch.Tensor:
    """`engineered_latents.losses.svd_loss`: p = s / sum(s) of C = Xc^T Yc / (n - 1);
    -alpha * (p[k-1] - p[k]) - beta * (p[0] + ... + p[k-1]); the gap is 0 when k = len(s)."""
    _check_pair(img, txt)
    n = img.shape[0]
    c = (img - img.mean(0, keepdim=True)).T @ (txt - txt.mean(0, keepdim=True)) / (n - 1)
    s = torch.linalg.svdvals(c)
    _check_k(k, len(s) + 1, "singular values")
    p = s / s.sum()
    gap = p[k - 1] - p[k] if k < len(p) else p.new_zeros(())
    return -alpha * gap - beta * p[:k].sum()


def cluster_tight_from_eigenvalues(lam_ascending: torch.Tensor, k: int = 3, alpha: float = 1.0,
                                   beta: float = 0.5) -> torch.Tensor:
    """`engineered_latents.losses.cluster_loss_from_laplacian`:
    -alpha * (lam[k] - lam[k-1]) + beta * (lam[1] + ... + lam[k]) (tight clusters rewarded)."""
    lam = lam_ascending.reshape(-1)
    _check_k(k, len(lam), "eigenvalues")
    return -alpha * (lam[k] - lam[k - 1]) + beta * lam[1 : k + 1].sum()


def cluster_tight(img: torch.Tensor, txt: torch.Tensor, k: int = 3, alpha: float = 1.0,
                  beta: float = 0.5) -> torch.Tensor:
    """`cluster_tight_from_eigenvalues` on the pooled batch graph."""
    return cluster_tight_from_eigenvalues(graph_eigenvalues(pooled_graph(img, txt)), k, alpha,
                                          beta)


# ----------------------------------------------------------------------------- weighted sums

# name -> what it needs: "scale" (the logit scale), "k" (k, alpha, beta), "gamma", "graph"
LOSSES: dict[str, tuple[str, ...]] = {
    "contrastive": ("scale",),
    "cka": (),
    "svd": ("k",),
    "clip_svd": ("k", "gamma"),
    "cluster": ("k", "graph"),
    "cka_centered": (),
    "svd_normalized": ("k",),
    "cluster_tight": ("k", "graph"),
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_TERM = re.compile(rf"\s*([+-])?\s*(?:({_NUMBER})\s*\*\s*)?([A-Za-z_]+)\s*")


@dataclass(frozen=True)
class LossTerm:
    name: str
    weight: float


def parse_loss(text: str) -> tuple[LossTerm, ...]:
    """`"contrastive+0.1*cluster"` -> terms; each term `[weight*]name`, joined by + or -."""
    terms, pos, text = [], 0, str(text)
    if not text.strip():
        raise UserError(f"--loss is empty: give one of {', '.join(LOSSES)} or a weighted sum "
                        "like contrastive+0.1*cluster.")
    while pos < len(text):
        match = _TERM.match(text, pos)
        if not match or (terms and match.group(1) is None) or match.end() == pos:
            raise UserError(f"--loss {text!r} is not a weighted sum of loss names at "
                            f"{text[pos:]!r}: write it like contrastive+0.1*cluster.")
        sign, weight, name = match.groups()
        if name not in LOSSES:
            raise UserError(f"Unknown loss {name!r} in --loss {text!r}: use "
                            f"{', '.join(LOSSES)}.")
        if any(t.name == name for t in terms):
            raise UserError(f"--loss {text!r} names {name!r} twice: give each loss once.")
        value = float(weight) if weight is not None else 1.0
        terms.append(LossTerm(name, -value if sign == "-" else value))
        pos = match.end()
    return tuple(terms)


def needs(terms: tuple[LossTerm, ...], what: str) -> bool:
    return any(what in LOSSES[t.name] for t in terms)


@dataclass(frozen=True)
class LossParams:
    k: int = 3
    alpha: float = 1.0
    beta: float = 0.5
    gamma: float = 1.0


def combined(terms: tuple[LossTerm, ...], img: torch.Tensor, txt: torch.Tensor,
             logit_scale: torch.Tensor, params: LossParams = LossParams(),
             graph_nodes: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """The weighted sum and each term's value (detached floats). img, txt: [n, d] row-normalized
    embeddings; graph_nodes: [m, d] the tokens graph's nodes (None: the pooled graph)."""
    lam = None
    total, values = img.new_zeros(()), {}
    for term in terms:
        if LOSSES[term.name][-1:] == ("graph",) and lam is None:
            nodes = pooled_graph(img, txt) if graph_nodes is None else graph_nodes
            lam = graph_eigenvalues(nodes)
        value = _term(term.name, img, txt, logit_scale, params, lam)
        values[term.name] = float(value.detach())
        total = total + term.weight * value
    return total, values


def _term(name: str, img, txt, logit_scale, params: LossParams, lam) -> torch.Tensor:
    k, a, b = params.k, params.alpha, params.beta
    if name == "contrastive":
        return contrastive(img, txt, logit_scale)
    if name == "cka":
        return cka(img, txt)
    if name == "svd":
        return svd(img, txt, k, a, b)
    if name == "clip_svd":
        return clip_svd(img, txt, k, a, b, params.gamma)
    if name == "cluster":
        return cluster_from_eigenvalues(lam, k, a, b)
    if name == "cka_centered":
        return cka_centered(img, txt)
    if name == "svd_normalized":
        return svd_normalized(img, txt, k, a, b)
    return cluster_tight_from_eigenvalues(lam, k, a, b)
