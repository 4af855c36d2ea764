"""Training the toy CLIP.

Loss: CLIP's symmetric InfoNCE on the pooled embeddings with a learnable logit scale, plus
(weight `aux_weight`) the same InfoNCE on a token-to-patch late-interaction score (FILIP: each
word token's best cosine over the patches, averaged over the caption's words). Without the
auxiliary term the per-patch and per-token embeddings are never trained (CLIP's loss only sees
the CLS and end-of-text positions), and word maps barely localize (see the model card). Captions
that also describe another image of the batch are left out of its negatives.

Deterministic: the batches depend only on (seed, step), the weights on `torch.manual_seed(seed)`,
with a fixed number of CPU threads.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import torch

from ..finetune.model import param_groups
from .data import positives, training_batch
from .model import ToyConfig, clip_config, to_pixels


def _info_nce(logits: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE; other positives (same meaning) are left out of the negatives."""
    eye = torch.eye(len(logits), dtype=torch.bool)
    masked = logits.masked_fill(positive & ~eye, float("-inf"))
    target = torch.arange(len(logits))
    return (torch.nn.functional.cross_entropy(masked, target)
            + torch.nn.functional.cross_entropy(masked.T, target)) / 2


def _encode(model, pixels, input_ids, attention_mask):
    """Normalized (pooled image, pooled text, patches [B, P, D], tokens [B, T, D]), computed as
    the pipeline does (patches: post_layernorm then visual_projection)."""
    vision = model.vision_model(pixel_values=pixels)
    text = model.text_model(input_ids=input_ids, attention_mask=attention_mask)
    norm = torch.nn.functional.normalize
    img = norm(model.visual_projection(vision.pooler_output), dim=-1)
    txt = norm(model.text_projection(text.pooler_output), dim=-1)
    patches = norm(model.visual_projection(
        model.vision_model.post_layernorm(vision.last_hidden_state[:, 1:])), dim=-1)
    tokens = norm(model.text_projection(text.last_hidden_state), dim=-1)
    return img, txt, patches, tokens


def _word_token_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[B, T] the caption's word tokens: not padding, not the start or end token."""
    special = (input_ids == 49406) | (input_ids == 49407)
    return attention_mask.bool() & ~special


def late_interaction(patches, tokens, word_mask) -> torch.Tensor:
    """[B_img, B_txt] FILIP score: each word token's best cosine over an image's patches,
    averaged over the caption's word tokens."""
    sim = torch.einsum("ipd,jtd->ijtp", patches, tokens).amax(-1)  # [I, J, T]
    w = word_mask.float()[None]  # [1, J, T]
    return (sim * w).sum(-1) / w.sum(-1).clamp(min=1)


def train(cfg: ToyConfig, log: Callable[[str], None] = print):
    """Train the toy CLIP; returns (model in float32, training info). Runs on `cfg.threads`
    CPU threads and leaves the process's thread count and torch RNG as they were."""
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        with torch.random.fork_rng(devices=[]):
            return _train(cfg, log)
    finally:
        torch.set_num_threads(threads)


def _lr_at(cfg: ToyConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def _train(cfg: ToyConfig, log: Callable[[str], None]):
    from transformers import CLIPModel

    from ..models import clip_tokenizer_from_vocab

    torch.manual_seed(cfg.seed)
    model = CLIPModel(clip_config(cfg)).train()
    aux_scale = torch.nn.Parameter(torch.tensor(math.log(10.0)))
    tokenizer = clip_tokenizer_from_vocab()
    # The token table (49,408 x width) is most of the parameters but only a few dozen rows are
    # ever used: sparse gradients and SparseAdam update just those rows.
    token_embedding = model.text_model.embeddings.token_embedding
    token_embedding.sparse = True
    groups = param_groups(model, cfg.weight_decay, skip=[token_embedding.weight])
    groups[1]["params"].append(aux_scale)
    dense = [p for g in groups for p in g["params"]]
    opts = [torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6),
            torch.optim.SparseAdam([token_embedding.weight], lr=cfg.lr, betas=(0.9, 0.98),
                                   eps=1e-6)]

    start, history = time.perf_counter(), []
    for step in range(cfg.steps):
        samples = training_batch(cfg, step)
        pixels = to_pixels([s.image for s in samples], cfg.image_size)
        enc = tokenizer([s.caption for s in samples], padding=True, return_tensors="pt")
        positive = positives(samples)
        for opt in opts:
            for g in opt.param_groups:
                g["lr"] = _lr_at(cfg, step)
        img, txt, patches, tokens = _encode(model, pixels, enc["input_ids"],
                                            enc["attention_mask"])
        loss_clip = _info_nce(model.logit_scale.exp() * img @ txt.T, positive)
        loss = loss_clip
        loss_aux = torch.zeros(())
        if cfg.aux_weight > 0:
            score = late_interaction(patches, tokens, _word_token_mask(enc["input_ids"],
                                                                       enc["attention_mask"]))
            loss_aux = _info_nce(aux_scale.exp() * score, positive)
            loss = loss + cfg.aux_weight * loss_aux
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dense, 1.0)
        for opt in opts:
            opt.step()
        with torch.no_grad():  # CLIP clamps the temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
            aux_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == cfg.steps - 1:
            entry = {"step": step, "loss": round(loss_clip.item(), 4),
                     "aux": round(loss_aux.item(), 4),
                     "scale": round(model.logit_scale.exp().item(), 2),
                     "seconds": round(time.perf_counter() - start, 1)}
            history.append(entry)
            log(json.dumps(entry))
    seconds = time.perf_counter() - start
    info = {"seconds": round(seconds, 1), "steps": cfg.steps,
            "samples_seen": cfg.steps * cfg.batch_size, "history": history,
            "parameters": sum(p.numel() for p in model.parameters()),
            "threads": cfg.threads, "torch": torch.__version__}
    token_embedding.sparse = False
    return model.eval(), info
