"""Units of the core library against hand-built inputs and independent oracles."""

import numpy as np
import pytest

import engineered_latents as el
from engineered_latents.affinity import pair_affinities
from engineered_latents.cuts import joint_nodes, kway_labels, run_ncut, scalar_nodes
from engineered_latents.features import TextFeatures, whole_words
from engineered_latents.models import clip_tokenizer_from_vocab


def test_tokenizer_from_shipped_vocabulary_matches_openai_ids():
    tokenizer = clip_tokenizer_from_vocab()
    assert len(tokenizer) == 49408
    assert tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tokenizer(" ".join(["word"] * 300), truncation=True).input_ids) == 77


def test_scalar_mode_separates_two_obvious_groups_in_the_first_nontrivial_eigenvector():
    rng = np.random.default_rng(0)
    # a hand-built affinity stack: pairs 0-3 have low affinities, pairs 4-7 high ones
    values = np.concatenate([rng.normal(0.0, 0.02, (4, 10, 6)), rng.normal(1.0, 0.02, (4, 10, 6))])
    aff = el.affinity.Affinities(values.astype(np.float32), np.ones(values.shape, bool),
                                 [(0, 6)] * 8)
    features, index = scalar_nodes(aff)
    eigvec, eigval = run_ncut(features, n_eig=4, seed=0)
    group = index[:, 0] >= 4
    first = eigvec[:, 1]  # the two groups lie on opposite sides of a threshold
    assert first[group].min() > first[~group].max() or first[group].max() < first[~group].min()
    assert eigval[0] == pytest.approx(1, abs=0.05)


def test_joint_mode_recovers_planted_clusters():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 5
    # two "images" of 12 patches and two "captions" of 8 tokens, each node near one centre
    truth_img = rng.integers(0, 3, (2, 12))
    truth_txt = rng.integers(0, 3, (2, 8))
    patches = [np.vstack([np.zeros(16), centres[t] + rng.normal(0, .1, (12, 16))])
               for t in truth_img]  # row 0 stands for CLS
    tokens = [np.vstack([np.zeros(16), centres[t] + rng.normal(0, .1, (8, 16)), np.zeros(16)])
              for t in truth_txt]
    features, index = joint_nodes(patches, tokens, [(1, 9), (1, 9)], include_special=False,
                                  center=False)
    assert features.shape == (2 * 12 + 2 * 8, 16)
    truth = np.concatenate([truth_img.ravel(), truth_txt.ravel()])
    eigvec, _ = run_ncut(features, n_eig=6, seed=0)
    labels = kway_labels(eigvec, 3)
    # each planted cluster maps to exactly one label, and distinct clusters to distinct labels
    mapping = {t: set(labels[truth == t]) for t in range(3)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len(set().union(*mapping.values())) == 3


def test_cosine_affinities_match_an_independent_computation():
    rng = np.random.default_rng(2)
    patches = [rng.normal(size=(5, 4)).astype(np.float32) for _ in range(2)]
    tokens = [rng.normal(size=(n, 4)).astype(np.float32) for n in (4, 6)]
    aff = pair_affinities(patches, tokens, "cosine")
    for p in range(2):
        for i in range(5):
            for t in range(len(tokens[p])):
                a, b = patches[p][i], tokens[p][t]
                expected = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
                valid = i > 0 and 0 < t < len(tokens[p]) - 1
                assert aff.mask[p, i, t] == valid
                if valid:
                    assert aff.values[p, i, t] == pytest.approx(expected, abs=1e-5)
    assert not aff.mask[0, :, 4:].any()  # padding of the shorter caption is never a node


def test_constant_affinities_and_tiny_graphs_give_clear_errors():
    with pytest.raises(el.UserError, match="same value"):
        run_ncut(np.zeros((100, 1), np.float32), n_eig=5)
    with pytest.raises(el.UserError, match="at least 2"):
        run_ncut(np.ones((1, 1), np.float32), n_eig=5)


def test_n_eig_above_the_number_of_nodes_is_capped():
    eigvec, eigval = run_ncut(np.arange(6, dtype=np.float32)[:, None], n_eig=20)
    assert eigvec.shape[0] == 6 and eigvec.shape[1] <= 6 and len(eigval) == eigvec.shape[1]


def test_kway_refuses_more_clusters_than_eigenvectors():
    with pytest.raises(el.UserError, match="eigenvectors"):
        kway_labels(np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32), 5)


