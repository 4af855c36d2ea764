"""Restoring Explore views: deep links (the controls as the page URL's query parameters, and
back) and runs from the run history (a recorded cuts run as the controls that repeat it).

A link names only what differs from the page's defaults, e.g.
`/?start=5&count=2&mode=joint&pair=1&eig=3`. Opening it sets the controls and runs that view;
parameters the app does not know are ignored. Every value is checked against the control table
(`controls.CONTROLS`) and the lists' choices before it touches a component: one that fails keeps
its default, with a plain-text warning naming the parameter. Uploaded images cannot travel in a
link.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlencode

from ..colouring import parse_rgb
from ..controls import CONTROLS
from ..errors import UserError, quoted

# the controls a link carries, in a link's order: their kinds and ranges are the control table's
_LINKED = ("dataset", "start", "count", "indices", "model", "mode", "n_eig", "sharpness",
           "clusters", "seed", "include_special", "patch_norm", "crossed_pairs", "all_captions",
           "rgb", "colour", "perplexity")
_TEXT = {"dataset": str, "indices": str, "model": str}
_VIEW = {"pair": int, "eig": int, "word": int, "overlay": str, "bpe": bool, "show0": bool}
_VIEW_RANGES = {"pair": (0, 100_000), "eig": (0, 1000), "word": (-1, 1000)}


def _link_name(name: str) -> str:
    return CONTROLS[name].link_name if name in CONTROLS else name


# query parameter -> type; the order is the order of a link's parameters
FIELDS: dict[str, type] = {
    **{_link_name(n): (CONTROLS[n].kind if n in CONTROLS else _TEXT[n]) for n in _LINKED},
    **_VIEW,
    "layer": CONTROLS["layer"].kind,  # Explore's Layer slider (-1: the last layer)
}
_CONTROL_OF = {_link_name(n): CONTROLS[n] for n in _LINKED if n in CONTROLS}
# the Compare tab's own parameters (its slice and cut are FIELDS'), e.g.
# `/?tab=compare&model_b=openai/clip-vit-base-patch16&layer_b=6&start=3&count=2`
COMPARE_FIELDS: dict[str, type] = {"tab": str, "model_b": str, "layer_a": int, "layer_b": int}
TABS = ("explore", "compare")
_CONTROL_OF.update(layer=CONTROLS["layer"], layer_a=CONTROLS["layer"],
                   layer_b=CONTROLS["layer"])
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


def query(values: Mapping, defaults: Mapping, fields: Mapping[str, type] = FIELDS) -> str:
    """'?a=1&b=2' for the values that differ from the defaults ('' when none do)."""
    pairs = [(name, _text(values[name], kind)) for name, kind in fields.items()
             if name in values and values[name] is not None
             and not _same(values[name], defaults.get(name), kind)]
    return "?" + urlencode(pairs) if pairs else ""


def is_link(params: Mapping) -> bool:
    """Whether a page's query parameters ask for an Explore view (any parameter this app
    knows, and no `tab=compare`: such a link is the Compare tab's, `is_compare_link`)."""
    return not is_compare_link(params) and any(name in FIELDS for name in params)


def is_compare_link(params: Mapping) -> bool:
    """Whether a page's query parameters ask for the Compare tab (`tab=compare`)."""
    return str(params.get("tab", "")).strip() == "compare"


def parse(params: Mapping, defaults: Mapping,
          choices: Mapping[str, Sequence[str]] | None = None,
          fields: Mapping[str, type] = FIELDS) -> tuple[dict, list[str]]:
    """(the controls a link asks for, warnings): the defaults with the link's parameters applied.

    Every value is checked before it touches a component: its kind, the control table's range,
    and the choices of a list (`choices`: parameter -> allowed values, e.g. the datasets). A
    value that fails keeps the default and adds a plain-text warning naming the parameter (the
    rest of the link still applies); the warnings quote at most 40 characters of a value.
    `fields`: the parameters read (the Compare tab's: `{**FIELDS, **COMPARE_FIELDS}`).
    """
    values, warnings = dict(defaults), []
    allowed = {"mode": CONTROLS["mode"].choices, "colour": CONTROLS["colour"].choices,
               "tab": TABS, **(choices or {})}
    for name, kind in fields.items():
        if name not in params:
            continue
        raw = str(params[name]).strip()
        try:
            values[name] = _value(name, kind, raw, allowed.get(name))
        except UserError as e:
            warnings.append(f"The link's {name} was not used ({e}); it keeps its default.")
    if values.get("dataset") == "upload":
        warnings.append("A link cannot carry uploaded images: upload them again on the page.")
        values["dataset"] = defaults.get("dataset")
    return values, warnings


def _value(name: str, kind: type, raw: str, allowed: Sequence[str] | None):
    shown = quoted(raw)
    if len(raw) > MAX_LENGTH:
        raise UserError(f"too long: {len(raw)} characters")
    if kind is bool:
        if raw.lower() not in _TRUE | _FALSE:
            raise UserError(f"{shown} is not a yes/no value")
        return raw.lower() in _TRUE
    if name == "rgb":  # three eigenvector indices, written "1, 2, 3"
        return ", ".join(map(str, parse_rgb(raw)))
    if kind is str:
        if allowed is not None and raw not in allowed:
            raise UserError("not one of the choices")  # not quoted: it may be markup
        return raw
    try:
        number = kind(raw)
    except ValueError:
        raise UserError(f"{shown} is not a valid {kind.__name__} value") from None
    if name == "sharpness" and number == 0:
        return 0.0  # the page's "default bandwidth"
    if name == "clusters" and number == 0:
        return 0  # the page's "default: min(6, n_eig)"
    if name in _CONTROL_OF:
        try:
            return _CONTROL_OF[name].check(number)
        except UserError:
            raise UserError(f"{shown}: {_CONTROL_OF[name].range_text()}") from None
    lo, hi = _VIEW_RANGES.get(name, (None, None))
    if lo is not None and not lo <= number <= hi:
        raise UserError(f"{shown}: allowed [{lo}, {hi}]")
    if kind is float and number != number:  # NaN
        raise UserError(f"{shown} is not a number")
    return number


# ----------------------------------------------------------------------------- the run history

_PAGE_DEFAULTS = {"similarity": "cosine", "center": True}


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
        crossed=bool(sl.get("crossed_pairs")), all_captions=bool(sl.get("all_captions")),
        rgb=", ".join(map(str, cut.get("rgb") or (1, 2, 3))), colour=cut.get("colour", "rgb"),
        perplexity=cut.get("perplexity", CONTROLS["perplexity"].default))
    notes = [f"{name} = {cut[name]}" for name, default in _PAGE_DEFAULTS.items()
             if name in cut and _listed(cut[name]) != default]
    layer = model.get("layer")
    settable = layer is None or (isinstance(layer, int) and layer >= -1)  # the slider's range
    if settable:
        values["layer"] = -1 if layer is None else layer
    notes += [f"{name} = {model[name]}" for name in ("layer", "dtype", "device")
              if model.get(name) is not None and not (name == "layer" and settable)]
    if sl.get("data_path"):
        notes.append("a local copy of the dataset (--data-path)")
    return values, notes
