"""SigLIP through the real loading path: a tiny random SiglipModel and a SentencePiece
SiglipTokenizer saved with save_pretrained (tests/siglip_fixtures.py), resolved as a local
folder."""

import json

import numpy as np
import pytest
import torch

import engineered_latents as el
from engineered_latents import models, siglip
from engineered_latents.data import get_dataset
from engineered_latents.errors import UserError
from engineered_latents.features import TextFeatures, whole_words

GRID = 16  # the tiny SigLIP's 4 x 4 patches


def _run(model, cache_dir, **cut):
    return el.compute_cuts(el.SliceSpec("demo", start=0, count=2),
                           el.CutSpec(**{"n_eig": 6, "clusters": 3, **cut}), el.ModelSpec(model),
                           cache=el.Cache(cache_dir))


@pytest.fixture(scope="module")
def lm(tiny_siglip):
    return models.load_model(tiny_siglip, "cpu", "float32")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One cache for the module: later cuts reuse the embeddings the first one computed."""
    return tmp_path_factory.mktemp("siglip_cache")


@pytest.fixture(scope="module")
def scalar_run(tiny_siglip, cache_dir):
    return _run(tiny_siglip, cache_dir)


def _real_tokens(lm, caption):
    """The caption's tokens as the tokenizer gives them unpadded (SigLIP: pieces + "</s>")."""
    return lm.tokenizer(caption)["input_ids"]


def test_resolves_as_siglip_with_the_family_in_its_identity(tiny_siglip, lm):
    resolved = models.resolve_model(tiny_siglip)
    assert resolved.family == "siglip" and resolved.weights_id.startswith("siglip:local:")
    assert type(lm.model).__name__ == "SiglipModel" and lm.patch_grid == (4, 4)
    assert lm.tokenizer.model_max_length == 64


def test_scalar_cut_every_patch_is_a_node_and_padding_never(scalar_run, lm):
    run = scalar_run
    captions = [c for ex in get_dataset("demo").load([0, 1]) for c in ex.captions]
    real = [_real_tokens(lm, c) for c in captions]
    assert all(ids[-1] == lm.tokenizer.eos_token_id for ids in real)  # no start token
    n_nodes = [len(ids) - 1 for ids in real]  # all but "</s>"; padding to 64 never
    assert [len(p.tokens) for p in run.pairs] == n_nodes
    assert run.result.n_tokens == [len(ids) for ids in real]  # kept arrays hold no padding
    assert run.result.n_patches == 1 + GRID
    assert run.result.eigvec.shape[0] == GRID * sum(n_nodes)
    assert set(run.result.index[:, 1]) == set(range(1, 1 + GRID))  # row 0 (pooled) is not
    assert siglip.row0_label(run.model) == "pooled"  # the page's label (not CLS)
    for p, info in enumerate(run.pairs):
        assert "</s>" not in info.tokens
        assert info.words == info.caption.split()  # "▁" pieces merged into the words
        assert not np.isnan(run.word_scores(p)).any()


def test_include_special_adds_only_the_end_token_and_the_pooled_row(tiny_siglip, cache_dir,
                                                                    scalar_run):
    run = _run(tiny_siglip, cache_dir, include_special=True)
    assert [p.tokens[-1] for p in run.pairs] == ["</s>"] * len(run.pairs)
    assert [len(p.tokens) for p in run.pairs] == [len(p.tokens) + 1 for p in scalar_run.pairs]
    assert run.result.eigvec.shape[0] == (1 + GRID) * sum(len(p.tokens) for p in run.pairs)


