"""Plotly builders for the recursive cut (arrays and strings in, `go.Figure` out): the cluster
tree as a sunburst, and one tree node's patches over a few images. Text from data is escaped
(`figures.esc`), as everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import SEQUENTIAL, _base, _data_uri, esc

ROOT = "slice"  # the sunburst's centre: the whole slice graph


def tree_sunburst(
    ids: Sequence[str],  # tree node ids ("2", "2.0", ...), parents before children
    parents: Sequence[str | None],  # None: a level-1 node (drawn around the centre)
    sizes: Sequence[int],  # graph nodes per tree node (a parent's children sum to it)
    labels: Sequence[str],  # shown on the node (e.g. its id and top words)
    hover: Sequence[Sequence[str]],  # lines of each node's hover
    title: str | Sequence[str],
    root_label: str = "slice",
) -> go.Figure:
    """The cluster tree as a sunburst: the slice at the centre, level 1 around it, each level
    below outside its parent; a node's angle is its share of its parent's graph nodes."""
    if not len(ids) == len(parents) == len(sizes) == len(labels) == len(hover):
        raise ValueError("ids, parents, sizes, labels and hover must have one entry per node")
    if ROOT in ids:
        raise ValueError(f"{ROOT!r} is the centre's id")
    total = int(sum(s for s, p in zip(sizes, parents) if p is None))
    fig = go.Figure(go.Sunburst(
        ids=[ROOT, *ids], parents=["", *[ROOT if p is None else p for p in parents]],
        values=[total, *[int(s) for s in sizes]], branchvalues="total",
        labels=[esc(root_label), *[esc(label) for label in labels]],
        customdata=np.array([f"{total} graph nodes",
                             *["<br>".join(esc(line) for line in lines) for lines in hover]],
                            dtype=object),
        hovertemplate="%{label}<br>%{customdata}<extra></extra>",
        insidetextorientation="radial", maxdepth=-1,
    ))
    fig = _base(fig, title, 520)
    fig.update_layout(margin=dict(l=10, r=10, b=10, t=fig.layout.margin.t))
    return fig


def node_patches(
    images: Sequence[np.ndarray],  # per panel [H, W, 3] uint8, the model's centre crop
    grids: Sequence[np.ndarray],  # per panel [rows, cols] share of each patch in the node
    titles: Sequence[str],  # per panel (e.g. the pair and its caption)
    title: str | Sequence[str],
    value_name: str = "share in the node",
) -> go.Figure:
    """A row of images, each with one value in [0, 1] per patch drawn over it (one colour
    scale): where a tree node's patch nodes are."""
    if not len(images) == len(grids) == len(titles) or not len(images):
        raise ValueError("give one or more panels, each an image, a grid and a title")
    n = len(images)
    fig = make_subplots(1, n, subplot_titles=[esc(t) for t in titles], horizontal_spacing=0.02)
    for i, (image, grid) in enumerate(zip(images, grids)):
        image, grid = np.asarray(image), np.asarray(grid, np.float64)
        height, width = image.shape[:2]
        rows, cols = grid.shape
        ch, cw = height / rows, width / cols
        fig.add_trace(go.Image(source=_data_uri(image), hoverinfo="skip"), 1, i + 1)
        where = np.array([[f"row {r}, col {c}" for c in range(cols)] for r in range(rows)],
                         dtype=object)
        fig.add_trace(go.Heatmap(
            z=grid, x0=cw / 2 - 0.5, dx=cw, y0=ch / 2 - 0.5, dy=ch, opacity=0.6,
            coloraxis="coloraxis", hoverongaps=False, customdata=where,
            hovertemplate=f"%{{customdata}}<br>{esc(value_name)}: %{{z:.2f}}"
                          "<extra></extra>"), 1, i + 1)
        fig.update_xaxes(visible=False, range=[-0.5, width - 0.5], row=1, col=i + 1)
        fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], row=1, col=i + 1,
                         scaleanchor=f"x{'' if i == 0 else i + 1}")
    fig.update_layout(coloraxis=dict(colorscale=SEQUENTIAL, cmin=0, cmax=1,
                                     colorbar=dict(thickness=10, title=esc(value_name))))
    fig.update_annotations(font_size=10)
    fig = _base(fig, title, 340)
    fig.update_layout(margin=dict(t=fig.layout.margin.t + 30))  # room for the panels' titles
    return fig
