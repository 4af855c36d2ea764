"""Fine-tuning CLIP with the alignment losses: `TrainSpec` + `fit`, and the `train` command.

- `losses`: the research's losses in torch (a contract for outside tools) and the weighted-sum
  parser (`"contrastive+0.1*cluster"`).
- `spec`: `TrainSpec`, every option of a run.
- `data`: the pairs to train and validate on, and the seeded batch order.
- `stream`: coco/flickr30k streamed: the seeded shuffle buffer and each process's share.
- `model`: what trains (full, LoRA, last-N, projections) and the forward the losses need.
- `setup`: accelerator, optimizer, schedule; `validation`: metrics and early stopping.
- `loop`: the training loop under HF Accelerate (`fit(spec)`); `checkpoints`: atomic
  checkpoints and the run record; `outputs`: the model, train.json, eval.json, history.
- `tracking`: trackio or nothing; `cli`: the `train` subcommand.
"""

from __future__ import annotations

__all__ = ["TrainSpec", "fit", "train"]


def train(spec=None, **options) -> dict:
    """Fine-tune: `train(TrainSpec(...))` or `train(out="runs/demo", loss="contrastive", ...)`;
    returns the contents of train.json (see `finetune.outputs`)."""
    from .loop import fit
    from .spec import TrainSpec

    if spec is None:
        spec = TrainSpec(**options)
    elif options:
        raise TypeError("give a TrainSpec or keyword options, not both")
    return fit(spec)


def __getattr__(name: str):
    if name == "TrainSpec":
        from .spec import TrainSpec

        return TrainSpec
    if name == "fit":
        from .loop import fit

        return fit
    raise AttributeError(name)
