"""Tests for engineered_latents.metrics: hand-built score matrices and brute-force oracles.

No expected value here is computed by calling the code under test: each is worked out by hand
(see the comments) or by a plain-Python loop written in this file.
"""

import math

import numpy as np
import pytest

from engineered_latents import metrics
from engineered_latents.metrics import (
    bootstrap_ci,
    retrieval_hits,
    retrieval_ranks,
    retrieval_recall,
    topk_accuracy,
    topk_hits,
    whatsup_accuracy,
    whatsup_correct,
    whatsup_group_accuracy,
    whatsup_group_hits,
    winoground_by_tag,
    winoground_hits,
    winoground_scores,
    zero_shot_classifier,
)

# --------------------------------------------------------------------------- Winoground

# s[c][i] = s(caption c, image i)
WINO_BOTH = [[1.0, 0.0], [0.0, 1.0]]  # each image prefers its caption and vice versa
WINO_TEXT_ONLY = [[0.5, 0.6], [0.1, 0.9]]  # images: .5>.1, .9>.6 ok; caption 0: .5>.6 fails
WINO_IMAGE_ONLY = [[0.5, 0.1], [0.6, 0.9]]  # captions: .5>.1, .9>.6 ok; image 0: .5>.6 fails
WINO_NEITHER = [[0.0, 1.0], [1.0, 0.0]]
WINO_IMAGE_TIE = [[1.0, 1.0], [0.0, 2.0]]  # text ok (1>0, 2>1); caption 0 ties 1 = 1: image wrong
WINO_ALL_EQUAL = [[0.3, 0.3], [0.3, 0.3]]


@pytest.mark.parametrize(
    "example, text, image",
    [
        (WINO_BOTH, True, True),
        (WINO_TEXT_ONLY, True, False),
        (WINO_IMAGE_ONLY, False, True),
        (WINO_NEITHER, False, False),
        (WINO_IMAGE_TIE, True, False),
        (WINO_ALL_EQUAL, False, False),
    ],
)
def test_winoground_four_outcomes_and_ties(example, text, image):
    hits = winoground_hits(np.array([example]))
    assert hits["text"].tolist() == [text]
    assert hits["image"].tolist() == [image]
    assert hits["group"].tolist() == [text and image]
    assert hits["text"].dtype == bool


def test_winoground_scores_percent():
    s = np.array([WINO_BOTH, WINO_TEXT_ONLY, WINO_IMAGE_ONLY, WINO_NEITHER], dtype=np.float32)
    # text: both, text-only -> 2/4; image: both, image-only -> 2/4; group: both -> 1/4
    assert winoground_scores(s) == {"text": 50.0, "image": 50.0, "group": 25.0}


def test_winoground_by_tag():
    s = np.array([WINO_BOTH, WINO_TEXT_ONLY, WINO_IMAGE_ONLY, WINO_NEITHER, WINO_BOTH])
    tags = ["Object", "Relation", "Relation", "Both", "Relation"]
    out = winoground_by_tag(s, tags)
    assert list(out) == ["Both", "Object", "Relation"]
    assert out["Object"] == {"text": 100.0, "image": 100.0, "group": 100.0, "n": 1}
    assert out["Both"] == {"text": 0.0, "image": 0.0, "group": 0.0, "n": 1}
    # Relation: text-only, image-only, both -> text 2/3, image 2/3, group 1/3
    rel = out["Relation"]
    assert rel["n"] == 3
    assert rel["text"] == pytest.approx(200 / 3)
    assert rel["image"] == pytest.approx(200 / 3)
    assert rel["group"] == pytest.approx(100 / 3)


def test_winoground_rejects_bad_input():
    with pytest.raises(ValueError):
        winoground_hits(np.zeros((3, 2, 3)))
    with pytest.raises(ValueError):
        winoground_hits(np.array([[[np.nan, 0.0], [0.0, 1.0]]]))
    with pytest.raises(ValueError):
        winoground_by_tag(np.array([WINO_BOTH]), ["a", "b"])


# --------------------------------------------------------------------------- What'sUp


