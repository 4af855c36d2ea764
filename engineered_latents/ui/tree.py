"""The Explore tab's recursive-cut section: a sunburst of the cluster tree and one tree node's
patches and words.

Events and their API names:
- `/tree` ("Cut recursively"): the tree of the session's run, `levels` deep (1: the slice's
  k-way clusters only), as a sunburst, with the node picker's choices and the first node shown.
- `/tree_node`: another tree node's patches and words (no new cut).

Gradio 6's `gr.Plot` has no click or selection event (only `change`), so a node is picked in the
dropdown next to the sunburst, whose labels are the same node ids. A new run of the tab resets
the section (its tree belongs to the old run). No `from __future__ import annotations`: Gradio
reads the handlers' annotations.
"""

import gradio as gr

from .. import figures as F
from ..controls import CONTROLS
from ..errors import UserError
from . import tree_views as TV
from .explore import MODEL_POOL, VIEWS_POOL, user_errors

EMPTY = "Press “Cut recursively” to cut every k-way cluster again (levels below 1)."


class TreeSection:
    """Builds the section inside the current Blocks (under the Explore tab's slice views)."""

    def __init__(self, explorer, state: gr.State):
        self.explorer, self.state = explorer, state
        c = CONTROLS["recursive"]
        gr.Markdown("### Recursive cut: concepts split into sub-concepts")
        with gr.Row():
            self.levels = gr.Slider(c.lo, c.hi, value=c.hi, step=1, label="Levels",
                                    info=c.help, elem_id="el-tree-levels", scale=3)
            self.button = gr.Button("Cut recursively", elem_id="el-tree-run", scale=1)
        self.note = gr.Markdown(EMPTY, elem_id="el-tree-note")
        with gr.Row():
            self.sunburst = gr.Plot(label="Cluster tree", elem_id="el-tree", scale=3)
            with gr.Column(scale=2):
                self.node = gr.Dropdown([], value=None, label="Tree node (its id as in the "
                                        "chart)", allow_custom_value=True,
                                        elem_id="el-tree-node")
                self.node_text = gr.Markdown("", elem_id="el-tree-node-text")
        self.node_plot = gr.Plot(label="The tree node's patches", elem_id="el-tree-patches")
        self.shown = gr.State(None)  # the levels of the tree shown (the node picker's tree)
        self._wire()

    @property
    def outputs(self) -> list:
        return [self.note, self.sunburst, self.node, self.node_text, self.node_plot, self.shown]

    def _wire(self) -> None:
        self.button.click(self.on_tree, [self.state, self.levels], self.outputs, api_name="tree",
                          api_description="The recursive cut of the current run: a sunburst "
                          "of the cluster tree and its first node.", concurrency_id=MODEL_POOL,
                          concurrency_limit=1, show_progress_on=[self.note])
        self.node.input(self.on_node, [self.state, self.shown, self.node],
                        [self.node_text, self.node_plot], api_name="tree_node",
                        api_description="Another node of the recursive cut's tree: its "
                        "patches and words.", concurrency_id=VIEWS_POOL, concurrency_limit=4)
        self.state.change(self.reset, None, self.outputs, queue=False, api_visibility="private")

    def reset(self):
        return (EMPTY, None, gr.update(choices=[], value=None), "", None, None)

    @user_errors
    def on_tree(self, request, levels, progress=gr.Progress()):
        progress(0.0, desc="cutting the clusters again")
        view = self.explorer.view(request)
        tree = TV.tree_for(view, levels, self.explorer.cache,
                           lambda stage, f: progress(f, desc=stage))
        first = tree.nodes[0].id if tree.nodes else None
        if first is None:
            return (TV.tree_note(tree), F.message_figure("This cut has no clusters."),
                    gr.update(choices=[], value=None), "", None, tree.levels)
        return (TV.tree_note(tree), TV.sunburst_figure(view, tree),
                gr.update(choices=TV.node_choices(tree), value=first),
                TV.node_markdown(tree, first), TV.node_figure(view, tree, first), tree.levels)

    @user_errors
    def on_node(self, request, levels, node_id):
        if levels is None:
            raise UserError("No recursive cut yet: press “Cut recursively” first.")
        view = self.explorer.view(request)
        tree = TV.tree_for(view, levels, self.explorer.cache)
        return TV.node_markdown(tree, node_id), TV.node_figure(view, tree, node_id)
