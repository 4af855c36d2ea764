"""What the page, the logs and the downloads must never show: tokens and server paths.

`HF_TOKEN` (and huggingface_hub's other token variables) reach the library through the
environment only; `redact` replaces their values wherever text leaves the process (error
messages, log records, exported files). `scrub` also shortens absolute paths that exist on the
server (a local model's folder, a staged upload, a data mirror) to their last component in
exported JSON; other text (a caption that starts with "/") is left as it is.
"""

from __future__ import annotations

import logging
import os
import re

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
    for value in secrets(env):
        text = text.replace(value, MASK)
    return text


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
