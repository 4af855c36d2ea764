"""`fit(spec)`: fine-tune a CLIP under HF Accelerate, resumable, and write a model every command
loads.

Batches and processes: `--batch-size` B is the batch every loss sees, whatever the number of
processes: each of W processes encodes B / W pairs, the embeddings are gathered (the local rows
keep their gradient) and every process computes the same loss on all B rows; the backward pass
is scaled by W so that DDP's gradient average is the gradient of that loss. One process and two
processes with the same B thus follow the same history (up to float summation order).
`--accum A` sums the gradients of A such batches per optimizer step (each loss still sees B rows).
With `--cluster-graph tokens` each process builds the tokens graph of its own B / W pairs: the
graph terms are then the mean over the processes of their local graph terms (in value and in
gradient; `_local_graph_loss`), not one graph of all B pairs as a single process builds.
Streamed data (coco, flickr30k) gives each process its own share (`stream`), so there the
order, unlike the history of the other datasets, depends on the number of processes.

Only the main process writes checkpoints, logs, the tracker and the output.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..errors import UserError
from . import checkpoints as ckpt
from .data import BatchOrder, Collate, n_pairs, train_pairs
from .losses import LossParams, combined, needs, row_normalize, tokens_graph
from .model import Encoder, count_parameters, load_base, select_trainable
from .setup import (
    check_k_against_width,
    lr_factor,
    make_accelerator,
    make_optimizer,
    schedule_length,
)
from .spec import TrainSpec
from .stream import StreamCollate, StreamedPairs
from .validation import after_validation, validate

log = logging.getLogger(__name__)


@dataclass
class RunState:
    history: list = field(default_factory=list)
    val: list = field(default_factory=list)
    best_step: int | None = None
    best_value: float | None = None
    bad_evals: int = 0
    stopped: str | None = None  # why training ended before the last step
    seconds: float = 0.0


@dataclass
class Run:
    """Everything the loop works on, prepared."""

    spec: TrainSpec
    accelerator: object
    encoder: object  # prepared (DDP-wrapped when distributed)
    optimizer: object
    scheduler: object
    order: BatchOrder  # or a StreamedPairs (coco, flickr30k)
    collate: Collate  # or a StreamCollate
    val_collate: Collate
    total_steps: int
    trainable: list  # the parameters that train (the optimizer's), listed once
    clip: object  # the CLIP inside `encoder`, unwrapped once (~0.4 ms a step otherwise)
    params: LossParams
    terms: tuple
    tracker: object
    say: Callable[[str], None]
    state: RunState = field(default_factory=RunState)
    start_step: int = 0


# ----------------------------------------------------------------------------- setup


# ----------------------------------------------------------------------------- one step


def gather_rows(x: torch.Tensor, accelerator) -> torch.Tensor:
    """All processes' rows in rank order; this process's rows keep their gradient."""
    if accelerator.num_processes == 1:
        return x
    import torch.distributed as dist

    parts = [torch.empty_like(x) for _ in range(accelerator.num_processes)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[accelerator.process_index] = x
    return torch.cat(parts)


def batch_loss(run: Run, out: dict, batch: dict, seed: int) -> tuple[torch.Tensor, dict]:
    img = row_normalize(gather_rows(out["img"].float(), run.accelerator))
    txt = row_normalize(gather_rows(out["txt"].float(), run.accelerator))
    scale, world = out["logit_scale"].float(), run.accelerator.num_processes
    if world > 1:  # every process sees all of the scale's gradient: undo the x world below
        scale = scale / world + (scale - scale / world).detach()
    if run.spec.cluster_graph == "tokens" and needs(run.terms, "graph"):
        rank = run.accelerator.process_index
        nodes = tokens_graph(out, batch, run.spec.cluster_nodes, seed + 1_000_003 * rank)
        if world > 1:
            return _local_graph_loss(run, img, txt, scale, nodes)
        return combined(run.terms, img, txt, scale, run.params, nodes)
    return combined(run.terms, img, txt, scale, run.params, None)


def _local_graph_loss(run: Run, img, txt, scale, nodes) -> tuple[torch.Tensor, dict]:
    """Several processes with the tokens graph: the pooled terms on the gathered batch as
    always; each graph term on this process's own tokens graph (its B / W pairs, sampled to
    at most --cluster-nodes), the loss being the mean over the processes of those local graph
    terms. Its value (all-reduced) is that mean; its gradient too: each process's graph terms
    are scaled by 1 / W before the x W of the backward and DDP's average."""
    import torch.distributed as dist

    world = run.accelerator.num_processes
    graph = tuple(t for t in run.terms if needs((t,), "graph"))
    pooled = tuple(t for t in run.terms if not needs((t,), "graph"))
    loss_p, values = combined(pooled, img, txt, scale, run.params) if pooled else \
        (img.new_zeros(()), {})
    loss_g, local = combined(graph, img, txt, scale, run.params, nodes)
    summed = torch.tensor([loss_g.item(), *local.values()], dtype=torch.float64,
                          device=loss_g.device)
    dist.all_reduce(summed)  # the graph terms' sums over the processes
    mean = summed / world
    values.update({name: float(v) for name, v in zip(local, mean[1:])})
    total = loss_p + loss_g / world
    total = total + (float(mean[0]) - (loss_g / world).detach())  # value: the mean
    return total, {t.name: values[t.name] for t in run.terms}


