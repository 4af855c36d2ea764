"""Deep links to a Train tab configuration: `/?tab=train&t_name=mine&t_steps=200&t_lr=0.0001`.

Every field is a `t_`-prefixed parameter (so that a train link never sets the Explore tab's
slice: its `start`, `count` and `seed` are Explore's parameters); only values that differ from
the page's defaults are written. Reading a link checks each value's kind and, for a list, its
choices; a bad value keeps its default with a warning (the rest of the link still applies).
The run itself is never started by a link: the visitor presses Run.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

PREFIX = "t_"


def is_train_link(params: Mapping) -> bool:
    return str(params.get("tab", "")).strip() == "train"


def query(values: Mapping, defaults: Mapping) -> str:
    """'?tab=train&t_...' for the values that differ from the defaults."""
    pairs = [("tab", "train")]
    for name, value in values.items():
        if value is None or value == "" or _same(value, defaults.get(name)):
            continue
        pairs.append((PREFIX + name, _text(value)))
    return "?" + urlencode(pairs)


def _same(a, b) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value != int(value) or abs(value) >= 1e16 else str(int(value))
    return str(value)


def parse(params: Mapping, defaults: Mapping, kinds: Mapping[str, str],
          choices: Mapping[str, list]) -> tuple[dict, list[str]]:
    """(the fields a link asks for, warnings): `defaults` with the link's values applied.
    `kinds`: field -> "int", "float" or "str"; `choices`: field -> allowed values."""
    values, warnings = dict(defaults), []
    for key, raw in params.items():
        if not key.startswith(PREFIX):
            continue
        name = key[len(PREFIX):]
        if name not in defaults:
            warnings.append(f"The link's {key!r} is not a Train tab field: ignored.")
            continue
        text = str(raw).strip()[:200]
        try:
            value = _convert(text, kinds.get(name, "str"))
        except ValueError:
            warnings.append(f"The link's {key} {text[:40]!r} is not a {kinds[name]} number: "
                            "the default is kept.")
            continue
        if name in choices and value not in choices[name]:
            warnings.append(f"The link's {key} {text[:40]!r} is not one of the choices: the "
                            "default is kept.")
            continue
        values[name] = value
    return values, warnings


def _convert(text: str, kind: str):
    if kind == "int":
        number = float(text)
        if number != int(number):
            raise ValueError(text)
        return int(number)
    if kind == "float":
        return float(text)
    return text
