"""Figure builders on hand-made arrays: shapes, hover text, and escaping of data in labels."""

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from engineered_latents import figures as F

HOSTILE = "<b>x</b>"
ESCAPED = "&lt;b&gt;x&lt;/b&gt;"


def _text_of(fig: go.Figure) -> str:
    """Every string plotly will render as HTML-ish text: layout and traces, as JSON."""
    return fig.to_json()


def _assert_escaped(fig: go.Figure) -> None:
    text = json.loads(_text_of(fig))
    dumped = json.dumps(text)
    assert ESCAPED in dumped
    assert HOSTILE not in dumped
    assert "<b>" not in dumped and "<a" not in dumped


def test_esc():
    assert F.esc(HOSTILE) == ESCAPED
    assert F.esc("a & b <br> c") == "a &amp; b &lt;br&gt; c"
    assert F.esc(3) == "3"


def test_heatmap_shapes_labels_and_hover():
    z = np.arange(12, dtype=np.float32).reshape(3, 4)
    fig = F.heatmap(z, ["r0", "r1", "r2"], ["a", "b", "a", "d"], "title", row_name="patch",
                    col_name="token", value_name="affinity")
    trace = fig.data[0]
    assert isinstance(trace, go.Heatmap)
    assert np.asarray(trace.z).shape == (3, 4)
    # duplicate labels ("a" twice) keep their own columns: integer positions + ticktext
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2, 3]
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "a", "d"]
    assert "token: %{customdata[1]}" in trace.hovertemplate
    assert "affinity: %{z:.4f}" in trace.hovertemplate
    custom = np.asarray(trace.customdata)
    assert custom.shape == (3, 4, 2)
    assert custom[2, 1, 0] == "r2" and custom[2, 1, 1] == "b"
    with pytest.raises(ValueError):
        F.heatmap(z, ["r0"], ["a", "b", "c", "d"], "bad")


def test_heatmap_escapes_every_label():
    z = np.zeros((2, 2))
    fig = F.heatmap(z, [HOSTILE, "ok"], ["fine", HOSTILE], ["caption: " + HOSTILE, "second"],
                    row_name=HOSTILE)
    assert fig.layout.xaxis.ticktext[1] == ESCAPED
    assert fig.layout.yaxis.ticktext[0] == ESCAPED
    assert ESCAPED in fig.layout.title.text and "<br>" in fig.layout.title.text  # 2 title lines
    assert np.asarray(fig.data[0].customdata)[0, 1, 1] == ESCAPED
    _assert_escaped(fig)


def test_affinity_and_word_heatmaps():
    values = np.random.default_rng(0).normal(size=(49, 6))
    labels = [f"r{i // 7} c{i % 7}" for i in range(49)]
    fig = F.affinity_heatmap(values, labels, ["a", "red", HOSTILE, "a", "b", "c"], "aff")
    assert len(fig.layout.yaxis.tickvals) < 49  # thinned row labels
    assert fig.layout.xaxis.ticktext[2] == ESCAPED
    scores = np.random.default_rng(1).normal(size=(3, 5))
    fig = F.word_heatmap(scores, ["a", HOSTILE, "cat"], [1, 2, 3, 4, 5], "words")
    assert fig.data[0].zmid == 0
    assert list(fig.layout.xaxis.ticktext) == ["1", "2", "3", "4", "5"]
    assert "word: %{customdata[0]}" in fig.data[0].hovertemplate
    _assert_escaped(fig)


def test_patch_overlay_aligns_grid_with_image():
    image = np.zeros((224, 224, 3), np.uint8)
    grid = np.arange(49, dtype=float).reshape(7, 7)
    grid[0, 0] = np.nan
    fig = F.patch_overlay(image, grid, [HOSTILE, "caption"], value_name="score")
    img, heat = fig.data
    assert isinstance(img, go.Image) and isinstance(heat, go.Heatmap)
    assert img.source.startswith("data:image/jpeg;base64,")
    assert len(fig.to_json()) < 60_000  # the picture travels compressed
    assert heat.dx == pytest.approx(32) and heat.dy == pytest.approx(32)
    assert heat.x0 == pytest.approx(15.5)  # the first cell covers pixels 0..31
    assert np.asarray(heat.z).shape == (7, 7)
    assert "row 6, col 6 (patch 49)" == np.asarray(heat.customdata)[6, 6]
    assert "score: %{z:.4f}" in heat.hovertemplate
    _assert_escaped(fig)
    clusters = F.patch_overlay(image, np.zeros((7, 7)), "k", categories=4)
    assert clusters.data[1].zmin == -0.5 and clusters.data[1].zmax == 3.5


