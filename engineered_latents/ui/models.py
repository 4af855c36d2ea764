"""Which models the browser may ask for: the default, known Hub ids, a typed Hub id, or a local
directory from the allow-list in `EL_MODEL_DIRS` (never an arbitrary path typed in the page).

`EL_MODEL_DIRS` is a list of folders separated by the OS path separator (":" on Linux); each
folder that holds a `config.json` is a model, and so is each of its direct subfolders that does.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..config import ModelSpec, Settings
from ..errors import UserError
from ..models import DEFAULT_MODEL

DEFAULT_CHOICE = "default"
LOCAL_PREFIX = "local:"
HUB_MODELS = (
    ("ViT-B/32", DEFAULT_MODEL),
    ("ViT-B/16", "openai/clip-vit-base-patch16"),
    ("ViT-L/14", "openai/clip-vit-large-patch14"),
    # open CLIPs with transformers weights (CLIPModel), next to their open_clip ones
    ("LAION ViT-B/32", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    ("LAION ViT-H/14", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
    ("DataComp ViT-L/14", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K"),
    ("MetaCLIP ViT-B/32", "facebook/metaclip-b32-400m"),
    # SigLIP and SigLIP 2 at fixed resolution (SiglipModel; engineered_latents.siglip)
    ("SigLIP B/16", "google/siglip-base-patch16-224"),
    ("SigLIP 2 B/16", "google/siglip2-base-patch16-224"),
)
# owner/name (or a bare name) made of the characters Hub ids allow; no "..", no leading dot.
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


def model_folders(env: dict | None = None) -> tuple[str, ...]:
    """The folders whose models the page may load: EL_MODEL_DIRS, then the models trained on
    the Train tab (`<cache>/models`, listed once their training has written the model)."""
    settings = Settings.from_env(env)
    return (*settings.model_dirs, str(Path(settings.cache_dir) / "models"))


def allowed_local_models(env: dict | None = None) -> dict[str, str]:
    """label -> directory of every model found under the folders listed in EL_MODEL_DIRS and
    of the trained models under `<cache>/models`."""
    found: dict[str, str] = {}
    for folder in model_folders(env):
        root = Path(folder).expanduser()
        if not root.is_dir():
            continue
        candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
        for path in candidates:
            if (path / "config.json").is_file() and str(path.resolve()) not in found.values():
                label = path.name
                while label in found:
                    label += "'"
                found[label] = str(path.resolve())
    return found


def model_choices(default_model: str | None = None, env: dict | None = None) -> list[tuple]:
    """(label, value) pairs for the model dropdown; the first is the default."""
    if default_model is None:
        choices = [("ViT-B/32 (default)", DEFAULT_CHOICE)]
        hub = HUB_MODELS[1:]
    else:
        choices = [(f"{Path(default_model).name or default_model} (default)", DEFAULT_CHOICE)]
        hub = HUB_MODELS
    choices += [(f"{label}  {repo}", repo) for label, repo in hub]
    choices += [(f"local: {label}", LOCAL_PREFIX + label)
                for label in allowed_local_models(env)]
    return choices


def model_spec_for(
    choice: str | None, default_model: str | None = None, patch_norm: bool = True,
    env: dict | None = None,
) -> ModelSpec:
    """The ModelSpec a dropdown value (or a typed Hub id) means; anything else is refused."""
    choice = (choice or DEFAULT_CHOICE).strip()
    if choice == DEFAULT_CHOICE:
        return ModelSpec(name=default_model, patch_norm=patch_norm)
    if choice.startswith(LOCAL_PREFIX):
        allowed = allowed_local_models(env)
        label = choice[len(LOCAL_PREFIX):].strip()
        if label not in allowed:
            raise UserError(
                f"No local model {label!r} among the allowed folders: local models must be in a "
                "folder listed in EL_MODEL_DIRS on the server."
            )
        return ModelSpec(name=allowed[label], patch_norm=patch_norm)
    if not _HUB_ID.match(choice) or ".." in choice:
        raise UserError(
            f"{choice[:100]!r} is not a Hugging Face model id: type one like "
            "openai/clip-vit-base-patch16. Local paths are not accepted from the page; put local "
            "models in a folder listed in EL_MODEL_DIRS on the server."
        )
    if Path(choice).exists():  # the library would read it as a local path: refuse it here
        raise UserError(
            f"{choice!r} names a local path on the server, which the page may not load: put the "
            "model in a folder listed in EL_MODEL_DIRS, or type a Hub id."
        )
    return ModelSpec(name=choice, patch_norm=patch_norm)


def choice_for(name: str | None, default_model: str | None = None, env: dict | None = None) -> str:
    """The dropdown value that means the model `name` (a run's recorded model): the reverse of
    `model_spec_for`. A local folder outside EL_MODEL_DIRS is refused."""
    if name is None or name == default_model or (default_model is None and name == DEFAULT_MODEL):
        return DEFAULT_CHOICE
    path = Path(name).expanduser()
    if path.is_absolute() or path.exists():
        real = str(path.resolve())
        for label, folder in allowed_local_models(env).items():
            if folder == real:
                return LOCAL_PREFIX + label
        raise UserError(f"That run used a local model ({path.name!r}) that is not in a folder "
                        "listed in EL_MODEL_DIRS, so the page cannot load it.")
    return name
