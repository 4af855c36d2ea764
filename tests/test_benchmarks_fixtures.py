"""Benchmarks end to end on fixture datasets in the real on-disk formats, through the CLI,
checked against metrics computed here by plain loops from the model's own embeddings."""

import contextlib
import io
import json

import numpy as np
import pytest
from fixtures_data import (
    imagenet_samples,
    retrieval_samples,
    whatsup_rows,
    write_tars,
    write_whatsup,
    write_winoground,
)
from test_benchmarks import _embeddings_by_hand

from engineered_latents.__main__ import main
from engineered_latents.data import get_dataset


def _bench(tmp_path, *args):
    """`bench ARGS --json` through the CLI's main, in this process (the autouse fixture points
    EL_CACHE_DIR at tmp_path); (result, stdout)."""
    out = tmp_path / "result.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["bench", *map(str, args), "--json", str(out)])
    assert status == 0, printed.getvalue()
    return json.loads(out.read_text()), printed.getvalue()


def test_winoground_fixture_through_the_cli(tiny_clip, tmp_path):
    data = tmp_path / "winoground"
    rows = write_winoground(data, n=6)
    result, stdout = _bench(tmp_path, "--benchmark", "winoground", "--model", tiny_clip,
                            "--data-path", str(data), "--batch-size", "4")
    examples = get_dataset("winoground", str(data), cache=False).load(range(6))
    img, txt = _embeddings_by_hand(tiny_clip, [im for ex in examples for im in ex.images],
                                   [c for ex in examples for c in ex.captions])
    for e, got in enumerate(result["examples"]):
        s = [[float(txt[2 * e + c] @ img[2 * e + i]) for i in range(2)] for c in range(2)]
        np.testing.assert_allclose(got["scores"], s, atol=1e-5)
    tags = {r["collapsed_tag"] for r in rows}
    assert set(result["by_tag"]) == tags
    assert sum(v["n"] for v in result["by_tag"].values()) == 6
    assert "text" in stdout and result["n"] == 6


def test_whatsup_fixture_accuracy_is_option_zero_strictly_highest(tiny_clip, tmp_path):
    data = tmp_path / "whatsup_all"
    write_whatsup(data, {"Controlled_Images_A": whatsup_rows("A", 8),
                         "Controlled_Images_B": whatsup_rows("B", 4)})
    result, _ = _bench(tmp_path, "--benchmark", "whatsup-a", "--model", tiny_clip,
                       "--data-path", str(data))
    examples = get_dataset("whatsup-a", str(data), cache=False).load(range(8))
    correct = 0
    for ex, got in zip(examples, result["examples"]):
        img, txt = _embeddings_by_hand(tiny_clip, [ex.images[0]], list(ex.captions))
        scores = [float(t @ img[0]) for t in txt]
        np.testing.assert_allclose(got["scores"], scores, atol=1e-5)
        ok = all(scores[0] > s for s in scores[1:])
        assert got["correct"] == ok
        correct += ok
    assert result["metrics"]["accuracy"] == round(100 * correct / 8, 2)
    assert "grouping" in result


def test_coco_fixture_retrieval_over_all_captions(tiny_clip, tmp_path):
    data = tmp_path / "wds_mscoco_captions"
    write_tars(data, retrieval_samples(12), per_shard=5)
    result, _ = _bench(tmp_path, "--benchmark", "coco", "--model", tiny_clip, "--data-path",
                       str(data), "--batch-size", "5")
    examples = get_dataset("coco", str(data), cache=False, all_captions=True).load(range(12))
    captions = [c for ex in examples for c in ex.captions]
    owner = [i for i, ex in enumerate(examples) for _ in ex.captions]
    img, txt = _embeddings_by_hand(tiny_clip, [ex.images[0] for ex in examples], captions)
    s = txt @ img.T
    for k in (1, 5, 10):
        t2i = np.mean([sum(s[c, j] >= s[c, owner[c]] for j in range(12) if j != owner[c]) < k
                       for c in range(len(captions))])
        i2t = np.mean([min(sum(s[x, i] >= s[c, i] for x in range(len(captions))
                               if owner[x] != i) for c in range(len(captions)) if owner[c] == i)
                       < k for i in range(12)])
        assert result["metrics"][f"t2i_r{k}"] == pytest.approx(100 * t2i, abs=0.01)
        assert result["metrics"][f"i2t_r{k}"] == pytest.approx(100 * i2t, abs=0.01)
    assert result["n"] == 12 and result["captions"] == len(captions)


def test_imagenet_fixture_zero_shot_with_openai_templates(tiny_clip, tmp_path, monkeypatch):
    """The 80k template texts are encoded once, by the code; a spy keeps what it encoded. The
    oracle checks the texts are every template of every class name, checks a random sample of
    their embeddings against transformers directly, then builds the classifier (normalize,
    average over templates, re-normalize) and the top-1/top-5 by hand from them."""
    from engineered_latents import benchmarks
    from engineered_latents.data.imagenet import imagenet_classnames, imagenet_templates

    encoded = []
    real = benchmarks.pooled_text_embeddings

    def spy(lm, texts):
        out = real(lm, texts)
        encoded.append((list(texts), out))
        return out

    monkeypatch.setattr(benchmarks, "pooled_text_embeddings", spy)
    data = tmp_path / "wds_imagenet1k"
    labels = [0, 1, 2, 3, 417, 999]
    write_tars(data, imagenet_samples(labels), per_shard=4)
    result, _ = _bench(tmp_path, "--benchmark", "imagenet", "--model", tiny_clip, "--data-path",
                       str(data))
    names, templates = imagenet_classnames(), imagenet_templates()
    texts = [t for chunk, _ in encoded for t in chunk]
    assert texts == [t.format(c) for c in names for t in templates]  # 1000 x 80, in order
    txt = np.concatenate([np.asarray(e, dtype=np.float64) for _, e in encoded])
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    sample = np.random.default_rng(0).choice(len(texts), 48, replace=False)
    _, by_hand = _embeddings_by_hand(tiny_clip, [], [texts[i] for i in sample])
    np.testing.assert_allclose(txt[sample], by_hand, atol=1e-5)

    examples = get_dataset("imagenet", str(data), cache=False).load(range(6))
    weights = txt.reshape(1000, len(templates), -1).mean(1)
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    img, _ = _embeddings_by_hand(tiny_clip, [ex.images[0] for ex in examples], ["x"])
    logits = img @ weights.T
    top1 = np.mean([sum(logits[e] >= logits[e, y]) - 1 < 1 for e, y in enumerate(labels)])
    top5 = np.mean([sum(logits[e] >= logits[e, y]) - 1 < 5 for e, y in enumerate(labels)])
    assert result["metrics"]["top1"] == pytest.approx(100 * top1, abs=0.01)
    assert result["metrics"]["top5"] == pytest.approx(100 * top5, abs=0.01)
