"""Security of the app (in-process server, tiny model): what it serves, what it reads, uploads,
share links, the login, and a Hugging Face token that must never come back out. Model paths
typed into the model box are in test_robustness_app.py (refused before anything is loaded)."""

import io
import json
import logging
import os
import re
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from engineered_latents.ui import app as ui_app
from engineered_latents.ui import upload as up
from engineered_latents.ui.privacy import install_log_filter
from engineered_latents.ui.testing import serve

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "engineered_latents"
SECRET = "hf_FakeTokenForTheSecurityTests0123456789"


@pytest.fixture(scope="module")
def server(tiny_clip, tmp_path_factory):
    """The app with a (fake) HF_TOKEN in its environment, and its log records collected the way
    app.py sets logging up (a root handler with the redacting filter)."""
    records = io.StringIO()
    handler = logging.StreamHandler(records)
    root = logging.getLogger()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", SECRET)
        mp.delenv("GRADIO_SHARE", raising=False)
        root.addHandler(handler)
        install_log_filter(root)
        try:
            with serve(tiny_clip, tmp_path_factory.mktemp("secure_app")) as (demo, url):
                demo.log_records = records
                yield demo, url
        finally:
            root.removeHandler(handler)


def _client(server) -> Client:
    return Client(server[1], verbose=False, download_files=False)


def _file_url(server, path: str) -> str:
    return server[1].rstrip("/") + "/gradio_api/file=" + path


def _png(path: Path, colour=(200, 30, 30)) -> Path:
    Image.new("RGB", (32, 32), colour).save(path)
    return path


# ----------------------------------------------------------------------------- what is served


def test_only_assets_exports_and_gradio_files_are_served(server, tiny_clip, tmp_path):
    demo, url = server
    client = _client(server)
    assets = ROOT / "engineered_latents" / "assets" / "imagenet_openai.json"
    assert httpx.get(_file_url(server, str(assets))).status_code == 200
    client.predict(start=1, count=1, n_eig=6, clusters=3, api_name="/cut")
    exported = client.predict(0, -1, api_name="/export")
    assert len(exported) == 3 and all(httpx.get(f["url"]).status_code == 200 for f in exported)
    # a staged upload sits in Gradio's temp directory but is not served
    client.predict(dataset="upload", files=[handle_file(str(_png(tmp_path / "mine.png")))],
                   captions="my picture", n_eig=6, clusters=3, api_name="/cut")
    staged = next(up.upload_root().rglob("000_mine.png"))
    cache_dir = Path(demo.explorer.cache.directory)
    refused = [str(staged), str(staged.parent / "captions.json"), str(next(cache_dir.glob("*.db"))),
               str(cache_dir / "history.jsonl"), str(Path(tiny_clip) / "config.json"),
               str(ROOT / "app.py"), "/etc/passwd", "/proc/self/environ",
               # traversal out of an allowed folder, plain and encoded
               f"{assets.parent}/../models.py", f"{assets.parent}/%2e%2e/models.py",
               f"{assets.parent}/./../../app.py", f"{assets.parent}/../../../../../etc/passwd",
               quote(f"{assets.parent}/../models.py", safe=""),
               f"{up.upload_root()}/../el_uploads/{staged.parent.name}/000_mine.png",
               "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "//etc/passwd", "file:///etc/passwd",
               "~/.bashrc"]
    for path in refused:
        response = httpx.get(_file_url(server, path))
        assert response.status_code in (403, 404), (path, response.status_code)
        assert "root:" not in response.text
    for route in ("/file=/etc/passwd", "/static/../../../etc/passwd", "/assets/../../app.py",
                  "/gradio_api/file%3D/etc/passwd"):
        assert httpx.get(url.rstrip("/") + route).status_code in (403, 404), route


def _call_cut(server, files: list) -> str:
    """/cut through Gradio's plain HTTP API (no gradio_client, which would upload local files
    itself): what a hand-made request naming a server path gets."""
    client = _client(server)
    params = client.view_api(return_format="dict", print_info=False)["named_endpoints"]["/cut"]
    names = [p["parameter_name"] for p in params["parameters"]]
    data = [p["parameter_default"] for p in params["parameters"]]
    data[names.index("dataset")] = "upload"
    data[names.index("files")] = files
    data[names.index("captions")] = "\n".join("x" for _ in files)
    base = server[1].rstrip("/") + "/gradio_api/call/cut"
    event = httpx.post(base, json={"data": data}, timeout=30).json()["event_id"]
    return httpx.get(f"{base}/{event}", timeout=120).text


