"""engineered_latents: how CLIP ties words to image regions, via NCut on patch x token affinities.

A notebook needs one import:

    import engineered_latents as el
    run = el.compute_cuts(el.SliceSpec("demo", start=0, count=8), el.CutSpec(mode="scalar"))
    run.word_level_scores(0)   # [words, eigenvectors] of the first pair
    el.save(run, "out/demo")   # summary.json + cuts.npz
"""

__version__ = "0.1.0"

from . import history, landscape, losses  # noqa: E402
from .benchmarks import BENCHMARKS, run_benchmark  # noqa: E402
from .cache import Cache  # noqa: E402
from .compare import CompareRun, compare_cuts  # noqa: E402
from .config import CutSpec, ModelSpec, Settings, SliceSpec  # noqa: E402
from .cuts import CutResult, kway_labels, run_ncut  # noqa: E402
from .data import Example, dataset_names, describe_datasets, get_dataset  # noqa: E402
from .errors import UserError  # noqa: E402
from .finetune import TrainSpec, train  # noqa: E402
from .models import DEFAULT_MODEL, load_model, resolve_model  # noqa: E402
from .output import save, summary  # noqa: E402
from .pipeline import CutsRun, compute_cuts, cut_examples  # noqa: E402

__all__ = [
    "BENCHMARKS", "Cache", "CompareRun", "CutResult", "CutSpec", "CutsRun", "DEFAULT_MODEL",
    "Example", "ModelSpec", "Settings", "SliceSpec", "UserError", "compare_cuts", "compute_cuts",
    "cut_examples",
    "dataset_names", "describe_datasets", "get_dataset", "history", "kway_labels", "landscape",
    "load_model", "losses", "resolve_model", "run_benchmark", "run_ncut", "save", "summary",
    "TrainSpec", "train",
]
