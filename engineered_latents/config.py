"""What a run is, as frozen dataclasses, and the settings read from the environment (one place)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from .errors import UserError


@dataclass(frozen=True)
class ModelSpec:
    name: str | None = None  # Hub id or local directory; None = the default, with offline fallback
    device: str | None = None  # cpu, cuda, mps; None = best available
    dtype: str | None = None  # encoder dtype; None/auto: fp16 CUDA, bf16 on bf16 CPUs, else fp32
    layer: int | None = None  # hidden-state index for patches and tokens; None = last layer
    patch_norm: bool = True  # vision post_layernorm before the projection


@dataclass(frozen=True)
class SliceSpec:
    dataset: str = "demo"
    start: int = 0
    count: int = 8
    indices: tuple[int, ...] | None = None  # explicit example indices instead of start/count
    data_path: str | None = None  # a local copy laid out like the dataset's Hub repository
    crossed_pairs: bool = False  # Winoground-style: also (image_0, caption_1), (image_1, caption_0)
    all_captions: bool = False  # coco, flickr30k: one pair per caption, not the first only
    captions_file: str | None = None  # upload: the captions file, if not a standard name


AUTO_CLUSTERS = 6  # k-way clusters when none are asked for: min(6, n_eig)
AUTO_RGB = (1, 2, 3)  # eigenvectors shown as RGB when none are asked for (capped at n_eig - 1)
COLOUR_FIELDS = ("rgb", "colour", "perplexity")  # CutSpec fields of the view, not of the cut
COLOUR_METHODS = ("rgb", "tsne", "umap")  # CutSpec.colour (see colouring.py)


def auto_rgb(n_eig: int) -> tuple[int, int, int]:
    """The RGB eigenvectors when none are asked for: 1, 2, 3, capped at n_eig - 1."""
    return tuple(min(c, n_eig - 1) for c in AUTO_RGB)


@dataclass(frozen=True)
class CutSpec:
    mode: str = "scalar"  # scalar | joint
    n_eig: int = 20
    seed: int = 0
    similarity: str = "cosine"  # cosine | dot (the original)
    include_special: bool = False  # CLS patch and start/end tokens as nodes
    center: bool = True  # joint mode: centre and L2-normalize each modality
    clusters: int | None = None  # k for k-way clusters (at most n_eig); None: min(6, n_eig)
    sharpness: float | None = None  # ncut-pytorch A_degree; lower is sharper; None = its default
    rgb: tuple[int, int, int] | None = None  # eigenvectors shown as RGB; None: 1, 2, 3
    # how the RGB view colours the slice (`colouring.py`): rgb = the three eigenvectors above;
    # tsne / umap = a 3-d embedding of eigenvectors 1..k-1. Not part of the cut's cache key.
    colour: str = "rgb"
    perplexity: int = 30  # t-SNE's perplexity (colour tsne)

    def __post_init__(self):
        # a default never breaks another option: what is not asked for fits n_eig
        if isinstance(self.n_eig, int) and self.n_eig >= 2:
            if self.clusters is None:
                object.__setattr__(self, "clusters", min(AUTO_CLUSTERS, self.n_eig))
            if self.rgb is None:
                object.__setattr__(self, "rgb", auto_rgb(self.n_eig))
        elif self.rgb is None:
            object.__setattr__(self, "rgb", AUTO_RGB)


def graph_fields(spec: CutSpec) -> dict:
    """The fields of a cut spec that change the cut (its cache key): all but the colouring's."""
    return {k: v for k, v in asdict(spec).items() if k not in COLOUR_FIELDS}


def _env_number(env, name: str, default, kind=int, lo=None):
    raw = env.get(name)
    if raw is None or not str(raw).strip():
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise UserError(f"{name}={raw!r} is not a {'whole number' if kind is int else 'number'}: "
                        f"unset it (default {default}) or give one.") from None
    if lo is not None and not value >= lo:
        raise UserError(f"{name}={raw!r} is below {lo}: unset it (default {default}) or raise "
                        "it.")
    return value


def _env_switch(env, name: str) -> bool | None:
    raw = str(env.get(name, "")).strip().lower()
    if not raw:
        return None
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise UserError(f"{name}={env.get(name)!r} is not a switch: give 1 or 0, or unset it.")


def _env_paths(env, name: str) -> tuple[str, ...]:
    return tuple(p for p in env.get(name, "").split(os.pathsep) if p)


@dataclass(frozen=True)
class Settings:
    """Every `EL_*` setting, read from the environment here and nowhere else (`from_env`)."""

    cache_dir: str = "cache"  # EL_CACHE_DIR: results, embeddings, the run history
    cache_size_gb: float = 10.0  # EL_CACHE_SIZE_GB
    max_count: int = 64  # EL_MAX_COUNT: most examples per cuts run
    app_model: str | None = None  # EL_APP_MODEL: the page's default model
    model_dirs: tuple[str, ...] = ()  # EL_MODEL_DIRS: folders whose models the page may load
    data_root: str | None = None  # EL_DATA_ROOT: local dataset mirrors, one per Hub repository
    export_dir: str | None = None  # EL_EXPORT_DIR: where the page's downloads are written
    max_uploads: int = 32  # EL_MAX_UPLOADS: most images one upload run takes
    max_upload_size: str = "20mb"  # EL_MAX_UPLOAD: largest uploaded file
    queue_size: int = 32  # EL_QUEUE_SIZE: events that may wait (at least 16)
    gpu_duration_s: int = 120  # EL_GPU_DURATION: the most one ZeroGPU call may hold the GPU
    cpu_bf16: bool | None = None  # EL_CPU_BF16: 1/0 = bfloat16/float32 encoders for an auto
    # dtype on the CPU; unset: bfloat16 where the CPU has native bf16 units (AMX, AVX-512 BF16)
    allow_train: bool | None = None  # EL_ALLOW_TRAIN: 1/0 = the Train tab on/off; unset: on
    # for a local app, off when shared publicly (--share, a Space) and on ZeroGPU
    max_train_jobs: int = 1  # EL_MAX_TRAIN_JOBS: training runs one server runs at a time

    @classmethod
    def from_env(cls, env=None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            cache_dir=env.get("EL_CACHE_DIR") or "cache",
            cache_size_gb=_env_number(env, "EL_CACHE_SIZE_GB", 10.0, float, lo=0.001),
            max_count=_env_number(env, "EL_MAX_COUNT", 64, lo=1),
            app_model=env.get("EL_APP_MODEL") or None,
            model_dirs=_env_paths(env, "EL_MODEL_DIRS"),
            data_root=env.get("EL_DATA_ROOT") or None,
            export_dir=env.get("EL_EXPORT_DIR") or None,
            max_uploads=_env_number(env, "EL_MAX_UPLOADS", 32, lo=1),
            max_upload_size=env.get("EL_MAX_UPLOAD") or "20mb",
            queue_size=max(16, _env_number(env, "EL_QUEUE_SIZE", 32, lo=1)),
            gpu_duration_s=_env_number(env, "EL_GPU_DURATION", 120, lo=1),
            cpu_bf16=_env_switch(env, "EL_CPU_BF16"),
            allow_train=_env_switch(env, "EL_ALLOW_TRAIN"),
            max_train_jobs=_env_number(env, "EL_MAX_TRAIN_JOBS", 1, lo=1),
        )
