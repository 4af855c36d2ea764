"""The Train tab through gradio_client on the tiny CLIP: a 20-step contrastive fine-tune on demo
scenes, watched (decreasing loss), stopped half way, resumed, finished; the model then in the
model pickers and usable by a cut; a second run refused while one trains, a view answered; the
rules that turn training off."""

import json
import time
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from engineered_latents.config import Settings
from engineered_latents.errors import UserError
from engineered_latents.finetune import jobs
from engineered_latents.ui import train as T
from engineered_latents.ui.models import model_choices, model_spec_for

# a 20-step run that takes a few seconds on the CPU: the loss falls from ~3.4 to ~2.1
RUN = dict(count=32, val_count=8, batch_size=8, steps=20, lr=1e-3, warmup="2", val_every=5,
           checkpoint_every=100)


def config(name, **values):
    """The /train_start inputs: name, model, files, captions, then every field (page defaults
    with `values` over them)."""
    fields = {**T.page_defaults(), **RUN, **values}
    return [name, "default", None, "", *[fields[f] for f in T.FIELDS]]


@pytest.fixture(scope="module")
def server(tiny_clip, tmp_path_factory):
    from engineered_latents.ui.testing import serve

    with serve(tiny_clip, tmp_path_factory.mktemp("train_app"), warm_up=False) as (demo, url):
        yield demo, url


@pytest.fixture(scope="module")
def client(server):
    return Client(server[1], verbose=False)


def _status(client, name):
    return client.predict(name, api_name="/train_status")


def _wait(client, name, until, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        status = _status(client, name)
        if until(status):
            return status
        time.sleep(0.2)
    raise AssertionError(f"timed out: {status['state']} at step {status['step']}")


# ----------------------------------------------------------------------------- rules


def test_training_is_on_locally_and_off_when_shared_unless_allowed(monkeypatch):
    on = Settings()
    assert T.training_allowed(on, env={}) == (True, "")
    allowed, why = T.training_allowed(on, share=True, env={})
    assert not allowed and "public share link" in why and "EL_ALLOW_TRAIN=1" in why
    allowed, why = T.training_allowed(on, env={"SPACE_ID": "me/app"})
    assert not allowed and "on a Space" in why
    assert T.training_allowed(Settings.from_env({"EL_ALLOW_TRAIN": "1"}), share=True,
                              env={"SPACE_ID": "me/app"})[0]
    assert not T.training_allowed(Settings.from_env({"EL_ALLOW_TRAIN": "0"}), env={})[0]
    monkeypatch.setattr(T.gpu, "enabled", lambda env=None: True)
    allowed, why = T.training_allowed(Settings.from_env({"EL_ALLOW_TRAIN": "1"}), env={})
    assert not allowed and "ZeroGPU" in why


def test_every_field_has_the_cli_default_and_help():
    actions = T.cli_actions()
    for name in T.FIELDS:
        assert name in actions, name
        assert T.default(name) == actions[name].default or actions[name].default is None, name
    assert "(default 5e-05)" in T._info("lr") and "peak learning rate" in T._info("lr")


def test_trained_models_are_listed_like_the_allowed_folders(tmp_path, tiny_clip):
    import shutil

    env = {"EL_CACHE_DIR": str(tmp_path / "cache")}
    assert not any(v == "local:mine" for _, v in model_choices(tiny_clip, env))
    shutil.copytree(tiny_clip, tmp_path / "cache" / "models" / "mine")
    assert ("local: mine", "local:mine") in model_choices(tiny_clip, env)
    spec = model_spec_for("local:mine", tiny_clip, env=env)
    assert spec.name == str((tmp_path / "cache" / "models" / "mine").resolve())


# ----------------------------------------------------------------------------- a run


def _paced(monkeypatch, seconds=0.25):
    """Steps of at least `seconds` (the server runs in this process), so that the test's
    requests land while the run trains, whatever the machine's speed."""
    from engineered_latents.finetune import loop

    real = loop.train_step

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "train_step", slow)


