"""The toy CLIP's architecture, pixels and files.

A transformers `CLIPModel`: a ViT on 112 px images with 16 px patches (a 7 x 7 grid, like
ViT-B/32 at 224 px) and a small text transformer, with OpenAI's real CLIP tokenizer (49,408 ids,
built from the shipped BPE vocabulary). Weights are stored in float16.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..lazy import torch  # imported on first use (the CLI's parser reads ToyConfig)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ToyConfig:
    """Architecture and training recipe of the toy CLIP."""

    image_size: int = 112
    patch_size: int = 16
    vision_hidden: int = 128
    vision_layers: int = 4
    text_hidden: int = 128
    text_layers: int = 3
    heads: int = 4
    projection_dim: int = 128
    steps: int = 1000
    batch_size: int = 64
    hard_fraction: float = 0.5  # share of each batch in hard-negative pairs
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 50
    aux_weight: float = 1.0  # token-to-patch (FILIP) InfoNCE; 0 = plain CLIP
    seed: int = 0
    threads: int = 1  # one thread: much faster than two on a shared 2-core CPU


def clip_config(cfg: ToyConfig):
    from transformers import CLIPConfig

    def tower(hidden: int, layers: int) -> dict:
        return dict(hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
                    num_attention_heads=cfg.heads)

    return CLIPConfig(
        text_config=dict(tower(cfg.text_hidden, cfg.text_layers), vocab_size=49408,
                         max_position_embeddings=77, eos_token_id=49407, bos_token_id=49406,
                         pad_token_id=49407),
        vision_config=dict(tower(cfg.vision_hidden, cfg.vision_layers),
                           image_size=cfg.image_size, patch_size=cfg.patch_size),
        projection_dim=cfg.projection_dim,
    )


def image_processor(cfg: ToyConfig):
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(size={"shortest_edge": cfg.image_size},
                                 crop_size={"height": cfg.image_size, "width": cfg.image_size})


def to_pixels(images: Sequence[Image.Image], size: int) -> torch.Tensor:
    """[B, 3, size, size] normalized pixels, exactly what the image processor gives for square
    images (bicubic resize, OpenAI mean/std)."""
    arrays = []
    for im in images:
        if im.size != (size, size):
            im = im.resize((size, size), Image.BICUBIC)
        arrays.append(np.asarray(im, dtype=np.float32))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2) / 255.0  # [B, 3, H, W]
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def save(model, cfg: ToyConfig, out_dir: str | Path) -> Path:
    """Weights (float16), processor and tokenizer with `save_pretrained`, and the recipe."""
    from ..models import clip_tokenizer_from_vocab

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    copy.deepcopy(model).half().save_pretrained(out)
    clip_tokenizer_from_vocab().save_pretrained(out)
    image_processor(cfg).save_pretrained(out)
    (out / "toy_config.json").write_text(json.dumps(asdict(cfg), indent=1) + "\n")
    return out