def rank_share(rows: list[int], rank: int, world: int) -> list[int]:
    """Process `rank`'s equal share of a batch's rows (of `world` processes)."""
    per = len(rows) // world
    return rows[rank * per:(rank + 1) * per]


def local_rows(run: Run, g: int) -> list[int]:
    return rank_share(run.order.rows(g), run.accelerator.process_index,
                      run.accelerator.num_processes)


def _check_finite(run: Run, loss: torch.Tensor, step: int) -> None:
    if torch.isfinite(loss):
        return
    kept = ckpt.step_dirs(run.spec.out)
    where = f"the last good checkpoint is {kept[-1][1]}" if kept else "no checkpoint was saved"
    raise UserError(f"The loss is {loss.item()} at step {step + 1}: training stopped and "
                    f"{where}. Try a lower --lr, --grad-clip 1.0, or --dtype float32.")


def clipped_step(accelerator, optimizer, params: list, max_norm: float) -> float:
    """The optimizer's step on gradients clipped to a total 2-norm of `max_norm` (0: never), as
    `torch.nn.utils.clip_grad_norm_` then `step()`; returns the norm before clipping. fp16
    gradients are unscaled first (as Accelerate's `clip_grad_norm_`). A fused Adam / AdamW
    (the CPU and CUDA default) without an fp16 loss scaler scales the gradients inside its own
    kernel, through its `grad_scale` (the hook torch's GradScaler unscales through: the kernel
    divides each gradient by it as it reads it); other optimizers get the gradients scaled
    first. Measured in the tiny model's ~37 ms CPU step, steps interleaved with bare ones: the
    separate pass (a multiply per tensor, right after the backward pass) took ~1.9 ms."""
    accelerator.unscale_gradients()
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    inner = getattr(optimizer, "optimizer", optimizer)  # under Accelerate's wrapper
    in_kernel = accelerator.scaler is None and bool(inner.defaults.get("fused"))
    if max_norm > 0 and float(max_norm / (norm + 1e-6)) < 1.0:
        if in_kernel:
            inner.grad_scale = ((norm + 1e-6) / max_norm).to(torch.float32)
        else:
            torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    try:
        optimizer.step()
    finally:
        if in_kernel:
            inner.grad_scale = None
    return float(norm)


def train_step(run: Run, step: int, batches) -> dict:
    """One optimizer step over `accum` micro-batches; the history entry."""
    spec, acc, enc = run.spec, run.accelerator, run.encoder
    run.optimizer.zero_grad(set_to_none=True)
    totals: dict[str, float] = {}
    for a in range(spec.accum):
        batch = next(batches)
        sync = acc.no_sync(enc) if a < spec.accum - 1 else contextlib.nullcontext()
        with sync:
            with acc.autocast():
                out = enc(**batch)
            loss, values = batch_loss(run, out, batch, spec.seed * 7919 + step * spec.accum + a)
            _check_finite(run, loss, step)
            acc.backward(loss * acc.num_processes / spec.accum)
        for name, value in {"loss": loss.item(), **values}.items():
            totals[name] = totals.get(name, 0.0) + value / spec.accum
    lr = run.optimizer.param_groups[0]["lr"]
    grad_norm = clipped_step(acc, run.optimizer, run.trainable, spec.grad_clip)
    run.scheduler.step()
    with torch.no_grad():  # CLIP clamps its temperature at 100
        clip = run.clip
        clip.logit_scale.clamp_(0, math.log(100))
    return {"step": step + 1, **{k: round(v, 6) for k, v in totals.items()}, "lr": round(lr, 12),
            "grad_norm": round(float(grad_norm), 6),
            "logit_scale": round(float(clip.logit_scale.detach().exp()), 4)}


