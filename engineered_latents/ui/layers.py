"""The page's Layer control: which hidden state patches and tokens are read from.

Explore has a slider from -1 to the model's depth: -1 is the last layer (the default, the spec's
`layer=None`), 0 the embeddings, i the output of layer i. Compare has a field per side (empty =
last). The range comes from the chosen model's config.json (`models.tower_depths`, the smaller
of the two towers, as `models.check_layer` counts), read without loading the model and without
downloading weights: a local folder's file, a cached snapshot, or for a Hub id not cached yet
its config.json alone. When the depth cannot be known (offline, not cached) the slider keeps the
control table's page range and the run's layer check says what the model has.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import gradio as gr

from ..controls import CONTROLS
from ..errors import UserError
from .models import model_spec_for

log = logging.getLogger(__name__)

LAST = -1  # the slider's "last layer": the spec's layer=None
_HUB_DEPTHS: dict[str, int] = {}  # Hub id -> depth (config.json of a commit does not change)
_LOCK = threading.Lock()


def page_max() -> int:
    """The slider's top when the model's depth is unknown (the control table's page range)."""
    c = CONTROLS["layer"]
    return int(c.page_hi or c.hi)


def spec_layer(value) -> int | None:
    """The spec's layer for a slider or link value: None (last layer) for -1 or empty."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    layer = CONTROLS["layer"].check(value)
    return None if layer == LAST else layer


def page_value(layer: int | None) -> int:
    """The slider value for a spec's layer (None: -1, the last layer)."""
    return LAST if layer is None else int(layer)


def _config_depth(folder: str | Path) -> int:
    from ..models import ResolvedModel, tower_depths

    return min(tower_depths(ResolvedModel(str(folder), "", str(folder))))


def _hub_depth(repo_id: str) -> int | None:
    from ..models import _cached_snapshot, hub_offline

    with _LOCK:
        if repo_id in _HUB_DEPTHS:
            return _HUB_DEPTHS[repo_id]
    cached = _cached_snapshot(repo_id)
    if cached is not None:
        depth = _config_depth(cached)
    elif hub_offline():
        return None
    else:
        from huggingface_hub import hf_hub_download

        depth = _config_depth(Path(hf_hub_download(repo_id, "config.json")).parent)
    with _LOCK:
        _HUB_DEPTHS[repo_id] = depth
    return depth


def model_depth(name: str | None) -> int | None:
    """Layers of the model `name` (a ModelSpec name: None for the default, a Hub id or a local
    folder) as the layer check counts them; None when it cannot be known without loading it."""
    from ..models import DEFAULT_MODEL, _cached_snapshot, hub_offline, tower_depths, toy_resolved

    try:
        if name is None:  # the default: the cached model, else its offline fallback
            if _cached_snapshot(DEFAULT_MODEL) is None and hub_offline():
                return min(tower_depths(toy_resolved()))
            return _hub_depth(DEFAULT_MODEL)
        folder = Path(name).expanduser()
        if folder.is_dir():
            return _config_depth(folder) if (folder / "config.json").is_file() else None
        return _hub_depth(name)
    except Exception as e:  # noqa: BLE001 - an unknown depth: the run's own check speaks
        log.info("Layer count of %s not known: %s", name, e)
        return None


def choice_depth(choice, default_model: str | None = None) -> int | None:
    """`model_depth` of a model picker's value (None for a value the picker would refuse)."""
    try:
        spec = model_spec_for(choice, default_model)
    except UserError:
        return None
    return model_depth(spec.name)


def _info(depth: int | None) -> str:
    if depth is None:
        return ("hidden-state index: -1 = last layer, 0 = embeddings (the layer count is read "
                "when the model is loaded)")
    return f"hidden-state index: -1 = last layer, 0 = embeddings, 1-{depth}: after layer i"


def layer_slider(depth: int | None, **kwargs) -> gr.Slider:
    """Explore's Layer slider for a model with `depth` layers (None: unknown)."""
    top = page_max() if depth is None else depth
    return gr.Slider(LAST, top, value=LAST, step=1, label="Layer", info=_info(depth), **kwargs)


def slider_update(depth: int | None, value=LAST) -> dict:
    """The slider's range for a model with `depth` layers, keeping `value` where it exists
    there (else the last layer, and its help says so: a linked or kept layer beyond the new
    model's depth)."""
    top = page_max() if depth is None else depth
    try:
        value = LAST if value is None else int(value)
    except (TypeError, ValueError):
        value = LAST
    info = _info(depth)
    if not LAST <= value <= top:  # said where the user looks (a model change has no toast)
        info = f"layer {value} does not exist in this model: back at -1 (last); {info}"
        value = LAST
    return gr.update(minimum=LAST, maximum=top, value=value, info=info)


def field_update(depth: int | None) -> dict:
    """A Compare layer field's help for a model with `depth` layers (empty = last)."""
    if depth is None:
        return gr.update(info="empty = last")
    return gr.update(info=f"empty = last; 0-{depth}")
