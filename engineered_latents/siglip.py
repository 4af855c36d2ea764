"""SigLIP, and SigLIP 2's fixed-resolution checkpoints, as a second encoder family beside CLIP.

transformers loads both as `SiglipModel` (`model_type: "siglip"`; SigLIP 2's fixed-resolution
checkpoints such as `google/siglip2-base-patch16-224` only change the tokenizer, Gemma's). The
NaFlex variants (`model_type: "siglip2"`, `Siglip2Model`: variable resolution with a patch
attention mask and spatial shapes) are refused with a message.

What differs from CLIP, and how each cut, comparison and benchmark handles it:

- **No CLS token**: every patch is a node. Row 0 of an image's patch array (the CLS slot of
  CLIP's layout, which every view keeps) holds the attention-pooled image embedding instead; like
  CLIP's CLS it is a node only with `include_special`.
- **Per-patch states into the shared space, MaskCLIP-style**: the pooled embedding comes from a
  multi-head attention-pooling head (a learned probe attends over the patches, then
  `y = a + MLP(LayerNorm(a))`). Each patch state `x_i` (after `post_layernorm`, as the model
  feeds the head) goes through the head as if it were the only key: its value and output
  projections `a_i = W_o (W_v x_i + b_v) + b_o`, then the head's residual MLP with the head's
  layernorm, `y_i = a_i + MLP(LayerNorm(a_i))` (`dense_patches`). For an image of one patch this
  is exactly the pooled embedding (the attention weight is 1), which the tests check.
- **Text padded to the model's fixed length** (64, `padding="max_length"`) and encoded without an
  attention mask, as the model was trained (its pooled text embedding is the last position, which
  is padding). Padding never becomes a node: each caption keeps only its real tokens (the
  tokenizer's attention mask), and only its special tokens (SigLIP's `</s>`, Gemma's `<bos>`)
  are left out of the graph unless `include_special` (`TextFeatures.special`).
- **Word pieces**: SentencePiece marks word *starts* ("▁"), not ends (CLIP's "</w>"):
  `features.whole_words` follows `TextFeatures.word_mark`.
- **Scores**: the model's own similarity, `sigmoid(exp(logit_scale) * cos + logit_bias)`, in
  float64 (`model_scores`); it is monotone in the cosine, so rankings (and strict ties) are those
  of the cosine. Retrieval and ImageNet rank by the cosine directly (the same ranking).
- **Identity**: a SigLIP's weights id starts with `siglip:`, so no cache entry of a CLIP can
  answer for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import UserError

FAMILY = "siglip"
FAMILIES = ("clip", FAMILY)
MAX_LENGTH = 64  # SigLIP's text length (text_config.max_position_embeddings)
NAFLEX_MESSAGE = (
    "is a SigLIP 2 NaFlex checkpoint (model_type 'siglip2': variable resolution), which is not "
    "supported: use a fixed-resolution SigLIP 2 checkpoint (e.g. google/siglip2-base-patch16-224) "
    "or a SigLIP (e.g. google/siglip-base-patch16-224).")


def family_of(config: dict, name: str) -> str:
    """"clip" or "siglip" for a config.json's contents; any other model type is a `UserError`."""
    model_type = config.get("model_type")
    if model_type == "clip":
        return "clip"
    if model_type == FAMILY:
        return FAMILY
    if model_type == "siglip2":
        raise UserError(f"{name!r} {NAFLEX_MESSAGE}")
    raise UserError(
        f"{name!r} is a {model_type!r} model, not a CLIP or SigLIP model: give a transformers "
        "CLIP or SigLIP checkpoint (e.g. openai/clip-vit-base-patch32, "
        "google/siglip-base-patch16-224).")


