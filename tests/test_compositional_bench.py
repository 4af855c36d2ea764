"""SugarCrepe and ARO benchmarks through the CLI (in-process) on fixture copies, checked against
accuracies computed here by plain loops from the model's own embeddings."""

import json

import numpy as np
import pytest
from fixtures_data import write_aro_order, write_aro_pairs, write_sugarcrepe
from test_benchmarks import _embeddings_by_hand

from engineered_latents.__main__ import main
from engineered_latents.compositional import choice_summary, macro_accuracy, per_tag
from engineered_latents.data import get_dataset


def _bench(tmp_path, capsys, *args):
    out = tmp_path / "result.json"
    assert main(["bench", *args, "--json", str(out)]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def _by_hand(model, dataset, path, indices):
    """Per item: (scores of its captions, correct strictly highest), from plain loops."""
    examples = get_dataset(dataset, str(path), cache=False).load(indices)
    out = []
    for ex in examples:
        img, txt = _embeddings_by_hand(model, [ex.images[0]], list(ex.captions))
        scores = [float(t @ img[0]) for t in txt]
        out.append((ex, scores, all(scores[0] > s for s in scores[1:])))
    return out


def test_sugarcrepe_accuracy_items_and_show_items(tiny_clip, tmp_path, capsys):
    data = tmp_path / "SugarCrepe_swap_att"
    write_sugarcrepe(data, n=7, mismatch=(3,))
    result, stdout = _bench(tmp_path, capsys, "--benchmark", "sugarcrepe-swap-att", "--model",
                            tiny_clip, "--data-path", str(data), "--batch-size", "3",
                            "--show-items", "2")
    hand = _by_hand(tiny_clip, "sugarcrepe-swap-att", data, [0, 1, 2, 4, 5, 6])
    assert [e["index"] for e in result["examples"]] == [0, 1, 2, 4, 5, 6]  # 3 refused
    for (_, scores, ok), got in zip(hand, result["examples"]):
        np.testing.assert_allclose(got["scores"], scores, atol=1e-5)
        assert got["correct"] == ok and got["tag"] == "swap-att"
        assert got["margin"] == pytest.approx(scores[0] - scores[1], abs=1e-5)
    assert result["metrics"]["accuracy"] == round(100 * np.mean([h[2] for h in hand]), 2)
    assert result["n"] == 6 and result["reference"] == {}  # not the reference model
    assert any(n.get("n_skipped") == 1 for n in result["notes"])
    margins = sorted(scores[0] - scores[1] for _, scores, _ in hand)
    assert "2 items with the smallest margins" in stdout
    assert f"{margins[0]:+.4f}" in stdout and f"{margins[-1]:+.4f}" in stdout


def test_aro_relation_micro_macro_and_cuts_of_its_items(tiny_clip, tmp_path, capsys):
    data = tmp_path / "ARO-Visual-Relation"
    rows = write_aro_pairs(data, n=8)
    result, _ = _bench(tmp_path, capsys, "--benchmark", "aro-vg-relation", "--model",
                       tiny_clip, "--data-path", str(data))
    hand = _by_hand(tiny_clip, "aro-vg-relation", data, range(8))
    correct = np.array([ok for _, _, ok in hand])
    relations = np.array([r["tag"] for r in rows])
    per_relation = {r: correct[relations == r].mean() for r in set(relations)}
    assert result["metrics"]["accuracy"] == round(100 * correct.mean(), 2)
    assert result["metrics"]["macro_accuracy"] == round(
        100 * np.mean(list(per_relation.values())), 2)
    assert {r: v["n"] for r, v in result["by_relation"].items()} == {"on": 4, "behind": 2,
                                                                     "holding": 2}
    assert [e["tag"] for e in result["examples"]] == list(relations)
    assert "macro_accuracy" in result["ci95"]
    out = tmp_path / "cuts"
    assert main(["cuts", "--dataset", "aro-vg-relation", "--data-path", str(data),
                 "--indices", "3", "5", "--model", tiny_clip, "--n-eig", "4", "--clusters", "2",
                 "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_pairs"] == 4  # two items x (true, false caption)


def test_order_sets_need_the_correct_caption_strictly_highest_of_five(tiny_clip, tmp_path,
                                                                   capsys):
    data = tmp_path / "ARO-COCO-order"
    write_aro_order(data, n=5)
    result, _ = _bench(tmp_path, capsys, "--benchmark", "aro-coco-order", "--model", tiny_clip,
                       "--data-path", str(data))
    hand = _by_hand(tiny_clip, "aro-coco-order", data, range(5))
    for (_, scores, ok), got in zip(hand, result["examples"]):
        np.testing.assert_allclose(got["scores"], scores, atol=1e-5)
        assert len(scores) == 5 and got["correct"] == ok
    assert result["metrics"]["accuracy"] == round(100 * np.mean([h[2] for h in hand]), 2)
    assert {"chance": 20.0} in result["notes"]


def test_micro_and_macro_on_a_hand_made_set():
    # relation "on": 3 items, all right; "behind": 1 item, wrong; "near": 2 items, 1 right.
    scores = [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.4, 0.6], [0.5, 0.5], [0.6, 0.1]]
    batch = {"index": list(range(6)), "scores": [np.array(s) for s in scores],
             "tags": ["on", "on", "on", "behind", "near", "near"],
             "tag_kinds": ["relation"] * 6}
    values, hits, examples, extra = choice_summary([batch])
    assert hits["accuracy"].tolist() == [True, True, True, False, False, True]  # a tie is wrong
    assert values["accuracy"] == pytest.approx(100 * 4 / 6)
    assert values["macro_accuracy"] == pytest.approx(100 * (1 + 0 + 0.5) / 3)
    assert extra["by_relation"] == {"on": {"accuracy": 100.0, "n": 3},
                                    "behind": {"accuracy": 0.0, "n": 1},
                                    "near": {"accuracy": 50.0, "n": 2}}
    # normal approximation: sqrt(sum p(1-p)/n) / tags = sqrt(0.25 / 2) / 3
    half = 100 * 1.96 * np.sqrt(0.125) / 3
    _, ci = macro_accuracy(per_tag(hits["accuracy"], batch["tags"]))
    assert ci == [round(100 / 2 - half, 2), round(100 / 2 + half, 2)]


def test_sugarcrepe_suite_with_data_root_prints_one_table(tiny_clip, tmp_path, capsys):
    from engineered_latents.data.sugarcrepe import SUBSETS

    root = tmp_path / "root"
    for k, subset in enumerate(SUBSETS):
        write_sugarcrepe(root / f"SugarCrepe_{subset}", n=3, seed=k)
    result, stdout = _bench(tmp_path, capsys, "--benchmark", "sugarcrepe", "--model", tiny_clip,
                            "--data-root", str(root))
    accuracy = {r["benchmark"]: r["metrics"]["accuracy"] for r in result["results"]}
    assert len(accuracy) == 7
    means = result["means"]
    assert means["sugarcrepe-swap"]["accuracy"] == round(
        (accuracy["sugarcrepe-swap-obj"] + accuracy["sugarcrepe-swap-att"]) / 2, 2)
    assert means["sugarcrepe-overall"]["accuracy"] == round(np.mean(list(accuracy.values())), 2)
    assert set(means) == {"sugarcrepe-replace", "sugarcrepe-swap", "sugarcrepe-add",
                          "sugarcrepe-overall"}
    assert stdout.count("95% CI") == 1  # one table
    assert "sugarcrepe-overall" in stdout and "sugarcrepe-add-obj" in stdout


def test_compositional_suite_runs_everything_from_one_data_root(tiny_clip, tmp_path, capsys):
    from fixtures_data import whatsup_rows, write_whatsup, write_winoground

    from engineered_latents.data.sugarcrepe import SUBSETS

    root = tmp_path / "root"
    write_winoground(root / "winoground", n=4)
    write_whatsup(root / "whatsup_all", {"Controlled_Images_A": whatsup_rows("A", 4),
                                         "Controlled_Images_B": whatsup_rows("B", 4)})
    for k, subset in enumerate(SUBSETS):
        write_sugarcrepe(root / f"SugarCrepe_{subset}", n=2, seed=k)
    write_aro_pairs(root / "ARO-Visual-Relation", n=4)
    write_aro_pairs(root / "ARO-Visual-Attribution", n=4, column=None, bbox=False)
    write_aro_order(root / "ARO-COCO-order", n=3)
    write_aro_order(root / "ARO-Flickr-Order", n=3, seed=1)
    result, stdout = _bench(tmp_path, capsys, "--benchmark", "compositional", "--model",
                            tiny_clip, "--data-root", str(root), "--show-items", "1")
    names = [r["benchmark"] for r in result["results"]]
    assert names == ["winoground", "whatsup-a", "whatsup-b", *[
        f"sugarcrepe-{s.replace('_', '-')}" for s in SUBSETS], "aro-vg-relation",
        "aro-vg-attribution", "aro-coco-order", "aro-flickr-order"]
    assert result["suite"] == "compositional" and "sugarcrepe-overall" in result["means"]
    assert stdout.count("95% CI") == 1
    for name in ("winoground", "whatsup-b", "aro-flickr-order", "sugarcrepe-add"):
        assert name in stdout
    assert "the text margin" in stdout  # Winoground's items
    attribution = result["results"][names.index("aro-vg-attribution")]
    assert "macro_accuracy" not in attribution["metrics"]  # that copy has no attributes
