"""`python app.py`: its flags, and the real entry point started as a process (tiny model)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import app  # noqa: E402


def test_flags():
    args = app.parse_args(["--host", "0.0.0.0", "--port", "7861", "--share", "--auth", "u:p:q"])
    assert (args.host, args.port, args.share, args.auth) == ("0.0.0.0", 7861, True, ("u", "p:q"))
    plain = app.parse_args([])
    # unset flags stay None, so Gradio's GRADIO_SERVER_NAME / _PORT / GRADIO_SHARE apply
    assert plain.host is None and plain.port is None and plain.share is None
    for bad in ("nopass", ":p", "u:"):
        with pytest.raises(SystemExit):
            app.parse_args(["--auth", bad])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_python_app_py_serves_the_default_view_with_auth(tiny_clip, tmp_path):
    from gradio_client import Client

    port = _free_port()
    env = dict(os.environ, EL_APP_MODEL=tiny_clip, EL_CACHE_DIR=str(tmp_path / "cache"),
               GRADIO_TEMP_DIR=str(tmp_path / "gradio"), GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", GRADIO_SERVER_PORT=str(port))
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--auth", "user:secret"], cwd=ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while "Default view ready" not in (tmp_path / "app.log").read_text():
            assert proc.poll() is None, (tmp_path / "app.log").read_text()
            assert time.time() < deadline, (tmp_path / "app.log").read_text()
            time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/"
        client = Client(url, auth=("user", "secret"), verbose=False, download_files=False)
        out = client.predict(api_name="/cut")
        assert "demo 0..7: 16 pairs" in out[1]
        with pytest.raises(Exception):  # noqa: B017 - any refusal will do
            Client(url, auth=("user", "wrong"), verbose=False, download_files=False)
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
