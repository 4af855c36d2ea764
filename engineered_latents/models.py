"""Load a CLIP: a Hub id or a local `save_pretrained` directory, with an offline fallback.

`resolve_model` decides *which weights* a name means (cheaply, without loading them) and gives
them an identity for cache keys: `<hub id>@<commit sha>`, `local:<fingerprint>`,
`toy-<fingerprint>` or `demo-seed-N` (a SigLIP's prefixed `siglip:`, see `siglip`). `load_model`
loads them once per process and device.

Offline fallback: when the default model is neither in the local Hugging Face cache nor
downloadable, a toy CLIP trained on the demo's synthetic shapes (package data
`engineered_latents/assets/toy_clip/`, see `engineered_latents.toy`) is used ("demo weights",
identity `toy-<fingerprint>`); only if that folder is missing, the ViT-B/32 architecture with
seeded random weights (`demo_resolved()`, also what the performance command measures).
Results say so everywhere. A model the user named explicitly never falls back silently: it is
an error.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from .errors import UserError
from .lazy import torch  # imported on first use: a cached run's key needs no torch

log = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/clip-vit-base-patch32"
DEMO_SEED = 0
ASSETS = Path(__file__).resolve().parent / "assets"  # package data
BPE_VOCAB = ASSETS / "clip_bpe" / "bpe_simple_vocab_16e6.txt.gz"
DEMO_WARNING = (
    "DEMO WEIGHTS: the real model could not be loaded (no network and not in the local cache), "
    "so a randomly initialised ViT-B/32 is used. Every number and heatmap is meaningless."
)
TOY_DIR = ASSETS / "toy_clip"
TOY_LABEL = "toy model trained on synthetic shapes"
TOY_WARNING = (
    f"DEMO WEIGHTS: {TOY_LABEL}. The real model could not be loaded (no network and not in the "
    "local cache), so a small CLIP that knows only coloured shapes on white is used: its word "
    "maps show real structure on the demo scenes, but say nothing about CLIP."
)
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model"]  # .model: SigLIP's SentencePiece
_LOAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class ResolvedModel:
    """Which weights a model name means, known before they are loaded."""

    name: str  # what the user asked for
    weights_id: str  # identity for cache keys
    path: str | None  # local directory to load from; None for demo weights
    demo_weights: bool = False
    warning: str = ""
    family: str = "clip"  # "clip" or "siglip" (engineered_latents.siglip): how it is encoded

    @property
    def demo_label(self) -> str:
        """What demo weights are, in a few words (empty for real weights)."""
        if not self.demo_weights:
            return ""
        return TOY_LABEL if self.weights_id.startswith("toy-") else "random weights"


@dataclass
class LoadedModel:
    resolved: ResolvedModel
    model: torch.nn.Module  # transformers CLIPModel, eval mode
    tokenizer: object  # CLIPTokenizer (fast)
    processor: object  # CLIPImageProcessorPil
    device: torch.device
    dtype: torch.dtype

    @property
    def family(self) -> str:
        return self.resolved.family

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Patches per side of the vision tower's grid (7x7 for B/32 at 224 px), from the config."""
        vc = self.model.config.vision_config
        side = vc.image_size // vc.patch_size
        return side, side


# ----------------------------------------------------------------------------- devices