def test_whatsup_option_order_and_ties():
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # correct (option 0) highest -> right
        [0.5, 0.5, 0.1, 0.1],  # tie at the top -> wrong
        [0.1, 0.9, 0.2, 0.3],  # a wrong option highest -> wrong
        [0.4, 0.1, 0.39, 0.2],  # right
    ])
    assert whatsup_correct(scores).tolist() == [True, False, False, True]
    assert whatsup_accuracy(scores) == 50.0


def test_whatsup_ragged_options():
    items = [np.array([0.3, 0.2]), np.array([0.1, 0.2, 0.3, 0.05]), [0.7, 0.7]]
    assert whatsup_correct(items).tolist() == [True, False, False]
    assert whatsup_accuracy(items) == pytest.approx(100 / 3)
    with pytest.raises(ValueError):
        whatsup_correct([np.array([1.0])])


def test_whatsup_group_accuracy():
    correct = [True, True, True, False, False, False]
    pairs = ["a", "a", "b", "b", "c", "c"]  # a: all right; b: one wrong; c: all wrong
    assert whatsup_group_hits(correct, pairs).tolist() == [True, False, False]
    assert whatsup_group_accuracy(correct, pairs) == pytest.approx(100 / 3)
    sets = [("mug", "plate")] * 4 + [("cup", "box")] * 4
    correct8 = [True] * 4 + [True, True, True, False]
    # groups sorted by str: ('cup', 'box') < ('mug', 'plate')
    assert whatsup_group_hits(correct8, sets, expected_size=4).tolist() == [False, True]
    assert whatsup_group_accuracy(correct8, sets) == 50.0
    assert whatsup_group_accuracy(correct8, np.repeat([0, 1], 4)) == 50.0
    with pytest.raises(ValueError):
        whatsup_group_accuracy(correct, pairs, expected_size=4)
    with pytest.raises(ValueError):
        whatsup_group_accuracy(correct, pairs[:-1])


# --------------------------------------------------------------------------- retrieval

# 6 captions x 3 images, 2 captions per image; rows are captions.
C2I = [0, 0, 1, 1, 2, 2]
S6 = np.array([
    [0.10, 0.80, 0.00],  # c0 -> img0 (0.10); 0.80 ahead -> t2i rank 2
    [0.90, 0.40, 0.10],  # c1 -> img0 (0.90) -> rank 1
    [0.50, 0.40, 0.20],  # c2 -> img1 (0.40); 0.50 ahead -> rank 2
    [0.20, 0.30, 0.65],  # c3 -> img1 (0.30); 0.65 ahead -> rank 2
    [0.30, 0.10, 0.70],  # c4 -> img2 (0.70) -> rank 1
    [0.05, 0.20, 0.60],  # c5 -> img2 (0.60) -> rank 1
], dtype=np.float32)
# i2t, by column:
#  img0: own c0 .10, c1 .90 -> best .90, no wrong caption >= .90 -> rank 1
#  img1: own c2 .40, c3 .30 -> best .40; wrong c0 .80 and c1 .40 (tie) are >= -> rank 3
#  img2: own c4 .70, c5 .60 -> best .70; wrong c3 .65 < .70 -> rank 1
T2I_RANKS = [2, 1, 2, 2, 1, 1]
I2T_RANKS = [1, 3, 1]


def test_retrieval_hand_built_ranks_and_recall():
    t2i, i2t = retrieval_ranks(S6, C2I)
    assert t2i.tolist() == T2I_RANKS
    assert i2t.tolist() == I2T_RANKS
    r = retrieval_recall(S6, C2I, ks=(1, 2, 3), include_ranks=True)
    assert r["t2i_r1"] == 50.0  # 3 of 6 captions
    assert r["t2i_r2"] == 100.0
    assert r["i2t_r1"] == pytest.approx(200 / 3)  # img0, img2
    assert r["i2t_r2"] == pytest.approx(200 / 3)  # img1 is at rank 3 (tie counts against)
    assert r["i2t_r3"] == 100.0
    assert r["t2i_median_rank"] == 1.5 and r["t2i_mean_rank"] == pytest.approx(9 / 6)
    assert r["i2t_median_rank"] == 1.0 and r["i2t_mean_rank"] == pytest.approx(5 / 3)
    default = retrieval_recall(S6, C2I)
    assert list(default) == ["t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10"]
    hits = retrieval_hits(S6, C2I, ks=(1,))
    assert hits["t2i_r1"].tolist() == [False, True, False, False, True, True]
    assert hits["i2t_r1"].tolist() == [True, False, True]


