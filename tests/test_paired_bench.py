"""Paired benchmark comparison: per-item outcomes on every result, `bench --compare` in-process."""

import dataclasses
import json

import numpy as np
import pytest
from fixtures_data import A_PREPOSITIONS, retrieval_samples, whatsup_rows, write_tars, write_whatsup

import engineered_latents as el
from engineered_latents import bench_compare, history
from engineered_latents.__main__ import main
from engineered_latents.benchmarks import run_benchmark


def _final(*args, **kwargs):
    return list(run_benchmark(*args, **kwargs))[-1]


def test_winoground_results_keep_per_item_hits_with_dataset_indices(tiny_clip, tmp_path):
    result = _final("demo", el.ModelSpec(tiny_clip, dtype="float32"), cache=el.Cache(tmp_path),
                    batch_size=10)
    assert set(result.hits) == {"text", "image", "group"}
    for name in result.hits:
        assert result.item_ids[name] == list(range(24))
        assert result.hits[name].tolist() == [ex[name] for ex in result.to_json()["examples"]]
        assert result.metrics[name] == round(100 * result.hits[name].mean(), 2)
    assert "item_ids" not in result.to_json()  # ids are not leaked into the single-model JSON


def test_retrieval_hits_are_per_query_with_image_and_caption_ids(tiny_clip, tmp_path):
    data = tmp_path / "wds_mscoco_captions"
    write_tars(data, retrieval_samples(6), per_shard=4)
    result = _final("coco", el.ModelSpec(tiny_clip, dtype="float32"), data_path=str(data),
                    cache=el.Cache(tmp_path / "c"))
    counts = [3 + i % 3 for i in range(6)]  # captions per image in the fixture
    assert result.item_ids["t2i_r1"] == [[i, j] for i in range(6) for j in range(counts[i])]
    assert result.item_ids["i2t_r5"] == list(range(6))
    assert len(result.hits["t2i_r1"]) == sum(counts) and len(result.hits["i2t_r1"]) == 6


def _grouped_rows():
    """Two object pairs x four images; each image's correct relation first, options shared."""
    rows = []
    for (a, b), seed in ((("mug", "plate"), 0), (("dog", "chair"), 1)):
        options = [f"A {a} {p} a {b}" for p in A_PREPOSITIONS]
        for k, row in enumerate(whatsup_rows("A", 4, seed=seed)):
            rows.append({**row, "captions": [options[k]] + options[:k] + options[k + 1:]})
    return [rows[i] for i in (0, 4, 1, 5, 2, 6, 3, 7)]  # interleaved: groups are not runs


def test_whatsup_group_metrics_are_identified_by_their_members(tiny_clip, tmp_path):
    data = tmp_path / "whatsup_all"
    write_whatsup(data, {"Controlled_Images_A": _grouped_rows(),
                         "Controlled_Images_B": whatsup_rows("B", 4)})
    result = _final("whatsup-a", el.ModelSpec(tiny_clip, dtype="float32"), data_path=str(data),
                    cache=el.Cache(tmp_path / "c"))
    assert result.item_ids["accuracy"] == list(range(8))
    assert sorted(result.item_ids["set_accuracy"]) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert sorted(result.item_ids["pair_accuracy"]) == [[0, 2], [1, 3], [4, 6], [5, 7]]
    ok = result.hits["accuracy"]
    for name in ("set_accuracy", "pair_accuracy"):
        members = result.item_ids[name]
        assert result.hits[name].tolist() == [bool(ok[g].all()) for g in members]


def _bench(tmp_path, *args):
    out = tmp_path / "paired.json"
    code = main(["bench", "--benchmark", "demo", "--cache-dir", str(tmp_path / "cache"),
                 "--json", str(out), *args])
    return code, (json.loads(out.read_text()) if out.exists() else None)


