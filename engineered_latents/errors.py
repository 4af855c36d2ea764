"""The one exception type for errors a user can cause (bad slice, unknown model, no network...).

The CLI prints its message on one line and exits non-zero; the app shows it and stays up.
Programming errors are not wrapped in it.
"""


class UserError(Exception):
    """Something the user asked for cannot be done; the message says what to do instead."""


def quoted(value, limit: int = 40) -> str:
    """`repr(value)` for a message, cut to `limit` characters (a user's value may be 100 KB)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
