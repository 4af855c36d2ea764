"""Training curves as plotly figures (the app's Train tab and its HTML download): the loss and
each of its terms with the learning rate, and the validation metrics, from train.json's
`history` and `val` lists."""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from .figures import _base, esc, message_figure

# history keys that are not the loss or one of its terms
_NOT_TERMS = ("step", "loss", "lr", "grad_norm", "logit_scale", "seconds")


def loss_terms(history: Sequence[dict]) -> list[str]:
    """The loss terms a history holds (the keys besides the loss and the bookkeeping)."""
    names: list[str] = []
    for entry in history:
        names += [k for k in entry if k not in _NOT_TERMS and k not in names]
    return names


def loss_curves(history: Sequence[dict], title: str = "Training loss") -> go.Figure:
    """Left: the loss and each term per step; right: the learning rate."""
    if not history:
        return message_figure("The loss curves appear after the first step.", 340)
    steps = [e["step"] for e in history]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.7, 0.3],
                        subplot_titles=["loss and its terms", "learning rate"])
    colours = qualitative.Plotly
    names = ["loss"] + [t for t in loss_terms(history)]
    if len(names) == 2 and all(e.get(names[1]) == e.get("loss") for e in history):
        names = ["loss"]  # one unweighted term: the same curve twice
    for i, name in enumerate(names):
        fig.add_trace(go.Scatter(
            x=steps, y=[e.get(name) for e in history], mode="lines+markers", name=esc(name),
            marker=dict(size=4), line=dict(width=2.5 if name == "loss" else 1.5,
                                           color=colours[i % len(colours)]),
            hovertemplate=f"{esc(name)} %{{y:.4f}} at step %{{x}}<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=[e.get("lr") for e in history], mode="lines",
                             name="lr", line=dict(color="#7f7f7f"),
                             hovertemplate="lr %{y:.3g} at step %{x}<extra></extra>"), 1, 2)
    fig.update_xaxes(title_text="step")
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    return _base(fig, title, 360)


def val_curves(val: Sequence[dict], title: str = "Validation") -> go.Figure:
    """The validation loss (and terms), the mean paired cosine and retrieval R@1 both ways
    (with chance), per validation step (step 0: the base model)."""
    if not val:
        return message_figure("The validation curves appear after the first validation.", 340)
    steps = [v["step"] for v in val]
    fig = make_subplots(rows=1, cols=3, subplot_titles=["validation loss", "paired cosine",
                                                        "R@1 (%)"])
    losses = ["val_loss"] + [k for k in val[0] if k.startswith("val_") and k != "val_loss"]
    if len(losses) == 2 and all(v.get(losses[1]) == v.get("val_loss") for v in val):
        losses = ["val_loss"]  # one unweighted term: the same curve twice
    colours = qualitative.Plotly
    for i, name in enumerate(losses):
        fig.add_trace(go.Scatter(x=steps, y=[v.get(name) for v in val], mode="lines+markers",
                                 name=esc(name), line=dict(color=colours[i % len(colours)]),
                                 hovertemplate=f"{esc(name)} %{{y:.4f}} at step %{{x}}"
                                               "<extra></extra>"), 1, 1)
    fig.add_trace(go.Scatter(x=steps, y=[v.get("cosine") for v in val], mode="lines+markers",
                             name="cosine", line=dict(color="#2ca02c")), 1, 2)
    for name, colour in (("r1_i2t", "#9467bd"), ("r1_t2i", "#8c564b"),
                         ("chance_r1", "#bbbbbb")):
        fig.add_trace(go.Scatter(x=steps, y=[v.get(name) for v in val], mode="lines+markers",
                                 name={"r1_i2t": "R@1 image→text", "r1_t2i": "R@1 text→image",
                                       "chance_r1": "chance"}[name],
                                 line=dict(color=colour, dash="dot" if name == "chance_r1"
                                           else "solid")), 1, 3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(legend=dict(orientation="h", y=-0.25, x=0))
    return _base(fig, title, 360)
