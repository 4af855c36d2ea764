"""Plotly figure builders: arrays in, `go.Figure` out, no computation.

Every text that comes from data (captions, tokens, words, model names) goes through `esc`:
plotly renders a subset of HTML (`<b>`, `<br>`, `<a href>`, ...) in titles, tick labels, hover
text and annotations, so a caption like "<b>x</b>" must show as typed, not in bold.

Categorical axes are never used for tokens or words: plotly merges equal category labels (a
caption with "a" twice would lose a column), so rows and columns are integer positions with
escaped `ticktext`.
"""

from __future__ import annotations

import base64
import html
import io
import textwrap
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

DIVERGING = "RdBu_r"  # signed values (eigenvectors), centred at 0
SEQUENTIAL = "Viridis"  # affinities
_MARGIN = dict(l=10, r=10, t=48, b=10)
_FONT = dict(size=11)


def esc(text: object) -> str:
    """`text` as plotly shows it literally: `&`, `<` and `>` escaped."""
    return html.escape(str(text), quote=False)


TITLE_WIDTH = 62  # characters per title line: a half-width plot of the page holds about this


def _title_lines(title: str | Sequence[str], width: int = TITLE_WIDTH) -> list[str]:
    """The title's lines, each wrapped at word boundaries to `width` characters (a plot does
    not wrap its title: a long line runs out of the figure and is cut off)."""
    lines = [title] if isinstance(title, str) else list(title)
    return [part for line in lines
            for part in (textwrap.wrap(str(line), width, break_long_words=True) or [""])]


def _title(title: str | Sequence[str]) -> str:
    return "<br>".join(esc(line) for line in _title_lines(title))


def _base(fig: go.Figure, title: str | Sequence[str], height: int) -> go.Figure:
    """Common layout; `title` is plain text (escaped here), a list of strings for several lines
    (long ones are wrapped, and the top margin grows with the number of lines)."""
    n_lines = len(_title_lines(title))
    fig.update_layout(
        title=dict(text=_title(title), font=dict(size=13), x=0.01, xanchor="left"),
        height=height + max(0, n_lines - 2) * 17,
        margin=dict(_MARGIN, t=_MARGIN["t"] + 17 * max(0, n_lines - 2)),
        font=_FONT, template="plotly_white",
    )
    return fig


