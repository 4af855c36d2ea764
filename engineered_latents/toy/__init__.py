"""A small CLIP trained on the demo's synthetic scenes, and the numbers that say what it learned.

The offline fallback (`models.resolve_model(None)` without network) loads this model from the
package data (`engineered_latents/assets/toy_clip/`), so the demo shows real word-region
structure instead of noise, and the tests get an oracle: the scenes' boxes are known, so a
word's patch map can be checked against them.

- `toy.model`: the architecture (a transformers `CLIPModel`, 112 px images, 16 px patches ->
  7 x 7 grid, OpenAI's real tokenizer), its pixels and its files.
- `toy.data`: scenes from `engineered_latents.data.scenes`, training batches with hard negatives
  (objects swapped, or in another relation), and the held-out evaluation sets (string seeds,
  never used by training's integer seeds).
- `toy.training`: CLIP's InfoNCE plus a token-to-patch (FILIP) InfoNCE; deterministic.
- `toy.evaluation`: retrieval R@1, Winoground- and What'sUp-style scores through
  `engineered_latents.metrics` (the benchmarks' protocol), and localization of colour and shape
  words through the public pipeline (`cut_examples`), against chance, the other objects and
  the untrained architecture.
- `toy.card`: `metrics.json` and the model card (`README.md`).
- `toy.cli`: `python -m engineered_latents train-toy` trains, evaluates and writes the folder;
  `--eval-only` re-measures.
"""

# Imported on first use (PEP 562): the CLI's parser reads `add_arguments` without torch.
_LAZY = {name: module for module, names in {
    "card": ("TrainReport", "model_card", "summary_lines"),
    "cli": ("add_arguments", "main", "train_command"),
    "data": ("RENDER_SIZE", "Claim", "Sample", "claim_holds", "hard_pair", "localization_set",
             "positives", "random_sample", "retrieval_set", "training_batch", "whatsup_set",
             "winoground_set"),
    "evaluation": ("eval_demo_slice", "eval_retrieval", "eval_whatsup", "eval_winoground",
                   "evaluate", "localization", "raw_affinities", "scalar_sign",
                   "untrained_localization", "word_map"),
    "model": ("ToyConfig", "clip_config", "image_processor", "save", "to_pixels"),
    "training": ("late_interaction", "train"),
}.items() for name in names}


def __getattr__(name: str):
    import importlib

    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


__all__ = [
    "RENDER_SIZE", "Claim", "Sample", "ToyConfig", "TrainReport", "add_arguments",
    "claim_holds", "clip_config", "eval_demo_slice", "eval_retrieval", "eval_whatsup",
    "eval_winoground", "evaluate", "hard_pair", "image_processor", "late_interaction",
    "localization", "localization_set", "main", "model_card", "positives", "random_sample",
    "raw_affinities", "retrieval_set", "save", "scalar_sign", "summary_lines", "to_pixels",
    "train", "train_command", "training_batch", "untrained_localization", "whatsup_set",
    "winoground_set", "word_map",
]
