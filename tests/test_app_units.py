"""Part 2 of the app without a server: deep links, restoring history records, the export files,
secrets and served paths, the optional ZeroGPU decorator."""

import json
import logging
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from engineered_latents import figures as F
from engineered_latents.config import Settings
from engineered_latents.errors import UserError
from engineered_latents.ui import app as ui_app
from engineered_latents.ui import bench, gpu, privacy, share
from engineered_latents.ui.explore import max_uploads, user_errors
from engineered_latents.ui.models import DEFAULT_CHOICE, LOCAL_PREFIX, choice_for

DEFAULTS = {"dataset": "demo", "start": 0, "count": 8, "indices": "", "model": "default",
            "mode": "scalar", "n_eig": 20, "sharpness": 0, "clusters": 6, "seed": 0,
            "special": False, "patch_norm": True, "crossed": False, "all_captions": False,
            "pair": None, "eig": 1, "word": None, "overlay": "eigenvector", "bpe": False,
            "show0": False}
SECRET = "hf_Secret1234567890abcdef"


# ----------------------------------------------------------------------------- deep links


def test_link_names_only_what_differs_and_parses_back():
    values = dict(DEFAULTS, start=5, count=2, mode="joint", indices="3, 7-9", sharpness=0.25,
                  special=True, patch_norm=False, pair=1, word=2, eig=3, overlay="raw affinity")
    query = share.query(values, DEFAULTS)
    assert query.startswith("?start=5&count=2&indices=3%2C+7-9&mode=joint&sharpness=0.25")
    assert "dataset" not in query and "n_eig" not in query  # defaults stay out of the link
    from urllib.parse import parse_qsl

    params = dict(parse_qsl(query[1:]))
    assert share.is_link(params) and not share.is_link({"__theme": "dark"})
    back, problems = share.parse(params, DEFAULTS, CHOICES)
    assert back == values and problems == []
    assert share.query(DEFAULTS, DEFAULTS) == ""


CHOICES = {"dataset": ["demo", "winoground", "upload"], "overlay": ["eigenvector", "raw affinity"]}
MARKUP = '<a href="https://evil.example/login">Session expired</a><img src="https://e.x/t.png">'


@pytest.mark.parametrize("params, message", [
    ({"start": "five"}, "start was not used ('five'"),
    ({"special": "maybe"}, "yes/no"),
    ({"dataset": "upload"}, "uploaded images"),
    ({"indices": "1," * 400}, "too long"),
    ({"dataset": MARKUP}, "dataset was not used"),
    ({"mode": MARKUP}, "mode was not used"),
    ({"overlay": "<b>x</b>"}, "overlay was not used"),
    ({"seed": str(2**64)}, "seed was not used"),
    ({"seed": "-1"}, "seed was not used"),
    ({"start": str(2**70)}, "start was not used"),
    ({"n_eig": "1"}, "n_eig was not used"),
    ({"sharpness": "nan"}, "sharpness was not used"),
    ({"clusters": "1"}, "clusters was not used"),
    ({"pair": str(2**64)}, "pair was not used"),
])
def test_bad_link_values_keep_their_defaults_with_a_warning(params, message):
    values, problems = share.parse({**params, "count": "3"}, DEFAULTS, CHOICES)
    assert len(problems) == 1 and message in problems[0]
    name = next(iter(params))
    assert values[name] == DEFAULTS[name]  # the default, never the bad value
    assert values["count"] == 3  # the rest of the link still applies
    assert "evil.example" not in problems[0] and len(problems[0]) < 200


def test_unknown_parameters_are_ignored():
    assert share.parse({"utm_source": "x", "count": "3"}, DEFAULTS)[0]["count"] == 3


# ----------------------------------------------------------------------------- history


def _cuts_record(**slice_overrides):
    sl = {"dataset": "demo", "start": 4, "count": 3, "indices": None, "data_path": None,
          "crossed_pairs": True, "all_captions": False, "captions_file": None, **slice_overrides}
    cut = {"mode": "joint", "n_eig": 12, "seed": 2, "similarity": "dot", "include_special": True,
           "center": True, "clusters": 4, "sharpness": None, "rgb": [1, 2, 3]}
    model = {"name": None, "device": None, "dtype": None, "layer": -2, "patch_norm": False}
    return {"kind": "cuts", "time": "2026-01-02T03:04:05+0000", "model": "openai/clip",
            "parameters": {"slice": sl, "cut": cut, "model": model}, "n_pairs": 9,
            "eigenvalues": [1.0, 0.51234], "cache": "miss"}


