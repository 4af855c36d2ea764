"""The whole app: one Blocks with the status line and a tab per activity.

Part 1 has the Explore tab (and a short About); part 2 adds tabs (loss surfaces, benchmarks)
next to it in `build_app`.
"""

import os

import gradio as gr

from ..config import Settings
from .explore import ExploreTab
from .views import Explorer

TITLE = "Engineered latents: where CLIP puts each word"
HEADER = f"""# {TITLE}
Every (image, caption) pair of a dataset slice gives a patch × token affinity matrix of CLIP's
projected embeddings; one Nyström Normalized Cut over the whole slice aligns eigenvectors across
pairs. Pick a pair in the gallery, then a word or an eigenvector, to see where it lands in the
image."""

ABOUT = """### How to read the views
- **Patch map**: the picked pair's image (as the model sees it: short side resized, centre crop)
  with one value per patch: an eigenvector's values (for all words, or the picked word's column),
  the raw affinity of a word, or the k-way cluster of each patch.
- **Eigenvectors as RGB**: three eigenvectors (1, 2, 3 by default) scaled over the slice into
  RGB; the words below get the colours of their nodes.
- **Per-word eigenvector scores**: rows are the caption's words (BPE pieces averaged; tick *BPE
  pieces* to see the pieces), columns the eigenvectors. Eigenvector 0 is constant (eigenvalue ~1)
  and hidden unless asked.
- **Raw affinities**: the cosine (or dot) similarity of every patch with every token.
- **The whole slice**: the eigenvalue spectrum with its largest gaps marked, the words that score
  highest and lowest on each eigenvector, the k-way cluster sizes with example words, and where
  the time went (and what came from the cache).

Scalar graph: every patch-token affinity is a node with a 1-d feature (the original method).
Joint graph: every patch embedding and token embedding is a node, so regions and words cluster
together. With **demo weights** (no network and no cached model) every number is meaningless.

### API
Every Run is the `/cut` endpoint; `/pair` returns the views of another pair of the same run.
See the README for a `gradio_client` example.
"""


def build_app(
    default_model: str | None = None,
    settings: Settings | None = None,
    warm_up: bool = True,
    preload_model: bool = True,
) -> gr.Blocks:
    """The app. `default_model`: the model the default view and the "default" choice use (None:
    ViT-B/32 with the offline demo-weights fallback; tests pass a tiny local model). With
    `warm_up`, the default view is cut in the background right away, so the page shows it at once.
    """
    explorer = Explorer(settings, default_model)
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(HEADER)
        banner = gr.HTML("", label="Warning", elem_id="el-banner")
        status = gr.Markdown("Preparing the default view…", label="Status", elem_id="el-status")
        with gr.Tabs():
            with gr.Tab("Explore", id="explore"):
                explore = ExploreTab(explorer, status, banner)
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
        explore.on_load(demo)
    demo.explorer = explorer  # for tests and for part 2's tabs
    if warm_up:
        explorer.warm_up(preload_model)
    return demo


def launch_options() -> dict:
    """What every launch of this app passes (app.py and the tests)."""
    return {
        "show_error": True,
        "max_file_size": os.environ.get("EL_MAX_UPLOAD", "20mb"),
        "footer_links": ["api", "gradio"],
    }