def message_figure(text: str | Sequence[str], height: int = 320) -> go.Figure:
    """An empty figure that says why there is nothing to show (yet)."""
    fig = go.Figure()
    fig.add_annotation(text=_title(text), x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=13, color="#666"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _base(fig, "", height)


def heatmap(
    z: np.ndarray,  # [rows, cols]
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str | Sequence[str],
    *,
    row_name: str = "row",
    col_name: str = "column",
    value_name: str = "value",
    colorscale: str = SEQUENTIAL,
    zmid: float | None = None,
    row_tick_every: int = 1,
    height: int | None = None,
) -> go.Figure:
    """A heatmap with escaped labels on both axes and (row, column, value) in the hover."""
    z = np.asarray(z, dtype=np.float64)
    n_rows, n_cols = z.shape
    if len(row_labels) != n_rows or len(col_labels) != n_cols:
        raise ValueError(
            f"labels {len(row_labels)} x {len(col_labels)} do not match values {z.shape}"
        )
    rows = [esc(r) for r in row_labels]
    cols = [esc(c) for c in col_labels]
    custom = np.empty((n_rows, n_cols, 2), dtype=object)
    custom[..., 0] = np.array(rows, dtype=object)[:, None]
    custom[..., 1] = np.array(cols, dtype=object)[None, :]
    trace = go.Heatmap(
        z=z, x=np.arange(n_cols), y=np.arange(n_rows), customdata=custom,
        colorscale=colorscale, zmid=zmid, hoverongaps=False, colorbar=dict(thickness=12),
        hovertemplate=(f"{esc(row_name)}: %{{customdata[0]}}<br>{esc(col_name)}: "
                       f"%{{customdata[1]}}<br>{esc(value_name)}: %{{z:.4f}}<extra></extra>"),
    )
    fig = go.Figure(trace)
    shown_rows = list(range(0, n_rows, max(1, row_tick_every)))
    fig.update_xaxes(tickmode="array", tickvals=list(range(n_cols)), ticktext=cols,
                     tickangle=-45 if n_cols > 8 else 0, showgrid=False)
    fig.update_yaxes(tickmode="array", tickvals=shown_rows, ticktext=[rows[i] for i in shown_rows],
                     autorange="reversed", showgrid=False)
    return _base(fig, title, height or min(720, max(260, 90 + 18 * n_rows)))


def affinity_heatmap(
    values: np.ndarray,  # [patches, tokens]
    patch_labels: Sequence[str],
    tokens: Sequence[str],
    title: str | Sequence[str],
) -> go.Figure:
    """The raw patch x token affinities of one pair (rows patches, columns the caption's tokens)."""
    every = max(1, int(np.ceil(len(patch_labels) / 16)))
    return heatmap(values, patch_labels, tokens, title, row_name="patch", col_name="token",
                   value_name="affinity", colorscale=SEQUENTIAL, row_tick_every=every,
                   height=460)


def word_heatmap(
    scores: np.ndarray,  # [words, eigenvectors]
    words: Sequence[str],
    eigenvectors: Sequence[int],
    title: str | Sequence[str],
    row_name: str = "word",
) -> go.Figure:
    """Word scores: rows the caption's words (or BPE pieces), columns eigenvector numbers."""
    return heatmap(scores, words, [str(e) for e in eigenvectors], title, row_name=row_name,
                   col_name="eigenvector", value_name="score", colorscale=DIVERGING, zmid=0.0,
                   height=min(720, max(380, 120 + 18 * len(words))))


def _data_uri(image: np.ndarray) -> str:
    """An RGB array as an inline JPEG: a fraction of the size of plotly's `z` (which the JSON
    encoder inflates further by escaping every "/" of the base64)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buffer, "JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _categorical_scale(n: int) -> list:
    palette = qualitative.Plotly + qualitative.D3
    scale = []
    for i in range(n):
        colour = palette[i % len(palette)]
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return scale


def patch_overlay(
    image: np.ndarray,  # [H, W, 3] uint8, the model's centre crop
    grid: np.ndarray,  # [rows, cols] one value per patch (NaN: not shown)
    title: str | Sequence[str],
    value_name: str = "value",
    *,
    colorscale: str = DIVERGING,
    zmid: float | None = 0.0,
    categories: int | None = None,
    opacity: float = 0.55,
) -> go.Figure:
    """The image with one value per patch drawn over it; `categories` for integer labels."""
    image = np.asarray(image)
    grid = np.asarray(grid, dtype=np.float64)
    height, width = image.shape[:2]
    rows, cols = grid.shape
    ch, cw = height / rows, width / cols
    custom = np.array([[f"row {r}, col {c} (patch {1 + r * cols + c})" for c in range(cols)]
                       for r in range(rows)], dtype=object)
    fig = go.Figure(go.Image(source=_data_uri(image), hoverinfo="skip"))
    heat = dict(
        z=grid, x0=cw / 2 - 0.5, dx=cw, y0=ch / 2 - 0.5, dy=ch, opacity=opacity,
        customdata=custom, hoverongaps=False, colorbar=dict(thickness=12),
        hovertemplate=f"%{{customdata}}<br>{esc(value_name)}: %{{z:.4f}}<extra></extra>",
    )
    if categories:
        heat.update(colorscale=_categorical_scale(categories), zmin=-0.5, zmax=categories - 0.5,
                    colorbar=dict(thickness=12, tickvals=list(range(categories))),
                    hovertemplate=(f"%{{customdata}}<br>{esc(value_name)}: %{{z:.0f}}"
                                   "<extra></extra>"))
    else:
        heat.update(colorscale=colorscale, zmid=zmid)
    fig.add_trace(go.Heatmap(**heat))
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    return _base(fig, title, 420)


def rgb_view(
    patch_rgb: np.ndarray,  # [rows, cols, 3] in [0, 1]
    words: Sequence[str],
    word_rgb: np.ndarray,  # [words, 3] in [0, 1]
    title: str | Sequence[str],
) -> go.Figure:
    """Three eigenvectors as RGB: the patch grid above, the caption's words as swatches below."""
    patch_rgb = np.asarray(patch_rgb, dtype=np.float64)
    word_rgb = np.asarray(word_rgb, dtype=np.float64)
    if len(words) != len(word_rgb):
        raise ValueError(f"{len(words)} words but {len(word_rgb)} colours")
    fig = make_subplots(rows=2, cols=1, row_heights=[0.8, 0.2], vertical_spacing=0.04)
    fig.add_trace(go.Image(
        z=np.round(patch_rgb * 255).astype(np.uint8),
        hovertemplate="patch row %{y}, col %{x}<br>rgb %{z}<extra></extra>",
    ), row=1, col=1)
    labels = [esc(w) for w in words]
    colours = [f"rgb({r * 255:.0f},{g * 255:.0f},{b * 255:.0f})" for r, g, b in word_rgb]
    fig.add_trace(go.Scatter(
        x=np.arange(len(words)), y=np.zeros(len(words)), mode="markers+text", text=labels,
        textposition="bottom center", customdata=colours,
        marker=dict(size=20, symbol="square", color=colours, line=dict(width=1, color="#444")),
        hovertemplate="%{text}<br>%{customdata}<extra></extra>", showlegend=False,
    ), row=2, col=1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_yaxes(scaleanchor="x", row=1, col=1)
    fig.update_yaxes(range=[-1.2, 0.6], row=2, col=1)
    fig.update_xaxes(range=[-0.7, max(len(words), 1) - 0.3], row=2, col=1)
    return _base(fig, title, 420)


def eigen_spectrum(
    eigval: np.ndarray,  # [k] descending
    gaps: np.ndarray,  # [k - 1]: eigval[i] - eigval[i + 1]
    marked: Sequence[int],  # gap positions i to mark (between eigenvectors i and i + 1)
    title: str | Sequence[str],
) -> go.Figure:
    """Eigenvalues as bars (eigenvector 0, the trivial one, in grey), eigengaps as a line."""
    eigval = np.asarray(eigval, dtype=np.float64)
    gaps = np.asarray(gaps, dtype=np.float64)
    k = len(eigval)
    colours = ["#bbbbbb"] + ["#1f77b4"] * (k - 1)
    fig = go.Figure(go.Bar(
        x=np.arange(k), y=eigval, marker_color=colours, name="eigenvalue",
        hovertemplate="eigenvector %{x}<br>eigenvalue %{y:.5f}<extra></extra>",
    ))
    fig.add_trace(go.Scatter(
        x=np.arange(len(gaps)) + 0.5, y=gaps, mode="lines+markers", name="eigengap",
        line=dict(color="#ff7f0e"),
        hovertemplate="gap %{x:.1f}<br>%{y:.5f}<extra></extra>",
    ))
    for rank, i in enumerate(marked):
        fig.add_vline(x=i + 0.5, line=dict(color="#d62728", dash="dash", width=1))
        fig.add_annotation(x=i + 0.5, y=1 - 0.08 * rank, yref="paper", showarrow=False,
                           xanchor="left", yanchor="top", text=f"gap after {i}",
                           font=dict(color="#d62728", size=10))
    fig.update_xaxes(title_text="eigenvector", dtick=1 if k <= 30 else 5)
    fig.update_yaxes(title_text="eigenvalue")
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    return _base(fig, title, 340)


def cluster_bars(
    sizes: Sequence[int],
    details: Sequence[Sequence[str]],  # per cluster: lines for the hover (example words...)
    title: str | Sequence[str],
) -> go.Figure:
    """k-way cluster sizes (nodes), with each cluster's example words in the hover."""
    k = len(sizes)
    if len(details) != k:
        raise ValueError(f"{k} clusters but {len(details)} detail lists")
    hover = ["<br>".join(esc(line) for line in lines) or "(none)" for lines in details]
    fig = go.Figure(go.Bar(
        x=np.arange(k), y=np.asarray(sizes), customdata=np.array(hover, dtype=object),
        marker_color=[qualitative.Plotly[i % len(qualitative.Plotly)] for i in range(k)],
        hovertemplate="cluster %{x}: %{y} nodes<br>%{customdata}<extra></extra>",
    ))
    fig.update_xaxes(title_text="cluster", dtick=1)
    fig.update_yaxes(title_text="nodes")
    return _base(fig, title, 340)


# ----------------------------------------------------------------------------- loss surfaces


def _subplot_titles(names: Sequence[str]) -> list[str]:
    return [esc(n) for n in names]


def _colorbar(fig: go.Figure, col: int) -> dict:
    """A slim colour bar just right of subplot (1, col), inside the gap to the next one."""
    sub = fig.get_subplot(1, col)
    right = (sub.domain.x if hasattr(sub, "domain") else sub.xaxis.domain)[1]
    return dict(thickness=10, len=0.8, x=right + 0.005, xanchor="left")


# a camera that never looks along a plane of the form z = c * alpha or z = c * beta (the
# default eye, (1.25, 1.25, 1.25), sees z = beta edge-on: a surface drawn as a line)
_CAMERA = dict(eye=dict(x=1.7, y=-1.3, z=0.9))


def loss_surfaces(
    alphas: np.ndarray,  # [A]
    betas: np.ndarray,  # [B]
    surfaces: dict[str, np.ndarray],  # name -> [A, B], out[i, j] at (alphas[i], betas[j])
    title: str | Sequence[str],
    *,
    kind: str = "surface",  # "surface" (3-D) or "contour"
) -> go.Figure:
    """One panel per loss over the alpha x beta plane; the minimum of each is marked."""
    if kind not in ("surface", "contour"):
        raise ValueError(f"kind {kind!r}: surface or contour")
    alphas, betas = np.asarray(alphas, np.float64), np.asarray(betas, np.float64)
    names = list(surfaces)
    spec = {"type": "scene"} if kind == "surface" else {"type": "xy"}
    fig = make_subplots(rows=1, cols=len(names), specs=[[spec] * len(names)],
                        subplot_titles=_subplot_titles(names), horizontal_spacing=0.12)
    for col, name in enumerate(names, start=1):
        z = np.asarray(surfaces[name], np.float64)
        if z.shape != (len(alphas), len(betas)):
            raise ValueError(f"{name}: values {z.shape} do not match {len(alphas)} alphas x "
                             f"{len(betas)} betas")
        hover = (f"{esc(name)}<br>alpha %{{y:.3f}}<br>beta %{{x:.3f}}<br>loss %{{z:.4f}}"
                 "<extra></extra>")
        i, j = np.unravel_index(np.nanargmin(z), z.shape) if np.isfinite(z).any() else (0, 0)
        bar = _colorbar(fig, col)
        if kind == "surface":
            fig.add_trace(go.Surface(x=betas, y=alphas, z=z, colorscale=SEQUENTIAL,
                                     colorbar=bar, hovertemplate=hover, name=esc(name)),
                          row=1, col=col)
            fig.add_trace(go.Scatter3d(x=[betas[j]], y=[alphas[i]], z=[z[i, j]], mode="markers",
                                       marker=dict(size=4, color="#d62728"), showlegend=False,
                                       name="minimum", hovertemplate="minimum<br>" + hover),
                          row=1, col=col)
            scene = "scene" if col == 1 else f"scene{col}"
            fig.update_layout({scene: dict(xaxis_title="beta", yaxis_title="alpha",
                                           zaxis_title="loss", camera=_CAMERA)})
        else:
            fig.add_trace(go.Contour(x=betas, y=alphas, z=z, colorscale=SEQUENTIAL,
                                     colorbar=bar, hovertemplate=hover, name=esc(name),
                                     contours=dict(showlabels=True)), row=1, col=col)
            fig.add_trace(go.Scatter(x=[betas[j]], y=[alphas[i]], mode="markers",
                                     marker=dict(symbol="x", size=10, color="#d62728"),
                                     showlegend=False, name="minimum",
                                     hovertemplate="minimum<br>alpha %{y:.3f}<br>beta %{x:.3f}"
                                                   "<extra></extra>"), row=1, col=col)
            fig.update_xaxes(title_text="beta", row=1, col=col)
            fig.update_yaxes(title_text="alpha", row=1, col=col)
    return _base(fig, title, 460 if kind == "surface" else 380)


def loss_vs_k(
    ks: np.ndarray,  # [K]
    curves: dict[str, np.ndarray],  # name -> [K]
    eigengap_k: int,
    k: int,
    title: str | Sequence[str],
) -> go.Figure:
    """Each loss against k (one panel each: their scales differ), the eigengap's k and the
    chosen k marked."""
    ks = np.asarray(ks)
    names = list(curves)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=_subplot_titles(names),
                        horizontal_spacing=0.12)
    for col, name in enumerate(names, start=1):
        fig.add_trace(go.Scatter(x=ks, y=np.asarray(curves[name], np.float64),
                                 mode="lines+markers", name=esc(name), showlegend=False,
                                 hovertemplate=f"{esc(name)}<br>k %{{x}}<br>loss %{{y:.4f}}"
                                               "<extra></extra>"), row=1, col=col)
        fig.add_vline(x=eigengap_k, line=dict(color="#d62728", dash="dash", width=1),
                      row=1, col=col)
        fig.add_vline(x=k, line=dict(color="#444", dash="dot", width=1), row=1, col=col)
        fig.update_xaxes(title_text="k", row=1, col=col)
    fig.add_annotation(x=eigengap_k, y=1, yref="paper", xref="x", showarrow=False,
                       xanchor="left", yanchor="top", text=f"eigengap k = {eigengap_k}",
                       font=dict(color="#d62728", size=10))
    fig.add_annotation(x=k, y=0.9, yref="paper", xref="x", showarrow=False, xanchor="left",
                       yanchor="top", text=f"chosen k = {k}", font=dict(color="#444", size=10))
    return _base(fig, title, 340)


def terms_vs_k(
    ks: np.ndarray,  # [K]
    panels: dict[str, dict[str, np.ndarray]],  # panel title -> term name -> [K]
    eigengap_k: int | None,
    k: int,
    title: str | Sequence[str],
) -> go.Figure:
    """The terms a loss weighs, against k (one panel per loss, a line per term), with the chosen
    k (and the eigengap's, when there is one) marked."""
    ks = np.asarray(ks)
    names = list(panels)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=_subplot_titles(names),
                        horizontal_spacing=0.12)
    colours = ["#1f77b4", "#ff7f0e"]
    for col, name in enumerate(names, start=1):
        for i, (term, values) in enumerate(panels[name].items()):
            fig.add_trace(go.Scatter(
                x=ks, y=np.asarray(values, np.float64), mode="lines+markers", name=esc(term),
                line=dict(color=colours[i % 2]), legendgroup=esc(term), showlegend=True,
                hovertemplate=f"{esc(term)}<br>k %{{x}}<br>%{{y:.4f}}<extra></extra>"),
                row=1, col=col)
        if eigengap_k is not None:
            fig.add_vline(x=eigengap_k, line=dict(color="#d62728", dash="dash", width=1),
                          row=1, col=col)
        fig.add_vline(x=k, line=dict(color="#444", dash="dot", width=1), row=1, col=col)
        marks = f"k (dotted: chosen k = {k}" + (f"; dashed: eigengap k = {eigengap_k})"
                                                 if eigengap_k else ")")
        fig.update_xaxes(title_text=marks, row=1, col=col)
    fig = _base(fig, title, 380)
    fig.update_layout(legend=dict(orientation="h", y=-0.3, x=0), margin_b=90)
    return fig


