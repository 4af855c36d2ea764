"""What the page, the logs and the downloads must never show: tokens and server paths.

`HF_TOKEN` (and huggingface_hub's other token variables) reach the library through the
environment only; `redact` replaces their values wherever text leaves the process (error
messages, log records, exported files). `scrub` also shortens absolute paths that exist on the
server (a local model's folder, a staged upload, a data mirror) to their last component in
exported JSON; other text (a caption that starts with "/") is left as it is. `hide_paths` does
the same inside free text (error messages) for paths under the server's own folders
(`private_roots`: the cache, Gradio's temp directory, model folders, data mirrors, the Hugging
Face home), so a path the user typed elsewhere is still echoed as typed.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path

SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_TOKEN", "HF_API_TOKEN")
MASK = "***"
_ABSOLUTE = re.compile(r"^(?:/|[A-Za-z]:[\\/])")


def secrets(env: dict | None = None) -> list[str]:
    """The secret values set in the environment (ignoring ones too short to be real tokens)."""
    env = os.environ if env is None else env
    values = [env.get(name, "") for name in SECRET_VARIABLES]
    auth = env.get("EL_AUTH", "")
    if ":" in auth:
        values.append(auth.split(":", 1)[1])
    return sorted({v for v in values if len(v) >= 6}, key=len, reverse=True)


def redact(text: str, env: dict | None = None) -> str:
    """`text` with every secret value masked, and so is a secret's cut-off start (a message that
    echoes the first 40 characters of what was typed must not show most of a token)."""
    for value in secrets(env):
        text = _mask_starts(text.replace(value, MASK), value)
    return text


def _mask_starts(text: str, secret: str) -> str:
    least = min(len(secret), max(8, len(secret) // 2))
    head = secret[:least]
    if head not in text:
        return text
    out, i = [], 0
    while (j := text.find(head, i)) >= 0:
        k = least
        while j + k < len(text) and k < len(secret) and text[j + k] == secret[k]:
            k += 1
        out += [text[i:j], MASK]
        i = j + k
    return "".join(out) + text[i:]


_REGISTERED: set[str] = set()  # more private folders (the app's default model, when local)


def register_private_path(path: str | os.PathLike | None) -> None:
    """Hide `path` (a local default model's folder, say) in messages, as `private_roots` are."""
    if path and Path(path).expanduser().exists():
        _REGISTERED.add(str(path))


def private_roots(env: dict | None = None) -> list[str]:
    """The server's own folders whose paths never go to the page, longest first."""
    env = os.environ if env is None else env
    try:
        from huggingface_hub import constants

        hf_home = env.get("HF_HOME") or constants.HF_HOME
    except ImportError:  # pragma: no cover - huggingface_hub is a requirement
        hf_home = env.get("HF_HOME")
    from ..config import Settings

    settings = Settings.from_env(env)
    roots = [settings.cache_dir, settings.export_dir, settings.data_root, settings.app_model,
             hf_home, env.get("GRADIO_TEMP_DIR") or os.path.join(tempfile.gettempdir(), "gradio"),
             *settings.model_dirs, *_REGISTERED]
    found = set()
    for root in filter(None, roots):
        path = Path(root).expanduser()
        if not path.is_absolute() and not path.exists():
            continue  # a Hub id (EL_APP_MODEL) or a folder that is not there
        for form in (str(path.absolute()), str(path.resolve())):
            if len(form.rstrip("/\\")) > 1:
                found.add(form.rstrip("/\\"))
    return sorted(found, key=len, reverse=True)


def hide_paths(text: str, env: dict | None = None) -> str:
    """`text` with every path under a private root cut to its last component."""
    roots = private_roots(env)
    if not roots:
        return text
    pattern = "|".join(re.escape(r) + r"(?![\w-])(?:[/\\][^\s'\"`,;()\[\]<>]*)?"
                       for r in roots)

    def short(match: re.Match) -> str:
        return os.path.basename(os.path.normpath(match.group(0))) or match.group(0)

    return re.sub(pattern, short, text)


def scrub(value, env: dict | None = None):
    """A JSON-like value with secrets masked and server paths cut to their last component."""
    if isinstance(value, dict):
        return {str(k): scrub(v, env) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, env) for v in value]
    if isinstance(value, str):
        if _ABSOLUTE.match(value) and "\n" not in value and os.path.exists(value):
            value = os.path.basename(os.path.normpath(value)) or value
        return redact(value, env)
    return value


class RedactingFilter(logging.Filter):
    """Masks secret values in every record a handler emits (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if secrets():
            message = record.getMessage()
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
            if record.exc_info and record.exc_info[1] is not None:
                text = redact(str(record.exc_info[1]))
                if text != str(record.exc_info[1]):
                    record.exc_info, record.exc_text = None, None
                    record.msg = f"{record.msg} ({text})"
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Add a `RedactingFilter` to every handler of `logger` (default: the root logger)."""
    logger = logger or logging.getLogger()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


NOT_ALLOWED = "Not an allowed file: only files uploaded through the page can be used."


def quiet_path_errors() -> None:
    """Gradio refuses a file a request names outside its upload folder, but its message lists
    the server's blocked folders (the cache, the Hugging Face home, the upload staging folder,
    model and data folders). Replace that message with one that names no path. Idempotent."""
    from gradio import processing_utils
    from gradio.exceptions import InvalidPathError

    check = processing_utils._check_allowed  # an AttributeError here is a Gradio API change
    if getattr(check, "_el_quiet", False):
        return

    def quiet_check(path, check_in_upload_folder):
        try:
            return check(path, check_in_upload_folder)
        except InvalidPathError:
            raise InvalidPathError(NOT_ALLOWED) from None

    quiet_check._el_quiet = True
    processing_utils._check_allowed = quiet_check