def test_api_calls_cannot_name_files_on_the_server(server, tmp_path):
    outside = _png(tmp_path / "outside.png")
    staged_before = set(up.upload_root().rglob("*.png")) if up.upload_root().exists() else set()
    gradio_dir = Path(os.environ["GRADIO_TEMP_DIR"])
    for path in (str(outside), f"{gradio_dir}/../../{outside.relative_to(tmp_path.parent)}",
                 str(next(Path(server[0].explorer.cache.directory).glob("*.db")))):
        answer = _call_cut(server, [{"path": path, "meta": {"_type": "gradio.FileData"}}])
        assert "event: error" in answer and "event: complete" not in answer, path
        assert "Not an allowed file" in answer or "Invalid file type" in answer, answer[:300]
        for folder in (server[0].explorer.cache.directory, gradio_dir, up.upload_root(),
                       os.environ.get("HF_HOME", "/root/.cache/huggingface")):
            assert str(Path(folder).resolve()) not in answer and str(folder) not in answer
    # nothing was read into a staged upload
    assert set(up.upload_root().rglob("*.png")) == staged_before


@pytest.mark.parametrize("name", ["../../../evil.png", "/tmp/evil.png", "..\\..\\evil.png",
                                  "<b>evil</b>.png"])
def test_upload_file_names_cannot_escape(server, tmp_path, name):
    gradio_dir = Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
    content = _png(tmp_path / "x.png", (sum(map(ord, name)) % 256, 2, 250)).read_bytes()
    response = httpx.post(server[1].rstrip("/") + "/gradio_api/upload",
                          files={"files": (name, content, "image/png")}, timeout=30)
    assert response.status_code == 200
    stored = Path(response.json()[0]).resolve()
    assert stored.is_relative_to(gradio_dir) and stored.read_bytes() == content
    assert not (tmp_path.parent / "evil.png").exists() and not Path("/tmp/evil.png").exists()
    # used in a run, it is staged under a safe name inside the upload folder
    answer = _call_cut(server, [{"path": str(stored), "meta": {"_type": "gradio.FileData"}}])
    assert "event: complete" in answer, answer[-500:]
    staged = [p for p in up.upload_root().rglob("000_*") if p.read_bytes() == content]
    assert staged and all(p.resolve().is_relative_to(up.upload_root().resolve())
                          and re.fullmatch(r"000_[\w.-]+", p.name) for p in staged)


def test_uploads_are_size_limited(monkeypatch):
    assert ui_app.launch_options()["max_file_size"] == "20mb"
    monkeypatch.setenv("EL_MAX_UPLOAD", "5mb")
    assert ui_app.launch_options()["max_file_size"] == "5mb"
    # the server's refusal (413) of a bigger file: test_robustness_app.py


def test_staged_uploads_are_blocked(tmp_path):
    assert str(up.upload_root().resolve()) in ui_app.launch_options()["blocked_paths"]


# ----------------------------------------------------------------------------- share, login


def test_share_links_are_off_by_default(server):
    sys.path.insert(0, str(ROOT))
    import app

    assert app.parse_args([]).share is None  # Gradio then shares only if GRADIO_SHARE says so
    assert "share" not in ui_app.launch_options()
    assert server[0].share is False and server[0].share_url is None


def test_auth_is_required_when_set(tiny_clip, tmp_path):
    login = ("reviewer", "a-long-pass-phrase")
    with serve(tiny_clip, tmp_path / "app", auth=login, warm_up=False) as (demo, url):
        base = url.rstrip("/")
        asset = str(ROOT / "engineered_latents" / "assets" / "imagenet_openai.json")
        assert httpx.get(f"{base}/gradio_api/file={asset}").status_code in (401, 403)
        assert httpx.get(f"{base}/config").status_code in (401, 403)
        for wrong in (None, ("reviewer", "wrong"), ("someone", login[1])):
            with pytest.raises(Exception):  # noqa: B017 - any refusal will do
                Client(url, auth=wrong, verbose=False, download_files=False).view_api(
                    print_info=False, return_format="dict")
        client = Client(url, auth=login, verbose=False, download_files=False)
        assert "/cut" in client.view_api(print_info=False, return_format="dict")[
            "named_endpoints"]
        with httpx.Client(base_url=base) as session:
            assert session.post("/login", data={"username": login[0],
                                                "password": login[1]}).status_code == 200
            assert session.get(f"/gradio_api/file={asset}").status_code == 200