def cka_vs_noise(
    noise: np.ndarray,  # [L] noise levels, in units of the features' std
    cka: np.ndarray,  # [L]
    title: str | Sequence[str],
) -> go.Figure:
    """Linear CKA of the paired features as noise is added to one side."""
    fig = go.Figure(go.Scatter(
        x=np.asarray(noise, np.float64), y=np.asarray(cka, np.float64), mode="lines+markers",
        hovertemplate="noise %{x:.2f} x std<br>CKA %{y:.4f}<extra></extra>"))
    fig.update_xaxes(title_text="added noise (x the features' std)")
    fig.update_yaxes(title_text="linear CKA", rangemode="tozero")
    return _base(fig, title, 340)


def landscape_contours(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray]],  # (name, coords [G], values [G, G])
    title: str | Sequence[str],
) -> go.Figure:
    """Losses along two random directions: values[i, j] at (a = coords[i], b = coords[j]);
    the current embeddings (0, 0) are marked."""
    fig = make_subplots(rows=1, cols=len(panels),
                        subplot_titles=_subplot_titles([p[0] for p in panels]),
                        horizontal_spacing=0.14)
    for col, (name, coords, z) in enumerate(panels, start=1):
        coords = np.asarray(coords, np.float64)
        z = np.asarray(z, np.float64)
        if z.shape != (len(coords), len(coords)):
            raise ValueError(f"{name}: values {z.shape} do not match {len(coords)} coordinates")
        fig.add_trace(go.Contour(
            x=coords, y=coords, z=z, colorscale=SEQUENTIAL, name=esc(name),
            colorbar=_colorbar(fig, col),
            hovertemplate=(f"{esc(name)}<br>direction 1: %{{y:.3f}}<br>direction 2: "
                           "%{x:.3f}<br>loss %{z:.4f}<extra></extra>")), row=1, col=col)
        fig.add_trace(go.Scatter(x=[0], y=[0], mode="markers", showlegend=False,
                                 marker=dict(symbol="star", size=12, color="#d62728"),
                                 name="current embeddings",
                                 hovertemplate="current embeddings<extra></extra>"),
                      row=1, col=col)
        fig.update_xaxes(title_text="direction 2", row=1, col=col)
        fig.update_yaxes(title_text="direction 1", row=1, col=col)
    return _base(fig, title, 400)