def config_family(config_path: Path, name: str) -> str:
    try:
        config = json.loads(Path(config_path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{name!r} has an unreadable config.json: {e}") from e
    return family_of(config, name)


def row0_label(resolved) -> str:
    """What row 0 of a patch map is, for labels: CLIP's CLS token, or a SigLIP's pooled
    embedding (`resolved`: the run's ResolvedModel)."""
    return "pooled" if getattr(resolved, "family", "clip") == FAMILY else "CLS"


def weights_id(family: str, identity: str) -> str:
    """The cache identity of a family's weights: CLIP's as it always was, others prefixed."""
    return identity if family == "clip" else f"{family}:{identity}"


# ----------------------------------------------------------------------------- loading


def load(path: str | None, seed: int = 0):
    """(SiglipModel, tokenizer, image processor) from a `save_pretrained` folder, or (path None)
    the SigLIP B/16 architecture with seeded random weights and a small local tokenizer (what
    `perf --arch siglip-b16` measures)."""
    from transformers import SiglipModel

    if path is None:
        return random_b16(seed), demo_tokenizer(), _image_processor(None)
    try:
        model = SiglipModel.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise UserError(f"Cannot load model {path!r}: {e}") from e
    return model, _tokenizer(path, model), _image_processor(path)


def _tokenizer(path: str, model):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except ImportError as e:  # SiglipTokenizer needs sentencepiece and protobuf
        raise UserError(f"The SigLIP tokenizer of {path!r} cannot be built: {e}".splitlines()[0]
                        + " (pip install sentencepiece protobuf)") from e
    except (OSError, ValueError) as e:
        raise UserError(f"{path!r} has no usable tokenizer: {e}") from e
    tokenizer.model_max_length = model.config.text_config.max_position_embeddings
    return tokenizer


def _image_processor(path: str | None):
    from transformers import SiglipImageProcessorPil

    if path and (Path(path) / "preprocessor_config.json").is_file():
        return SiglipImageProcessorPil.from_pretrained(path)
    return SiglipImageProcessorPil()  # 224 px, bilinear resize (no crop), mean = std = 0.5


def random_b16(seed: int = 0):
    """SigLIP B/16 at 224 px (transformers' SiglipConfig defaults), seeded random weights."""
    import torch
    from transformers import SiglipConfig, SiglipModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # special ids of SigLIP's tokenizer (pad = eos = 1, no bos), not CLIP's defaults
        return SiglipModel(SiglipConfig(text_config={"pad_token_id": 1, "bos_token_id": None,
                                                     "eos_token_id": 1}))


def train_sentencepiece(captions: list[str], vocab_size: int = 48,
                        model_type: str = "unigram") -> bytes:
    """A small SentencePiece model trained on `captions`, with SigLIP's special ids (pad 0,
    eos 1, unk 2, no bos): for tests (unigram: words split into "▁"-led pieces) and the
    random-weights performance model ("word": one piece per word, as a real vocabulary gives
    common words)."""
    import io

    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(captions), model_writer=out, vocab_size=vocab_size,
        hard_vocab_limit=False, model_type=model_type, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        character_coverage=1.0, minloglevel=2)
    return out.getvalue()


def save_tokenizer(folder: Path, captions: list[str], vocab_size: int = 48,
                   model_type: str = "unigram"):
    """A `SiglipTokenizer` over a SentencePiece model trained on `captions`, saved in `folder`."""
    from transformers import SiglipTokenizer

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_file = folder / "spiece.model"
    model_file.write_bytes(train_sentencepiece(captions, vocab_size, model_type))
    tokenizer = SiglipTokenizer(vocab_file=str(model_file), model_max_length=MAX_LENGTH)
    tokenizer.save_pretrained(folder)
    return tokenizer


def demo_tokenizer():
    """The random-weights model's tokenizer: trained on the demo's captions (no download)."""
    import tempfile

    from .perf import synthetic_examples

    captions = [c for ex in synthetic_examples(96) for c in ex.captions]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = save_tokenizer(Path(tmp), captions, 1000, "word")
        tokenizer = type(tokenizer).from_pretrained(tmp)  # the model file is read in memory
    return tokenizer


# ----------------------------------------------------------------------------- encoding


def dense_patches(head, states):
    """[B, N, D] per-patch embeddings through the attention-pooling head (MaskCLIP-style).

    Each state goes through the head's value and output projections (the attention's result
    when that state is the only key), then the head's residual MLP with its layernorm, exactly
    as the head treats its attention output: `a = out_proj(W_v x + b_v)`,
    `y = a + mlp(layernorm(a))`.
    """
    import torch

    attention = head.attention
    dim = states.shape[-1]
    value_weight = attention.in_proj_weight[2 * dim:]
    value_bias = attention.in_proj_bias[2 * dim:] if attention.in_proj_bias is not None else None
    values = torch.nn.functional.linear(states, value_weight, value_bias)
    attended = attention.out_proj(values)
    return attended + head.mlp(head.layernorm(attended))


def tokenize(lm, captions: list[str]) -> dict:
    """Captions padded to the model's fixed length, as SigLIP was trained, with what the
    per-token path needs: each caption's real positions (never padding), character offsets
    (fast tokenizers; else none), whether it was truncated."""
    tok = lm.tokenizer
    length = tok.model_max_length
    fast = bool(getattr(tok, "is_fast", False))
    enc = tok(captions, padding="max_length", truncation=True, max_length=length,
              return_tensors="pt", return_attention_mask=True, return_offsets_mapping=fast)
    if fast:
        truncated = [bool(e.overflowing) for e in enc.encodings]
    else:
        full = tok(captions, truncation=False)["input_ids"]
        truncated = [len(ids) > length for ids in full]
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "offsets": enc["offset_mapping"] if fast else None, "truncated": truncated}