# ----------------------------------------------------------------------------- validation


# ----------------------------------------------------------------------------- the loop


class _Interrupt:
    """Ctrl-C sets a flag that the loop checks after each step (so a checkpoint is consistent);
    a second Ctrl-C stops at once. `stop` (a threading.Event set from another thread, e.g. the
    app's Stop button) is read as the same flag."""

    def __init__(self, stop: threading.Event | None = None) -> None:
        self._requested = False
        self._stop = stop
        self._old = None

    @property
    def requested(self) -> bool:
        return self._requested or (self._stop is not None and self._stop.is_set())

    @requested.setter
    def requested(self, value: bool) -> None:
        self._requested = value

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def save_checkpoint(run: Run, step: int) -> None:
    acc = run.accelerator
    if acc.is_main_process:
        state = {**run.state.__dict__}
        ckpt.save(run.spec.out, step, acc.unwrap_model(run.encoder), run.optimizer,
                  run.scheduler, state)
        ckpt.prune(run.spec.out, run.spec.keep, run.state.best_step)
    acc.wait_for_everyone()


class _MicroBatches(torch.utils.data.Dataset):
    """Micro-batch g of this process, collated (for DataLoader workers)."""

    def __init__(self, run: Run, first: int, last: int) -> None:
        self.collate, self.order = run.collate, run.order
        self.rank, self.world = run.accelerator.process_index, run.accelerator.num_processes
        self.first, self.n = first, last - first

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.collate(rank_share(self.order.rows(self.first + i), self.rank, self.world))


def _stream_batches(run: Run, first: int, last: int):
    """Streamed micro-batches: the stream is read in order; decoding and preprocessing run
    ahead in one background thread (`--workers N`: N at once; `datasets` would split a stream
    among DataLoader worker processes by itself, so processes are not used here). Each batch
    has a thread of its own that ends with it (see `prefetch`: a pool thread left idle slows
    the step's own threads)."""
    from collections import deque

    from ..prefetch import Ahead

    acc = run.accelerator
    items = run.order.micro_batches(run.spec.batch_size // acc.num_processes, first,
                                    acc.process_index, acc.num_processes)
    depth = max(1, run.spec.workers)
    pending: deque = deque()
    try:
        for _ in range(first, last):
            pending.append(Ahead(run.collate, next(items)))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for ahead in pending:
            ahead.wait()


def _batches(run: Run):
    """This process's micro-batches from the resume point, prepared ahead: in a thread (in line
    once the pixels are cached), or in `--workers` DataLoader processes (the same batches
    either way)."""
    from ..prefetch import prefetched

    device = run.accelerator.device
    first, last = run.start_step * run.spec.accum, run.total_steps * run.spec.accum
    if isinstance(run.order, StreamedPairs):
        batches = _stream_batches(run, first, last)
    elif run.spec.workers > 0:
        batches = torch.utils.data.DataLoader(
            _MicroBatches(run, first, last), batch_size=None, shuffle=False,
            num_workers=run.spec.workers, prefetch_factor=2, persistent_workers=False)
    else:
        # once its images' pixels are kept, a batch is prepared in line (a thread would take a
        # core from the step; perf --train measures the difference), into the Collate's one
        # pixel buffer: the step before is done with it (its backward pass has run)
        rows = (local_rows(run, g) for g in range(first, last))
        batches = (b for _, b in prefetched(rows, run.collate, cheap=run.collate.cached,
                                            inline=run.collate.reusing))
    for batch in batches:
        yield {k: v.to(device) for k, v in batch.items()}