# ----------------------------------------------------------------------------- benchmarks


def bench_bars(
    labels: Sequence[str],  # one per bar: "benchmark: metric"
    values: Sequence[float],
    ci: Sequence[tuple[float, float] | None],  # 95% interval per bar (None while running)
    published: Sequence[float | None],  # the published reference per bar (None: none)
    title: str | Sequence[str],
) -> go.Figure:
    """Scores as bars with their 95% intervals, published references as diamonds."""
    n = len(labels)
    if not (len(values) == len(ci) == len(published) == n):
        raise ValueError("labels, values, ci and published must have the same length")
    values = np.asarray(values, np.float64)
    plus = [c[1] - v if c else 0.0 for v, c in zip(values, ci)]
    minus = [v - c[0] if c else 0.0 for v, c in zip(values, ci)]
    ci_text = [f"[{c[0]:.2f}, {c[1]:.2f}]" if c else "pending" for c in ci]
    names = [esc(label) for label in labels]
    fig = go.Figure(go.Bar(
        x=np.arange(n), y=values, name="score",
        customdata=np.array(list(zip(ci_text, names)), dtype=object).reshape(n, 2),
        error_y=dict(type="data", array=plus, arrayminus=minus, visible=True),
        hovertemplate="%{customdata[1]}<br>%{y:.2f}<br>95% CI %{customdata[0]}<extra></extra>",
    ))
    known = [i for i, p in enumerate(published) if p is not None]
    if known:
        fig.add_trace(go.Scatter(
            x=known, y=[published[i] for i in known], mode="markers", name="published",
            marker=dict(symbol="diamond", size=11, color="#d62728"),
            hovertemplate="published %{y:.2f}<extra></extra>"))
    fig.update_xaxes(tickmode="array", tickvals=list(range(n)), ticktext=names,
                     tickangle=-30 if n > 4 else 0)
    fig.update_yaxes(title_text="%", rangemode="tozero")
    fig.update_layout(legend=dict(orientation="h", y=1.02, x=1, xanchor="right",
                                  yanchor="bottom"))
    return _base(fig, title, 380)