def test_first_caption_shortcut_differs_from_full_protocol():
    # The shortcut keeps only the first caption of each image (c0, c2, c4) and scores the
    # 3 x 3 diagonal problem. Written out here as a plain loop, not the code under test.
    first = [0, 2, 4]
    sub = S6[first]  # [3 captions, 3 images], caption k belongs to image k
    shortcut_hits = []
    for img in range(3):
        col = [float(sub[c, img]) for c in range(3)]
        ahead = sum(1 for c in range(3) if c != img and col[c] >= col[img])
        shortcut_hits.append(ahead == 0)
    shortcut_r1 = 100 * sum(shortcut_hits) / 3
    assert shortcut_hits == [False, False, True]  # img0's first caption (0.10) loses to c2, c4
    full = retrieval_recall(S6, C2I, ks=(1,))["i2t_r1"]
    assert full == pytest.approx(200 / 3)  # img0 is found through its second caption
    assert full != pytest.approx(shortcut_r1)


def test_retrieval_ties():
    # t2i: caption 0's image (0) ties with image 1 at the top -> miss at 1, hit at 2
    s = np.array([[0.5, 0.5, 0.1], [0.2, 0.9, 0.1], [0.0, 0.0, 1.0]])
    t2i, i2t = retrieval_ranks(s, [0, 1, 2])
    assert t2i.tolist() == [2, 1, 1]
    hits = retrieval_hits(s, [0, 1, 2], ks=(1, 2))
    assert hits["t2i_r1"].tolist() == [False, True, True]
    assert hits["t2i_r2"].tolist() == [True, True, True]
    # i2t, img0 column [0.5, 0.2, 0.0]: rank 1; img1 column [0.5, 0.9, 0.0]: rank 1;
    # img2 column [0.1, 0.1, 1.0]: rank 1
    assert i2t.tolist() == [1, 1, 1]
    # i2t: a WRONG caption tied with the best correct caption -> miss at 1
    s2 = np.array([[0.7, 0.0], [0.7, 0.1]])  # caption 0 -> img0, caption 1 -> img1
    assert retrieval_ranks(s2, [0, 1])[1].tolist() == [2, 1]
    # i2t: two CORRECT captions tied at the top -> still a hit at 1
    s3 = np.array([[0.7, 0.0], [0.7, 0.1], [0.2, 0.5]])  # c0, c1 -> img0; c2 -> img1
    assert retrieval_ranks(s3, [0, 0, 1])[1].tolist() == [1, 1]
    # all scores equal: every query misses at 1, and is at the last possible rank
    t2i, i2t = retrieval_ranks(np.ones((4, 2)), [0, 0, 1, 1])
    assert t2i.tolist() == [2, 2, 2, 2]
    assert i2t.tolist() == [3, 3]  # 2 wrong captions ahead of the (tied) correct ones


@pytest.mark.parametrize("rank", [1, 2, 5, 6, 10, 11, 16])
def test_i2t_correct_caption_at_various_ranks(rank):
    # 4 images x 5 captions. For image 0, put its best caption below exactly rank-1 wrong
    # captions; its other captions score lowest of all.
    n_images, per = 4, 5
    c2i = np.repeat(np.arange(n_images), per)  # captions 0..4 belong to image 0
    s = np.zeros((n_images * per, n_images))
    wrong = np.arange(per, n_images * per)  # 15 wrong captions for image 0
    s[wrong, 0] = np.linspace(0.9, 0.2, len(wrong))  # distinct, descending
    s[1:per, 0] = -1.0
    ahead_value = s[wrong[rank - 2], 0] if rank > 1 else 1.0
    s[0, 0] = ahead_value - 0.01  # best own caption, just below the (rank-1)th wrong one
    _, i2t = retrieval_ranks(s, c2i)
    assert i2t[0] == rank
    hits = retrieval_hits(s, c2i)
    for k in (1, 5, 10):
        assert hits[f"i2t_r{k}"][0] == (rank <= k)
    # moving the best caption to another slot among the image's captions changes nothing
    perm = np.r_[per - 1, np.arange(1, per - 1), 0, np.arange(per, n_images * per)]
    assert retrieval_ranks(s[perm], c2i)[1][0] == rank