def test_joint_cut_from_the_cli(tiny_siglip, tmp_path, cache_dir, monkeypatch):
    from engineered_latents.__main__ import main

    monkeypatch.setenv("EL_CACHE_DIR", str(cache_dir))
    out = tmp_path / "out"
    assert main(["cuts", "--model", tiny_siglip, "--dataset", "demo", "--count", "2",
                 "--mode", "joint", "--n-eig", "6", "--clusters", "3", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    tokens = sum(len(p["tokens"]) for p in summary["pairs"])
    assert summary["n_nodes"] == GRID * 4 + tokens  # 2 examples x 2 images, every caption once


def test_patches_go_through_the_pooling_head_as_the_only_key(lm):
    """MaskCLIP-style dense patches: for one patch the head's own forward (attention weight 1)."""
    head = lm.model.vision_model.head
    states = torch.randn(2, 5, head.probe.shape[-1])
    dense = siglip.dense_patches(head, states)
    with torch.no_grad():
        one_by_one = torch.stack([head(states[:, i:i + 1]) for i in range(5)], dim=1)
    torch.testing.assert_close(dense, one_by_one, rtol=1e-5, atol=1e-6)


def test_words_merge_at_sentencepiece_word_starts():
    pieces = ["\u2581a", "\u2581", "re", "d", "\u2581circle", "</s>"]
    text = TextFeatures("a red circle", np.arange(6), pieces, [(0, 0)] * 6,
                        np.zeros((6, 2)), np.zeros(2), special=(0, 1), word_mark="start")
    assert whole_words(text, 0, 5) == [("a", [0]), ("red", [1, 2, 3]), ("circle", [4])]
    assert whole_words(text, 0, 6)[-1] == ("</s>", [5])  # a special token is a word of its own
    # a tokenizer with character offsets (SigLIP 2's): the caption's own characters
    offsets = [(0, 1), (1, 2), (2, 4), (4, 5), (5, 12), (0, 0)]
    text.caption, text.offsets = "A Red circle", offsets
    assert [w for w, _ in whole_words(text, 0, 5)] == ["A", "Red", "circle"]


def test_demo_benchmark_matches_a_loop_over_the_models_own_sigmoid(tiny_siglip, tmp_path):
    from transformers import SiglipImageProcessorPil, SiglipModel, SiglipTokenizer

    result = list(el.run_benchmark("demo", el.ModelSpec(tiny_siglip, dtype="float32"), limit=2,
                                   cache=el.Cache(tmp_path), n_bootstrap=50))[-1]
    model = SiglipModel.from_pretrained(tiny_siglip).eval()
    tok = SiglipTokenizer.from_pretrained(tiny_siglip)
    proc = SiglipImageProcessorPil.from_pretrained(tiny_siglip)
    for ex, got in zip(get_dataset("demo").load(range(2)), result.examples):
        ref = np.zeros((2, 2))
        for c in range(2):
            for i in range(2):  # one caption and one image at a time, padded to 64, no mask
                ids = tok([ex.captions[c]], padding="max_length", max_length=64,
                          return_tensors="pt")["input_ids"]
                pixels = proc(images=[ex.images[i]], return_tensors="pt")["pixel_values"]
                with torch.no_grad():
                    logit = model(input_ids=ids, pixel_values=pixels).logits_per_image[0, 0]
                ref[c, i] = torch.sigmoid(logit.double()).item()
        np.testing.assert_allclose(got["scores"], ref, rtol=1e-4)
        text = ref[0, 0] > ref[1, 0] and ref[1, 1] > ref[0, 1]
        image = ref[0, 0] > ref[0, 1] and ref[1, 1] > ref[1, 0]
        assert (got["text"], got["image"], got["group"]) == (text, image, text and image)


def test_model_scores_are_the_sigmoid_and_rank_as_the_cosine(lm):
    cos = np.array([-0.3, 0.0, 0.1, 0.1, 0.5])
    scale, bias = lm.model.logit_scale.exp().item(), lm.model.logit_bias.item()
    expected = 1 / (1 + np.exp(-(scale * cos + bias)))
    got = siglip.model_scores(lm, cos)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert got.dtype == np.float64 and got[2] == got[3]  # ties stay ties
    assert (np.argsort(got, kind="stable") == np.argsort(cos, kind="stable")).all()


def test_compare_a_siglip_with_a_clip(tiny_siglip, tiny_clip, cache_dir):
    from engineered_latents.compare import compare_cuts

    run = compare_cuts(el.SliceSpec("demo", start=0, count=1), el.CutSpec(n_eig=4, clusters=2),
                       (el.ModelSpec(tiny_siglip), el.ModelSpec(tiny_clip)),
                       cache=el.Cache(cache_dir))
    assert [r.result.n_patches for r in run.runs] == [1 + GRID, 1 + 49]
    assert all(0 < s < 1 for s in run.clip_scores[0])  # SigLIP's own (sigmoid) scores


def test_the_model_size_check_refuses_a_siglip_that_does_not_fit(tiny_siglip, monkeypatch):
    resolved = models.resolve_model(tiny_siglip)
    monkeypatch.setattr(models, "available_memory", lambda device: 1000)
    with pytest.raises(UserError, match="needs about .* GB on cpu"):
        models.load_model(resolved, "cpu", "bfloat16")  # a dtype not loaded yet: not cached
    monkeypatch.setattr(models, "available_memory", lambda device: 1 << 40)
    models.check_fits(resolved, torch.device("cpu"), torch.float32)


def test_naflex_and_training_are_refused_with_a_message(tiny_siglip, tmp_path):
    naflex = tmp_path / "naflex"
    naflex.mkdir()
    (naflex / "config.json").write_text(json.dumps({"model_type": "siglip2"}))
    (naflex / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match="NaFlex"):
        models.resolve_model(str(naflex))
    from engineered_latents.finetune.model import load_base

    with pytest.raises(UserError, match="CLIP checkpoints only"):
        load_base(tiny_siglip)


def test_a_siglip2_tokenizer_left_padding_and_offsets(tiny_siglip, tmp_path):
    from siglip_fixtures import save_tiny_siglip2

    from engineered_latents.features import encode_texts, pooled_text_embeddings

    lm2 = models.load_model(save_tiny_siglip2(tmp_path / "s2", tiny_siglip), "cpu", "float32")
    assert type(lm2.tokenizer).__name__ == "Siglip2Tokenizer"
    assert lm2.tokenizer.padding_side == "left"
    (text,), _ = encode_texts(lm2, ["A red circle"])
    assert "<pad>" not in text.pieces and text.pieces[:2] == ["a", "\u2581red"]
    assert len(text.ids) == len(lm2.tokenizer("A red circle")["input_ids"])
    assert whole_words(text, text.special[0], len(text.ids) - text.special[1]) == [
        ("A", [0]), ("red", [1]), ("circle", list(range(2, len(text.ids))))]
    np.testing.assert_allclose(pooled_text_embeddings(lm2, ["A red circle"])[0], text.pooled,
                               rtol=1e-5, atol=1e-6)


def test_layer_minus_one_is_the_last_layer(lm):
    from engineered_latents.features import EncodeSettings, encode_images, encode_texts

    image = get_dataset("demo").load([0])[0].images[0]
    last, minus_one = (encode_images(lm, [image], s)[0][0].patches
                       for s in (EncodeSettings(), EncodeSettings(layer=-1)))
    np.testing.assert_allclose(last, minus_one, rtol=1e-5, atol=1e-6)
    last, minus_one = (encode_texts(lm, ["a red circle"], s)[0][0].tokens
                       for s in (EncodeSettings(), EncodeSettings(layer=-1)))
    np.testing.assert_allclose(last, minus_one, rtol=1e-5, atol=1e-6)


def test_a_siglip_hub_listing_passes_the_checks_before_a_download():
    # (the presets in the page's pickers: tests/test_model_presets.py, PRESETS)
    files = ["config.json", "model.safetensors", "preprocessor_config.json", "spiece.model",
             "special_tokens_map.json", "tokenizer_config.json"]  # SigLIP's Hub listing
    models.check_checkpoint(files, "google/siglip-base-patch16-224",
                            lambda: {"model_type": "siglip"})
    assert "*.model" in models._download_patterns(files)  # its SentencePiece model comes too