# ----------------------------------------------------------------------------- export


def standalone_html(figures: dict[str, go.Figure], title: str) -> str:
    """One HTML page with every figure under its (escaped) heading; plotly.js is inlined once,
    so the file opens offline."""
    parts = []
    for i, (name, fig) in enumerate(figures.items()):
        parts.append(f"<h2>{esc(name)}</h2>")
        parts.append(fig.to_html(full_html=False, include_plotlyjs=i == 0,
                                 config={"displaylogo": False}))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title></head>\n<body style=\"font-family:sans-serif\">\n"
            f"<h1>{esc(title)}</h1>\n" + "\n".join(parts) + "\n</body></html>\n")


# ----------------------------------------------------------------------------- comparing models


def agreement_heatmap(
    z: np.ndarray,  # [eigs of a, eigs of b] shares of common top-k rows, in [0, 1]
    eigs_a: Sequence[int],
    eigs_b: Sequence[int],
    title: str | Sequence[str],
) -> go.Figure:
    """Top-k agreement between the eigenvectors of two cuts (or of one cut with itself)."""
    fig = heatmap(z, [str(e) for e in eigs_a], [str(e) for e in eigs_b], title,
                  row_name="eigenvector of A", col_name="eigenvector of B",
                  value_name="top-k overlap", colorscale=SEQUENTIAL,
                  height=min(640, max(320, 120 + 22 * len(eigs_a))))
    fig.update_traces(zmin=0.0, zmax=1.0)
    fig.update_xaxes(title_text="eigenvector of B")
    fig.update_yaxes(title_text="eigenvector of A")
    return fig


