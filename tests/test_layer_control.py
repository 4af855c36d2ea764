"""The page's Layer control: its range from the model's config.json (no weights loaded, no
network), the slider <-> spec mapping, deep links, history restore, the cache key, summary.json
provenance, and a layer beyond the model's depth (a message; the last good view stays). The
wiring functions are tested directly; one short test goes through the app's API."""

import json
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import engineered_latents as el
import engineered_latents.models as models
from engineered_latents import output
from engineered_latents.errors import UserError
from engineered_latents.ui import layers, share
from engineered_latents.ui import views as V


def _config(folder: Path, vision: int, text: int) -> str:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "clip", "vision_config": {"num_hidden_layers": vision},
        "text_config": {"num_hidden_layers": text}}))
    return str(folder)


def test_the_depth_comes_from_config_json_of_each_kind_of_model(tiny_clip, tmp_path,
                                                                 monkeypatch):
    assert layers.model_depth(tiny_clip) == 2  # a local folder: conftest's 2-layer CLIP
    assert layers.choice_depth("default", tiny_clip) == 2  # the page's default model
    assert layers.model_depth(None) == min(models.tower_depths(models.toy_resolved()))  # offline
    assert layers.model_depth("someone/not-cached") is None  # offline, not cached: unknown
    assert layers.choice_depth("../etc", tiny_clip) is None  # a value the picker refuses
    # a cached Hub snapshot (ViT-H/14's towers: 32 vision, 24 text layers -> 24, as check_layer)
    vit_h = _config(tmp_path / "vit-h", 32, 24)
    monkeypatch.setattr(models, "_cached_snapshot",
                        lambda repo: vit_h if repo == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
                        else None)
    assert layers.model_depth("laion/CLIP-ViT-H-14-laion2B-s32B-b79K") == 24
    # not cached but online: config.json alone is downloaded, once
    import huggingface_hub

    l14 = _config(tmp_path / "l14", 24, 12)
    fetched = []
    monkeypatch.setattr(models, "hub_offline", lambda timeout=2.0: False)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download",
                        lambda repo, name: fetched.append((repo, name)) or f"{l14}/{name}")
    monkeypatch.setattr(layers, "_HUB_DEPTHS", {})
    assert layers.model_depth("someone/datacomp-l14") == 12
    assert layers.model_depth("someone/datacomp-l14") == 12
    assert fetched == [("someone/datacomp-l14", "config.json")]


def test_the_slider_range_follows_the_model():
    update = layers.slider_update(2, 1)
    assert (update["minimum"], update["maximum"], update["value"]) == (-1, 2, 1)
    assert "1-2" in update["info"]
    beyond = layers.slider_update(2, 7)  # beyond the new model: the last layer, and it says so
    assert beyond["value"] == -1 and beyond["info"].startswith("layer 7 does not exist")
    assert layers.slider_update(24, 7)["value"] == 7  # kept where the model has it
    unknown = layers.slider_update(None, 30)
    assert unknown["maximum"] == layers.page_max() and unknown["value"] == 30
    assert layers.field_update(12)["info"] == "empty = last; 0-12"


def test_the_slider_value_is_the_specs_layer():
    controls = dict(dataset="demo", start=0, count=1, indices="", model=None, mode="scalar",
                    n_eig=4, sharpness=0, clusters=0, seed=0, include_special=False,
                    patch_norm=True)
    assert V.parse_request(**controls).model.layer is None
    assert V.parse_request(**controls, layer=-1).model.layer is None  # -1: the last layer
    assert V.parse_request(**controls, layer=1).model.layer == 1
    assert V.parse_request(**controls, layer=0).model.layer == 0  # the embeddings
    with pytest.raises(UserError, match="Layer: layer is 'x'"):
        V.parse_request(**controls, layer="x")
    with pytest.raises(UserError, match=r"Layer: layer is 5000: allowed \[-1000, 1000\]"):
        V.parse_request(**controls, layer=5000)
    assert layers.page_value(None) == -1 and layers.page_value(3) == 3


