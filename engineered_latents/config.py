"""What a run is, as frozen dataclasses, and the settings read from the environment (one place)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelSpec:
    name: str | None = None  # Hub id or local directory; None = the default, with offline fallback
    device: str | None = None  # cpu, cuda, mps; None = best available
    dtype: str | None = None  # encoder dtype; None = float16 on CUDA, float32 elsewhere
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


@dataclass(frozen=True)
class CutSpec:
    mode: str = "scalar"  # scalar | joint
    n_eig: int = 20
    seed: int = 0
    similarity: str = "cosine"  # cosine | dot (the original)
    include_special: bool = False  # CLS patch and start/end tokens as nodes
    center: bool = True  # joint mode: centre and L2-normalize each modality
    clusters: int = 6  # k for k-way clusters (at most n_eig)
    sharpness: float | None = None  # ncut-pytorch A_degree; lower is sharper; None = its default
    rgb: tuple[int, int, int] = (1, 2, 3)  # eigenvectors shown as RGB


@dataclass(frozen=True)
class Settings:
    cache_dir: str
    cache_size_gb: float
    max_count: int  # most examples per cuts run

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            cache_dir=os.environ.get("EL_CACHE_DIR") or "cache",
            cache_size_gb=float(os.environ.get("EL_CACHE_SIZE_GB", 10)),
            max_count=int(os.environ.get("EL_MAX_COUNT", 64)),
        )
