"""The Loss surfaces tab, on the slice the session's Explore tab last ran.

- `/loss` (cheap, views pool): the two terms of the SVD and NCut cluster losses versus k (gap and
  magnitude, eigengap and eigenvalue sum) with the chosen k marked, the losses over alpha x beta
  as contours (a plane: each loss is linear in both weights), each loss versus k with the
  eigengap's k marked, and CKA versus added noise.
- `/landscape` (NCut per grid point, model pool): the losses along two random directions in the
  space of the slice's patch and token embeddings, around the current ones. CKA and SVD on a
  fine grid; the cluster loss on a coarser grid over a seeded subsample of nodes.
- `/loss_export`: the plotted arrays (npz) and the figures (standalone HTML).
"""

import gradio as gr
import numpy as np

from .. import figures as F
from .. import landscape
from ..errors import UserError
from . import export
from . import views as V
from .explore import MODEL_POOL, VIEWS_POOL, ExploreTab, user_errors

INTRO = """Losses of the slice the Explore tab ran last (its embeddings are kept, so no model is
needed). **Weights**: the SVD loss `-alpha * gap - beta * magnitude` of the cross-covariance
singular values of the pairs' mean patch and token embeddings, and the NCut cluster loss
`-alpha * eigengap + beta * sum of the first k Laplacian eigenvalues`, over a grid of alpha and
beta. **Landscape**: the CKA, SVD and cluster losses at the embeddings moved by `a * d1 + b * d2`
along two random directions (each node's direction scaled to its norm); the centre (star) is the
slice as it is."""


LINEAR = ("Over alpha and beta every loss here is a weighted sum of two fixed terms, so it is "
          "a plane whose minimum is always a corner: the terms versus k say more.")


# ----------------------------------------------------------------------------- plain functions


def axis(low, high, steps, name: str) -> np.ndarray:
    """`steps` evenly spaced values from low to high (both included)."""
    try:
        low, high, steps = float(low), float(high), int(steps)
    except (TypeError, ValueError):
        raise UserError(f"The {name} range needs numbers: from, to and steps.") from None
    if not (np.isfinite(low) and np.isfinite(high)) or low >= high:
        raise UserError(f"The {name} range {low:g}..{high:g}: 'from' must be below 'to'.")
    if not 2 <= steps <= 201:
        raise UserError(f"{steps} {name} steps: use between 2 and 201.")
    return np.linspace(low, high, steps)


def max_k(view: V.RunView) -> int:
    """The largest k the weight planes take for this run: below n_eig and the embedding size."""
    res = view.run.result
    if res.patch_embeddings is None or res.token_embeddings is None:
        landscape.node_features(view.run)  # raises the library's message
    dims = min(res.patch_embeddings[0].shape[-1], res.token_embeddings[0].shape[-1])
    return max(1, min(res.n_eig - 1, dims - 1))


def clamp_k(view: V.RunView, k) -> int:
    return min(max(V._as_int(k, "k"), 1), max_k(view))


def planes(view: V.RunView, k: int, alphas: np.ndarray, betas: np.ndarray,
           noise_max: float = 2.0) -> dict:
    """`landscape.weight_planes` of the run."""
    try:
        noise_max = float(noise_max)
    except (TypeError, ValueError):
        raise UserError("The noise level needs a number.") from None
    if not 0 < noise_max <= 100:
        raise UserError(f"Noise up to {noise_max:g}: use a level between 0 and 100.")
    k = V._as_int(k, "k")
    return landscape.weight_planes(view.run, k, alphas, betas, np.linspace(0, noise_max, 11))


def plane_figures(result: dict, title: str) -> dict:
    surfaces = {"SVD loss": result["svd_surface"], "NCut cluster loss": result["cluster_surface"]}
    k = result["k"]
    terms = {"SVD loss: -alpha * gap - beta * magnitude": {
                 "gap (alpha's term)": result["svd_gap_vs_k"],
                 "magnitude (beta's term)": result["svd_magnitude_vs_k"]},
             "NCut cluster loss: -alpha * eigengap + beta * sum": {
                 "eigengap (alpha's term)": result["cluster_gap_vs_k"],
                 "eigenvalue sum (beta's term)": result["cluster_sum_vs_k"]}}
    return {
        "surface": F.terms_vs_k(result["ks"], terms, result["eigengap_k"], k,
                                ["the terms each loss weighs, versus k", title]),
        "contour": F.loss_surfaces(result["alphas"], result["betas"], surfaces,
                                   [f"over alpha x beta (k = {k}): a plane, so the minimum is "
                                    "a corner", title], kind="contour"),
        "k": F.loss_vs_k(result["ks"], {"SVD loss": result["svd_vs_k"],
                                        "NCut cluster loss": result["cluster_vs_k"]},
                         result["eigengap_k"], k, ["loss versus k (alpha = beta = 1)", title]),
        "noise": F.cka_vs_noise(result["noise"], result["cka_vs_noise"],
                                [f"CKA versus noise (CKA {result['cka']:.3f} without)", title]),
    }


