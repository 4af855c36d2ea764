"""Benchmark runners end to end with a tiny model, checked against an independent computation."""

import functools
import json

import numpy as np
import pytest
import torch

import engineered_latents as el
from engineered_latents import benchmarks
from engineered_latents.benchmarks import BENCHMARKS, benchmark_indices, run_benchmark
from engineered_latents.data import get_dataset


@functools.lru_cache(maxsize=4)
def _transformers_clip(model_dir):
    from transformers import CLIPImageProcessorPil, CLIPModel, CLIPTokenizer

    return (CLIPModel.from_pretrained(model_dir).eval(),
            CLIPImageProcessorPil.from_pretrained(model_dir),
            CLIPTokenizer.from_pretrained(model_dir))


def _embeddings_by_hand(model_dir, images, captions):
    """Normalized CLIP embeddings straight from transformers, not through the project's code
    (None for an empty list)."""
    model, processor, tokenizer = _transformers_clip(model_dir)
    img = txt = None
    with torch.no_grad():
        if images:
            img = model.get_image_features(**processor(images=images, return_tensors="pt"))
            img = torch.nn.functional.normalize(getattr(img, "pooler_output", img), dim=-1)
        if captions:
            txt = model.get_text_features(**tokenizer(captions, padding=True,
                                                      return_tensors="pt"))
            txt = torch.nn.functional.normalize(getattr(txt, "pooler_output", txt), dim=-1)
    return (None if img is None else img.numpy(), None if txt is None else txt.numpy())


def _final(gen):
    results = list(gen)
    assert results[-1].done and all(not r.done for r in results[:-1])
    return results


def test_winoground_style_scores_equal_an_independent_computation(tiny_clip, tmp_path):
    results = _final(run_benchmark("demo", el.ModelSpec(tiny_clip, dtype="float32"),
                                   cache=el.Cache(tmp_path), batch_size=10))
    assert [r.n for r in results] == [10, 20, 24]  # a partial result after every batch
    final = results[-1].to_json()
    examples = get_dataset("demo").load(range(24))
    img, txt = _embeddings_by_hand(tiny_clip, [im for ex in examples for im in ex.images],
                                   [c for ex in examples for c in ex.captions])
    text = image = group = 0
    for e, got in enumerate(final["examples"]):
        s = [[float(txt[2 * e + c] @ img[2 * e + i]) for i in range(2)] for c in range(2)]
        np.testing.assert_allclose(got["scores"], s, atol=1e-5)
        t = s[0][0] > s[1][0] and s[1][1] > s[0][1]
        i = s[0][0] > s[0][1] and s[1][1] > s[1][0]
        assert (got["text"], got["image"], got["group"]) == (t, i, t and i)
        text, image, group = text + t, image + i, group + (t and i)
    assert final["metrics"] == {"text": round(100 * text / 24, 2),
                                "image": round(100 * image / 24, 2),
                                "group": round(100 * group / 24, 2)}
    assert final["n"] == 24 and set(final["ci95"]) == {"text", "image", "group"}
    assert final["by_tag"]["relation"]["n"] == 24
    assert final["reference"] == {}  # not the reference model
    for key in ["model", "demo_weights", "benchmark", "n", "metrics", "ci95", "reference",
                "examples", "provenance"]:
        assert key in final
    assert final["provenance"]["dtype"] == "float32"


def test_an_interrupted_run_resumes_without_recomputing_finished_batches(tiny_clip, tmp_path,
                                                                         monkeypatch):
    cache = el.Cache(tmp_path)
    spec = el.ModelSpec(tiny_clip, dtype="float32")
    calls = []
    original = benchmarks._winoground_batch
    monkeypatch.setitem(benchmarks._KINDS, "winoground",
                        (lambda lm, exs, ctx: calls.append(len(exs)) or original(lm, exs, ctx),
                         benchmarks._winoground_summary))
    runner = run_benchmark("demo", spec, cache=cache, batch_size=8)
    next(runner), next(runner)  # two batches done, then the run "dies"
    runner.close()
    assert calls == [8, 8]
    final = _final(run_benchmark("demo", spec, cache=cache, batch_size=8))[-1]
    assert calls == [8, 8, 8]  # only the missing batch was encoded
    again = _final(run_benchmark("demo", spec, cache=cache, batch_size=8))
    assert len(again) == 1 and again[0].from_cache and calls == [8, 8, 8]
    assert again[0].metrics == final.metrics


