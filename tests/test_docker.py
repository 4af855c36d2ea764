"""The Dockerfile and the Space's README front matter, checked without Docker: the file
statically, its install command against what is installed, and its run command (`python app.py`
with the image's environment) on a copy of the build context, as the container would run it."""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def image_env() -> dict[str, str]:
    env = {}
    for word, args in dockerfile():
        if word == "ENV":
            for item in shlex.split(args):
                key, _, value = item.partition("=")
                env[key] = value
    return env


def front_matter() -> tuple[dict, list[str]]:
    """The README's front matter and the lines after it."""
    import yaml  # a dependency of gradio and huggingface_hub

    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "---", "the README must begin with the Space's front matter"
    end = lines.index("---", 1)
    return yaml.safe_load("\n".join(lines[1:end])), lines[end + 1:]


def test_dockerfile_runs_the_app_as_uid_1000_on_port_7860():
    steps = dockerfile()
    words = [w for w, _ in steps]
    args = {w: a for w, a in steps}  # the last of each
    assert args["FROM"] == "python:3.11-slim"
    user_setup = next(a for w, a in steps if w == "RUN" and "useradd" in a)
    assert "--uid 1000 user" in user_setup and "chown user:user /data" in user_setup
    assert args["USER"] == "user" and words.index("USER") < words.index("CMD")
    assert args["EXPOSE"] == "7860"
    assert json.loads(args["CMD"]) == ["python", "app.py"]
    env = image_env()
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["GRADIO_SERVER_PORT"] == "7860"
    # the writable places are on the volume, which the user owns
    assert args["VOLUME"] == "/data"
    for key in ("HF_HOME", "EL_CACHE_DIR"):
        assert env[key].startswith("/data/"), key
    install = next(a for w, a in steps if w == "RUN" and "-r requirements.txt" in a)
    assert "pip install --no-cache-dir -r requirements.txt" in install
    copies = [a for w, a in steps if w == "COPY"]
    assert all(c.startswith("--chown=user:user ") for c in copies)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", "cache/", "out/"} <= set(ignored)


def test_readme_front_matter_for_spaces():
    import gradio

    meta, rest = front_matter()
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py"
    assert (ROOT / meta["app_file"]).is_file()
    assert meta["sdk_version"] == gradio.__version__  # the version the tests ran with
    required = re.search(r"^gradio>=([\d.]+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert required and required[1] == meta["sdk_version"]
    assert meta["python_version"] == "3.11"  # as the Dockerfile's base image
    assert "openai/clip-vit-base-patch32" in meta["models"]
    assert "facebook/winoground" in meta["datasets"]
    assert meta["suggested_hardware"]
    # the two commands come first after it
    commands = [line for line in rest if line.strip()][:4]
    tests = "python -m pytest -q -n 3 --dist loadgroup"
    assert commands == ["```bash", "pip install -r requirements.txt && python app.py",
                        f"pip install -r requirements-dev.txt && {tests}", "```"]
    assert f"{tests}\n" in (ROOT / ".ci" / "run").read_text()  # CI runs the README's command


@pytest.mark.slow
def test_the_images_install_command_is_satisfied_here():
    """The Dockerfile's pip command, offline (--no-index) and as a dry run: it fails if this
    environment lacks or mismatches any requirement the image would install."""
    install = next(a for w, a in dockerfile() if w == "RUN" and "-r requirements.txt" in a)
    command = shlex.split(install.split("&&")[-1])
    assert command[:2] == ["pip", "install"]
    done = subprocess.run([sys.executable, "-m", *command, "--dry-run", "--no-index", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Would install" not in done.stdout


def _build_context(target: Path) -> Path:
    """The files `COPY . .` puts in the image: the repository minus .dockerignore."""
    patterns = [p.rstrip("/") for p in (ROOT / ".dockerignore").read_text().split()
                if not p.startswith("#")]

    def ignored(directory, names):
        rel = Path(directory).relative_to(ROOT)
        return {n for n in names for p in patterns
                if fnmatch((rel / n).as_posix(), p) or fnmatch(n, p.removeprefix("**/"))}

    shutil.copytree(ROOT, target, ignore=ignored)
    return target


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_images_command_serves_the_app(tiny_clip, tmp_path):
    """`python app.py` in a copy of the build context with the image's environment; the
    volume's paths point at a temp folder; a login (EL_AUTH) and HF_TOKEN are set, and neither
    reaches the log. EL_APP_MODEL picks the tiny model (CI is offline)."""
    from gradio_client import Client

    app_dir = _build_context(tmp_path / "app")
    assert (app_dir / "app.py").is_file()
    assert (app_dir / "engineered_latents" / "assets" / "clip_bpe").is_dir()
    assert not (app_dir / ".git").exists() and not (app_dir / "cache").exists()
    data = tmp_path / "data"
    env = {k: v.replace("/data", str(data)) for k, v in image_env().items()}
    port = _free_port()
    secret = "hf_ImageTestTokenThatMustNotLeak42"
    env.update(GRADIO_SERVER_PORT=str(port), EL_APP_MODEL=tiny_clip, HF_HUB_OFFLINE="1",
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), EL_AUTH="user:secret-pass",
               HF_TOKEN=secret)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("EL_", "GRADIO_"))}
    full_env.update(env)
    log_path = tmp_path / "app.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=full_env,
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while "Default view ready" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()
            assert time.time() < deadline, log_path.read_text()
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, auth=("user", "secret-pass"), verbose=False, download_files=False)
        out = client.predict(api_name="/cut")
        assert "demo 0..7: 16 pairs" in out[1]
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do
            Client(url, auth=("user", "wrong"), verbose=False, download_files=False)
        with pytest.raises(Exception, match=r"\*\*\*"):  # the token echoed back is masked
            client.predict(model=secret, api_name="/cut")
    finally:
        proc.terminate()
        proc.wait(20)
    # what the app keeps went to the volume: the cache and the run history
    assert (data / "cache" / "history.jsonl").is_file()
    text = log_path.read_text()
    assert secret not in text and "secret-pass" not in text