def directions(view: V.RunView, k: int, grid: int, fine_grid: int, span: float,
               max_nodes: int, seed: int, with_cluster: bool, progress=None) -> dict:
    """CKA and SVD on a fine_grid x fine_grid plane; the cluster loss on grid x grid."""
    k, grid, fine_grid = V._as_int(k, "k"), V._as_int(grid, "Grid"), V._as_int(fine_grid, "Grid")
    max_nodes, seed = V._as_int(max_nodes, "Nodes"), V._checked(seed, "seed", "Seed")
    span = float(span)
    if not 0 < span <= 10:
        raise UserError(f"Span {span:g}: use a value between 0 and 10.")
    if not 50 <= max_nodes <= 20_000:
        raise UserError(f"{max_nodes} nodes for the cluster loss: use 50 to 20,000.")
    report = progress or (lambda stage, fraction: None)
    fine = landscape.direction_landscape(view.run, k, fine_grid, span, max_nodes, seed,
                                         with_cluster=False,
                                         progress=lambda s, f: report("CKA and SVD", 0.1 * f))
    out = {"k": k, "span": span, "seed": seed, "fine_coords": fine["coords"],
           "cka": fine["cka"], "svd": fine["svd"]}
    if with_cluster:
        coarse = landscape.direction_landscape(
            view.run, k, grid, span, max_nodes, seed, with_cluster=True,
            progress=lambda s, f: report(f"NCut at {grid} x {grid} points", 0.1 + 0.9 * f))
        out.update(coarse_coords=coarse["coords"], cluster=coarse["cluster"],
                   nodes_for_cluster=coarse["nodes_for_cluster"])
    return out


def landscape_figure(result: dict, title: str):
    panels = [("CKA loss", result["fine_coords"], result["cka"]),
              (f"SVD loss (k = {result['k']})", result["fine_coords"], result["svd"])]
    if "cluster" in result:
        panels.append((f"NCut cluster loss ({result['nodes_for_cluster']} nodes)",
                       result["coarse_coords"], result["cluster"]))
    return F.landscape_contours(panels, [f"losses along two random directions (seed "
                                         f"{result['seed']}, span ±{result['span']:g})", title])


def landscape_note(result: dict) -> str:
    n = len(result["fine_coords"])
    note = f"CKA and SVD on a {n} x {n} grid"
    if "cluster" in result:
        g = len(result["coarse_coords"])
        note += (f"; the cluster loss on a {g} x {g} grid, one NCut of "
                 f"{result['nodes_for_cluster']} sampled nodes per point")
    return note + "."


# ----------------------------------------------------------------------------- the tab


