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

    def measure(device, tiny_steps, b32_steps, log):
        seen.update(device=device, tiny=tiny_steps, b32=b32_steps)
        return {"device": "cpu", "threads": 2, "models": [figure]}

    monkeypatch.setattr(perf_train, "measure", measure)
    out = tmp_path / "train.json"
    assert main(["perf", "--train", "--train-steps", "7", "--b32-steps", "0", "--device", "cpu",
                 "--json", str(out)]) == 0
    assert seen == {"device": "cpu", "tiny": 7, "b32": 0}
    assert json.loads(out.read_text())["models"] == [figure]
    assert "1.10" in capsys.readouterr().out