def _brute_retrieval(s, c2i, ks):
    """Reference: sort candidates by score, ties put WRONG candidates first, find first correct."""
    n_captions, n_images = len(s), len(s[0])
    t2i = {k: [] for k in ks}
    for c in range(n_captions):
        order = sorted(range(n_images), key=lambda j: (-s[c][j], j == c2i[c]))
        pos = order.index(c2i[c]) + 1
        for k in ks:
            t2i[k].append(pos <= k)
    i2t = {k: [] for k in ks}
    for img in range(n_images):
        own = [c for c in range(n_captions) if c2i[c] == img]
        if not own:
            continue
        order = sorted(range(n_captions), key=lambda c: (-s[c][img], c2i[c] == img))
        pos = min(order.index(c) for c in own) + 1
        for k in ks:
            i2t[k].append(pos <= k)
    out = {}
    for k in ks:
        out[f"t2i_r{k}"] = 100 * sum(t2i[k]) / len(t2i[k])
    for k in ks:
        out[f"i2t_r{k}"] = 100 * sum(i2t[k]) / len(i2t[k])
    return out, t2i, i2t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("quantized", [False, True])
def test_retrieval_matches_brute_force(seed, quantized, monkeypatch):
    rng = np.random.default_rng(seed)
    n_images = 13
    c2i = np.r_[np.arange(n_images - 1), rng.integers(0, n_images - 1, 25)]  # last: no caption
    rng.shuffle(c2i)
    s = rng.standard_normal((len(c2i), n_images)).astype(np.float32)
    if quantized:  # many ties
        s = np.round(s * 2) / 2
    ks = (1, 2, 5, 10)
    expected, t2i_ref, i2t_ref = _brute_retrieval(s.tolist(), c2i.tolist(), ks)
    got = retrieval_recall(s, c2i, ks=ks)
    assert got.keys() == expected.keys()
    for name in expected:
        assert got[name] == pytest.approx(expected[name]), name
    hits = retrieval_hits(s, c2i, ks=ks)
    for k in ks:
        assert hits[f"t2i_r{k}"].tolist() == t2i_ref[k]
        assert hits[f"i2t_r{k}"].tolist() == i2t_ref[k]
    # tiny chunks: several row blocks, same answer
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 3 * n_images)
    assert retrieval_recall(s, c2i, ks=ks) == got


def test_retrieval_rejects_bad_input():
    with pytest.raises(ValueError):
        retrieval_ranks(np.zeros((3, 2)), [0, 1])  # wrong length
    with pytest.raises(ValueError):
        retrieval_ranks(np.zeros((2, 2)), [0, 2])  # out of range
    with pytest.raises(ValueError):
        retrieval_ranks(np.array([[0.0, np.inf], [0.0, 1.0]]), [0, 1])


def test_retrieval_accepts_torch():
    torch = pytest.importorskip("torch")
    t2i, i2t = retrieval_ranks(torch.tensor(S6), torch.tensor(C2I))
    assert t2i.tolist() == T2I_RANKS and i2t.tolist() == I2T_RANKS


# --------------------------------------------------------------------------- ImageNet