def device_type(requested: str | None = None) -> str:
    """The type ("cpu", "cuda", "mps") of the device `pick_device(requested)` picks, without
    importing torch where the answer is certain: CPU asked for, or nothing asked for on a Linux
    machine with no GPU device nodes (NVIDIA, ROCm, WSL). The cache keys use it, so a cached
    run never imports torch."""
    import sys

    if "torch" not in sys.modules:
        if requested == "cpu":
            return "cpu"
        if not requested or requested == "auto":
            gpu_nodes = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
            if sys.platform.startswith("linux") and not any(map(os.path.exists, gpu_nodes)):
                return "cpu"
    return pick_device(requested).type


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` if given ("cpu", "cuda", "cuda:1", "mps"), else CUDA, else MPS, else CPU."""
    if requested and requested != "auto":
        try:
            device = torch.device(requested)
        except RuntimeError as e:
            raise UserError(f"Unknown device {requested!r}: use cpu, cuda or mps.") from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError("--device cuda was asked for, but no CUDA GPU is available here.")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise UserError("--device mps was asked for, but MPS is not available here.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


DTYPE_NAMES = ("float32", "float16", "bfloat16")


def pick_dtype(requested: str | None, device: torch.device,
               cpu_bf16: bool | None = None) -> torch.dtype:
    """The torch dtype of `dtype_choice(requested, device.type, cpu_bf16)`."""
    return getattr(torch, dtype_choice(requested, device.type, cpu_bf16))


def dtype_choice(requested: str | None, device_type: str, cpu_bf16: bool | None = None) -> str:
    """Encoder dtype: `requested` ("float32", "float16", "bfloat16"), else ("auto" or None)
    float16 on CUDA, bfloat16 on a CPU with native bf16 units, float32 elsewhere.

    `cpu_bf16` overrides the CPU check (None: `Settings.cpu_bf16`, i.e. EL_CPU_BF16, else the
    CPU's flags). Benchmarks pass "float32" (their protocol). Similarities, the NCut input and
    every score are float32, whatever the encoders run in.
    """
    if requested and requested != "auto":
        if requested not in DTYPE_NAMES:
            raise UserError(f"Unknown dtype {requested!r}: use one of {', '.join(DTYPE_NAMES)}.")
        return requested
    if device_type == "cuda":
        return "float16"
    if device_type == "cpu":
        if cpu_bf16 is None:
            from .config import Settings

            cpu_bf16 = Settings.from_env().cpu_bf16
        if cpu_bf16 if cpu_bf16 is not None else cpu_has_native_bf16():
            return "bfloat16"
    return "float32"


BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 units


def cpu_has_native_bf16(flags: str | None = None) -> bool:
    """Whether the CPU has native bfloat16 units (AMX or AVX-512 BF16), from a /proc/cpuinfo
    flags string (None: this machine's)."""
    words = set((_cpu_flags() if flags is None else flags).split())
    return any(flag in words for flag in BF16_CPU_FLAGS)


@lru_cache(maxsize=1)
def _cpu_flags() -> str:
    """This CPU's flags line from /proc/cpuinfo ("" where there is none: not Linux x86)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1]
    except OSError:
        pass
    return ""


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ----------------------------------------------------------------------------- resolving


def resolve_model(name: str | None = None) -> ResolvedModel:
    """Which weights `name` (a Hub id or a local directory) means, downloading them if needed.

    `None` means the default model, which falls back to demo weights when it is unavailable; a
    model named explicitly (even the default's id) that cannot be had is a `UserError`.
    """
    if name is None or not name.strip():
        return _resolve_hub(DEFAULT_MODEL, fallback=True)
    name = name.strip()
    local = Path(name).expanduser()
    if local.is_dir():
        return _resolve_local(local, name)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"Model directory {name!r} does not exist.")
    return _resolve_hub(name, fallback=False)


def _resolve_local(path: Path, name: str) -> ResolvedModel:
    files = [p.name for p in path.iterdir() if p.is_file()]
    check_checkpoint(files, name, lambda: _read_config(path / "config.json", name))
    return _with_family(ResolvedModel(name, f"local:{model_dir_digest(path)}",
                                      str(path.resolve())))


# model_type values of config.json this package loads (the SigLIP loader adds its own)
SUPPORTED_MODEL_TYPES = {"clip", "siglip"}
# a transformers checkpoint's weights: one file, or the index of a sharded one
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
OPEN_CLIP_FILES = ("open_clip_config.json", "open_clip_pytorch_model.bin",
                   "open_clip_model.safetensors")
# named in the messages: Hub repositories with transformers weights (the page's presets)
TRANSFORMERS_EXAMPLES = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K or openai/clip-vit-base-patch32"


def check_checkpoint(files, name: str, read_config) -> None:
    """Refuse, before any weights are downloaded, a checkpoint this package cannot load: an
    open_clip-only one, one without config.json, one of another architecture (config.json's
    model_type not in `SUPPORTED_MODEL_TYPES`), one without transformers weights.

    `files`: the file names of the Hub repository or local folder; `read_config()`: its
    config.json as a dict (called only when the file is there)."""
    files = {str(f).rsplit("/", 1)[-1] for f in files}
    weights = bool(files & set(WEIGHT_FILES))
    if not weights and files & set(OPEN_CLIP_FILES):
        raise UserError(
            f"{name!r} is not supported: open_clip-only checkpoint; the open_clip package "
            "pulls torchvision, which does not "
            "install beside the CPU torch build used here; pick a repository with transformers "
            f"weights (config.json and model.safetensors) such as {TRANSFORMERS_EXAMPLES}.")
    if "config.json" not in files:
        raise UserError(
            f"{name!r} is not a model directory (no config.json): give a folder written by "
            "CLIPModel.save_pretrained, or a Hub id.")
    model_type = read_config().get("model_type")
    if model_type == "siglip2":  # NaFlex: variable resolution, not covered
        from .siglip import NAFLEX_MESSAGE

        raise UserError(f"{name!r} {NAFLEX_MESSAGE}")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UserError(
            f"{name!r} is a {model_type!r} model, not a CLIP model: give a transformers CLIP "
            f"checkpoint (config.json model_type {' or '.join(sorted(SUPPORTED_MODEL_TYPES))}, "
            f"e.g. {TRANSFORMERS_EXAMPLES}).")
    if not weights:
        raise UserError(
            f"{name!r} has no transformers weights ({', '.join(WEIGHT_FILES[::2])} or a sharded "
            f"index): pick a repository or folder that has them, such as "
            f"{TRANSFORMERS_EXAMPLES}.")


def _read_config(config: Path, name: str) -> dict:
    import json

    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{name!r} has an unreadable config.json: {e}") from e
    if not isinstance(data, dict):
        raise UserError(f"{name!r} has a config.json that is not a JSON object.")
    return data


def _check_is_clip(config: Path, name: str) -> None:
    """A downloaded snapshot: config.json's model_type and the weights (`check_checkpoint`)."""
    files = [p.name for p in config.parent.iterdir()] if config.parent.is_dir() else []
    check_checkpoint(files, name, lambda: _read_config(config, name))


def model_dir_digest(path: Path) -> str:
    """Which weights a model folder holds: a content digest of its files (those up to 64 MB
    hashed whole, larger ones by head, tail and mtime), so a copy elsewhere digests the same.

    Hashed once per state of the folder (names, sizes, mtimes), so resolving the same local
    model on every run costs a few stat calls.
    """
    files = sorted(p for p in Path(path).rglob("*") if p.is_file())
    stamp = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _hash_files(Path(path), stamp)


@lru_cache(maxsize=32)
def _hash_files(path: Path, stamp: tuple, full_hash_below: int = 64 << 20) -> str:
    digest = hashlib.sha256()
    for name, size, mtime_ns in stamp:
        file = Path(name)
        digest.update(f"{file.relative_to(path)}:{size}".encode())
        with file.open("rb") as fh:
            if size <= full_hash_below:
                digest.update(fh.read())
            else:  # head, tail and mtime: cheap, and any rewrite changes the mtime
                digest.update(fh.read(1 << 20))
                fh.seek(-(1 << 20), os.SEEK_END)
                digest.update(fh.read())
                digest.update(str(mtime_ns).encode())
    return digest.hexdigest()[:16]


def _resolve_hub(repo_id: str, fallback: bool) -> ResolvedModel:
    cached = _cached_snapshot(repo_id)
    if cached is not None:
        return _hub_resolved(repo_id, cached)
    if hub_offline():
        reason = "there is no network and it is not in the local Hugging Face cache"
        return _unavailable(repo_id, reason, fallback)
    from huggingface_hub import snapshot_download

    try:
        files = hub_repo_files(repo_id)
    except Exception as e:  # noqa: BLE001 - a missing or gated repository gets its message
        if _is_refusal(e):
            return _unavailable(repo_id, _hub_error_reason(e), fallback)
        files = None  # the listing failed otherwise: the download below says why, if it fails
    if files is not None:
        check_checkpoint(files, repo_id, lambda: _hub_config(repo_id))
    try:
        path = snapshot_download(repo_id, allow_patterns=_download_patterns(files),
                                 ignore_patterns=_HUB_IGNORED)
    except Exception as e:  # noqa: BLE001 - every Hub failure gets a message below
        return _unavailable(repo_id, _hub_error_reason(e), fallback)
    return _hub_resolved(repo_id, path)


_HUB_IGNORED = ["open_clip_*"]  # a repository with both: open_clip's copy is not downloaded


def hub_repo_files(repo_id: str) -> list[str]:
    """The file names of a Hub repository (no download; the checks before a download)."""
    from huggingface_hub import list_repo_files

    return list_repo_files(repo_id)


def _hub_config(repo_id: str) -> dict:
    """A Hub repository's config.json, downloaded alone (a few kB) before its weights."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo_id, "config.json")
    except Exception as e:  # noqa: BLE001 - every Hub failure gets a message
        raise UserError(f"Cannot load model {repo_id!r}: {_hub_error_reason(e)}.") from e
    return _read_config(Path(path), repo_id)


def _download_patterns(files: list[str] | None) -> list[str]:
    """What to download: config, tokenizer and safetensors weights; the .bin weights instead
    where a repository has no safetensors."""
    if files is not None and not any(f.endswith(".safetensors") and
                                     not f.rsplit("/", 1)[-1].startswith("open_clip")
                                     for f in files):
        return [*_HUB_FILES, "pytorch_model*.bin"]
    return list(_HUB_FILES)


def _is_refusal(error: Exception) -> bool:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    return isinstance(error, GatedRepoError | RepositoryNotFoundError)


def _cached_snapshot(repo_id: str) -> str | None:
    # The cache's own layout first (refs/main names the snapshot folder): importing
    # snapshot_download takes a second, which a cached run should not pay.
    from huggingface_hub import constants

    repo_dir = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
    if not repo_dir.is_dir():
        return None  # nothing of this repository is cached
    ref = repo_dir / "refs" / "main"
    if ref.is_file():
        snapshot = repo_dir / "snapshots" / ref.read_text().strip()
        if _complete(snapshot):
            return str(snapshot)
    from huggingface_hub import snapshot_download

    try:
        path = snapshot_download(repo_id, allow_patterns=_HUB_FILES, local_files_only=True)
    except Exception:  # noqa: BLE001 - "not cached" comes in several exception types
        return None
    return path if _complete(Path(path)) else None


def _complete(snapshot: Path) -> bool:
    """A cached snapshot with config.json and weights; one with config.json alone (only the
    checks before a download ran, or the download broke off) is not: its weights are fetched."""
    return (snapshot / "config.json").is_file() and any(
        (snapshot / name).is_file() for name in WEIGHT_FILES)


def _hub_resolved(repo_id: str, path: str) -> ResolvedModel:
    _check_is_clip(Path(path) / "config.json", repo_id)
    return _with_family(ResolvedModel(repo_id, f"{repo_id}@{Path(path).name}", path))


def _with_family(resolved: ResolvedModel) -> ResolvedModel:
    """`resolved` with its config's family; a SigLIP's weights id says so (cache keys)."""
    from dataclasses import replace

    from . import siglip

    family = siglip.config_family(Path(resolved.path) / "config.json", resolved.name)
    if family == "clip":
        return resolved
    return replace(resolved, family=family, weights_id=siglip.weights_id(family,
                                                                          resolved.weights_id))


def _hub_error_reason(error: Exception) -> str:
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(error, GatedRepoError):
        return "it is gated: accept its terms on its Hub page and set HF_TOKEN"
    if isinstance(error, RepositoryNotFoundError):
        return "no such model on the Hugging Face Hub (check the id, or set HF_TOKEN if private)"
    return f"the download failed ({type(error).__name__}: {str(error).splitlines()[0][:200]})"


def _unavailable(repo_id: str, reason: str, fallback: bool) -> ResolvedModel:
    if fallback:
        toy = toy_resolved()
        _warn_once(f"{toy.warning} ({repo_id}: {reason})")
        return toy
    raise UserError(
        f"Cannot load model {repo_id!r}: {reason}. Leave the model out (no --model, or the "
        "page's default choice) to use the offline toy model, or give a local folder written "
        "by save_pretrained, or run once with network access so that it is cached.")


@lru_cache(maxsize=8)
def _warn_once(message: str) -> None:
    """Log a message once per process (the app resolves the default model on every run). At
    INFO: every result carries the warning and shows it once (the CLI's own line, the page's
    banner), so a warning-level log line would repeat it."""
    log.info(message)


CLIP_DEPTHS = (12, 12)  # transformers' CLIPConfig defaults (vision, text): ViT-B/32's


def tower_depths(resolved: ResolvedModel) -> tuple[int, int]:
    """(vision, text) transformer layers of a resolved model, read from its config.json (no
    transformers import: the cached path of a cut stays light)."""
    import json

    if resolved.path is None:  # demo weights: the B/32 architecture
        return CLIP_DEPTHS
    config = json.loads((Path(resolved.path) / "config.json").read_text())
    vision = config.get("vision_config") or {}
    text = config.get("text_config") or {}
    return (int(vision.get("num_hidden_layers", CLIP_DEPTHS[0])),
            int(text.get("num_hidden_layers", CLIP_DEPTHS[1])))


def check_layer(resolved: ResolvedModel, layer: int | None) -> None:
    """Refuse a hidden-state index the model does not have (before anything is encoded)."""
    if layer is None:
        return
    depth = min(tower_depths(resolved))
    if not -(depth + 1) <= layer <= depth:
        raise UserError(
            f"Layer {layer} does not exist: {resolved.name} has {depth} layers, so the "
            f"hidden-state index must be between {-(depth + 1)} and {depth} (0 = embeddings, "
            "-1 = the last layer).")


def demo_resolved(seed: int = DEMO_SEED) -> ResolvedModel:
    """Seeded random ViT-B/32 weights: for the performance command (and if the toy is missing)."""
    return ResolvedModel(DEFAULT_MODEL, f"demo-seed-{seed}", None, True, DEMO_WARNING)


def toy_resolved() -> ResolvedModel:
    """The offline fallback: the toy CLIP in the package data (random weights if missing)."""
    if not (TOY_DIR / "config.json").is_file():
        return demo_resolved()
    return ResolvedModel(DEFAULT_MODEL, f"toy-{model_dir_digest(TOY_DIR)}", str(TOY_DIR), True,
                         TOY_WARNING)


def hub_offline(timeout: float = 2.0) -> bool:
    """True when HF_HUB_OFFLINE is set or the Hub's host cannot be reached within `timeout` s."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return True
    return not _hub_reachable(os.environ.get("HF_ENDPOINT", "https://huggingface.co"), timeout)


HUB_PROBE_TTL_S = 60.0  # a server that started offline uses the Hub once it is back
_HUB_PROBES: dict[tuple[str, float], tuple[float, bool]] = {}


def _hub_reachable(endpoint: str, timeout: float) -> bool:
    """Whether the Hub's host accepts a connection; the answer is kept for a minute."""
    import time

    now = time.monotonic()
    seen = _HUB_PROBES.get((endpoint, timeout))
    if seen is not None and now - seen[0] < HUB_PROBE_TTL_S:
        return seen[1]
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        reachable = True
    except OSError:
        reachable = False
    _HUB_PROBES[(endpoint, timeout)] = (now, reachable)
    return reachable


# ----------------------------------------------------------------------------- loading


@lru_cache(maxsize=1)
def clip_tokenizer_from_vocab():
    """OpenAI's CLIP tokenizer built from the shipped BPE vocabulary (49,408 entries)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.open(BPE_VOCAB).read().decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_symbols = list(bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(
        vocab={v: i for i, v in enumerate(vocab)}, merges=merges, model_max_length=77
    )


def _image_processor(path: str | None):
    from transformers import CLIPImageProcessorPil

    if path and (Path(path) / "preprocessor_config.json").is_file():
        return CLIPImageProcessorPil.from_pretrained(path)
    return CLIPImageProcessorPil()  # OpenAI's preprocessing: 224 px, bicubic, centre crop


def _tokenizer(path: str | None, max_length: int):
    from transformers import CLIPTokenizer

    tokenizer = None
    if path and any((Path(path) / f).is_file() for f in ("tokenizer.json", "vocab.json")):
        tokenizer = CLIPTokenizer.from_pretrained(path)
    if tokenizer is None:
        tokenizer = clip_tokenizer_from_vocab()
    tokenizer.model_max_length = max_length  # else truncation does nothing and 78+ tokens crash
    return tokenizer


def _demo_model(seed: int):
    from transformers import CLIPConfig, CLIPModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CLIPModel(CLIPConfig())


def load_model(
    resolved: ResolvedModel | str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> LoadedModel:
    """Load (once per process) the weights `resolved` names onto a device, in eval mode."""
    if not isinstance(resolved, ResolvedModel):
        resolved = resolve_model(resolved)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    with _LOAD_LOCK:
        return _load_cached(resolved, str(dev), dtype_name(dt))


def available_memory(device: torch.device) -> int | None:
    """Bytes free for a model on `device` (GPU memory, or the host's MemAvailable)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None  # unknown (not Linux): no pre-check


def check_fits(resolved: ResolvedModel, device: torch.device, dtype: torch.dtype) -> None:
    """Refuse a model whose weights would not fit: the OOM killer would take the server down."""
    if resolved.path is None:
        return
    files = list(Path(resolved.path).glob("*.safetensors")) or list(
        Path(resolved.path).glob("*.bin"))
    stored = sum(f.stat().st_size for f in files)
    # checkpoints are stored in float32 or float16; assume float32 (the larger estimate of params)
    needed = stored // 4 * torch.finfo(dtype).bits // 8 * 2  # weights, plus as much for work
    free = available_memory(device)
    if free is not None and needed > free:
        raise UserError(
            f"Model {resolved.name!r} needs about {needed / 2**30:.1f} GB on {device} in "
            f"{dtype_name(dtype)}, but only {free / 2**30:.1f} GB are free: pick a smaller model "
            "or free memory."
        )


@lru_cache(maxsize=2)
def _load_cached(resolved: ResolvedModel, device: str, dtype: str) -> LoadedModel:
    from transformers import CLIPModel

    check_fits(resolved, torch.device(device), getattr(torch, dtype))
    if resolved.family != "clip":
        return _load_family(resolved, device, dtype)
    if resolved.demo_weights and resolved.path is None:
        model = _demo_model(int(resolved.weights_id.rsplit("-", 1)[1]))
    else:
        try:
            model = CLIPModel.from_pretrained(resolved.path)
        except (OSError, ValueError) as e:
            raise UserError(f"Cannot load model {resolved.name!r}: {e}") from e
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    max_length = model.config.text_config.max_position_embeddings
    return LoadedModel(
        resolved, model, _tokenizer(resolved.path, max_length), _image_processor(resolved.path),
        torch.device(device), getattr(torch, dtype),
    )


def _load_family(resolved: ResolvedModel, device: str, dtype: str) -> LoadedModel:
    """A non-CLIP family's model (SigLIP: `siglip.load`), on `device` in `dtype`, eval mode."""
    from . import siglip

    seed = int(resolved.weights_id.rsplit("-", 1)[1]) if resolved.path is None else 0
    model, tokenizer, processor = siglip.load(resolved.path, seed)
    model = model.to(device=device, dtype=getattr(torch, dtype)).eval()
    return LoadedModel(resolved, model, tokenizer, processor, torch.device(device),
                       getattr(torch, dtype))
