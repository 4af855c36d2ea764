"""Batched CLIP encoders, each unique image and caption encoded once, cached per item.

Per-patch embeddings: vision hidden state -> `post_layernorm` (default; `patch_norm=False` skips
it, as the original research code did) -> `visual_projection`. Per-token embeddings: text hidden
state (after the final layer norm) -> `text_projection`. Pooled embeddings are L2-normalized.
All outputs are float32 numpy, whatever dtype the encoders ran in; padding never becomes data.
A SigLIP (`LoadedModel.family == "siglip"`) is encoded by `siglip` instead: no CLS (row 0 holds
the pooled embedding), patches through the attention-pooling head, text padded to 64 tokens.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import siglip
from .cache import Cache, cache_key
from .data import images as image_files
from .lazy import inference_mode, torch  # imported on first use (a cached run needs none)
from .models import LoadedModel, dtype_name
from .prefetch import prefetched

log = logging.getLogger(__name__)

PREPROCESSING_VERSION = 1  # bump when image preparation or tokenization changes results


@dataclass(frozen=True)
class EncodeSettings:
    layer: int | None = None  # hidden-state index (0 = embeddings); None = last layer
    patch_norm: bool = True  # apply the vision post_layernorm to patch states


@dataclass
class ImageFeatures:
    patches: np.ndarray  # [1 + patches, D] projected; row 0 is the CLS token
    pooled: np.ndarray  # [D] L2-normalized


@dataclass
class TextFeatures:
    caption: str
    ids: np.ndarray  # [T] token ids, start and end tokens included, no padding
    pieces: list[str]  # [T] decoded BPE pieces ("red</w>")
    offsets: list[tuple[int, int]]  # [T] character span of each piece in the caption
    tokens: np.ndarray  # [T, D] projected token embeddings
    pooled: np.ndarray  # [D] L2-normalized
    truncated: bool = False
    special: tuple[int, int] = (1, 1)  # (leading, trailing) special tokens: CLIP's start, end
    word_mark: str = "end"  # "end": pieces end words ("</w>", CLIP); "start": "▁" starts them


def image_digest(image: Image.Image) -> str:
    """A content hash of an image: the same pixels give the same key wherever they come from."""
    digest = hashlib.sha1(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def _feature_key(kind: str, lm: LoadedModel, settings: EncodeSettings, item: str) -> str:
    fields = {
        "weights": lm.resolved.weights_id, "dtype": dtype_name(lm.dtype),
        "layer": settings.layer, "patch_norm": settings.patch_norm,
        "prep": PREPROCESSING_VERSION, "item": item,
    }
    if kind == "img":  # the pixels went through data.images.normalize_image
        fields["normalize"] = image_files.NORMALIZE_VERSION
    return cache_key(kind, fields)


def _cached_batches(
    keys: list[str], items: list, prepare: Callable[[list], object],
    encode: Callable[[list, object], list], cache: Cache | None, batch_size: int,
) -> tuple[list, int]:
    """Values for `keys`: cache hits, then the unique misses in batches, each batch's inputs
    prepared (`prepare(items)`) in a background thread while the previous batch is encoded
    (`encode(items, prepared)`). Returns (values, number of cache hits)."""
    found: dict[str, object] = {}
    for key in dict.fromkeys(keys):
        value = cache.get(key) if cache is not None else None
        if value is not None:
            found[key] = value
    hits = len(found)
    missing = [(k, it) for k, it in dict(zip(keys, items)).items() if k not in found]
    chunks = [missing[i : i + batch_size] for i in range(0, len(missing), batch_size)]
    for chunk, prepared in prefetched(chunks, lambda c: prepare([it for _, it in c])):
        for (key, _), value in zip(chunk, encode([it for _, it in chunk], prepared)):
            found[key] = value
            if cache is not None:
                cache.set(key, value)
    return [found[k] for k in keys], hits


def encode_images(
    lm: LoadedModel, images: Sequence[Image.Image], settings: EncodeSettings = EncodeSettings(),
    cache: Cache | None = None, batch_size: int = 32,
) -> tuple[list[ImageFeatures], int]:
    """Features of each image (duplicates encoded once) and how many came from the cache."""
    keys = [_feature_key("img", lm, settings, image_digest(im)) for im in images]
    return _cached_batches(keys, list(images), lambda batch: _pixels(lm, batch),
                           lambda batch, pixels: _image_forward(lm, pixels, settings), cache,
                           batch_size)


def encode_texts(
    lm: LoadedModel, captions: Sequence[str], settings: EncodeSettings = EncodeSettings(),
    cache: Cache | None = None, batch_size: int = 64,
) -> tuple[list[TextFeatures], int]:
    """Features of each caption (duplicates encoded once) and how many came from the cache."""
    keys = [_feature_key("txt", lm, settings, c) for c in captions]
    return _cached_batches(keys, list(captions), lambda batch: _tokens(lm, batch),
                           lambda batch, enc: _text_forward(lm, batch, enc, settings), cache,
                           batch_size)


def _pixels(lm: LoadedModel, images: list[Image.Image]) -> torch.Tensor:
    """[B, 3, H, W] preprocessed images (resize, centre crop, normalize), on the CPU."""
    return lm.processor(images=[im.convert("RGB") for im in images],
                        return_tensors="pt")["pixel_values"]


def _tokens(lm: LoadedModel, captions: list[str]) -> tuple[dict, list[bool]]:
    """Tokenized captions (truncated to the model's length) and which ones were truncated."""
    if _is_siglip(lm):
        return siglip.tokenize(lm, captions)
    tok = lm.tokenizer
    enc = tok(captions, padding=True, truncation=True, max_length=tok.model_max_length,
              return_tensors="pt", return_offsets_mapping=True)
    return enc, [bool(e.overflowing) for e in enc.encodings]  # cut tokens land in overflowing


def _hidden(output, layer: int | None) -> torch.Tensor:
    return output.last_hidden_state if layer is None else output.hidden_states[layer]


@inference_mode
def _image_forward(
    lm: LoadedModel, pixels: torch.Tensor, settings: EncodeSettings
) -> list[ImageFeatures]:
    if _is_siglip(lm):
        return siglip.image_forward(lm, pixels, settings)
    vision = lm.model.vision_model
    out = vision(pixel_values=pixels.to(lm.device, lm.dtype),
                 output_hidden_states=settings.layer is not None)
    states = _hidden(out, settings.layer)  # [B, 1 + patches, hidden]
    if settings.patch_norm:
        states = vision.post_layernorm(states)
    patches = lm.model.visual_projection(states).float()  # [B, 1 + patches, D]
    pooled = _normalize(lm.model.visual_projection(out.pooler_output).float())  # [B, D]
    return [ImageFeatures(p.cpu().numpy(), q.cpu().numpy()) for p, q in zip(patches, pooled)]


@inference_mode
def _text_forward(
    lm: LoadedModel, captions: list[str], tokenized: tuple[dict, list[bool]],
    settings: EncodeSettings,
) -> list[TextFeatures]:
    if _is_siglip(lm):
        return siglip.text_forward(lm, captions, tokenized, settings)
    enc, truncated = tokenized
    text = lm.model.text_model
    out = text(input_ids=enc["input_ids"].to(lm.device),
               attention_mask=enc["attention_mask"].to(lm.device),
               output_hidden_states=settings.layer is not None)
    states = out.last_hidden_state if settings.layer is None else text.final_layer_norm(
        out.hidden_states[settings.layer])  # [B, T, hidden]
    tokens = lm.model.text_projection(states).float()  # [B, T, D]
    pooled = _normalize(lm.model.text_projection(out.pooler_output).float())  # [B, D]
    result = []
    for i, caption in enumerate(captions):
        n = int(enc["attention_mask"][i].sum())
        ids = enc["input_ids"][i, :n].numpy()
        if truncated[i]:
            log.warning("Caption truncated to %d tokens: %r", lm.tokenizer.model_max_length,
                        caption[:80])
        result.append(TextFeatures(
            caption, ids, lm.tokenizer.convert_ids_to_tokens(ids.tolist()),
            [tuple(o) for o in enc["offset_mapping"][i, :n].tolist()],
            tokens[i, :n].cpu().numpy(), pooled[i].cpu().numpy(), truncated[i],
        ))
    return result


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def whole_words(text: TextFeatures, first: int, last: int) -> list[tuple[str, list[int]]]:
    """Group token positions first..last-1 into whole words: (the word's text, its positions).

    A word ends at a piece ending in "</w>" (CLIP's end-of-word mark); with a SentencePiece
    tokenizer (`text.word_mark == "start"`: SigLIP) a word starts at a piece beginning with "▁".
    Special tokens are words of their own. Its text is the caption's own characters, so
    non-Latin words split into byte-level pieces show as they were written (a tokenizer without
    character offsets: its pieces joined).
    """
    if text.word_mark == "start":
        return _words_by_start(text, first, last)
    words, current = [], []
    for pos in range(first, last):
        piece = text.pieces[pos]
        if piece.startswith("<|") and current:  # a special token is a word of its own
            words.append(_word(text, current))
            current = []
        current.append(pos)
        if piece.endswith("</w>") or piece.startswith("<|") or pos == last - 1:
            words.append(_word(text, current))
            current = []
    return words


def _words_by_start(text: TextFeatures, first: int, last: int) -> list[tuple[str, list[int]]]:
    lead, trail = text.special
    n = len(text.pieces)
    words, current = [], []
    for pos in range(first, last):
        special = pos < lead or pos >= n - trail
        if current and (special or text.pieces[pos].startswith("\u2581")):
            words.append(_word(text, current))
            current = []
        current.append(pos)
        if special:
            words.append(_word(text, current))
            current = []
    if current:
        words.append(_word(text, current))
    return words


def piece_text(piece: str) -> str:
    """A word piece without its word mark (CLIP's "</w>" suffix, SentencePiece's "▁" prefix)."""
    return piece.removesuffix("</w>").removeprefix("\u2581")


def _word(text: TextFeatures, positions: list[int]) -> tuple[str, list[int]]:
    start, end = text.offsets[positions[0]][0], text.offsets[positions[-1]][1]
    label = text.caption[start:end].strip()
    if not label:
        label = "".join(piece_text(text.pieces[p]) for p in positions)
    return label or text.pieces[positions[0]], positions


def _is_siglip(lm) -> bool:
    return getattr(lm, "family", "clip") == siglip.FAMILY



@inference_mode
def pooled_image_embeddings(lm: LoadedModel, images: Sequence[Image.Image]) -> np.ndarray:
    """[n, D] L2-normalized image embeddings (the benchmark path: no per-patch states kept)."""
    if not images:
        return np.zeros((0, _embedding_dim(lm)), np.float32)
    pixels = lm.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
    if _is_siglip(lm):
        return siglip.pooled_images(lm, pixels["pixel_values"])
    out = lm.model.vision_model(pixel_values=pixels["pixel_values"].to(lm.device, lm.dtype))
    return _normalize(lm.model.visual_projection(out.pooler_output).float()).cpu().numpy()


@inference_mode
def pooled_text_embeddings(lm: LoadedModel, captions: Sequence[str]) -> np.ndarray:
    """[n, D] L2-normalized caption embeddings (truncated to the model's 77 tokens)."""
    if not captions:
        return np.zeros((0, _embedding_dim(lm)), np.float32)
    if _is_siglip(lm):
        return siglip.pooled_texts(lm, captions)
    tok = lm.tokenizer
    enc = tok(list(captions), padding=True, truncation=True, max_length=tok.model_max_length,
              return_tensors="pt")
    out = lm.model.text_model(input_ids=enc["input_ids"].to(lm.device),
                              attention_mask=enc["attention_mask"].to(lm.device))
    return _normalize(lm.model.text_projection(out.pooler_output).float()).cpu().numpy()


def _embedding_dim(lm) -> int:
    return siglip.embedding_dim(lm.model) if _is_siglip(lm) else lm.model.config.projection_dim