def special_counts(ids: list[int], special_ids) -> tuple[int, int]:
    """(leading, trailing) special tokens of a caption's real tokens ([eos] alone: (0, 1))."""
    special = set(special_ids)
    trailing = 0
    while trailing < len(ids) and ids[len(ids) - 1 - trailing] in special:
        trailing += 1
    leading = 0
    while leading < len(ids) - trailing and ids[leading] in special:
        leading += 1
    return leading, trailing


def _inference(fn):
    """`torch.inference_mode` around `fn`, torch imported when it is called."""
    import functools

    @functools.wraps(fn)
    def run(*args, **kwargs):
        import torch

        with torch.inference_mode():
            return fn(*args, **kwargs)
    return run


def _hidden(out, layer):
    return out.hidden_states[-1 if layer is None else layer]


@_inference
def image_forward(lm, pixels, settings) -> list:
    """ImageFeatures per image: row 0 the pooled embedding, rows 1.. every patch (dense)."""
    import torch

    from .features import ImageFeatures

    vision = lm.model.vision_model
    plain = settings.layer is None and settings.patch_norm
    out = vision(pixel_values=pixels.to(lm.device, lm.dtype), output_hidden_states=not plain)
    if plain:  # SigLIP's last_hidden_state is already after post_layernorm
        states = out.last_hidden_state
    else:
        states = _hidden(out, settings.layer)
        if settings.patch_norm:
            states = vision.post_layernorm(states)
    patches = dense_patches(vision.head, states)  # [B, patches, D]
    rows = torch.cat([out.pooler_output[:, None], patches], dim=1).float()  # [B, 1 + N, D]
    pooled = torch.nn.functional.normalize(out.pooler_output.float(), dim=-1)
    return [ImageFeatures(r.cpu().numpy(), q.cpu().numpy()) for r, q in zip(rows, pooled)]


@_inference
def text_forward(lm, captions: list[str], enc: dict, settings) -> list:
    """TextFeatures per caption: its real tokens only (padding dropped), through the text head."""
    import logging

    import torch

    from .features import TextFeatures

    text = lm.model.text_model
    out = text(input_ids=enc["input_ids"].to(lm.device),
               output_hidden_states=settings.layer is not None)
    states = out.last_hidden_state if settings.layer is None else text.final_layer_norm(
        out.hidden_states[settings.layer])  # [B, L, hidden]
    tokens = text.head(states).float()  # [B, L, D]
    pooled = torch.nn.functional.normalize(out.pooler_output.float(), dim=-1)
    special_ids = lm.tokenizer.all_special_ids
    result = []
    for i, caption in enumerate(captions):
        real = torch.nonzero(enc["attention_mask"][i]).flatten()  # either padding side
        ids = enc["input_ids"][i, real].numpy()
        if enc["offsets"] is not None:
            offsets = [tuple(o) for o in enc["offsets"][i, real].tolist()]
        else:
            offsets = [(0, 0)] * len(ids)  # slow tokenizer: words are labelled by their pieces
        if enc["truncated"][i]:
            logging.getLogger(__name__).warning(
                "Caption truncated to %d tokens: %r", lm.tokenizer.model_max_length, caption[:80])
        result.append(TextFeatures(
            caption, ids, lm.tokenizer.convert_ids_to_tokens(ids.tolist()), offsets,
            tokens[i, real].cpu().numpy(), pooled[i].cpu().numpy(), enc["truncated"][i],
            special=special_counts(ids.tolist(), special_ids), word_mark="start"))
    return result


@_inference
def pooled_images(lm, pixels) -> np.ndarray:
    import torch

    out = lm.model.vision_model(pixel_values=pixels.to(lm.device, lm.dtype))
    return torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).cpu().numpy()


@_inference
def pooled_texts(lm, captions: list[str]) -> np.ndarray:
    import torch

    enc = tokenize(lm, list(captions))
    out = lm.model.text_model(input_ids=enc["input_ids"].to(lm.device))
    return torch.nn.functional.normalize(out.pooler_output.float(), dim=-1).cpu().numpy()


def embedding_dim(model) -> int:
    return int(model.config.text_config.projection_size)


def model_scores(lm, cosine: np.ndarray) -> np.ndarray:
    """The model's own image-text score from cosines: CLIP's cosine (float32, unchanged), or
    SigLIP's `sigmoid(exp(logit_scale) * cos + logit_bias)` in float64 (monotone in the cosine:
    the same rankings and ties while the sigmoid does not saturate)."""
    cosine = np.asarray(cosine)
    if getattr(lm, "family", "clip") != FAMILY:
        return cosine.astype(np.float32)
    scale = float(lm.model.logit_scale.detach().float().exp())
    bias = float(lm.model.logit_bias.detach().float())
    return 1.0 / (1.0 + np.exp(-(scale * cosine.astype(np.float64) + bias)))
