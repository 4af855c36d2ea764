"""More CLIPs that transformers loads as CLIPModel (LAION, DataComp, MetaCLIP): the page's
presets, and the checks before a download (open_clip-only, another architecture, no
transformers weights), on Hub listings (the listing and config.json download monkeypatched with
fixture file lists: no network) and on local folders with fake files."""

import json
import shutil
from pathlib import Path

import pytest

import engineered_latents.models as models
from engineered_latents.errors import UserError
from engineered_latents.ui.models import HUB_MODELS, model_choices

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
           "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K", "facebook/metaclip-b32-400m",
           "google/siglip-base-patch16-224", "google/siglip2-base-patch16-224")  # + SigLIPs
# the file lists as the Hub lists them (LAION's repositories carry both formats)
LAION_FILES = ["config.json", "model.safetensors", "open_clip_config.json",
               "open_clip_model.safetensors", "open_clip_pytorch_model.bin",
               "preprocessor_config.json", "pytorch_model.bin", "tokenizer.json", "vocab.json"]
OPEN_CLIP_ONLY = ["README.md", "open_clip_config.json", "open_clip_pytorch_model.bin"]
BIN_ONLY = ["config.json", "pytorch_model.bin", "tokenizer.json", "vocab.json"]
CLIP_CONFIG = {"model_type": "clip"}


@pytest.fixture
def hub(monkeypatch, tiny_clip):
    """A fake Hub: `hub.files` and `hub.config` answer the checks; a download records its
    arguments and returns the tiny CLIP's folder."""
    class Hub:
        files, config, downloads = LAION_FILES, CLIP_CONFIG, []

    def download(repo_id, local_files_only=False, **kwargs):
        if local_files_only:
            raise FileNotFoundError(repo_id)  # nothing in the local cache
        Hub.downloads.append(kwargs)
        return tiny_clip

    import huggingface_hub

    monkeypatch.setattr(models, "hub_offline", lambda timeout=2.0: False)
    monkeypatch.setattr(models, "hub_repo_files", lambda repo_id: list(Hub.files))
    monkeypatch.setattr(models, "_hub_config", lambda repo_id: dict(Hub.config))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    Hub.downloads = []
    return Hub


def test_presets_are_in_the_pickers_and_the_readme():
    listed = {repo for _, repo in HUB_MODELS}
    values = {value for _, value in model_choices()}
    readme = (ROOT / "README.md").read_text()
    for repo in PRESETS:
        assert repo in listed and repo in values and repo in readme