def test_imagenet_subset_is_seeded_and_stratified_over_classes():
    bench = BENCHMARKS["imagenet"]
    chosen = benchmark_indices(bench, 50000, 2000)
    assert chosen == benchmark_indices(bench, 50000, 2000) and len(set(chosen)) == 2000
    per_class = np.bincount(np.array(chosen) // 50, minlength=1000)
    assert per_class.min() == 2 and per_class.max() == 2
    small = np.array(benchmark_indices(bench, 50000, 300)) // 50
    assert len(set(small)) == 300  # 300 examples from 300 different classes
    assert benchmark_indices(BENCHMARKS["coco"], 5000, 10) == list(range(10))


def test_reference_numbers_only_for_the_reference_model_on_the_full_set():
    result = benchmarks.BenchResult("winoground", benchmarks.REFERENCE_MODEL, False, 400, 400,
                                    {"text": 31.0, "image": 10.0, "group": 8.0}, done=True)
    model = el.models.ResolvedModel(benchmarks.REFERENCE_MODEL, "x@sha", "/p")

    class Data:
        name, split = "winoground", "test"

        def identity(self):
            return "rev"

    benchmarks._finish(result, BENCHMARKS["winoground"], model, Data(), "float32", None, [], 0)
    assert result.reference["text"] == 30.75
    assert result.to_json()["difference"]["text"] == 0.25
    subset = benchmarks.BenchResult("winoground", benchmarks.REFERENCE_MODEL, False, 50, 50,
                                    {"text": 31.0}, done=True)
    benchmarks._finish(subset, BENCHMARKS["winoground"], model, Data(), "float32", 50, [], 0)
    assert subset.reference == {} and "subset" in json.dumps(subset.notes)
    demo = el.models.demo_resolved()
    fake = benchmarks.BenchResult("winoground", demo.name, True, 400, 400, {"text": 1.0},
                                  done=True)
    benchmarks._finish(fake, BENCHMARKS["winoground"], demo, Data(), "float32", None, [], 0)
    assert fake.reference == {} and "meaningless" in json.dumps(fake.notes)


def test_bench_cli_prints_a_table_writes_json_and_records_history(tiny_clip, tmp_path, capsys):
    from engineered_latents.__main__ import main

    assert main(["bench", "--benchmark", "demo", "--model", tiny_clip, "--limit", "6",
                 "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "metric" in out and "95% CI" in out and "reference" in out
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["n"] == 6 and result["benchmark"] == "demo"
    assert main(["history"]) == 0
    assert "bench demo n=6" in capsys.readouterr().out
    assert main(["bench", "--benchmark", "nope"]) == 2
    err = capsys.readouterr().err
    assert "Unknown benchmark" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["whatsup-a", "coco", "imagenet", "winoground"])
def test_every_benchmark_names_its_metrics_and_reference(name):
    bench = BENCHMARKS[name]
    expected = {"winoground": {"text", "image", "group"},
                "whatsup-a": {"accuracy", "pair_accuracy", "set_accuracy"},
                "coco": {"t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10"},
                "imagenet": {"top1", "top5"}}[name]
    assert set(bench.reference) == expected


def test_partial_results_carry_intervals_and_the_final_one_uses_all_resamples(tiny_clip,
                                                                             tmp_path):
    results = _final(run_benchmark("demo", el.ModelSpec(tiny_clip, dtype="float32"),
                                   cache=el.Cache(tmp_path), batch_size=8))
    for r in results:
        assert set(r.ci95) == {"text", "image", "group"}
        for name, (lo, hi) in r.ci95.items():
            assert lo <= r.metrics[name] <= hi
