"""`TrainSpec`: every option of a fine-tuning run, checked before any work starts."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..errors import UserError
from .losses import LOSSES, parse_loss

TRAINABLE = ("full", "lora", "projections", "last-N")
OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("cosine", "linear", "constant")
GRAPHS = ("pooled", "tokens")
TRACKERS = ("none", "trackio")
DTYPES = ("float32", "bfloat16", "float16")
# Early-stopping metrics and whether lower is better.
METRICS = {"val_loss": True, "cosine": False, "r1_i2t": False, "r1_t2i": False}
# Options that do not change what is trained: a rerun may differ in them and still resume.
NOT_IDENTITY = ("out", "overwrite", "track", "eval", "eval_limit", "cache_dir", "device",
                "workers")


@dataclass(frozen=True)
class TrainSpec:
    out: str
    model: str | None = None  # Hub id or local directory; None: the default (toy offline)
    dataset: str = "demo"
    data_path: str | None = None
    split: str | None = None  # None: train (coco, flickr30k), files (upload), generated (demo)
    start: int = 0
    count: int | None = None  # None: demo 512 scenes, else the whole split
    val_dataset: str | None = None  # None: the dataset's held-out split (or --val-fraction)
    val_data_path: str | None = None  # local copy of --val-dataset (default: --data-path)
    val_count: int = 64
    val_fraction: float | None = None
    loss: str = "contrastive"
    k: int = 3
    alpha: float = 1.0
    beta: float = 0.5
    gamma: float = 1.0
    cluster_graph: str = "pooled"
    cluster_nodes: int = 256
    train: str = "full"  # full | lora | projections | last-N (e.g. last-2)
    lora_rank: int = 8
    steps: int | None = None  # None: from --epochs, else 100
    epochs: float | None = None
    batch_size: int = 32
    accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup: str = "0"  # steps ("100") or epochs ("10ep")
    min_lr: float = 0.0
    grad_clip: float = 1.0  # 0: off
    val_every: int = 50
    checkpoint_every: int = 100
    keep: int = 3
    early_stop: str | None = None  # "METRIC:PATIENCE" (in validations), e.g. "val_loss:15"
    seed: int = 42
    device: str | None = None
    dtype: str | None = None  # None: bfloat16 autocast on CUDA with bf16, float32 elsewhere
    cache_dir: str | None = None
    overwrite: bool = False
    track: str = "trackio"
    eval: str | None = None  # comma-separated benchmarks, before and after
    eval_limit: int | None = None
    workers: int = 0  # DataLoader processes preparing batches; 0: one thread
    shuffle_buffer: int = 1000  # streamed datasets (coco, flickr30k): pairs in the buffer

    def __post_init__(self) -> None:
        check(self)

    def to_json(self) -> dict:
        return asdict(self)

    def identity(self) -> dict:
        """The options that decide the result (a resume must match them)."""
        return {k: v for k, v in asdict(self).items() if k not in NOT_IDENTITY}

    @property
    def terms(self):
        return parse_loss(self.loss)

    @property
    def last_n(self) -> int | None:
        match = re.fullmatch(r"last-(\d+)", self.train)
        return int(match.group(1)) if match else None

    def warmup_steps(self, steps_per_epoch: int) -> int:
        text = self.warmup.strip()
        if text.endswith("ep"):
            return round(float(text[:-2]) * steps_per_epoch)
        return int(text)


def differing(old: dict, new: dict) -> list[str]:
    """The names of the fields whose values differ between two `identity()` dicts."""
    names = list(new) + [n for n in old if n not in new]
    return [n for n in names if old.get(n) != new.get(n)]


def _one_of(value, allowed, option: str) -> None:
    if value not in allowed:
        raise UserError(f"{option} {value!r} is not one of {', '.join(allowed)}.")


def check(spec: TrainSpec) -> None:
    """Refuse values no run can use (the CLI's converters catch most of them earlier)."""
    parse_loss(spec.loss)
    _one_of(spec.optimizer, OPTIMIZERS, "--optimizer")
    _one_of(spec.scheduler, SCHEDULERS, "--scheduler")
    _one_of(spec.cluster_graph, GRAPHS, "--cluster-graph")
    _one_of(spec.track, TRACKERS, "--track")
    if spec.dtype is not None:
        _one_of(spec.dtype, DTYPES, "--dtype")
    if spec.train not in TRAINABLE[:3] and (spec.last_n is None or spec.last_n < 1):
        raise UserError(f"--train {spec.train!r}: use full, lora, projections or last-N "
                        "(N >= 1 blocks of each tower, e.g. last-2).")
    if spec.workers < 0:
        raise UserError(f"--workers {spec.workers} must be at least 0.")
    if spec.shuffle_buffer < 0:
        raise UserError(f"--shuffle-buffer {spec.shuffle_buffer} must be at least 0 (0: the "
                        "file order).")
    _positive(spec, ("batch_size", "accum", "val_every", "checkpoint_every", "keep", "lora_rank",
                     "val_count", "cluster_nodes"))
    if spec.batch_size < 2:
        raise UserError("--batch-size 1: the batch losses (CKA, SVD, contrastive) need at least "
                        "2 pairs per batch; give --batch-size 2 or more (and --accum for memory).")
    if spec.steps is not None and spec.steps < 1:
        raise UserError(f"--steps {spec.steps}: give at least 1 step.")
    if spec.epochs is not None and spec.epochs <= 0:
        raise UserError(f"--epochs {spec.epochs}: give a positive number of epochs.")
    if spec.steps is not None and spec.epochs is not None:
        raise UserError("Give --steps or --epochs, not both.")
    if not spec.lr > 0:
        raise UserError(f"--lr {spec.lr}: the learning rate must be above 0.")
    if spec.min_lr < 0 or spec.min_lr > spec.lr:
        raise UserError(f"--min-lr {spec.min_lr} must be in [0, --lr {spec.lr}].")
    if min(spec.alpha, spec.beta, spec.gamma) < 0:
        raise UserError("--alpha, --beta and --gamma must be at least 0.")
    if spec.k < 1:
        raise UserError(f"--k {spec.k}: k counts clusters or singular values, at least 1.")
    _check_k_fits(spec)
    if spec.val_fraction is not None and not 0 < spec.val_fraction < 1:
        raise UserError(f"--val-fraction {spec.val_fraction} must be between 0 and 1.")
    if not re.fullmatch(r"\s*(\d+|\d+(\.\d*)?ep)\s*", spec.warmup):
        raise UserError(f"--warmup {spec.warmup!r}: give steps (100) or epochs (10ep).")
    _check_early_stop(spec.early_stop)


def _positive(spec: TrainSpec, names) -> None:
    for name in names:
        if getattr(spec, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(spec, name)} must be at "
                            "least 1.")