@pytest.mark.slow
def test_run_watch_stop_resume_finish_then_use_the_model(client, server, monkeypatch):
    demo = server[0]
    # the page lists the models of the server's cache (read from the environment, as EL_MODEL_DIRS)
    monkeypatch.setenv("EL_CACHE_DIR", demo.explorer.settings.cache_dir)
    _paced(monkeypatch)
    client.predict(*config("tab-run"), api_name="/train_start")
    # two progress reports with a falling loss
    status = _wait(client, "tab-run", lambda s: len(s["history"]) >= 4)
    losses = [e["loss"] for e in status["history"]]
    assert losses[-1] < losses[0]
    assert status["total_steps"] == 20 and status["val"][0]["step"] == 0
    # while it trains: a second run is refused, naming the run that holds the slot; views answer
    with pytest.raises(AppError, match=r"Training is busy: .*run 'tab-run'.* step \d+ of 20"):
        client.predict(*config("tab-other"), api_name="/train_start")
    t0 = time.time()
    cut = client.predict(start=1, count=2, api_name="/cut")
    assert "demo 1..2" in cut[1]
    busy = _status(client, "tab-run")
    assert busy["state"] == jobs.RUNNING, "the run ended before the view answered"
    took = time.time() - t0
    # stop half way
    _wait(client, "tab-run", lambda s: s["step"] >= 6)
    assert "Stopping" in client.predict(api_name="/train_stop")  # this session's run
    stopped = _wait(client, "tab-run", lambda s: s["state"] == jobs.STOPPED)
    assert 6 <= stopped["step"] < 20
    folder = jobs.run_folder(demo.explorer.settings.cache_dir, "tab-run")
    assert jobs.saved_record(folder)["steps_done"] == stopped["step"]
    assert not any(v == "local:tab-run" for _, v in model_choices(demo.explorer.default_model))
    # Run on the same name is refused; Resume finishes it
    with pytest.raises(AppError, match="exists.*press Resume"):
        client.predict(*config("tab-run"), api_name="/train_start")
    client.predict(*config("tab-run"), api_name="/train_resume")
    done = _wait(client, "tab-run", lambda s: s["state"] != jobs.RUNNING)
    assert done["state"] == jobs.FINISHED, done["error"]
    assert [e["step"] for e in done["history"]] == list(range(1, 21))
    assert [v["step"] for v in done["val"]] == [0, 5, 10, 15, 20]
    # listed in the Explore model picker; a cut with it works
    assert ("local: tab-run", "local:tab-run") in model_choices(demo.explorer.default_model)
    out = client.predict(start=0, count=2, model="local:tab-run", api_name="/cut")
    assert "demo 0..1" in out[1] and "tab-run" in out[1], out[1]
    # the buttons: the Compare tab with both models, the Benchmarks tab with both models
    assert "Comparing the base model with" in client.predict(api_name="/train_compare")[0]
    tab = demo.parts["train"]
    compare = demo.parts["compare"]
    outputs = tab.on_compare(compare, "tab-run")
    values = dict(zip(compare.link_controls, outputs[4:]))
    assert values["model"] == "default" and values["model_b"] == "local:tab-run"
    assert values["dataset"] == "demo" and values["count"] == 8
    note, _, base, trained = tab.on_bench("tab-run")
    assert (base, trained) == ("default", "local:tab-run") and "Benchmarks tab" in note
    # the run list restores its configuration
    watched, _, note, name, model, *fields = tab.restore("tab-run")
    restored = dict(zip(T.FIELDS, fields))
    assert (watched, name, model) == ("tab-run", "tab-run", "default")
    assert restored["steps"] == 20 and restored["batch_size"] == 8 and restored["lr"] == 1e-3
    assert restored["warmup"] == "2" and restored["loss"] == "contrastive"
    # so does its row of the Benchmarks tab's run history (the same restore)
    from types import SimpleNamespace

    _, records = demo.parts["bench"].on_history()
    row = next(i for i, r in enumerate(records) if r.get("kind") == "train"
               and r.get("out", "").endswith("tab-run"))
    assert tab.on_history_pick(records, SimpleNamespace(index=[row, 0])) == \
        tab.restore("tab-run")
    # downloads: train.json, the curves, the model as a zip
    files = client.predict(api_name="/train_export")
    names = sorted(Path(f).name for f in files)
    assert names == ["curves.html", "tab-run.zip", "train.json"]
    saved = json.loads(Path(next(f for f in files if f.endswith(".json"))).read_text())
    assert saved["steps_done"] == 20 and len(saved["history"]) == 20
    with zipfile.ZipFile(next(f for f in files if f.endswith(".zip"))) as z:
        listed = z.namelist()
    assert "tab-run/config.json" in listed and not any("checkpoints" in n for n in listed)
    assert "plotly" in Path(next(f for f in files if f.endswith(".html"))).read_text()
    print(f"view during training answered in {took:.1f} s")