def test_a_cuts_record_restores_the_explore_controls():
    values, notes = share.values_from_record(_cuts_record(), DEFAULTS, lambda name: "default")
    assert values["start"] == 4 and values["count"] == 3 and values["mode"] == "joint"
    assert values["n_eig"] == 12 and values["clusters"] == 4 and values["seed"] == 2
    assert values["special"] and values["crossed"] and not values["patch_norm"]
    assert values["sharpness"] == 0 and values["indices"] == ""
    assert notes == ["similarity = dot", "layer = -2"]  # what the page has no control for
    by_index, _ = share.values_from_record(_cuts_record(indices=[3, 9]), DEFAULTS, str)
    assert by_index["indices"] == "3, 9"
    with pytest.raises(UserError, match="uploaded"):
        share.values_from_record(_cuts_record(dataset="upload"), DEFAULTS, str)


def test_history_rows_show_no_server_paths(tmp_path):
    record = _cuts_record()
    record["model"] = str(tmp_path / "my-model")
    rows = bench.history_rows([record, {
        "kind": "bench", "time": "t", "benchmark": "demo", "model": "openai/clip-vit-base-patch32",
        "demo_weights": True, "parameters": {"limit": 8, "dtype": "float32"}, "n": 8,
        "metrics": {"text": 12.5}}])
    assert rows[0][2] == "my-model" and str(tmp_path) not in json.dumps(rows)
    assert rows[0][3] == "demo 4..6, joint, 12 eig, 9 pairs (computed)"
    assert rows[0][4] == "eigenvalues 1.000 0.512"
    assert rows[1][2].endswith("(demo weights)") and rows[1][3] == "demo n=8 (limit 8)"
    assert rows[1][4] == "text 12.5"


def test_recorded_models_map_back_to_dropdown_values(tiny_clip, tmp_path):
    env = {"EL_MODEL_DIRS": os.path.dirname(tiny_clip)}
    assert choice_for(None) == DEFAULT_CHOICE
    assert choice_for("openai/clip-vit-base-patch32") == DEFAULT_CHOICE  # the default's name
    assert choice_for(tiny_clip, default_model=tiny_clip) == DEFAULT_CHOICE
    assert choice_for(tiny_clip, env=env).startswith(LOCAL_PREFIX)
    assert choice_for("openai/clip-vit-base-patch16") == "openai/clip-vit-base-patch16"
    with pytest.raises(UserError, match="EL_MODEL_DIRS"):
        choice_for(str(tmp_path), env=env)


# ----------------------------------------------------------------------------- files, secrets


def test_standalone_html_escapes_and_inlines_plotly():
    html = F.standalone_html({"a <b>": F.message_figure("x"), "b": F.message_figure("y")},
                             "t <i>")
    assert "a &lt;b&gt;" in html and "<i>" not in html
    assert html.count("Plotly.newPlot") == 2
    assert "<script src=" not in html  # plotly.js is inside: it opens offline
    assert len(html) > 1_000_000


def test_redact_and_scrub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("EL_AUTH", "user:hunter2-long")
    assert privacy.redact(f"token {SECRET} and hunter2-long") == "token *** and ***"
    (tmp_path / "clip").mkdir()
    assert privacy.scrub({"a": [str(tmp_path / "clip"), f"x {SECRET}", 3], "b": "relative/x",
                          "caption": "/r/pics: a cat"}) == \
        {"a": ["clip", "x ***", 3], "b": "relative/x", "caption": "/r/pics: a cat"}
    monkeypatch.setenv("HF_TOKEN", "")
    assert privacy.redact("nothing") == "nothing"


