"""`perf --train`: the training figure at its smallest size, and the command writing it to its
JSON (a benchmark: no time is asserted, only that the figures are there and consistent)."""

import json

import pytest

from engineered_latents import perf_train


@pytest.mark.slow
def test_training_figure_at_its_smallest(tiny_clip):
    # tiny_clip: the architecture perf_train.save_model("tiny") builds (224 px, 32 px patches)
    tiny = perf_train.measure_one("tiny", 4, 4, "cpu", log=lambda msg: None, model_dir=tiny_clip)
    report = {"device": "cpu", "threads": 2, "models": [tiny]}
    assert tiny["model"] == "tiny" and tiny["batch_size"] == 4 and tiny["loop"]["steps"] == 4
    floor, loop = tiny["floor"]["step_s"], tiny["loop"]["step_s"]
    assert 0 < floor and 0 < loop <= tiny["loop"]["fit_s"]
    assert tiny["floor"]["steps"] == 4  # 2 after warm-up, before and after the loop
    assert tiny["loop_over_floor"] == pytest.approx(loop / floor, rel=1e-2)
    assert tiny["loop_samples_s"] == pytest.approx(4 / loop, rel=1e-2)
    for key in ("rss_growth_mb", "peak_rss_growth_mb", "rss_end_mb", "mean_step_s",
                "cpu_step_s"):
        assert key in tiny["loop"]
    assert "loop/fl" in perf_train.table(report)


def test_perf_train_command_writes_every_figure(tmp_path, monkeypatch, capsys):
    from engineered_latents.__main__ import main

    seen = {}
    figure = {"model": "tiny", "batch_size": 32, "loop_over_floor": 1.1, "mean_over_floor": 1.2,
              "cpu_loop_over_floor": 1.0, "floor_samples_s": 10.0, "loop_samples_s": 9.0,
              "floor": {"step_s": 0.1}, "loop": {"steps": 7, "step_s": 0.11,
                                                 "rss_growth_mb": 0.5, "peak_rss_growth_mb": 3}}

    def measure(device, tiny_steps, b32_steps, log, tiny_repeats):
        seen.update(device=device, tiny=tiny_steps, b32=b32_steps, repeats=tiny_repeats)
        return {"device": "cpu", "threads": 2, "models": [figure]}

    monkeypatch.setattr(perf_train, "measure", measure)
    out = tmp_path / "train.json"
    assert main(["perf", "--train", "--train-steps", "7", "--b32-steps", "0", "--device", "cpu",
                 "--train-repeats", "5", "--json", str(out)]) == 0
    assert seen == {"device": "cpu", "tiny": 7, "b32": 0, "repeats": 5}
    assert json.loads(out.read_text())["models"] == [figure]
    assert "1.10" in capsys.readouterr().out


@pytest.mark.parametrize("ratios, median",
                         [([1.3, 1.1, 1.2], 1.2), ([1.3, 1.1], 1.1), ([1.5], 1.5)])
def test_repeated_figure_is_the_median_repeat_with_every_ratio(monkeypatch, ratios, median):
    """measure_repeated reports the repeat in the middle by loop / floor (the lower of two
    middles) and lists every repeat's ratios in the order they ran, on one saved model."""
    models, calls = [], iter(ratios)

    def measure_one(kind, batch_size, steps, device, log, model_dir, **kw):
        models.append(model_dir)
        r = next(calls)
        return {"model": kind, "loop_over_floor": r, "cpu_loop_over_floor": r - 0.05,
                "floor": {"step_s": 0.02},
                "loop": {"step_s": 0.02 * r, "peak_rss_growth_mb": 100.0 if r == ratios[0] else 0}}

    monkeypatch.setattr(perf_train, "save_model", lambda kind, path: path)
    monkeypatch.setattr(perf_train, "measure_one", measure_one)
    figure = perf_train.measure_repeated("tiny", 32, 10, len(ratios), "cpu", log=print)
    assert figure["loop_over_floor"] == median
    assert [r["loop_over_floor"] for r in figure["repeats"]] == ratios
    assert figure["repeats"][0]["loop_s"] == pytest.approx(0.02 * ratios[0])
    assert len(set(models)) == 1  # one model for every repeat
    assert figure["loop"]["peak_rss_growth_mb"] == 100.0  # the first repeat's, whichever is shown