def test_bench_compare_pairs_two_models_on_the_same_items(tiny_clip, tiny_clip_small_grid,
                                                          tmp_path, capsys):
    code, result = _bench(tmp_path, "--model", tiny_clip, "--compare", tiny_clip_small_grid)
    assert code == 0
    out = capsys.readouterr().out
    a, b = result["models"][tiny_clip], result["models"][tiny_clip_small_grid]
    assert a["n"] == b["n"] == 24 and set(a) >= {"metrics", "ci95", "examples"}
    assert set(result["paired"]) == {"text", "image", "group"}
    for metric, s in result["paired"].items():
        ra = np.array([e[metric] for e in a["examples"]])
        rb = np.array([e[metric] for e in b["examples"]])
        assert s["difference"] == pytest.approx(100 * (rb.mean() - ra.mean()), abs=0.01)
        assert s["a_only"] == [i for i in range(24) if ra[i] and not rb[i]]
        assert s["b_only"] == [i for i in range(24) if rb[i] and not ra[i]]
        assert s["n_discordant"] == int((ra != rb).sum())
        lo, hi = s["ci95"]
        assert lo <= s["difference"] <= hi and 0 < s["p_value"] <= 1
    assert "paired demo" in out and "B - A" in out and "p McNemar" in out
    runs = history.read(str(tmp_path / "cache"))
    assert runs[-1]["kind"] == "bench-compare" and runs[-1]["compare"] == [tiny_clip_small_grid]
    assert set(runs[-1]["paired"][tiny_clip_small_grid]) == {"text", "image", "group"}
    main(["history", "--cache-dir", str(tmp_path / "cache")])
    assert "paired vs" in capsys.readouterr().out


def test_a_model_against_itself_and_several_compared_models(tiny_clip, tiny_clip_small_grid,
                                                            tmp_path):
    code, result = _bench(tmp_path, "--model", tiny_clip, "--compare", tiny_clip,
                          tiny_clip_small_grid)
    assert code == 0
    same = f"{tiny_clip} (2)"
    assert set(result["models"]) == {tiny_clip, same, tiny_clip_small_grid}
    assert set(result["paired"]) == {same, tiny_clip_small_grid}  # keyed by compared model
    for s in result["paired"][same].values():
        assert s["difference"] == 0 and s["p_value"] == 1 and s["n_discordant"] == 0
        assert s["a_only"] == s["b_only"] == [] and s["ci95"] == [0, 0]
    assert any("zero by construction" in n for n in result["notes"])


def test_swapping_model_and_compared_negates_the_differences(tiny_clip, tiny_clip_small_grid,
                                                             tmp_path):
    _, ab = _bench(tmp_path, "--model", tiny_clip, "--compare", tiny_clip_small_grid)
    _, ba = _bench(tmp_path, "--model", tiny_clip_small_grid, "--compare", tiny_clip)
    for m in ab["paired"]:
        assert ab["paired"][m]["difference"] == -ba["paired"][m]["difference"]
        assert ab["paired"][m]["a_only"] == ba["paired"][m]["b_only"]
        assert ab["paired"][m]["b_only"] == ba["paired"][m]["a_only"]


def test_results_on_different_items_are_refused(tiny_clip, tiny_clip_small_grid, tmp_path):
    cache = el.Cache(tmp_path)
    a = _final("demo", el.ModelSpec(tiny_clip, dtype="float32"), limit=10, cache=cache)
    b = _final("demo", el.ModelSpec(tiny_clip_small_grid, dtype="float32"), limit=12,
               cache=cache)
    with pytest.raises(el.UserError, match="different items"):
        bench_compare.pair_results(a, [b])
    shifted = dataclasses.replace(a, item_ids={k: [i + 1 for i in v]
                                               for k, v in a.item_ids.items()})
    with pytest.raises(el.UserError, match="not paired"):
        bench_compare.pair_results(a, [shifted])


def test_a_compared_model_that_cannot_load_is_named(tiny_clip, tmp_path, capsys):
    code, _ = _bench(tmp_path, "--model", tiny_clip, "--compare", str(tmp_path / "nope"))
    assert code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "--compare model" in errors[0] and "nope" in errors[0]


def test_a_multiple_choice_benchmark_pairs_by_dataset_index(tiny_clip, tiny_clip_small_grid,
                                                            tmp_path):
    from fixtures_data import write_sugarcrepe

    from engineered_latents.data.sugarcrepe import SUBSETS, dataset_name, repo_id

    name = dataset_name(SUBSETS[0])
    root = tmp_path / "data"
    write_sugarcrepe(root / repo_id(SUBSETS[0]).split("/")[1], n=6)
    code, result = _bench(tmp_path, "--model", tiny_clip, "--compare", tiny_clip_small_grid,
                          "--benchmark", name, "--data-root", str(root))
    assert code == 0 and result["benchmark"] == name
    a, b = (result["models"][m]["examples"] for m in (tiny_clip, tiny_clip_small_grid))
    s = result["paired"]["accuracy"]
    assert s["a_only"] == [x["index"] for x, y in zip(a, b) if x["correct"] and not y["correct"]]
    assert s["b_only"] == [y["index"] for x, y in zip(a, b) if y["correct"] and not x["correct"]]