def test_log_records_are_redacted(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    records = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(handler.format(record))
    logger = logging.getLogger("el-test-redaction")
    logger.addHandler(handler)
    privacy.install_log_filter(logger)
    privacy.install_log_filter(logger)  # once is enough
    assert len(handler.filters) == 1
    try:
        logger.warning("token is %s", SECRET)
        try:
            raise RuntimeError(f"bad {SECRET}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert records and all(SECRET not in r for r in records)
    assert records[0] == "token is ***"


def test_user_errors_mask_secrets_in_any_message(monkeypatch):
    import gradio as gr

    monkeypatch.setenv("HF_TOKEN", SECRET)

    @user_errors
    def leaky():
        raise RuntimeError(f"header Authorization: Bearer {SECRET}")

    @user_errors
    def stream():
        yield 1
        raise UserError(f"cannot use {SECRET}")

    with pytest.raises(gr.Error) as caught:
        leaky()
    assert SECRET not in caught.value.message and "***" in caught.value.message
    with pytest.raises(gr.Error, match=r"cannot use \*\*\*"):
        list(stream())

    @user_errors
    def bug():
        raise KeyError("no secret here")

    with pytest.raises(KeyError):  # programming errors are not dressed up
        bug()


def test_served_and_blocked_paths(tmp_path):
    settings = Settings(str(tmp_path / "cache"), 1, 8)
    env = {"HF_HOME": str(tmp_path / "hf"), "EL_MODEL_DIRS": f"{tmp_path / 'm1'}:{tmp_path / 'm2'}"}
    paths = ui_app.served_paths(settings, env)
    assert paths["allowed_paths"][0].endswith("assets")
    assert {str(tmp_path / n) for n in ("cache", "hf", "m1", "m2")} == set(paths["blocked_paths"])
    assert ui_app.queue_size() >= 16


def test_upload_limit(monkeypatch):
    settings = Settings("c", 1, 64)
    assert max_uploads(settings) == 32
    monkeypatch.setenv("EL_MAX_UPLOADS", "100")
    monkeypatch.setenv("EL_MAX_COUNT", "64")
    assert max_uploads(Settings.from_env()) == 64  # never above EL_MAX_COUNT


def test_settings_are_read_in_one_place_and_refuse_bad_values():
    env = {"EL_CACHE_DIR": "/x", "EL_MAX_COUNT": "12", "EL_MODEL_DIRS": "/a:/b",
           "EL_QUEUE_SIZE": "4", "EL_GPU_DURATION": "60", "EL_DATA_ROOT": "/d"}
    s = Settings.from_env(env)
    assert (s.cache_dir, s.max_count, s.model_dirs, s.queue_size, s.gpu_duration_s,
            s.data_root) == ("/x", 12, ("/a", "/b"), 16, 60, "/d")
    for bad in ({"EL_MAX_COUNT": "0"}, {"EL_MAX_COUNT": "many"}, {"EL_CACHE_SIZE_GB": "-1"}):
        with pytest.raises(UserError, match=next(iter(bad))):
            Settings.from_env(bad)


# ----------------------------------------------------------------------------- ZeroGPU


def test_gpu_decorator_is_optional(monkeypatch):
    gpu._wrapped.cache_clear()
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert not gpu.enabled()
    assert gpu.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert list(gpu.stream(lambda n: iter(range(n)), 3)) == [0, 1, 2]

    calls = []
    fake = types.ModuleType("spaces")

    def GPU(duration):  # noqa: N802 - the spaces package's name
        def wrap(fn):
            def inner(*args, **kwargs):
                calls.append(duration)
                return fn(*args, **kwargs)
            return inner
        return wrap

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    gpu._wrapped.cache_clear()
    try:
        assert gpu.enabled()
        assert gpu.call(lambda: "on gpu", duration=30) == "on gpu"
        assert list(gpu.stream(lambda: iter("ab"), duration=30)) == ["a", "b"]
        assert calls == [30, 30]
    finally:
        gpu._wrapped.cache_clear()


def test_export_folders_are_fresh_and_old_ones_pruned(tmp_path, monkeypatch):
    from engineered_latents.ui import export

    monkeypatch.setenv("EL_EXPORT_DIR", str(tmp_path / "exports"))
    first = export.new_folder()
    os.utime(first, (0, 0))  # an hour old and more
    second = export.new_folder()
    assert second != first and second.parent == Path(tmp_path / "exports")
    assert not first.exists()
    arrays = {"x": np.arange(3)}
    files = export.loss_files(arrays, {"f": F.message_figure("m")}, "t")
    assert np.array_equal(np.load(files[0])["x"], arrays["x"])


@pytest.mark.parametrize("code, words", [(28, "disk is full"), (27, "too large")])
def test_a_failed_export_says_so_without_the_raw_error(monkeypatch, tmp_path, code, words):
    from engineered_latents.ui import export

    monkeypatch.setenv("EL_EXPORT_DIR", str(tmp_path / "exports"))

    def failing(*args, **kwargs):
        raise OSError(code, "raw error text", str(tmp_path / "x"))

    monkeypatch.setattr(export.output, "save", failing)
    with pytest.raises(UserError) as caught:
        export.cuts_files(None, {}, "title")
    message = str(caught.value)
    assert words in message and "still shown" in message
    assert "Errno" not in message and "raw error text" not in message
    assert str(tmp_path) not in message


def test_page_messages_name_server_settings_not_cli_options():
    from engineered_latents.data.hub import no_network_error
    from engineered_latents.ui.explore import page_text

    shown = page_text(str(no_network_error("winoground", "facebook/winoground")))
    assert "--data-path" not in shown and "EL_DATA_ROOT" in shown
    assert "--max-count" not in page_text("raise the limit (--max-count or EL_MAX_COUNT).")


def test_the_benchmark_chart_flags_demo_weights():
    from engineered_latents.benchmarks import BenchResult
    from engineered_latents.ui.bench import bench_chart

    demo = BenchResult("demo", "openai/clip-vit-base-patch32", True, 4, 4, {"text": 50.0},
                       {"text": [20.0, 80.0]}, done=True)
    title = bench_chart({"demo": demo}).layout.title.text
    assert "DEMO weights" in title
