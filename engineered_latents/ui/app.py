"""The whole app: one Blocks with the status line and a tab per activity (Explore, Loss
surfaces, Benchmarks with the run history, About), its queue, and the launch options that bound
uploads and what may be served."""

import os
from pathlib import Path

import gradio as gr

from ..config import Settings
from ..models import ASSETS
from .bench import BenchTab
from .compare import CompareTab
from .explore import ExploreTab
from .export import export_root
from .loss import LossTab
from .privacy import quiet_path_errors
from .train import TrainTab
from .upload import upload_root
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
- **Eigenvectors as RGB**: three eigenvectors (*RGB eigenvectors*, 1, 2, 3 by default) scaled
  over the slice into RGB, or (*RGB view colours* tsne / umap) one t-SNE or UMAP embedding of
  eigenvectors 1..k-1 over all the slice's patches and words, so equal colours mean nearby
  eigenvector values anywhere in the slice; the words below get the colours of their nodes.
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

**Compare** cuts one slice with two models (or two layers) in one eigenvector basis and shows
them side by side, with their difference and the research's eigenvector analyses.
**Loss surfaces** show the alignment losses of the slice you ran; **Benchmarks** run the
published protocols live (the `demo` benchmark works offline) and list every earlier run.
*Share and download* under Run copies a link that reopens the same view, and prepares the
results as files.

### API
Run is the `/cut` endpoint; `/pair` returns the views of another pair of the same run;
`/export` the run as files; `/compare` and `/compare_pair` the Compare tab;
`/loss` and `/landscape` the loss tab; `/benchmark` streams
benchmark results and `/bench_export` returns them as JSON. See the README for a
`gradio_client` example.
"""


# What Gradio's defaults cut off: gallery captions (one line, ellipsis) and file names in the
# downloads list; the rest of the layout is Gradio's own.
CSS = """
#el-gallery .caption-label { white-space: normal; max-width: 100%; left: 0; max-height: 55%;
    overflow-y: auto; font-size: 11px; line-height: 1.25; }
#el-downloads .filename .stem { white-space: normal; overflow-wrap: anywhere; }
#el-downloads .filename { overflow: visible; }
"""


def queue_size() -> int:
    """How many events may wait in the queue (EL_QUEUE_SIZE, default 32); more are refused."""
    return Settings.from_env().queue_size


def build_app(
    default_model: str | None = None,
    settings: Settings | None = None,
    warm_up: bool = True,
    preload_model: bool = True,
    share: bool = False,
) -> gr.Blocks:
    """The app. `default_model`: the model the default view and the "default" choice use (None:
    ViT-B/32 with the offline demo-weights fallback; tests pass a tiny local model). With
    `warm_up`, the default view is cut in the background right away, so the page shows it at once.
    `share`: the app is served through a public link (`--share`): the Train tab is off unless
    EL_ALLOW_TRAIN=1 (`ui.train.training_allowed`).
    """
    quiet_path_errors()  # refused files: no server folder in the message
    explorer = Explorer(settings, default_model)
    # Gradio's cached files (uploads, downloads) older than a day are removed every hour
    with gr.Blocks(title=TITLE, delete_cache=(3600, 86400)) as demo:
        gr.Markdown(HEADER)
        banner = gr.HTML("", label="Warning", elem_id="el-banner")
        status = gr.Markdown("Preparing the default view…", label="Status", elem_id="el-status")
        with gr.Tabs(elem_id="el-tabs") as tabs:
            with gr.Tab("Explore", id="explore", elem_id="el-tab-explore"):
                explore = ExploreTab(explorer, status, banner)
            with gr.Tab("Compare", id="compare", elem_id="el-tab-compare"):
                compare = CompareTab(explorer, tabs)
            with gr.Tab("Loss surfaces", id="loss", elem_id="el-tab-loss") as loss_tab:
                loss = LossTab(explore, loss_tab)
            with gr.Tab("Benchmarks", id="benchmarks", elem_id="el-tab-benchmarks") as bench_tab:
                bench = BenchTab(explore, bench_tab, tabs, compare)
            with gr.Tab("Train", id="train", elem_id="el-tab-train"):
                train = TrainTab(explorer, tabs, share=share)
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)
        train.link(compare, bench, [explore.model, compare.model_a, compare.model_b, bench.model,
                                    bench.compare])
        explore.on_load(demo)
        compare.on_load(demo)
        train.on_load(demo)
    demo.queue(max_size=queue_size(), default_concurrency_limit=1)
    demo.explorer = explorer  # for tests
    demo.parts = {"explore": explore, "compare": compare, "loss": loss, "bench": bench,
                  "train": train}
    if warm_up:
        explorer.warm_up(preload_model)
    return demo


def served_paths(settings: Settings | None = None, env: dict | None = None) -> dict:
    """`allowed_paths` (assets/ and the export folder; Gradio adds its own temp directory) and
    `blocked_paths` (the cache, the Hugging Face home, model folders and data mirrors) for
    launch(). `launch_options` also blocks the staged copies of users' uploads."""
    env = os.environ if env is None else env
    settings = settings or Settings.from_env()
    from huggingface_hub import constants

    configured = Settings.from_env(env)
    blocked = [settings.cache_dir, env.get("HF_HOME") or constants.HF_HOME,
               configured.data_root or "", *configured.model_dirs]
    return {
        "allowed_paths": [str(Path(ASSETS).resolve()), str(export_root())],
        "blocked_paths": sorted({str(Path(p).expanduser().resolve()) for p in blocked if p}),
    }


def launch_options(settings: Settings | None = None) -> dict:
    """What every launch of this app passes (app.py and the tests). Staged uploads (folder
    `el_uploads` in GRADIO_TEMP_DIR when it is set, else in the system's temp folder; see
    `upload.upload_root`) are blocked: one user's images are not another's to fetch."""
    paths = served_paths(settings)
    paths["blocked_paths"] = [*paths["blocked_paths"], str(upload_root().resolve())]
    return {
        "show_error": True,
        "css": CSS,
        "max_file_size": (settings or Settings.from_env()).max_upload_size,
        "footer_links": ["api", "gradio"],
        **paths,
    }