def run_loop(run: Run, on_step: Callable[[int], None] | None = None,
             progress: Callable[[dict], None] | None = None,
             stop: threading.Event | None = None) -> None:
    """Train from `run.start_step` to the end (or an early stop); checkpoints and validations
    on their schedules. Ctrl-C (or `stop` set) saves a checkpoint and raises KeyboardInterrupt.
    `progress` gets a `report` after the base model's validation and after every step."""
    from tqdm import tqdm

    bar = tqdm(total=run.total_steps, initial=run.start_step, desc="train", unit="step",
               file=sys.stderr, dynamic_ncols=True, disable=not run.accelerator.is_main_process)
    try:
        if run.start_step == 0 and not run.state.val:  # the base model's numbers
            val = validate(run, 0)
            run.tracker.log(val, 0)
            after_validation(run, val)
            if progress is not None:
                progress(report(run, None, val, 0.0))
        with _Interrupt(stop) as interrupt:
            _steps(run, bar, interrupt, on_step, progress)
    finally:
        bar.close()
    if run.state.stopped:
        run.say(run.state.stopped)


def report(run: Run, entry: dict | None, val: dict | None, step_s: float) -> dict:
    """What a progress callback gets: the step done, of how many, the history entry of that
    step (None before the first), a new validation (or None), samples/s of the step and the
    estimated seconds left."""
    done = entry["step"] if entry else run.start_step
    samples = run.spec.batch_size * run.spec.accum
    left = run.total_steps - done
    per_step = run.state.seconds / done if done and run.state.seconds > 0 else step_s
    return {"step": done, "total_steps": run.total_steps, "entry": entry, "val": val,
            "samples_s": round(samples / step_s, 3) if step_s > 0 else None,
            "eta_s": round(left * per_step, 1)}


def _steps(run: Run, bar, interrupt: _Interrupt, on_step, progress=None) -> None:
    spec, state = run.spec, run.state
    batches = _batches(run)
    begin = time.perf_counter() - state.seconds
    samples = spec.batch_size * spec.accum
    for step in range(run.start_step, run.total_steps):
        if state.stopped:
            break
        t0 = time.perf_counter()
        entry = train_step(run, step, batches)
        state.seconds = time.perf_counter() - begin
        entry["seconds"] = round(state.seconds, 3)
        state.history.append(entry)
        run.tracker.log(entry, step + 1)
        bar.update(1)
        # the postfix shows at the bar's own next refresh (at most 10 a second), not every step
        bar.set_postfix(loss=f"{entry['loss']:.4f}", lr=f"{entry['lr']:.2e}",
                        samples_s=f"{samples / max(time.perf_counter() - t0, 1e-9):.1f}",
                        refresh=False)
        done, best, val = step + 1, False, None
        if done % spec.val_every == 0 or done == run.total_steps:
            val = validate(run, done)
            run.tracker.log(val, done)
            best = after_validation(run, val)
        if on_step is not None:
            on_step(done)
        if progress is not None:
            progress(report(run, entry, val, time.perf_counter() - t0))
        if (best or done % spec.checkpoint_every == 0 or done == run.total_steps
                or state.stopped or interrupt.requested):
            save_checkpoint(run, done)
        if interrupt.requested:
            run.say(f"interrupted at step {done}: checkpoint saved in "
                    f"{ckpt.folder(spec.out)}; rerun the same command to resume")
            raise KeyboardInterrupt


def _out_of_memory(run: Run) -> UserError:
    spec = run.spec
    return UserError(
        f"Out of memory at --batch-size {spec.batch_size} on {run.accelerator.device}: try "
        f"--batch-size {max(2, spec.batch_size // 2)} with --accum {spec.accum * 2} (the same "
        "pairs per step; each loss then sees the smaller batch), --train lora, or --dtype "
        "bfloat16.")


# ----------------------------------------------------------------------------- fit


def global_rng():
    """The lock NCut holds while it seeds and draws from torch's and numpy's global RNGs: a run
    started in a server thread (finetune.jobs) seeds its initialisation (and a resume restores
    its RNG state) under it, so neither changes what a concurrent cut of the app draws."""
    from ..cuts import _NCUT_LOCK

    return _NCUT_LOCK