# ----------------------------------------------------------------------------- HF_TOKEN


def test_hf_token_never_appears(server, capfd, tmp_path):
    demo, url = server
    client = _client(server)
    messages = []
    for kwargs in (dict(model=SECRET), dict(indices=SECRET), dict(model=f"org/{SECRET}")):
        with pytest.raises(AppError) as caught:
            client.predict(api_name="/cut", n_eig=6, clusters=3, **kwargs)
        messages.append(str(caught.value))
    with pytest.raises(AppError) as caught:
        client.predict(["demo"], 4, SECRET, api_name="/benchmark")
    messages.append(str(caught.value))
    assert all(SECRET not in m for m in messages) and "***" in messages[0]
    # a link carrying the token: the page's warning masks it
    linked = Client(url, verbose=False, download_files=False,
                    httpx_kwargs={"params": {"indices": SECRET}})
    job = linked.submit(api_name="/load")
    loaded = job.result(timeout=120)
    shown = []
    while not job.communicator.updates.empty():
        update = job.communicator.updates.get_nowait()
        if getattr(update, "log", None):
            shown.append(update.log[0])
    assert any("This link cannot be opened: '***' is not an index" in s for s in shown), shown
    assert SECRET not in json.dumps(loaded, default=str) + json.dumps(shown)
    # a run, its downloads and the page
    client.predict(start=2, count=1, n_eig=6, clusters=3, api_name="/cut")
    for file in client.predict(0, -1, api_name="/export"):
        assert SECRET not in httpx.get(file["url"]).text
    for route in ("/", "/config", "/gradio_api/info"):
        assert SECRET not in httpx.get(url.rstrip("/") + route).text, route
    # what the server kept and logged
    for path in Path(demo.explorer.cache.directory).rglob("*"):
        if path.is_file() and path.suffix in (".jsonl", ".json", ".txt", ".log"):
            assert SECRET not in path.read_text(errors="replace"), path
    out, err = capfd.readouterr()
    assert SECRET not in out and SECRET not in err
    assert SECRET not in demo.log_records.getvalue()


# ----------------------------------------------------------------------------- remote code


def _sources() -> list[Path]:
    return [p for p in [*PACKAGE.rglob("*.py"), ROOT / "app.py"] if "__pycache__" not in p.parts]


def test_no_trust_remote_code_and_no_dataset_loading_scripts():
    offenders = []
    for path in _sources():
        text = path.read_text()
        if re.search(r"trust_remote_code\s*=\s*True", text):
            offenders.append(f"{path}: trust_remote_code=True")
        for call in re.finditer(r"load_dataset\((.*?)\)", text, re.S):
            args = call.group(1)
            if "trust_remote_code" in args or re.search(r"\.py['\"]", args):
                offenders.append(f"{path}: {call.group(0)[:80]}")
    assert not offenders, offenders
    assert any("load_dataset(" in p.read_text() for p in _sources())  # the check checks something
    import datasets

    # datasets 4 refuses loading scripts altogether
    assert int(datasets.__version__.split(".")[0]) >= 4


# ----------------------------------------------------------------------------- in the page


@pytest.mark.slow
def test_the_page_shows_typed_html_as_text(browser, server):  # noqa: F811 - fixture
    """Gradio renders toasts as HTML: a link whose value is markup gets a warning that shows the
    markup as typed, and no element of it reaches the page."""
    page = browser.new_page()
    page.goto(server[1].rstrip("/") + "/?indices=" + quote("<b/id=elxss>1</b>"),
              wait_until="domcontentloaded")
    toast = page.locator('[data-testid="toast-text"]').first
    toast.wait_for(timeout=90_000)
    assert "'<b/id=elxss>1</b>' is not an index" in toast.inner_text()
    assert page.locator("#elxss").count() == 0
    page.close()