def _check_k_fits(spec: TrainSpec) -> None:
    """k must leave a gap after it: below the batch (SVD: rank <= rows) and the graph's nodes."""
    terms = parse_loss(spec.loss)
    names = {t.name for t in terms}
    uses_k = [n for n in names if "k" in LOSSES[n]]
    if not uses_k:
        return
    nodes = 2 * spec.batch_size if spec.cluster_graph == "pooled" else spec.cluster_nodes
    if names & {"svd", "clip_svd"} and spec.k >= spec.batch_size:
        raise UserError(f"--k {spec.k} needs a batch of more than k pairs for the SVD loss "
                        f"(--batch-size {spec.batch_size}): lower --k or raise --batch-size.")
    if names & {"cluster", "cluster_tight"} and spec.k >= nodes - 1:
        raise UserError(f"--k {spec.k} is beyond the batch graph ({nodes} nodes): lower --k "
                        "or raise --batch-size / --cluster-nodes.")


def _check_early_stop(text: str | None) -> None:
    if text is None:
        return
    match = re.fullmatch(r"(\w+):(\d+)", text.strip())
    if not match or match.group(1) not in METRICS or int(match.group(2)) < 1:
        raise UserError(f"--early-stop {text!r}: give METRIC:PATIENCE with METRIC one of "
                        f"{', '.join(METRICS)} and PATIENCE >= 1 validations, e.g. val_loss:15.")


def early_stop(text: str | None) -> tuple[str, int | None]:
    """(metric, patience) of an --early-stop value; the metric is val_loss without one."""
    if text is None:
        return "val_loss", None
    name, patience = text.strip().split(":")
    return name, int(patience)