def test_stop_without_a_run_is_a_message(server):
    with pytest.raises(AppError, match="No run is watched"):
        Client(server[1], verbose=False).predict(api_name="/train_stop")


def test_a_bad_name_is_refused(client):
    with pytest.raises(AppError, match="not a safe folder name"):
        client.predict(*config("../escape"), api_name="/train_start")


@pytest.mark.slow
def test_training_is_refused_when_not_allowed(tiny_clip, tmp_path, monkeypatch):
    from engineered_latents.ui.testing import serve

    monkeypatch.setenv("SPACE_ID", "someone/app")
    with serve(tiny_clip, tmp_path, warm_up=False) as (_, url):
        with pytest.raises(AppError, match="Training is off because this app is served on a "
                                           "Space.*EL_ALLOW_TRAIN=1"):
            Client(url, verbose=False).predict(*config("nope"), api_name="/train_start")
    assert not (tmp_path / "cache" / "models" / "nope").exists()


def test_a_link_carries_the_configuration_round_trip():
    from urllib.parse import parse_qsl

    from engineered_latents.ui import train_link as L

    defaults = {"name": "demo-contrastive", "model": "default", **T.page_defaults()}
    values = {**defaults, "name": "mine", "steps": 200, "lr": 1e-4,
              "loss": "contrastive+0.1*cluster", "scheduler": "linear", "epochs": None}
    query = L.query(values, defaults)
    params = dict(parse_qsl(query[1:]))
    assert params == {"tab": "train", "t_name": "mine", "t_steps": "200", "t_lr": "0.0001",
                      "t_loss": "contrastive+0.1*cluster", "t_scheduler": "linear"}
    kinds = {"name": "str", "model": "str", **{f: T._kind(f) for f in T.FIELDS}}
    back, problems = L.parse(params, defaults, kinds, {"scheduler": ["cosine", "linear"]})
    assert back == {**values, "epochs": None} and not problems
    bad = {"tab": "train", "t_steps": "2.5", "t_scheduler": "<b>", "t_nope": "1", "start": "3"}
    back, problems = L.parse(bad, defaults, kinds, {"scheduler": ["cosine", "linear"]})
    assert back == defaults and len(problems) == 3
    assert any("t_steps '2.5'" in p for p in problems)
    assert any("t_scheduler" in p and "choices" in p for p in problems)


def test_the_link_endpoint_writes_the_fields_that_differ(server):
    values = config("mine", steps=50)
    query = Client(server[1], verbose=False).predict(*values[:2], *values[4:],
                                                     api_name="/train_link")
    assert query.startswith("?tab=train&t_name=mine") and "t_steps=50" in query
    assert "t_lr=0.001" in query and "t_batch_size=8" in query and "t_k=" not in query


def test_an_upload_is_kept_under_the_cache_for_the_run_and_its_resume(server, tmp_path):
    from PIL import Image

    tab = server[0].parts["train"]
    files = []
    for i in range(4):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (32, 32), (60 * i, 0, 0)).save(path)
        files.append(str(path))
    values = config("up", dataset="upload", batch_size=2)
    values[2], values[3] = files, "a\nb\nc\nd"
    name, model, spec = tab._spec(tuple(values))
    assert (name, model, spec.dataset) == ("up", "default", "upload")
    kept = Path(spec.data_path)
    assert kept.parent == Path(tab.settings.cache_dir) / "train_uploads"
    assert len(list(kept.glob("*.png"))) == 4 and (kept / "captions.json").is_file()
    assert tab._spec(tuple(values))[2].data_path == spec.data_path  # the same upload, same folder
    with pytest.raises(UserError, match="Lr 'fast' is not a number"):
        tab._spec(tuple(config("up", lr="fast")))


@pytest.mark.slow
def test_a_shared_app_builds_the_tab_off_and_says_why(tiny_clip, monkeypatch):
    from engineered_latents.ui.app import build_app

    monkeypatch.delenv("EL_ALLOW_TRAIN", raising=False)
    monkeypatch.delenv("SPACE_ID", raising=False)
    shared = build_app(tiny_clip, warm_up=False, share=True).parts["train"]
    assert not shared.allowed and "public share link" in shared.why_not
    assert not shared.run_button.interactive
    assert build_app(tiny_clip, warm_up=False).parts["train"].allowed  # local: on
    monkeypatch.setenv("EL_ALLOW_TRAIN", "1")
    assert build_app(tiny_clip, warm_up=False, share=True).parts["train"].allowed