def correlation_bars(
    eigs: Sequence[int],
    series: dict[str, Sequence[float | None]],  # bar group name -> per eigenvector (None: none)
    p_values: dict[str, Sequence[float | None]],  # the same names -> p-value per eigenvector
    title: str | Sequence[str],
) -> go.Figure:
    """Grouped bars: each eigenvector's correlation with the CLIP score, one bar per series
    (e.g. Pearson A, Pearson B); missing values leave a gap, p-values are in the hover."""
    fig = go.Figure()
    x = np.arange(len(eigs))
    for name, values in series.items():
        y = np.array([np.nan if v is None else v for v in values], np.float64)
        p = [("n/a" if v is None else f"{v:.3g}") for v in p_values.get(name, [None] * len(y))]
        if len(y) != len(eigs) or len(p) != len(eigs):
            raise ValueError(f"{name}: {len(y)} values and {len(p)} p-values for {len(eigs)} "
                             "eigenvectors")
        fig.add_trace(go.Bar(
            x=x, y=y, name=esc(name), customdata=np.array(p, dtype=object),
            hovertemplate=(f"{esc(name)}<br>eigenvector %{{text}}<br>r %{{y:.3f}}<br>"
                           "p %{customdata}<extra></extra>"),
            text=[str(e) for e in eigs], textposition="none"))
    fig.update_xaxes(tickmode="array", tickvals=list(x), ticktext=[str(e) for e in eigs],
                     title_text="eigenvector")
    fig.update_yaxes(title_text="correlation with the CLIP score", range=[-1.05, 1.05])
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25, x=0))
    return _base(fig, title, 360)