class LossTab:
    """Builds the tab inside the current Blocks; reads the session's run from `explore.state`."""

    def __init__(self, explore: ExploreTab, tab: gr.Tab):
        self.explore, self.explorer = explore, explore.explorer
        self._layout()
        self._wire(tab)

    def _layout(self) -> None:
        gr.Markdown(INTRO)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                self.k = gr.Slider(1, 19, value=2, step=1, label="k", elem_id="el-loss-k")
                with gr.Row():
                    self.a0 = gr.Number(0, label="alpha from", elem_id="el-alpha-from")
                    self.a1 = gr.Number(2, label="alpha to", elem_id="el-alpha-to")
                    self.an = gr.Number(21, precision=0, label="steps", elem_id="el-alpha-n")
                with gr.Row():
                    self.b0 = gr.Number(0, label="beta from", elem_id="el-beta-from")
                    self.b1 = gr.Number(2, label="beta to", elem_id="el-beta-to")
                    self.bn = gr.Number(21, precision=0, label="steps", elem_id="el-beta-n")
                self.noise = gr.Number(2, label="CKA: noise up to (x std)")
                self.update_button = gr.Button("Update", variant="primary",
                                               elem_id="el-loss-update")
                self.note = gr.Markdown("", elem_id="el-loss-note")
            with gr.Column(scale=3):
                self.surface_plot = gr.Plot(label="Each loss's terms versus k",
                                            elem_id="el-loss-surface")
                self.contour_plot = gr.Plot(label="Over alpha x beta (a plane)",
                                            elem_id="el-loss-contour")
                with gr.Row():
                    self.k_plot = gr.Plot(label="Loss versus k", elem_id="el-loss-k-plot")
                    self.noise_plot = gr.Plot(label="CKA versus noise", elem_id="el-loss-noise")
        gr.Markdown("### Loss landscape along two random directions")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1, min_width=260):
                self.grid = gr.Slider(3, 21, value=11, step=1, label="Cluster-loss grid",
                                      info="one NCut per point")
                self.fine_grid = gr.Slider(5, 51, value=31, step=2, label="CKA and SVD grid")
                self.span = gr.Slider(0.05, 2, value=0.5, step=0.05, label="Span (±)",
                                      info="steps along each direction, in node norms")
                self.max_nodes = gr.Number(2000, precision=0, minimum=50,
                                           label="Nodes for the cluster loss (sampled)")
                self.seed = gr.Number(0, precision=0, label="Seed (directions, sample)")
                self.with_cluster = gr.Checkbox(True, label="Cluster loss (slower)")
                self.landscape_button = gr.Button("Compute landscape", variant="primary",
                                                  elem_id="el-landscape-run")
                # progress shows here while the landscape runs (it needs a height to be seen)
                self.landscape_note = gr.Markdown("", elem_id="el-landscape-note", min_height=64)
            with gr.Column(scale=3):
                self.landscape_plot = gr.Plot(label="Loss landscape", elem_id="el-landscape")
        with gr.Accordion("Download", open=False):
            self.export_button = gr.Button("Prepare downloads", size="sm")
            self.downloads = gr.File(file_count="multiple", interactive=False, height=140,
                                     label="loss_surfaces.npz, loss_surfaces.html")
        self.landscape_state = gr.State(None)  # the session's last landscape (arrays)

    @property
    def plane_inputs(self) -> list:
        return [self.explore.state, self.k, self.a0, self.a1, self.an, self.b0, self.b1,
                self.bn, self.noise]

    @property
    def landscape_inputs(self) -> list:
        return [self.explore.state, self.k, self.grid, self.fine_grid, self.span,
                self.max_nodes, self.seed, self.with_cluster]

    def _wire(self, tab: gr.Tab) -> None:
        outputs = [self.k, self.note, self.surface_plot, self.contour_plot, self.k_plot,
                   self.noise_plot]
        views = dict(concurrency_id=VIEWS_POOL, concurrency_limit=4)
        self.update_button.click(
            self.on_planes, self.plane_inputs, outputs, api_name="loss",
            api_description="Loss surfaces over alpha x beta, loss versus k, CKA versus noise "
                            "for the session's current run.", **views)
        for control in (self.k, self.a0, self.a1, self.an, self.b0, self.b1, self.bn,
                        self.noise):
            control.input(self.on_planes, self.plane_inputs, outputs, api_visibility="private",
                          trigger_mode="always_last", **views)
        tab.select(self.on_planes, self.plane_inputs, outputs, api_visibility="private",
                   **views)  # the session's current run whenever the tab is opened
        self.landscape_button.click(
            self.on_landscape, self.landscape_inputs,
            [self.landscape_note, self.landscape_plot, self.landscape_state],
            api_name="landscape",
            api_description="The losses along two random directions around the current "
                            "embeddings (one NCut per cluster-loss grid point).",
            concurrency_id=MODEL_POOL, concurrency_limit=1,
            show_progress_on=[self.landscape_note, self.landscape_plot])
        self.export_button.click(
            self.on_export, self.plane_inputs + [self.landscape_state], self.downloads,
            api_name="loss_export", **views)

    @user_errors
    def on_planes(self, request, k=2, a0=0, a1=2, an=21, b0=0, b1=2, bn=21, noise=2):
        view = self.explorer.view(request)
        top, k = max_k(view), clamp_k(view, k)
        result = planes(view, k, axis(a0, a1, an, "alpha"), axis(b0, b1, bn, "beta"), noise)
        figs = plane_figures(result, V.run_title(view))
        gap_k = result["eigengap_k"]
        note = (f"k = {k} of 1..{top}; " + (f"the eigengap heuristic suggests k = {gap_k} "
                "(the largest gap after the trivial eigenvalue); " if gap_k else "")
                + f"CKA of the paired embeddings {result['cka']:.3f}. {LINEAR}")
        # Gradio refuses a slider whose minimum (1) is not below its maximum
        return (gr.update(maximum=max(top, 2), value=k), note, figs["surface"], figs["contour"],
                figs["k"], figs["noise"])

    @user_errors
    def on_landscape(self, request, k=2, grid=11, fine_grid=31, span=0.5, max_nodes=2000,
                     seed=0, with_cluster=True, progress=gr.Progress()):
        view = self.explorer.view(request)
        result = directions(view, clamp_k(view, k), grid, fine_grid, span, max_nodes, seed,
                            bool(with_cluster), lambda stage, f: progress(f, desc=stage))
        result["title"] = V.run_title(view)
        return landscape_note(result), landscape_figure(result, result["title"]), result

    @user_errors
    def on_export(self, request, k=2, a0=0, a1=2, an=21, b0=0, b1=2, bn=21, noise=2,
                  landscape_result=None):
        view = self.explorer.view(request)
        title = V.run_title(view)
        result = planes(view, clamp_k(view, k), axis(a0, a1, an, "alpha"),
                        axis(b0, b1, bn, "beta"), noise)
        figs = plane_figures(result, title)
        figures = {"Terms versus k": figs["surface"], "Over alpha x beta": figs["contour"],
                   "Loss versus k": figs["k"], "CKA versus noise": figs["noise"]}
        arrays = {name: np.asarray(value) for name, value in result.items()}
        if landscape_result and landscape_result.get("title") == title:
            figures["Loss landscape"] = landscape_figure(landscape_result, title)
            arrays.update({f"landscape_{name}": np.asarray(value)
                           for name, value in landscape_result.items() if name != "title"})
        return export.loss_files(arrays, figures, f"engineered_latents: loss surfaces, {title}")
