"""The model being fine-tuned: a fresh copy of the base weights, what of it trains, the forward
pass the losses need, and the plain `CLIPModel` that is written at the end."""

from __future__ import annotations

import torch

from ..errors import UserError

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]  # attention projections, both towers


def load_base(name: str | None):
    """(resolved, CLIPModel in float32 train mode, tokenizer, processor): never the cached copy
    `models.load_model` shares, since training changes the weights."""
    from transformers import CLIPModel

    from .. import models

    resolved = models.resolve_model(name)
    if resolved.family != "clip":
        raise UserError(
            f"train fine-tunes CLIP checkpoints only: {resolved.name!r} is a {resolved.family} "
            "model (its sigmoid loss and attention-pooling head are not implemented in train); "
            "give a CLIP model.")
    if resolved.path is None:
        clip = models._demo_model(int(resolved.weights_id.rsplit("-", 1)[1]))
    else:
        try:
            clip = CLIPModel.from_pretrained(resolved.path, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise UserError(f"Cannot load model {resolved.name!r}: {e}") from e
    clip = clip.float().train()
    max_length = clip.config.text_config.max_position_embeddings
    return (resolved, clip, models._tokenizer(resolved.path, max_length),
            models._image_processor(resolved.path))


def select_trainable(clip, train: str, last_n: int | None, lora_rank: int):
    """Set `requires_grad` for `--train`; returns the model to optimize (a PeftModel for lora).

    - full: every parameter (the research's choice);
    - projections: the two projection layers and the logit scale;
    - last-N: the last N blocks of each tower, their final norms, projections and logit scale;
    - lora: LoRA adapters (rank `lora_rank`, alpha 2 x rank) on the attention projections.
    """
    if train == "full":
        clip.requires_grad_(True)
        return clip
    if train == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(r=lora_rank, lora_alpha=2 * lora_rank, target_modules=LORA_TARGETS)
        return get_peft_model(clip, config)
    clip.requires_grad_(False)
    keep = [clip.visual_projection, clip.text_projection]
    if last_n is not None:
        for tower, norm in ((clip.vision_model, clip.vision_model.post_layernorm),
                            (clip.text_model, clip.text_model.final_layer_norm)):
            layers = tower.encoder.layers
            if last_n > len(layers):
                raise UserError(f"--train last-{last_n}: a tower has only {len(layers)} blocks.")
            keep += list(layers[-last_n:]) + [norm]
    for module in keep:
        module.requires_grad_(True)
    clip.logit_scale.requires_grad_(True)
    return clip


def finished_model(trained, train: str):
    """The plain CLIPModel to save: LoRA merged into the weights."""
    if train == "lora":
        return trained.merge_and_unload()
    return trained


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


class Encoder(torch.nn.Module):
    """One forward for the losses: pooled projected embeddings (not normalized), the logit
    scale, and for the tokens graph the projected patch and token embeddings."""

    def __init__(self, clip, tokens: bool = False) -> None:
        super().__init__()
        self.clip, self.tokens = clip, tokens

    def forward(self, pixel_values, input_ids, attention_mask) -> dict:
        clip = self.clip
        vision = clip.vision_model(pixel_values=pixel_values)
        text = clip.text_model(input_ids=input_ids, attention_mask=attention_mask)
        out = {"img": clip.visual_projection(vision.pooler_output),  # [B, D]
               "txt": clip.text_projection(text.pooler_output),  # [B, D]
               "logit_scale": clip.logit_scale}
        if self.tokens:
            hidden = clip.vision_model.post_layernorm(vision.last_hidden_state[:, 1:])
            out["patches"] = clip.visual_projection(hidden)  # [B, P, D]
            out["tokens"] = clip.text_projection(text.last_hidden_state)  # [B, T, D]
        return out


def param_groups(model, weight_decay: float, skip=()) -> list[dict]:
    """Weight decay on matrices, none on biases, norms, embeddings and the logit scale; frozen
    parameters and those in `skip` (optimized elsewhere) left out."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad or any(p is q for q in skip):
            continue
        if p.ndim < 2 or "embedding" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
