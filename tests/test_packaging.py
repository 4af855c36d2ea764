"""The installable package: pyproject.toml agrees with requirements.txt, the wheel carries the
assets the code reads, and the wheel (and an editable install) work from a fresh venv, run from
another directory through the `engineered-latents` console script. Offline: the build uses the
setuptools already installed (--no-build-isolation), the venv borrows torch & co. from the
system (--system-site-packages) and pip runs with --no-index, so nothing is downloaded."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# what the code reads at run time, relative to the package
ASSETS = ["assets/toy_clip/model.safetensors", "assets/toy_clip/config.json",
          "assets/toy_clip/tokenizer.json", "assets/toy_clip/metrics.json",
          "assets/clip_bpe/bpe_simple_vocab_16e6.txt.gz", "assets/clip_bpe/LICENSE-openai-clip",
          "assets/clip_bpe/LICENSE-open_clip", "assets/imagenet_openai.json"]


def _requirement(line: str) -> tuple[str, str]:
    """('name', 'specifier') with the name normalized as pip does (case, - _ .)."""
    name, spec = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", line).groups()
    return re.sub(r"[-_.]+", "-", name).lower(), spec.replace(" ", "")


def test_dependencies_are_the_requirements_with_the_same_bounds():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text()
             .splitlines()]
    required = dict(_requirement(line) for line in lines if line)
    declared = dict(_requirement(d) for d in PYPROJECT["project"]["dependencies"])
    assert declared == required
    assert all(spec.startswith(">=") for spec in declared.values())  # lower bounds, tested
    assert PYPROJECT["project"]["requires-python"] == ">=3.10"
    assert PYPROJECT["build-system"]["build-backend"] == "setuptools.build_meta"


def test_console_script_is_the_cli_main():
    target = PYPROJECT["project"]["scripts"]["engineered-latents"]
    module, _, attr = target.partition(":")
    import importlib

    main = getattr(importlib.import_module(module), attr)
    assert main(["cuts", "--model", "/no/such/folder", "--count", "1"]) == 2  # the exit status


def test_the_code_reads_its_assets_from_inside_the_package():
    import engineered_latents
    from engineered_latents.data.imagenet import ASSET
    from engineered_latents.models import ASSETS as MODEL_ASSETS
    from engineered_latents.models import BPE_VOCAB, TOY_DIR

    package = Path(engineered_latents.__file__).parent
    assert MODEL_ASSETS == package / "assets"
    for path in (ASSET, BPE_VOCAB, TOY_DIR):
        assert path.exists() and package in path.parents, path
    assert not (ROOT / "assets").exists()  # one copy, the one that ships


def _source_copy(target: Path) -> Path:
    """The repository's files without caches and build outputs (the build writes into it)."""
    junk = shutil.ignore_patterns(".git", "cache", "out", "build", "dist", "*.egg-info",
                                  "__pycache__", ".pytest_cache", ".ruff_cache", ".venv")
    return Path(shutil.copytree(ROOT, target, ignore=junk))


def _venv(path: Path) -> Path:
    """A venv that sees the system's packages, pip and setuptools included (its own would be
    ensurepip's older copies: setuptools 65 cannot build an editable install without `wheel`)."""
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(path)], check=True, timeout=120)
    return path / "bin"


def _pip(bin_dir: Path, *args: str) -> None:
    """pip install offline (--no-index) with the dependencies resolved: every one declared must
    already be installed here, or this fails."""
    done = subprocess.run([str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-index",
                           "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _clean_env(tmp_path: Path) -> dict:
    """No PYTHONPATH (the checkout must not leak in), offline, caches and HF home in tmp."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("EL_", "HF_"))}
    env.update(EL_CACHE_DIR=str(tmp_path / "cache"), HF_HUB_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"))
    return env


def _package_folder(bin_dir: Path, work: Path, env: dict) -> Path:
    """Where the venv's `import engineered_latents` finds the package, run from `work`."""
    where = subprocess.run([str(bin_dir / "python"), "-c",
                            "import engineered_latents; print(engineered_latents.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    return Path(where.stdout.strip()).parent


def _script_refuses_a_missing_model(bin_dir: Path, work: Path, env: dict) -> None:
    """The console script's exit status and message for a model folder that is not there."""
    refused = subprocess.run([str(bin_dir / "engineered-latents"), "cuts", "--model",
                              "/no/such/folder"], cwd=work, env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and "error: Model directory" in refused.stderr


def _run_from_elsewhere(bin_dir: Path, tmp_path: Path) -> Path:
    """`engineered-latents cuts --dataset demo --count 2` in an empty folder; returns where the
    installed package lives."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(tmp_path)
    package = _package_folder(bin_dir, work, env)
    done = subprocess.run([str(bin_dir / "engineered-latents"), "cuts", "--dataset", "demo",
                           "--count", "2", "--out", "out"],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((work / "out" / "summary.json").read_text())
    assert summary["n_pairs"] == 4 and summary["demo_weights"] is True  # the shipped toy model
    assert "toy model trained on synthetic shapes" in summary["warning"]
    assert (tmp_path / "cache").is_dir()  # EL_CACHE_DIR was used, not ./cache
    _script_refuses_a_missing_model(bin_dir, work, env)
    return package


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    source = _source_copy(tmp_path / "src")
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                            "--no-build-isolation", "--no-index", "-w", str(dist), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = dist.glob("engineered_latents-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(source).as_posix()
               for p in (source / "engineered_latents").rglob("*.py")}
    assert modules <= names, sorted(modules - names)  # every subpackage, toy/ and data/ too
    assert {f"engineered_latents/{a}" for a in ASSETS} <= names
    scripts = zipfile.ZipFile(wheel).read(next(n for n in names
                                               if n.endswith("entry_points.txt"))).decode()
    assert "engineered-latents = engineered_latents.__main__:main" in scripts
    assert wheel.stat().st_size > 10 * 2**20  # the toy model's weights are inside

    bin_dir = _venv(tmp_path / "venv")
    _pip(bin_dir, str(wheel))
    installed = _run_from_elsewhere(bin_dir, tmp_path)
    assert (tmp_path / "venv") in installed.parents  # not the checkout
    assert (installed / "assets" / "toy_clip" / "model.safetensors").is_file()


@pytest.mark.slow
def test_an_editable_install_runs_the_checkout(tmp_path):
    """The editable install points at the source folder; its console script answers (the full
    run from elsewhere is the wheel test's, the code being the same)."""
    source = _source_copy(tmp_path / "src")
    bin_dir = _venv(tmp_path / "venv")
    _pip(bin_dir, "--no-build-isolation", "-e", str(source))
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = _clean_env(tmp_path)
    assert _package_folder(bin_dir, work, env) == source / "engineered_latents"
    _script_refuses_a_missing_model(bin_dir, work, env)
