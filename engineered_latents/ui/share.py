"""Restoring Explore views: deep links (the controls as the page URL's query parameters, and
back) and runs from the run history (a recorded cuts run as the controls that repeat it).

A link names only what differs from the page's defaults, e.g.
`/?start=5&count=2&mode=joint&pair=1&eig=3`. Opening it sets the controls and runs that view;
parameters the app does not know are ignored, and a value that does not parse is a `UserError`
naming the parameter. Uploaded images cannot travel in a link.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from ..errors import UserError

# query parameter -> type; the order is the order of a link's parameters
FIELDS: dict[str, type] = {
    "dataset": str, "start": int, "count": int, "indices": str, "model": str, "mode": str,
    "n_eig": int, "sharpness": float, "clusters": int, "seed": int, "special": bool,
    "patch_norm": bool, "crossed": bool, "all_captions": bool,
    "pair": int, "eig": int, "word": int, "overlay": str, "bpe": bool, "show0": bool,
}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
MAX_LENGTH = 500  # characters per value


def _same(value, default, kind) -> bool:
    if kind is float or kind is int:
        try:
            return float(value) == float(default)
        except (TypeError, ValueError):
            return False
    if kind is bool:
        return bool(value) == bool(default)
    return ("" if value is None else str(value)) == ("" if default is None else str(default))


def _text(value, kind) -> str:
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        return str(int(value))
    if kind is float:
        return f"{float(value):g}"
    return str(value)


def query(values: Mapping, defaults: Mapping) -> str:
    """'?a=1&b=2' for the values that differ from the defaults ('' when none do)."""
    pairs = [(name, _text(values[name], kind)) for name, kind in FIELDS.items()
             if name in values and values[name] is not None
             and not _same(values[name], defaults.get(name), kind)]
    return "?" + urlencode(pairs) if pairs else ""


def is_link(params: Mapping) -> bool:
    """Whether a page's query parameters ask for a view (any parameter this app knows)."""
    return any(name in FIELDS for name in params)


def parse(params: Mapping, defaults: Mapping) -> dict:
    """The controls a link asks for: the defaults with the link's parameters applied."""
    values = dict(defaults)
    for name, kind in FIELDS.items():
        if name not in params:
            continue
        raw = str(params[name]).strip()
        if len(raw) > MAX_LENGTH:
            raise UserError(f"The link's {name!r} is too long ({len(raw)} characters).")
        try:
            if kind is bool:
                if raw.lower() not in _TRUE | _FALSE:
                    raise ValueError(raw)
                values[name] = raw.lower() in _TRUE
            elif kind is int:
                values[name] = int(raw)
            elif kind is float:
                values[name] = float(raw)
            else:
                values[name] = raw
        except ValueError:
            raise UserError(f"The link's {name}={raw[:40]!r} is not a valid "
                            f"{'yes/no' if kind is bool else kind.__name__} value.") from None
    if values.get("dataset") == "upload":
        raise UserError("A link cannot carry uploaded images: upload them again on the page.")
    return values


# ----------------------------------------------------------------------------- the run history

_PAGE_DEFAULTS = {"similarity": "cosine", "center": True, "rgb": [1, 2, 3]}


def _listed(value):
    return list(value) if isinstance(value, list | tuple) else value


def values_from_record(record: Mapping, defaults: Mapping, model_choice) -> tuple[dict, list]:
    """The Explore controls that repeat a recorded cuts run (`history.read`), and notes on what
    the page cannot set. `model_choice(name)` maps the recorded model to a dropdown value."""
    params = record.get("parameters") or {}
    sl, cut, model = params.get("slice") or {}, params.get("cut") or {}, params.get("model") or {}
    if sl.get("dataset") == "upload":
        raise UserError("Runs on uploaded images cannot be restored: upload them again.")
    values = dict(defaults)
    values.update(
        dataset=sl.get("dataset", defaults["dataset"]), start=sl.get("start", 0),
        count=sl.get("count", defaults["count"]),
        indices=", ".join(map(str, sl["indices"])) if sl.get("indices") else "",
        model=model_choice(model.get("name")), mode=cut.get("mode", "scalar"),
        n_eig=cut.get("n_eig", defaults["n_eig"]), sharpness=cut.get("sharpness") or 0,
        clusters=cut.get("clusters", defaults["clusters"]), seed=cut.get("seed", 0),
        special=bool(cut.get("include_special")), patch_norm=model.get("patch_norm", True),
        crossed=bool(sl.get("crossed_pairs")), all_captions=bool(sl.get("all_captions")))
    notes = [f"{name} = {cut[name]}" for name, default in _PAGE_DEFAULTS.items()
             if name in cut and _listed(cut[name]) != default]
    notes += [f"{name} = {model[name]}" for name in ("layer", "dtype", "device")
              if model.get(name) is not None]
    if sl.get("data_path"):
        notes.append("a local copy of the dataset (--data-path)")
    return values, notes
