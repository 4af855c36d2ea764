"""Validation: the loss and its terms on held-out batches, the mean paired cosine, retrieval R@1
both ways, and early stopping on one of them."""

from __future__ import annotations

import torch

from .losses import combined, mean_paired_cosine, needs, row_normalize, tokens_graph
from .spec import METRICS, early_stop


@torch.no_grad()
def validate(run, step: int) -> dict:
    """Validation loss and terms (mean over full batches), mean paired cosine, R@1 both ways
    (percent) over the validation pairs."""
    enc = run.accelerator.unwrap_model(run.encoder)
    enc.eval()
    pairs, b = run.val_collate.pairs, min(run.spec.batch_size, len(run.val_collate.pairs))
    imgs, txts, losses = [], [], []
    device = run.accelerator.device
    for start in range(0, len(pairs), b):
        batch = run.val_collate(list(range(start, min(start + b, len(pairs)))))
        batch = {k: v.to(device) for k, v in batch.items()}
        with run.accelerator.autocast():
            out = enc(**batch)
        img, txt = row_normalize(out["img"].float()), row_normalize(out["txt"].float())
        imgs.append(img)
        txts.append(txt)
        if len(img) == b:
            nodes = None
            if run.spec.cluster_graph == "tokens" and needs(run.terms, "graph"):
                nodes = tokens_graph(out, batch, run.spec.cluster_nodes, start)
            loss, values = combined(run.terms, img, txt, out["logit_scale"].float(), run.params,
                                    nodes)
            losses.append({"val_loss": loss.item(), **{f"val_{k}": v for k, v in values.items()}})
    enc.train()
    img, txt = torch.cat(imgs), torch.cat(txts)
    sims = img @ txt.T  # [n, n]
    target = torch.arange(len(sims), device=sims.device)
    entry = {"step": step, **{k: sum(d[k] for d in losses) / len(losses) for k in losses[0]},
             "cosine": float(mean_paired_cosine(img, txt)),
             "r1_i2t": float((sims.argmax(1) == target).float().mean() * 100),
             "r1_t2i": float((sims.argmax(0) == target).float().mean() * 100),
             "chance_r1": 100.0 / len(sims), "n_val": len(sims)}
    return {k: round(v, 6) if isinstance(v, float) else v for k, v in entry.items()}


def _improved(run, entry: dict) -> bool:
    metric, _ = early_stop(run.spec.early_stop)
    value, best = entry[metric], run.state.best_value
    lower = METRICS[metric]
    return best is None or (value < best if lower else value > best)


def after_validation(run, entry: dict) -> bool:
    """Record a validation; True when it is the best so far."""
    state = run.state
    state.val.append(entry)
    metric, patience = early_stop(run.spec.early_stop)
    best = _improved(run, entry)
    if best:
        state.best_step, state.best_value, state.bad_evals = entry["step"], entry[metric], 0
    else:
        state.bad_evals += 1
        if patience is not None and state.bad_evals >= patience:
            state.stopped = (f"early stop: {metric} did not improve for {patience} validations "
                             f"(best {state.best_value} at step {state.best_step})")
    run.say(f"val step {entry['step']}: loss {entry['val_loss']:.4f}, cosine "
            f"{entry['cosine']:.4f}, R@1 i2t {entry['r1_i2t']:.1f} t2i {entry['r1_t2i']:.1f} "
            f"(chance {entry['chance_r1']:.1f})" + (" best" if best else ""))
    return best