def _text(caption):
    tokenizer = clip_tokenizer_from_vocab()
    enc = tokenizer(caption, return_offsets_mapping=True)
    ids = enc.input_ids
    return TextFeatures(caption, np.array(ids), tokenizer.convert_ids_to_tokens(ids),
                        [tuple(o) for o in enc.offset_mapping], np.zeros((len(ids), 2)),
                        np.zeros(2))


def test_whole_words_show_non_latin_words_as_written():
    text = _text("a 猫 sat")
    assert len(text.ids) > 5  # the CJK character splits into byte-level pieces
    words = whole_words(text, 1, len(text.ids) - 1)
    assert [w for w, _ in words] == ["a", "猫", "sat"]
    assert sum(len(pos) for _, pos in words) == len(text.ids) - 2


def test_whole_words_merge_bpe_pieces_of_one_word():
    text = _text("an antidisestablishmentarianism word")
    words = whole_words(text, 1, len(text.ids) - 1)
    assert [w for w, _ in words] == ["an", "antidisestablishmentarianism", "word"]
    assert len(words[1][1]) == 6  # anti dise stab lish ment arianism
    assert len(words[1][1]) > 1


def test_long_captions_are_truncated_with_a_warning(tiny_clip, caplog):
    from engineered_latents.features import encode_texts

    lm = el.load_model(tiny_clip, "cpu")
    feats, _ = encode_texts(lm, ["a short caption", " ".join(["word"] * 300)])
    assert not feats[0].truncated and feats[1].truncated
    assert len(feats[1].ids) == 77
    assert "truncated" in caplog.text


def test_layer_and_patch_norm_options_change_patch_embeddings(tiny_clip):
    from engineered_latents.data import get_dataset
    from engineered_latents.features import EncodeSettings, encode_images

    lm = el.load_model(tiny_clip, "cpu")
    image = get_dataset("demo").load([0])[0].images[0]
    base, _ = encode_images(lm, [image])
    raw, _ = encode_images(lm, [image], EncodeSettings(patch_norm=False))
    early, _ = encode_images(lm, [image], EncodeSettings(layer=1))
    assert base[0].patches.shape == raw[0].patches.shape == early[0].patches.shape == (50, 16)
    assert not np.allclose(base[0].patches, raw[0].patches)
    assert not np.allclose(base[0].patches, early[0].patches)
    np.testing.assert_allclose(np.linalg.norm(base[0].pooled), 1, rtol=1e-5)
    # the default path is post_layernorm -> visual_projection, checked by hand
    import torch

    with torch.no_grad():
        pixels = lm.processor(images=[image], return_tensors="pt")["pixel_values"]
        states = lm.model.vision_model(pixel_values=pixels).last_hidden_state
        expected = lm.model.visual_projection(lm.model.vision_model.post_layernorm(states))
    np.testing.assert_allclose(base[0].patches, expected[0].numpy(), atol=1e-5)


def test_tower_depths_read_the_config_and_default_like_transformers(tiny_clip):
    from transformers import CLIPConfig

    from engineered_latents.models import CLIP_DEPTHS, demo_resolved, resolve_model, tower_depths

    assert tower_depths(resolve_model(tiny_clip)) == (2, 2)
    default = CLIPConfig()
    assert CLIP_DEPTHS == (default.vision_config.num_hidden_layers,
                           default.text_config.num_hidden_layers)
    assert tower_depths(demo_resolved()) == CLIP_DEPTHS