def test_topk_known_logits():
    logits = np.array([
        [0.1, 0.5, 0.3, 0.2, 0.0, 0.4, -0.1],  # label 1: highest -> top1, top5
        [0.1, 0.5, 0.3, 0.2, 0.0, 0.4, -0.1],  # label 2: 0.5, 0.4 ahead -> rank 3: top5 only
        [0.1, 0.5, 0.3, 0.2, 0.0, 0.4, -0.1],  # label 4: 5 ahead -> rank 6: neither
        [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # label 0 tied with class 1 -> rank 2: top5 only
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # label 3, all tied -> rank 7: neither
    ], dtype=np.float32)
    labels = [1, 2, 4, 0, 3]
    hits = topk_hits(logits, labels)
    assert hits["top1"].tolist() == [True, False, False, False, False]
    assert hits["top5"].tolist() == [True, True, False, True, False]
    assert topk_accuracy(logits, labels) == {"top1": 20.0, "top5": 60.0}
    assert topk_accuracy(logits, labels, ks=(2, 7)) == {"top2": 40.0, "top7": 100.0}


@pytest.mark.parametrize("seed", [0, 1])
def test_topk_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    logits = np.round(rng.standard_normal((40, 12)), 1)  # ties likely
    labels = rng.integers(0, 12, 40)
    for k in (1, 3, 5):
        ref = []
        for row, y in zip(logits.tolist(), labels.tolist()):
            order = sorted(range(12), key=lambda j, row=row, y=y: (-row[j], j == y))
            ref.append(y in order[:k])
        assert topk_hits(logits, labels, ks=(k,))[f"top{k}"].tolist() == ref
        assert topk_accuracy(logits, labels, ks=(k,))[f"top{k}"] == pytest.approx(
            100 * sum(ref) / len(ref))


def test_zero_shot_classifier_hand_made():
    emb = np.array([
        [[3.0, 0.0, 0.0], [0.0, 4.0, 0.0]],  # -> [1,0,0], [0,1,0] -> mean [.5,.5,0]
        [[0.0, 0.0, 2.0], [0.0, 0.0, 5.0]],  # -> [0,0,1] twice
    ])
    w = zero_shot_classifier(emb)
    assert w.shape == (2, 3) and w.dtype == np.float32
    r = 1 / math.sqrt(2)
    np.testing.assert_allclose(w, [[r, r, 0.0], [0.0, 0.0, 1.0]], atol=1e-7)
    # not the normalized raw mean [1.5, 2, 0] / 2.5 = [.6, .8, 0]
    assert not np.allclose(w[0], [0.6, 0.8, 0.0], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1.0, atol=1e-6)
    with pytest.raises(ValueError):
        zero_shot_classifier(np.zeros((1, 2, 3)))


def test_zero_shot_classifier_random_against_loop():
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((4, 5, 8))
    w = zero_shot_classifier(emb)
    for c in range(4):
        acc = [0.0] * 8
        for t in range(5):
            v = emb[c, t].tolist()
            norm = math.sqrt(sum(x * x for x in v))
            acc = [a + x / norm / 5 for a, x in zip(acc, v)]
        norm = math.sqrt(sum(a * a for a in acc))
        np.testing.assert_allclose(w[c], [a / norm for a in acc], atol=1e-6)


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_contains_estimate_and_is_deterministic():
    hits = np.random.default_rng(0).random(400) < 0.3
    point = 100 * hits.mean()
    lo, hi = bootstrap_ci(hits)
    assert lo < point < hi
    assert bootstrap_ci(hits) == (lo, hi)
    assert bootstrap_ci(hits, seed=1) != (lo, hi)
    assert bootstrap_ci(hits.astype(float)) == (lo, hi)  # bool and 0/1 floats agree
    # width close to the normal approximation 2 * 1.96 * sqrt(p(1-p)/n), in percent
    p = hits.mean()
    normal_width = 100 * 2 * 1.96 * math.sqrt(p * (1 - p) / len(hits))
    assert hi - lo == pytest.approx(normal_width, rel=0.2)


def test_bootstrap_narrows_with_n():
    rng = np.random.default_rng(1)
    small = rng.random(50) < 0.5
    large = rng.random(5000) < 0.5
    w_small = np.subtract(*bootstrap_ci(small)[::-1])
    w_large = np.subtract(*bootstrap_ci(large)[::-1])
    assert w_large < w_small / 5  # sqrt(100) = 10x narrower in theory


def test_bootstrap_edge_cases():
    lo, hi = bootstrap_ci([])
    assert math.isnan(lo) and math.isnan(hi)
    assert bootstrap_ci([True]) == (100.0, 100.0)
    assert bootstrap_ci([False]) == (0.0, 0.0)
    assert bootstrap_ci(np.ones(30, dtype=bool)) == (100.0, 100.0)
    assert bootstrap_ci([2.0, 4.0], scale=1.0)[0] >= 2.0
    with pytest.raises(ValueError):
        bootstrap_ci([0.0, float("nan")])


def test_bootstrap_chunking_is_deterministic(monkeypatch):
    hits = np.random.default_rng(2).random(300) < 0.6
    point = 100 * hits.mean()
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 7 * 300)  # 7 resamples per chunk
    first = bootstrap_ci(hits, n_resamples=200)
    assert bootstrap_ci(hits, n_resamples=200) == first
    lo, hi = first
    assert lo < point < hi
