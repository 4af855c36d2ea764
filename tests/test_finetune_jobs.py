"""The loop's progress hook and stop event, and the server's training jobs (finetune.jobs):
Stop writes a checkpoint and ends, Resume continues it to the same history, one job at a time,
names that are folders and never overwritten."""

import threading

import pytest
from conftest import save_tiny_clip

from engineered_latents.errors import UserError
from engineered_latents.finetune import TrainSpec, fit, jobs
from engineered_latents.finetune import checkpoints as ckpt


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("jobs_tiny"), image_size=64, patch_size=16)


def _spec(out, tiny, **kw):
    base = dict(out=str(out), model=tiny, count=32, val_count=8, batch_size=8, steps=6,
                val_every=3, checkpoint_every=100, lr=1e-3, track="none", warmup="1")
    return TrainSpec(**{**base, **kw})


def _quiet(msg):
    pass


def test_progress_reports_every_step_and_the_validations(tmp_path, tiny):
    reports = []
    record = fit(_spec(tmp_path / "a", tiny), _quiet, progress=reports.append)
    # the base model's validation, then one report per step
    assert [r["step"] for r in reports] == [0, 1, 2, 3, 4, 5, 6]
    assert reports[0]["entry"] is None and reports[0]["val"]["step"] == 0
    assert [r["entry"] for r in reports[1:]] == record["history"]
    assert [r["val"]["step"] for r in reports if r["val"]] == [0, 3, 6]
    assert all(r["total_steps"] == 6 for r in reports)
    assert all(r["samples_s"] > 0 for r in reports[1:])
    assert reports[-1]["eta_s"] == 0 and reports[1]["eta_s"] > 0  # 5 steps left after step 1


def test_the_stop_event_checkpoints_then_ends_and_a_rerun_resumes(tmp_path, tiny):
    whole = fit(_spec(tmp_path / "whole", tiny), _quiet)
    stop = threading.Event()
    spec = _spec(tmp_path / "parts", tiny)

    def at(report):
        if report["step"] == 2:
            stop.set()

    with pytest.raises(KeyboardInterrupt):
        fit(spec, _quiet, progress=at, stop=stop)
    assert [s for s, _ in ckpt.step_dirs(spec.out)] == [2]
    resumed = fit(spec, _quiet)
    assert [e["step"] for e in resumed["history"]] == list(range(1, 7))
    for x, y in zip(whole["history"], resumed["history"], strict=True):
        assert y["loss"] == pytest.approx(x["loss"], abs=1e-5)


@pytest.mark.parametrize("bad", ["", "../up", ".hidden", "a/b", "x" * 65, "sp ace", "a..b"])
def test_unsafe_names_are_refused(bad):
    with pytest.raises(UserError, match="not a safe folder name"):
        jobs.check_name(bad)


def test_a_job_stops_resumes_and_one_runs_at_a_time(tmp_path, tiny):
    runner = jobs.JobRunner(max_jobs=1)
    cache = tmp_path / "cache"
    out = jobs.run_folder(cache, "first")
    assert out == cache / "models" / "first"
    spec = _spec(out, tiny, steps=12, val_every=4)
    job = runner.start(spec, "first", owner="ada")
    with pytest.raises(UserError, match=r"Training is busy: ada started run 'first'.*step"):
        runner.start(_spec(jobs.run_folder(cache, "second"), tiny), "second")
    while job.step < 3:
        job.thread.join(0.02)
    runner.stop("first")
    job.thread.join()
    assert job.state == jobs.STOPPED and 3 <= job.step < 12
    stopped_at = job.step
    assert jobs.saved_record(out)["state"] == jobs.STOPPED
    assert jobs.saved_record(out)["steps_done"] == stopped_at
    with pytest.raises(UserError, match="exists.*press Resume"):
        runner.start(spec, "first")  # never overwritten: Run on an existing name is refused
    again = runner.start(spec, "first", resume=True)
    again.thread.join()
    assert again.state == jobs.FINISHED, again.error
    assert [e["step"] for e in again.history] == list(range(1, 13))
    assert [v["step"] for v in again.val] == [0, 4, 8, 12]
    saved = jobs.saved_record(out)
    assert saved["state"] == jobs.FINISHED and saved["steps_done"] == 12
    assert (out / "config.json").is_file()
    with pytest.raises(UserError, match="no run named 'nothing' to resume"):
        runner.start(_spec(jobs.run_folder(cache, "nothing"), tiny), "nothing", resume=True)


def test_a_resume_with_another_configuration_is_refused(tmp_path, tiny):
    runner = jobs.JobRunner()
    out = jobs.run_folder(tmp_path, "run")
    runner.start(_spec(out, tiny, steps=2), "run").thread.join()
    job = runner.start(_spec(out, tiny, steps=2, lr=2e-3), "run", resume=True)
    job.thread.join()
    assert job.state == jobs.FAILED and "lr (0.001 there, 0.002 now)" in job.error
