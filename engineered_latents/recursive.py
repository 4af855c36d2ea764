"""The recursive cut (as the ncut-pytorch Space's, three levels): concepts split into sub-concepts.

Level 1 is the slice's own cut: the k-way clusters of `compute_cuts` (`CutResult.labels`). Each
level below takes the nodes of one cluster of the level above and cuts them again: its own NCut
(`cuts.run_ncut`, the run's n_eig, seed and sharpness) over those nodes' features alone, then its
own k-way clustering (the run's k). The features are the level-1 graph's, recomputed from the
float16 embeddings the run keeps (so no model is loaded):
- scalar mode: the node's one number, the patch x token affinity (the run's similarity);
- joint mode: the node's projected embedding, centred and L2-normalized per modality over the
  whole slice as level 1 did (`--no-center`: raw), so a sub-cut is the level-1 graph's features
  restricted to the cluster, not re-centred on it.
The float16 copies move scalar affinities by about 1e-3 relative: sub-cuts see those values.

A cluster with fewer than `2 * k` nodes (less than two nodes per sub-cluster), or whose nodes
all carry the same feature (a scalar cluster of one affinity value), is not cut: that branch
stops and its node says why (`TreeNode.stopped`). Empty sub-clusters are left out, so the
children's sizes always sum to their parent's. Trees are cached with the run's identity.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .affinity import pair_affinities, token_span
from .analysis import node_tables, summarize_nodes
from .cache import Cache, cache_key
from .controls import CONTROLS
from .cuts import joint_nodes, kway_labels, run_ncut, scalar_nodes
from .errors import UserError, quoted
from .pipeline import CutsRun

RECURSIVE_VERSION = 2  # bump when a change alters trees (2: NCut without the repulsion search)
# the Space's three levels (the control's range; k = 6 gives 1 + 6 + 36 cuts at three)
MAX_LEVELS = int(CONTROLS["recursive"].hi)
N_WORDS = 6  # top words per tree node


@dataclass
class TreeNode:
    id: str  # the path of cluster indices, e.g. "2.0.3" (level 1 is "2")
    parent: str | None  # None for level 1
    level: int  # 1 .. levels
    cluster: int  # its index in its parent's k-way cut (level 1: the slice's cluster)
    size: int  # graph nodes
    words: list[str]  # most frequent words among its token nodes
    patch_nodes: int  # distinct patches among its nodes
    pairs: list[int]  # the (up to 4) pairs most of its nodes are in
    # eigenvalues of this node's own NCut (the cut into its children); None: not cut
    eigenvalues: list[float] | None = None
    stopped: str | None = None  # why a node above the last level was not cut
    children: list[str] = field(default_factory=list)


@dataclass
class ClusterTree:
    levels: int
    k: int
    min_nodes: int  # a node with fewer graph nodes is not cut
    n_nodes: int  # graph nodes of the slice (level 1 sizes sum to it)
    nodes: list[TreeNode]  # depth first, children in cluster order
    members: dict[str, np.ndarray]  # node id -> indices of its graph nodes (sorted)
    seconds: float = 0.0  # time of the sub-cuts (0 from the cache: see `from_cache`)
    from_cache: bool = False

    def node(self, node_id: str) -> TreeNode:
        for n in self.nodes:
            if n.id == node_id:
                return n
        shown = ", ".join(n.id for n in self.nodes[:8]) + (", …" if len(self.nodes) > 8 else "")
        raise UserError(f"Tree node {quoted(node_id, 20)} does not exist: pick one of the "
                        f"tree's nodes ({shown}).")

    @property
    def stops(self) -> list[TreeNode]:
        return [n for n in self.nodes if n.stopped]

    def to_json(self) -> dict:
        """The tree as summary.json writes it (`recursive`)."""
        return {"levels": self.levels, "k": self.k, "min_nodes": self.min_nodes,
                "n_nodes": self.n_nodes, "seconds": self.seconds,
                "nodes": [asdict(n) for n in self.nodes]}


def check_levels(levels) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int | np.integer) \
            or not 1 <= levels <= MAX_LEVELS:
        raise UserError(f"Recursive levels {levels!r}: give 1 (the slice's clusters only) to "
                        f"{MAX_LEVELS}.")
    return int(levels)


def node_features(run: CutsRun) -> np.ndarray:
    """[N, d] the level-1 graph's node features, recomputed from the kept embeddings, in the
    order of `run.result.index` (scalar: d = 1, the affinity; joint: the embedding)."""
    res, cut = run.result, run.cut
    if res.patch_embeddings is None or res.token_embeddings is None:
        raise UserError("This cut keeps no embeddings (computed by an older version): run it "
                        "again for a recursive cut.")
    patches = [np.asarray(p, np.float32) for p in res.patch_embeddings]
    tokens = [np.asarray(t, np.float32) for t in res.token_embeddings]
    if res.mode == "scalar":
        aff = pair_affinities([patches[i] for i, _ in res.pair_items],
                              [tokens[c] for _, c in res.pair_items], cut.similarity,
                              cut.include_special)
        features, index = scalar_nodes(aff)
    else:
        spans = [token_span(len(t), cut.include_special) for t in tokens]
        features, index = joint_nodes(patches, tokens, spans, cut.include_special, cut.center)
    if index.shape != res.index.shape or not np.array_equal(index, res.index):
        raise UserError("The kept embeddings do not match this cut's nodes: run the cut again.")
    return features


def _run_digest(run: CutsRun) -> str:
    """What identifies a finished cut for its tree: settings, weights, node set and labels."""
    res = run.result
    h = hashlib.sha256(json.dumps({"cut": asdict(run.cut), "slice": asdict(run.slice),
                                   "weights": run.model.weights_id,
                                   "provenance": run.provenance}, sort_keys=True,
                                  default=str).encode())
    for array in (res.index, res.labels, res.eigval):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def recursive_cut(run: CutsRun, levels: int = MAX_LEVELS, cache: Cache | None = None,
                  min_nodes: int | None = None, device: str | None = None,
                  progress: Callable[[str, float], None] | None = None) -> ClusterTree:
    """The cluster tree of a finished cut, `levels` deep (1: the slice's clusters only), from
    the cache when it was computed before. `progress(stage, fraction)` after each sub-cut."""
    levels = check_levels(levels)
    k = int(run.cut.clusters)
    min_nodes = 2 * k if min_nodes is None else int(min_nodes)
    key = cache_key("recursive", {"run": _run_digest(run), "levels": levels, "k": k,
                                  "min_nodes": min_nodes, "version": RECURSIVE_VERSION})
    if cache is not None:
        tree = cache.get(key)
        if isinstance(tree, ClusterTree):
            tree.from_cache = True
            return tree
    tree = _build(run, levels, k, min_nodes, device or _device(run), progress)
    if cache is not None:
        cache.set(key, tree)
    return tree


def _device(run: CutsRun) -> str:
    import torch

    cuda = str(run.provenance.get("device", "cpu")).startswith("cuda")
    return "cuda" if cuda and torch.cuda.is_available() else "cpu"


def _build(run: CutsRun, levels: int, k: int, min_nodes: int, device: str,
           progress=None) -> ClusterTree:
    import time

    started = time.perf_counter()
    report = progress or (lambda stage, fraction: None)
    most = sum(k ** level for level in range(1, levels))  # sub-cuts at most
    done = [0]
    res = run.result
    tables = node_tables(run)
    n = len(res.labels)
    features = node_features(run) if levels > 1 else None
    nodes: list[TreeNode] = []
    members: dict[str, np.ndarray] = {}

    def add(node_id, parent, level, cluster, rows):
        mask = np.zeros(n, bool)
        mask[rows] = True
        node = TreeNode(node_id, parent, level, cluster,
                        **summarize_nodes(tables, mask, N_WORDS))
        nodes.append(node)
        members[node_id] = rows
        if level < levels:
            split(node, rows)
        return node

    def split(node: TreeNode, rows: np.ndarray):
        if len(rows) < min_nodes:
            node.stopped = (f"too few nodes to cut: {len(rows)}, a cut into {k} needs at least "
                            f"{min_nodes}")
            return
        try:
            eigvec, eigval = run_ncut(features[rows], run.cut.n_eig, run.cut.seed,
                                      run.cut.sharpness, device)
            labels = kway_labels(eigvec, min(k, eigvec.shape[1]))
        except UserError as e:
            node.stopped = f"not cut: {' '.join(str(e).split())}"
            return
        node.eigenvalues = [round(float(v), 6) for v in eigval]
        done[0] += 1
        report(f"cut {node.id} ({len(rows)} nodes): {done[0]} of at most {most} sub-cuts",
               min(done[0] / most, 1.0))
        for c in range(int(labels.max()) + 1):
            sub = rows[labels == c]
            if len(sub):
                child = add(f"{node.id}.{c}", node.id, node.level + 1, c, sub)
                node.children.append(child.id)

    for c in range(int(res.labels.max()) + 1 if n else 0):
        rows = np.flatnonzero(res.labels == c)
        if len(rows):
            add(str(c), None, 1, c, rows)
    return ClusterTree(levels, k, min_nodes, n, nodes, members,
                       round(time.perf_counter() - started, 4))


def node_patch_map(run: CutsRun, rows: np.ndarray, pair: int) -> np.ndarray:
    """[1 + patches] how much of each patch of `pair` is in a tree node: scalar mode, the
    fraction of the patch's (patch, token) nodes among `rows`; joint mode, 1 for a patch node in
    it, 0 for one outside; NaN where the patch is not a graph node (the CLS patch)."""
    res = run.result
    inside = np.zeros(len(res.index), bool)
    inside[rows] = True
    out = np.full(res.n_patches, np.nan)
    if res.mode == "scalar":
        here = res.index[:, 0] == pair
        total = np.bincount(res.index[here, 1], minlength=res.n_patches)
        hits = np.bincount(res.index[here & inside, 1], minlength=res.n_patches)
        has = total > 0
        out[has] = hits[has] / total[has]
    else:
        image = res.pair_items[pair][0]
        here = (res.index[:, 0] == 0) & (res.index[:, 1] == image)
        out[res.index[here, 2]] = inside[here].astype(float)
    return out


def describe_stops(tree: ClusterTree) -> str | None:
    """One line about the branches that stopped above the last level (grouped by why), or
    None when every branch reached it."""
    stops = tree.stops
    if not stops:
        return None
    why: dict[str, list[TreeNode]] = {}
    for n in stops:
        reason = (f"too few nodes to cut into {tree.k} (under {tree.min_nodes})"
                  if n.stopped.startswith("too few") else n.stopped)
        why.setdefault(reason, []).append(n)
    parts = []
    for reason, nodes in why.items():
        shown = ", ".join(f"{n.id} ({n.size})" for n in nodes[:6])
        more = f" and {len(nodes) - 6} more" if len(nodes) > 6 else ""
        parts.append(f"{reason}: {shown}{more}")
    return (f"{len(stops)} branch(es) stopped before level {tree.levels}, "
            f"node (graph nodes): " + "; ".join(parts))


def describe_tree(tree: ClusterTree) -> str:
    """'3 levels, k=4: 4 + 13 + 40 nodes in 0.21s' (tree nodes per level)."""
    counts = [sum(n.level == level for n in tree.nodes) for level in range(1, tree.levels + 1)]
    how = "from the cache" if tree.from_cache else f"in {tree.seconds:.2f}s"
    return (f"{tree.levels} levels, k={tree.k}: " + " + ".join(map(str, counts))
            + f" tree nodes {how}")