def prepare(spec: TrainSpec, say: Callable[[str], None]):
    """(Run, resolved base, trained model, identity, dtype) ready to train or resume."""
    from ..cache import Cache
    from ..config import Settings
    from .tracking import make_tracker

    accelerator, dtype = make_accelerator(spec)
    world = accelerator.num_processes
    if spec.batch_size % world:
        raise UserError(f"--batch-size {spec.batch_size} is not divisible by the {world} "
                        "processes: each process encodes an equal share.")
    cache_dir = spec.cache_dir or Settings.from_env().cache_dir
    resolved, clip, tokenizer, processor = load_base(spec.model)
    check_k_against_width(spec, clip.config.projection_dim)
    identity = {**spec.identity(), "base_model": resolved.weights_id}
    previous = ckpt.check_out(spec.out, identity, spec.overwrite, accelerator.is_main_process)
    accelerator.wait_for_everyone()  # an --overwrite is done before any process reads on
    train, val, warnings = train_pairs(spec, Cache(cache_dir))
    for w in warnings:
        say(f"WARNING {w}")
    with global_rng():
        torch.manual_seed(spec.seed)
        trained = select_trainable(clip, spec.train, spec.last_n, spec.lora_rank)
    encoder = Encoder(clip, tokens=spec.cluster_graph == "tokens")
    n_train, n_total = count_parameters(encoder)
    streamed, n_train_pairs = isinstance(train, StreamedPairs), n_pairs(train)
    data = f"{n_train_pairs if n_train_pairs is not None else 'streamed'} training pairs"
    if streamed:
        data += f" ({train.describe(world)}, shuffle buffer {spec.shuffle_buffer})"
    say(f"model {resolved.name} ({resolved.weights_id}): {n_train:,} of {n_total:,} "
        f"parameters train ({spec.train}); {data}, {len(val)} validation")
    optimizer = make_optimizer(spec, encoder, accelerator.device.type)
    order = train.batch_order(spec.batch_size) if streamed else \
        BatchOrder(len(train), spec.batch_size, spec.seed)
    total, warmup = schedule_length(spec, order)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(spec, total, warmup))
    encoder_p, optimizer_p = accelerator.prepare(encoder, optimizer)
    config = {**spec.to_json(), "total_steps": total, "warmup_steps": warmup, "dtype": dtype,
              "processes": world}
    tracker = make_tracker(spec.track, cache_dir, spec.out, config, accelerator.is_main_process)
    collate = (StreamCollate if streamed else Collate)(train, processor, tokenizer)
    run = Run(spec, accelerator, encoder_p, optimizer_p, scheduler, order,
              collate, Collate(val, processor, tokenizer), total,
              [p for p in encoder_p.parameters() if p.requires_grad],
              accelerator.unwrap_model(encoder_p).clip,
              LossParams(spec.k, spec.alpha, spec.beta, spec.gamma), spec.terms, tracker, say)
    with global_rng():
        _resume(run, previous, accelerator)
    if accelerator.is_main_process:
        ckpt.write_run(spec.out, identity, resolved.weights_id)
    extra = {"resolved": resolved, "trained": trained, "tokenizer": tokenizer,
             "processor": processor, "config": config, "cache_dir": cache_dir,
             "parameters": {"trainable": n_train, "total": n_total},
             "data": {"train": train.identity, "val": val.identity, "n_train": n_train_pairs,
                      "n_val": len(val),
                      **({"stream": train.describe(world)} if streamed else {})}}
    return run, extra


def _resume(run: Run, previous: dict | None, accelerator) -> None:
    found = ckpt.step_dirs(run.spec.out) if previous is not None else []
    if not found:
        return
    step, path = found[-1]
    saved = ckpt.load(path, accelerator.unwrap_model(run.encoder), run.optimizer, run.scheduler)
    known = set(RunState.__dataclass_fields__)
    run.state = RunState(**{k: v for k, v in saved.items() if k in known})
    run.start_step = step
    run.say(f"resuming from {path} (step {step} of {run.total_steps})")


def fit(spec: TrainSpec, say: Callable[[str], None] | None = None,
        on_step: Callable[[int], None] | None = None,
        progress: Callable[[dict], None] | None = None,
        stop: threading.Event | None = None) -> dict:
    """Train as `spec` says; write the model, `train.json` (and `eval.json` with --eval) in
    `spec.out`; returns the train.json contents. Rerunning the same spec resumes.
    `progress(report)` after every step (see `report`); `stop` set ends the run like Ctrl-C:
    a checkpoint, then KeyboardInterrupt."""
    from .outputs import evaluate_before, finish

    say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
    run, extra = prepare(spec, say)
    before = evaluate_before(spec, extra, say) if run.accelerator.is_main_process else None
    try:
        run_loop(run, on_step, progress, stop)
    except torch.OutOfMemoryError as e:
        raise _out_of_memory(run) from e
    finally:
        run.tracker.finish()
    return finish(run, extra, before)
