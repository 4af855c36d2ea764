"""Serve the app in-process for tests: `with serve(model_dir, tmp_dir) as (demo, url): ...`.

Everything the server writes (Gradio's temp files, the cache) goes under `directory`; analytics
are off; the default view is cut (with `default_model`) before the first request is answered.
`auth` ((user, password)) asks for a login, as `app.py --auth` does; `warm_up=False` skips the
default view (for tests that need the server, not a cut).
"""

import dataclasses
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from ..config import Settings
from .app import build_app, launch_options


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def serve(default_model: str | None, directory: str | os.PathLike, max_count: int = 16,
          auth: tuple[str, str] | None = None, warm_up: bool = True):
    directory = Path(directory)
    env = {"GRADIO_TEMP_DIR": str(directory / "gradio"), "GRADIO_ANALYTICS_ENABLED": "False",
           "EL_CACHE_DIR": str(directory / "cache")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    settings = dataclasses.replace(Settings.from_env(), cache_size_gb=1, max_count=max_count)
    demo = build_app(default_model=default_model, settings=settings, warm_up=warm_up,
                     preload_model=False)
    try:
        # a port of its own: servers in parallel test workers must not race for 7860, 7861...
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, auth=auth,
                                server_port=_free_port(), **launch_options(settings))
        demo.explorer.wait_ready(300)
        yield demo, url
    finally:
        demo.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