def test_rgb_view():
    rgb = np.random.default_rng(0).random((7, 7, 3))
    fig = F.rgb_view(rgb, ["a", HOSTILE], np.array([[1, 0, 0], [0, 0.5, 1]]), "rgb")
    image, words = fig.data
    assert np.asarray(image.z).shape == (7, 7, 3)
    assert list(words.text) == ["a", ESCAPED]
    assert list(words.marker.color) == ["rgb(255,0,0)", "rgb(0,128,255)"]
    with pytest.raises(ValueError):
        F.rgb_view(rgb, ["a"], np.zeros((2, 3)), "mismatch")


def test_eigen_spectrum_marks_gaps():
    eigval = np.array([1.0, 0.5, 0.45, 0.1, 0.05])
    gaps = eigval[:-1] - eigval[1:]
    fig = F.eigen_spectrum(eigval, gaps, [2], "spectrum")
    bars, line = fig.data
    assert list(bars.x) == [0, 1, 2, 3, 4]
    assert bars.marker.color[0] != bars.marker.color[1]  # the trivial eigenvector is grey
    assert list(line.x) == [0.5, 1.5, 2.5, 3.5]
    assert np.allclose(line.y, gaps)
    assert any(s.x0 == 2.5 for s in fig.layout.shapes)
    assert any("gap after 2" in a.text for a in fig.layout.annotations)


def test_cluster_bars_hover_escaped():
    fig = F.cluster_bars([5, 3], [["words: a, " + HOSTILE, "patch nodes: 2"], []], "k")
    bar = fig.data[0]
    assert list(bar.y) == [5, 3]
    assert bar.customdata[0] == "words: a, " + ESCAPED + "<br>patch nodes: 2"
    assert bar.customdata[1] == "(none)"
    with pytest.raises(ValueError):
        F.cluster_bars([1, 2], [[]], "bad")


def test_message_figure_escaped():
    fig = F.message_figure(HOSTILE)
    assert fig.layout.annotations[0].text == ESCAPED


def test_loss_surfaces_axes_and_minimum():
    alphas, betas = np.linspace(0, 2, 5), np.linspace(0, 1, 3)
    z = np.add.outer(alphas, betas)  # [A, B], smallest at alpha 0, beta 0
    fig = F.loss_surfaces(alphas, betas, {"SVD": z, HOSTILE: -z}, "planes")
    surface, minimum = fig.data[0], fig.data[1]
    assert isinstance(surface, go.Surface)
    assert np.allclose(surface.x, betas) and np.allclose(surface.y, alphas)
    assert np.asarray(surface.z).shape == (5, 3)
    assert (minimum.x[0], minimum.y[0]) == (0, 0)
    assert (fig.data[3].x[0], fig.data[3].y[0]) == (1, 2)  # -z: smallest at the far corner
    assert fig.layout.scene.xaxis.title.text == "beta"
    contour = F.loss_surfaces(alphas, betas, {"SVD": z}, "c", kind="contour")
    assert isinstance(contour.data[0], go.Contour)
    _assert_escaped(fig)
    with pytest.raises(ValueError):
        F.loss_surfaces(alphas, betas, {"bad": z.T}, "t")


def test_loss_vs_k_marks_eigengap_and_chosen_k():
    fig = F.loss_vs_k(np.arange(1, 6), {"a": np.arange(5.0), "b": -np.arange(5.0)}, 3, 2, "k")
    assert len(fig.data) == 2 and list(fig.data[0].x) == [1, 2, 3, 4, 5]
    assert sorted({s.x0 for s in fig.layout.shapes}) == [2, 3]
    assert any("eigengap k = 3" in a.text for a in fig.layout.annotations)


def test_cka_vs_noise_and_landscape():
    fig = F.cka_vs_noise(np.linspace(0, 2, 3), np.array([0.9, 0.5, 0.2]), "cka")
    assert list(fig.data[0].y) == [0.9, 0.5, 0.2]
    coords = np.linspace(-0.5, 0.5, 3)
    fig = F.landscape_contours([("CKA", coords, np.zeros((3, 3))),
                                (HOSTILE, np.linspace(-1, 1, 5), np.ones((5, 5)))], "land")
    assert [type(t).__name__ for t in fig.data] == ["Contour", "Scatter", "Contour", "Scatter"]
    assert (fig.data[1].x[0], fig.data[1].y[0]) == (0, 0)  # the current embeddings
    _assert_escaped(fig)


def test_bench_bars_intervals_and_references():
    fig = F.bench_bars(["demo: text", HOSTILE], [50.0, 20.0], [(40.0, 55.0), None],
                       [None, 30.0], "bench")
    bars, refs = fig.data
    assert list(bars.error_y.array) == [5.0, 0.0] and list(bars.error_y.arrayminus) == [10.0, 0.0]
    assert list(refs.x) == [1] and list(refs.y) == [30.0]
    assert bars.customdata[1][0] == "pending"
    _assert_escaped(fig)
    with pytest.raises(ValueError):
        F.bench_bars(["a"], [1.0, 2.0], [None], [None], "bad")
