"""engineered_latents: how CLIP ties words to image regions, via NCut on patch x token affinities.

A notebook needs one import:

    import engineered_latents as el
    run = el.compute_cuts(el.SliceSpec("demo", start=0, count=8), el.CutSpec(mode="scalar"))
    run.word_level_scores(0)   # [words, eigenvectors] of the first pair
    el.save(run, "out/demo")   # summary.json + cuts.npz
"""

__version__ = "0.1.0"

# Every public name is imported on first use (PEP 562), so `import engineered_latents` is cheap
# and a cached `cuts` process never imports torch or transformers; `el.compute_cuts` etc. work
# as before. The submodules `history`, `landscape` and `losses` are attributes the same way.
_LAZY = {
    "BENCHMARKS": "benchmarks", "run_benchmark": "benchmarks",
    "Cache": "cache",
    "CompareRun": "compare", "compare_cuts": "compare",
    "CutSpec": "config", "ModelSpec": "config", "Settings": "config", "SliceSpec": "config",
    "CutResult": "cuts", "kway_labels": "cuts", "run_ncut": "cuts",
    "Example": "data", "dataset_names": "data", "describe_datasets": "data",
    "get_dataset": "data",
    "UserError": "errors",
    "TrainSpec": "finetune", "train": "finetune",
    "DEFAULT_MODEL": "models", "load_model": "models", "resolve_model": "models",
    "save": "output", "summary": "output",
    "CutsRun": "pipeline", "compute_cuts": "pipeline", "cut_examples": "pipeline",
}
_SUBMODULES = ("history", "landscape", "losses")


def __getattr__(name: str):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value  # once: later lookups are plain attributes
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "BENCHMARKS", "Cache", "CompareRun", "CutResult", "CutSpec", "CutsRun", "DEFAULT_MODEL",
    "Example", "ModelSpec", "Settings", "SliceSpec", "UserError", "compare_cuts", "compute_cuts",
    "cut_examples",
    "dataset_names", "describe_datasets", "get_dataset", "history", "kway_labels", "landscape",
    "load_model", "losses", "resolve_model", "run_benchmark", "run_ncut", "save", "summary",
    "TrainSpec", "train",
]
