"""What the Explore tab's recursive-cut section shows: plain functions over a finished run and
its cluster tree (`recursive.recursive_cut`), no Gradio in here.

The tree comes from the run the session is looking at (`Explorer.view`), so it never loads a
model; trees are cached on disk with the run (`recursive_cut`) and the last few are kept in
memory per (request, levels), so picking another tree node re-reads no cache.
"""

from __future__ import annotations

import numpy as np

from .. import figures_tree as FT
from ..controls import CONTROLS
from ..errors import UserError
from ..recursive import ClusterTree, describe_stops, describe_tree, node_patch_map, recursive_cut
from .views import _LRU, RunView, _as_int, _md, _short

NODE_PANELS = 4  # images shown for a tree node: the pairs most of its nodes are in
_TREES = _LRU(16)


def check_levels(value) -> int:
    """The page's Levels value, within the control table's range."""
    c = CONTROLS["recursive"]
    levels = _as_int(c.default if value is None else value, "Levels")
    if not c.lo <= levels <= c.hi:
        raise UserError(f"Levels is {levels}: {c.range_text()} (1 = the slice's k-way "
                        "clusters only).")
    return levels


def tree_for(view: RunView, levels, cache=None, progress=None) -> ClusterTree:
    """The run's cluster tree, `levels` deep (memory, then the disk cache, then computed)."""
    levels = check_levels(levels)
    key = (view.request, levels)
    tree = _TREES.get(key)
    if tree is None:
        tree = recursive_cut(view.run, levels, cache, progress=progress)
        _TREES.put(key, tree)
    return tree


def node_label(tree: ClusterTree, node_id: str, n_words: int = 2) -> str:
    node = tree.node(node_id)
    words = ", ".join(node.words[:n_words])
    return f"{node.id}: {words}" if words else node.id


def _hover(node) -> list[str]:
    lines = [f"level {node.level}, {node.size} graph nodes, {node.patch_nodes} patches",
             "words: " + (", ".join(node.words) or "none (patches only)")]
    if node.stopped:
        lines.append("stopped: " + node.stopped)
    return lines


def sunburst_figure(view: RunView, tree: ClusterTree):
    nodes = tree.nodes
    title = [f"recursive cut: {tree.levels} levels, k = {tree.k} "
             f"({view.run.result.eigvec.shape[0]} graph nodes, {view.run.cut.mode})",
             "pick a node below the chart to see its patches and words"]
    return FT.tree_sunburst([n.id for n in nodes], [n.parent for n in nodes],
                            [n.size for n in nodes], [node_label(tree, n.id) for n in nodes],
                            [_hover(n) for n in nodes], title,
                            root_label=f"slice ({tree.n_nodes})")


def node_choices(tree: ClusterTree) -> list[tuple[str, str]]:
    """(label, id) per tree node, depth first: the node picker's choices."""
    return [(f"{'· ' * (n.level - 1)}{node_label(tree, n.id, 3)} ({n.size})", n.id)
            for n in tree.nodes]


def node_figure(view: RunView, tree: ClusterTree, node_id: str):
    """The node's patches on the images of the pairs most of its nodes are in."""
    node = tree.node(str(node_id))
    pairs = node.pairs[:NODE_PANELS] or [0]
    rows, cols = view.grid
    images, grids, titles = [], [], []
    for p in pairs:
        info = view.run.pairs[p]
        values = node_patch_map(view.run, tree.members[node.id], p)
        images.append(view.images[(info.example, info.image)])
        grids.append(np.asarray(values[1:], np.float64).reshape(rows, cols))
        titles.append(f"pair {p}: {_short(info.caption, 40)}")
    share = "share of each patch's nodes in the node" if view.run.result.mode == "scalar" \
        else "its patch nodes"
    return FT.node_patches(images, grids, titles,
                           [f"tree node {node.id} (level {node.level}, {node.size} graph nodes): "
                            f"{share}", "words: " + (", ".join(node.words[:6]) or "none")])


def node_markdown(tree: ClusterTree, node_id: str) -> str:
    node = tree.node(str(node_id))
    lines = [f"**node {_md(node.id)}** (level {node.level}, cluster {node.cluster} of "
             f"{'the slice' if node.parent is None else _md(node.parent)}): {node.size} graph "
             f"nodes, {node.patch_nodes} patches",
             "**words** " + (_md(", ".join(node.words)) or "none (patches only)")]
    if node.pairs:
        lines.append("**mostly in pairs** " + ", ".join(map(str, node.pairs)))
    if node.eigenvalues:
        lines.append("**its cut's eigenvalues** "
                     + " ".join(f"{v:.3f}" for v in node.eigenvalues[:8]))
    if node.children:
        lines.append("**children** " + ", ".join(_md(c) for c in node.children))
    if node.stopped:
        lines.append(f"**not cut further**: {_md(node.stopped)}")
    return "\n\n".join(lines)


def tree_note(tree: ClusterTree) -> str:
    stops = describe_stops(tree)
    return _md(describe_tree(tree)) + (f"\n\n{_md(stops)}" if stops else "")