def test_the_layer_is_part_of_deep_links_and_history_restore():
    defaults = {"layer": -1, "count": 8}
    assert share.query({"layer": 1, "count": 8}, defaults) == "?layer=1"
    assert share.query({"layer": -1, "count": 8}, defaults) == ""  # the last layer: no parameter
    values, problems = share.parse({"layer": "1"}, defaults)
    assert values["layer"] == 1 and not problems
    for bad in ("abc", "5000"):
        values, problems = share.parse({"layer": bad}, defaults)
        assert values["layer"] == -1 and "The link's layer was not used" in problems[0]
    record = {"parameters": {"slice": {"dataset": "demo"}, "cut": {},
                             "model": {"name": None, "layer": 1}}}
    base = {"dataset": "demo", "count": 8, "n_eig": 20, "clusters": 0, "layer": -1}
    values, notes = share.values_from_record(record, base, lambda name: "default")
    assert values["layer"] == 1 and notes == []  # the page sets it now: no note


def test_the_layer_is_in_the_cache_key_and_summary_and_beyond_depth_is_refused(tiny_clip,
                                                                               tmp_path):
    cache = el.Cache(tmp_path / "cache")
    explorer = V.Explorer(cache=cache, default_model=tiny_clip)
    controls = dict(dataset="demo", start=0, count=1, indices="", model=None, mode="scalar",
                    n_eig=4, sharpness=0, clusters=0, seed=0, include_special=False,
                    patch_norm=True)
    first = explorer.run(explorer.request(**controls, layer=1))
    assert first.run.provenance["layer"] == 1
    assert output.summary(first.run)["provenance"]["layer"] == 1  # the downloads say so
    assert "layer 1" in V.run_title(first) and "layer 1" in V.status_markdown(first, explorer)
    assert explorer.run(explorer.request(**controls, layer=1)).run.cache["cuts"] == "hit"
    # the spec's layer is in compute_cuts' key: the last layer, 1 and 0 are three runs
    from engineered_latents import pipeline

    request, resolved = first.request, models.resolve_model(tiny_clip)
    dataset = pipeline.open_dataset(request.slice)
    keys = {pipeline._cuts_key(resolved, el.ModelSpec(tiny_clip, layer=layer), dataset, [0],
                               request.slice, request.cut) for layer in (None, 1, 0)}
    assert len(keys) == 3
    # beyond the model's depth: refused before anything is encoded; the last view stays
    with pytest.raises(UserError, match="Layer 3 does not exist: .* has 2 layers"):
        explorer.run(explorer.request(**controls, layer=3))
    assert explorer.view(first.request) is not None


def test_the_page_follows_the_model_and_refuses_what_it_cannot_run(app_server, monkeypatch):
    demo, url = app_server
    update = demo.parts["explore"].on_model("default", 5)  # the tiny CLIP has 2 layers
    assert (update["maximum"], update["value"]) == (2, -1)
    assert demo.parts["compare"].on_model("default")["info"] == "empty = last; 0-2"
    client = Client(url, verbose=False, download_files=False)
    with pytest.raises(AppError, match="Layer 2[0-9] does not exist"):
        client.predict(count=1, n_eig=4, layer=20, api_name="/cut")
    # a typed open_clip-only repository or another architecture: refused before any download
    listing = {"someone/oc-only": ["open_clip_config.json", "open_clip_pytorch_model.bin"],
               "someone/a-bert": ["config.json", "model.safetensors"]}
    monkeypatch.setattr(models, "hub_offline", lambda timeout=2.0: False)
    monkeypatch.setattr(models, "hub_repo_files", lambda repo: listing[repo])
    monkeypatch.setattr(models, "_hub_config", lambda repo: {"model_type": "bert"})
    with pytest.raises(AppError, match="not supported: open_clip-only checkpoint"):
        client.predict(count=1, n_eig=4, model="someone/oc-only", api_name="/cut")
    with pytest.raises(AppError, match="is a 'bert' model, not a CLIP model"):
        client.predict(count=1, n_eig=4, model="someone/a-bert", api_name="/cut")
    monkeypatch.undo()
    assert "16 pairs" in client.predict(api_name="/cut")[1]  # the app still answers
