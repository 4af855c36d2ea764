"""A tiny random SigLIP saved like a Hub checkpoint: SiglipModel.save_pretrained, a SiglipTokenizer
over a SentencePiece model trained on the demo's captions, and SigLIP's image processor."""

from __future__ import annotations

from pathlib import Path

TINY_VOCAB = 64  # the SentencePiece model has at most this many pieces


def demo_captions() -> list[str]:
    from engineered_latents.data import get_dataset

    dataset = get_dataset("demo")
    return [c for ex in dataset.load(range(dataset.size())) for c in ex.captions]


def save_tiny_siglip(path, image_size: int = 32, patch_size: int = 8, seed: int = 0) -> str:
    """A 2-layer SigLIP (hidden 32, 32 px images in 8 px patches: a 4 x 4 grid, 64 text
    positions) with random weights, written with save_pretrained into `path`."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel

    from engineered_latents.siglip import save_tokenizer

    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=2)
    config = SiglipConfig(
        text_config=dict(small, vocab_size=TINY_VOCAB, max_position_embeddings=64,
                         pad_token_id=1, bos_token_id=None, eos_token_id=1),
        vision_config=dict(small, image_size=image_size, patch_size=patch_size),
    )
    torch.manual_seed(seed)
    model = SiglipModel(config)
    with torch.no_grad():  # a scale and bias like a trained SigLIP's (exp(scale) ~ 10, bias -2)
        model.logit_scale.fill_(2.3)
        model.logit_bias.fill_(-2.0)
    model.save_pretrained(path)
    save_tokenizer(Path(path), demo_captions() * 3, vocab_size=48)
    SiglipImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(path)
    return str(path)


def save_tiny_siglip2(path, tiny_siglip: str) -> str:
    """The tiny SigLIP's weights with a SigLIP 2 tokenizer instead (Gemma-style BPE, fast, left
    padding, character offsets): a fixed-resolution SigLIP 2 checkpoint is this, SiglipModel plus
    Siglip2Tokenizer. A hand-made vocabulary of letters and a few merged words (under 64 ids)."""
    import shutil

    from transformers import Siglip2Tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
        shutil.copy(Path(tiny_siglip) / name, path / name)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    for piece in ["\u2581", *letters, *("\u2581" + c for c in letters), "re", "red", "\u2581red"]:
        vocab.setdefault(piece, len(vocab))
    merges = [("r", "e"), ("re", "d"), ("\u2581", "red")]
    Siglip2Tokenizer(vocab=vocab, merges=merges).save_pretrained(path)
    return str(path)