def test_a_laion_repository_with_transformers_weights_downloads_only_those(hub):
    resolved = models.resolve_model("laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    assert resolved.weights_id.startswith("laion/CLIP-ViT-B-32-laion2B-s34B-b79K@")
    (kwargs,) = hub.downloads
    assert "open_clip_*" in kwargs["ignore_patterns"]  # open_clip's copy is not fetched
    assert "*.safetensors" in kwargs["allow_patterns"]
    assert not any(p.endswith(".bin") for p in kwargs["allow_patterns"])


def test_a_repository_with_bin_weights_only_downloads_the_bin(hub):
    hub.files = BIN_ONLY
    models.resolve_model("facebook/metaclip-b32-400m")
    assert "pytorch_model*.bin" in hub.downloads[0]["allow_patterns"]


def test_an_open_clip_only_repository_is_refused_before_any_download(hub):
    hub.files = OPEN_CLIP_ONLY
    with pytest.raises(UserError, match="not supported: open_clip-only checkpoint; the open_clip "
                       "package pulls torchvision, which does not install beside the CPU torch "
                       "build used here; pick a repository with transformers weights"):
        models.resolve_model("laion/CLIP-ViT-bigG-14-open-clip-only")
    assert hub.downloads == []


def test_another_architecture_is_refused_before_any_download(hub):
    hub.config = {"model_type": "bert"}
    with pytest.raises(UserError, match="is a 'bert' model, not a CLIP model.*model_type clip"):
        models.resolve_model("google-bert/bert-base-uncased")
    assert hub.downloads == []


def test_a_repository_without_transformers_weights_is_refused(hub):
    hub.files = ["config.json", "flax_model.msgpack", "tokenizer.json"]
    with pytest.raises(UserError, match="has no transformers weights"):
        models.resolve_model("someone/flax-only-clip")
    assert hub.downloads == []


def test_a_listing_that_fails_for_another_reason_still_downloads(hub, monkeypatch):
    def offline(repo_id):
        raise ConnectionError("no route")

    monkeypatch.setattr(models, "hub_repo_files", offline)
    models.resolve_model("laion/CLIP-ViT-B-32-laion2B-s34B-b79K")  # checked after the download
    assert len(hub.downloads) == 1


def _folder(path: Path, names, config=None) -> str:
    path.mkdir()
    for name in names:
        (path / name).write_bytes(b"fake")
    if config is not None:
        (path / "config.json").write_text(json.dumps(config))
    return str(path)


def test_local_folders_get_the_same_checks(tmp_path, tiny_clip):
    with pytest.raises(UserError, match="open_clip-only checkpoint"):
        models.resolve_model(_folder(tmp_path / "oc", OPEN_CLIP_ONLY))
    with pytest.raises(UserError, match="'vit' model, not a CLIP model"):
        models.resolve_model(_folder(tmp_path / "vit", ["model.safetensors"],
                                     {"model_type": "vit"}))
    with pytest.raises(UserError, match="has no transformers weights"):
        models.resolve_model(_folder(tmp_path / "empty", [], CLIP_CONFIG))
    both = shutil.copytree(tiny_clip, tmp_path / "both")  # open_clip files beside: fine
    (both / "open_clip_pytorch_model.bin").write_bytes(b"fake")
    assert models.resolve_model(str(both)).weights_id.startswith("local:")


def test_the_accepted_architectures_are_one_set():
    assert "clip" in models.SUPPORTED_MODEL_TYPES  # the SigLIP loader adds its model types
    models.check_checkpoint(["config.json", "model.safetensors.index.json"], "sharded",
                            lambda: CLIP_CONFIG)  # a sharded checkpoint passes


def test_cli_refuses_an_open_clip_only_folder_in_one_line(tmp_path, capsys):
    from engineered_latents.__main__ import main

    folder = _folder(tmp_path / "oc", OPEN_CLIP_ONLY)
    code = main(["cuts", "--model", folder, "--count", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "open_clip-only checkpoint" in err
    assert "Traceback" not in err


# ----------------------------------------------------------------------------- references

LAION = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"


class _Data:
    name, split = "winoground", "test"

    def identity(self):
        return "rev"


def _finished(model_name: str):
    from engineered_latents import benchmarks

    result = benchmarks.BenchResult("winoground", model_name, False, 400, 400,
                                    {"text": 31.0, "image": 10.0, "group": 8.0}, done=True)
    resolved = models.ResolvedModel(model_name, f"{model_name}@sha", "/p")
    benchmarks._finish(result, benchmarks.BENCHMARKS["winoground"], resolved, _Data(),
                       "float32", None, [], 0)
    return result


def test_a_published_number_is_shown_only_for_its_own_model(monkeypatch):
    from engineered_latents import benchmarks
    from engineered_latents.ui.bench import BENCH_HEADERS, bench_chart, bench_rows

    openai, laion = _finished(benchmarks.REFERENCE_MODEL), _finished(LAION)
    assert openai.reference == {"text": 30.75, "image": 10.50, "group": 8.00}  # REFERENCE.md
    assert laion.reference == {} and "none published for this model" in json.dumps(laion.notes)
    column = BENCH_HEADERS.index("published (this model)")
    assert [r[column] for r in bench_rows({"winoground": openai})] == [30.75, 10.50, 8.00]
    assert [r[column] for r in bench_rows({"winoground": laion})] == [None] * 3
    bars = bench_chart({"winoground": laion}).data
    assert all(not trace.name or "published" not in trace.name.lower() for trace in bars)
    # the hook for other models' numbers: shown for that model only, with its source
    monkeypatch.setitem(benchmarks.MODEL_REFERENCES, LAION, {"winoground": {"text": 32.0}})
    monkeypatch.setitem(benchmarks.MODEL_REFERENCE_SOURCES, LAION, "a paper, table 1")
    again = _finished(LAION)
    assert again.reference == {"text": 32.0} and "a paper, table 1" in json.dumps(again.notes)
    assert benchmarks.published_for("winoground", "facebook/metaclip-b32-400m") == {}
    assert benchmarks.published_for("winoground", benchmarks.REFERENCE_MODEL,
                                    demo_weights=True) == {}  # toy weights are not B/32