def emphasis_bars(
    words: Sequence[str],
    before: Sequence[float],  # [W] the word's score with model A
    after: Sequence[float],  # [W] with model B
    title: str | Sequence[str],
) -> go.Figure:
    """Each word's change of score on one eigenvector (after - before), largest first, as
    horizontal bars; before and after in the hover."""
    before = np.asarray(before, np.float64)
    after = np.asarray(after, np.float64)
    if not len(words) == len(before) == len(after):
        raise ValueError(f"{len(words)} words, {len(before)} before and {len(after)} after")
    change = after - before
    labels = [esc(w) for w in words]
    custom = np.array(list(zip(labels, before, after)), dtype=object).reshape(len(words), 3)
    fig = go.Figure(go.Bar(
        x=change, y=np.arange(len(words)), orientation="h", customdata=custom,
        marker_color=["#d62728" if c > 0 else "#1f77b4" for c in change],
        hovertemplate=("%{customdata[0]}<br>A %{customdata[1]:.4f} → B %{customdata[2]:.4f}"
                       "<br>change %{x:+.4f}<extra></extra>")))
    fig.update_yaxes(tickmode="array", tickvals=list(range(len(words))), ticktext=labels,
                     autorange="reversed")
    fig.update_xaxes(title_text="change of the word's score (B - A)", zeroline=True)
    return _base(fig, title, min(640, max(300, 110 + 22 * len(words))))


