"""The performance command runs at its smallest size and writes its JSON (a benchmark, not a
test of speed: nothing here asserts wall-clock time)."""

import json

import pytest

from engineered_latents.perf import synthetic_examples


def test_synthetic_examples_are_winoground_shaped():
    examples = synthetic_examples(8)
    assert len(examples) == 4
    for ex in examples:
        assert len(ex.images) == 2 and len(ex.captions) == 2
        assert sorted(ex.captions[0].split()) == sorted(ex.captions[1].split())


@pytest.mark.slow
def test_perf_command_completes_and_writes_json(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from engineered_latents.__main__ import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "perf.json"
    status = main(["perf", "--pairs", "2", "--repeats", "1", "--json", str(out)])
    printed = capsys.readouterr()
    run = SimpleNamespace(stdout=printed.out, stderr=printed.err)
    assert status == 0, run.stderr
    report = json.loads(out.read_text())
    size = report["sizes"][0]
    assert size["pairs"] == 2
    for key in ["scalar_over_floor", "joint_over_floor", "speedup_over_original", "cache_hit_s"]:
        assert size[key] > 0
    assert report["machine"]["device"] == "cpu" and report["peak_rss_mb"] > 0
    assert set(report["peak_gflops"]) >= {"float32", "bfloat16"}
    dtypes = size["dtypes"]["dtypes"]
    assert set(dtypes) == {"float32", "bfloat16"}
    bf16 = dtypes["bfloat16"]
    assert len(bf16["word_score_corr"]) == 5 and min(bf16["word_score_corr"]) >= 0.9
    assert all(v > 0 for v in bf16["speedup"].values())
    assert 0 < bf16["rates"]["vision_of_peak"] and len(bf16["eigval"]["eigval_diff"]) == 5
    assert "bfloat16 vs float32" in run.stdout and "matmul peak" in run.stdout
    assert "speed-up" in run.stdout
    recursive = report["recursive"]  # a 3-level recursive cut per mode
    assert recursive["pairs"] == 2 and set(recursive["modes"]) == {"scalar", "joint"}
    assert all(m["seconds"] > 0 and m["tree_nodes"] >= 1 for m in recursive["modes"].values())
    assert "recursive cut 3 levels" in run.stdout
    colour = report["colouring"]  # the RGB view's colouring (UMAP only from 64 pairs on)
    assert colour["pairs"] == 2 and set(colour["seconds"]) == {"rgb", "tsne"}
    assert "colouring (" in run.stdout
    # the right warning, once: random weights (what perf measures), not the toy model's
    assert "weights: random" in run.stdout and "toy model" not in run.stdout + run.stderr
    assert "one repeat" in run.stdout and "medians of 1" not in run.stdout
