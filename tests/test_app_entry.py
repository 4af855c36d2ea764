"""`python app.py`: its flags. The entry point started as a process (with a login, the image's
environment and a copy of the Docker build context) is tested in test_docker.py."""

import sys
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