def word_map_grid(
    images: Sequence[np.ndarray],  # per row [H, W, 3] uint8, the model's centre crop
    maps: Sequence[Sequence[np.ndarray]],  # per row, per word [rows, cols] values per patch
    words: Sequence[Sequence[str]],  # per row the words of its caption
    row_titles: Sequence[str],  # per row, over its image (e.g. the caption's score); "\n" breaks
    title: str | Sequence[str],
    colorbar_title: str = "value",
) -> go.Figure:
    """A row per (image, caption) pair: its image, then each word's map over the patch grid,
    on one colour scale for the whole figure, so rows (a positive and a negative caption) can be
    compared word by word. Words past the widest row leave empty cells."""
    if not len(images) == len(maps) == len(words) == len(row_titles):
        raise ValueError(f"{len(images)} images, {len(maps)} map rows, {len(words)} word rows "
                         f"and {len(row_titles)} row titles must match")
    if any(len(m) != len(w) for m, w in zip(maps, words)):
        raise ValueError("each row needs one map per word")
    n_rows, n_cols = len(images), 1 + max((len(w) for w in words), default=0)
    heads = ["<br>".join(esc(line) for line in str(t).split("\n")) for t in row_titles]
    titles = [heads[r] if c == 0 else (esc(words[r][c - 1]) if c - 1 < len(words[r]) else "")
              for r in range(n_rows) for c in range(n_cols)]
    fig = make_subplots(n_rows, n_cols, subplot_titles=titles, horizontal_spacing=0.01,
                        vertical_spacing=0.3 / max(n_rows, 1),
                        column_widths=[2.2] + [1.0] * (n_cols - 1))
    finite = [np.asarray(m, np.float64) for row in maps for m in row]
    values = np.concatenate([m[np.isfinite(m)] for m in finite]) if finite else np.zeros(1)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    for r in range(n_rows):
        fig.add_trace(go.Image(source=_data_uri(images[r]), hoverinfo="skip"), r + 1, 1)
        for c, (grid, word) in enumerate(zip(maps[r], words[r]), start=2):
            grid = np.asarray(grid, np.float64)
            fig.add_trace(go.Heatmap(
                z=grid, coloraxis="coloraxis", customdata=np.full(grid.shape, esc(word)),
                hovertemplate=("%{customdata}: row %{y}, col %{x}<br>" + esc(colorbar_title)
                               + " %{z:.4f}<extra></extra>")), r + 1, c)
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{(r * n_cols + c)}",
                             row=r + 1, col=c)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(coloraxis=dict(colorscale=SEQUENTIAL, cmin=lo, cmax=hi,
                                     colorbar=dict(thickness=10, title=esc(colorbar_title))))
    fig.update_annotations(font_size=10)
    for annotation in fig.layout.annotations:  # a row's title starts at its image's left edge
        if annotation.text in heads:
            row = heads.index(annotation.text)
            annotation.update(x=fig.get_subplot(row + 1, 1).xaxis.domain[0], xanchor="left",
                              align="left")
    fig = _base(fig, title, 100 + 150 * n_rows)
    fig.update_layout(margin=dict(t=fig.layout.margin.t + 30))  # room for row 1's title
    return fig
