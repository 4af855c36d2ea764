"""Streamed training pairs: a webdataset split (`coco`, `flickr30k`) read shard by shard through
the adapter's own reader, in a seeded shuffle buffer, each process its own share.

- The examples: global indices `--start` .. `--start + --count - 1` (to the end without
  `--count`), minus those held out by `--val-fraction`; the shards that hold them, S of them.
- Each process's share (W processes, rank r): when S is a positive multiple of W, "by shard":
  process r reads only the shards r, r + W, r + 2W, ... (its own files); otherwise "by index":
  every process reads all S shards and keeps the examples whose global index i has
  i % W == r. Either way the shares are disjoint and together cover the examples.
- Pairs: every caption of a kept example is a pair with its image (the adapter's record,
  `_safe_record`; rows it cannot use are skipped and counted). Images stay encoded (the bytes
  the tar holds) until a batch needs them.
- The shuffle buffer (`--shuffle-buffer` N pairs, seeded by seed, world size, rank and epoch):
  filled with the first N pairs of the share; then each new pair takes the place of a randomly
  drawn one, which is yielded; at the end of the epoch the rest leave in random order. So every
  epoch is a permutation of the share's pairs, mixed over a window of about N pairs
  (N >= the share: a full shuffle). N = 0 keeps the file order.
- Batches: micro-batch g of process r is pairs g*b .. g*b + b - 1 of its endless stream (epoch
  0, 1, ... one after another), b = `--batch-size` / W: the effective batch is the sum, B.
  The order depends on W (a 2-process run reads other batches than a 1-process one). A
  resumed run replays its stream up to the resume point without decoding an image. An image
  that cannot be decoded is replaced in its micro-batch by the batch's previous good pair
  (logged), so every process's batch keeps its size and the stream its position.

The number of pairs (for `--epochs`, warm-up in epochs, provenance) is counted for a local
copy from the tars' caption members (cached); for the Hub it is not known without reading the
whole split, so `--steps` is needed there.
"""

from __future__ import annotations

import hashlib
import logging
import random
import tarfile
from collections.abc import Iterator

from ..errors import UserError

log = logging.getLogger(__name__)

DEFAULT_BUFFER = 1000


def shuffle_buffer(items, size: int, rng: random.Random) -> Iterator:
    """A seeded streaming shuffle of `items` with a buffer of `size` (0 or 1: file order)."""
    if size <= 1:
        yield from items
        return
    buffer = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        yield buffer[j]
        buffer[j] = item
    rng.shuffle(buffer)
    yield from buffer


class StreamedPairs:
    """The streamed pairs of one webdataset split (see the module docstring)."""

    def __init__(self, adapter, start: int, count: int | None, exclude=(), seed: int = 0,
                 buffer: int = DEFAULT_BUFFER, identity: str = "") -> None:
        self.adapter, self.seed, self.buffer = adapter, seed, buffer
        self.start, self.end = start, None if count is None else start + count
        self.exclude = frozenset(exclude)
        with adapter._errors():  # offline, or the Hub unreachable: a message, not a traceback
            self.shards = adapter._shards()
        if not self.shards:
            raise UserError(f"{adapter.source} has no shards for split {adapter.split!r}: "
                            f"expected {adapter.layout}.")
        self.starts = adapter._shard_starts(self.shards)  # None: from the samples' keys
        self.selected = self._selected()
        self.identity = identity
        self._n_pairs: int | None = None
        self.per_epoch: int | None = None  # set by `batch_order`
        self.skipped_images = 0

    # ------------------------------------------------------------------ shares

    def _selected(self) -> list[tuple[int, int | None]]:
        """(shard number, its first global index or None) of the shards holding wanted ones."""
        if self.starts is None:
            return [(k, None) for k in range(len(self.shards))]
        bounds = self.starts[1:] + [None]
        chosen = [(k, s) for k, (s, nxt) in enumerate(zip(self.starts, bounds))
                  if (nxt is None or nxt > self.start) and (self.end is None or s < self.end)]
        if not chosen:
            raise UserError(f"{self.adapter.name}: no examples from start {self.start}.")
        return chosen

    def mode(self, world: int) -> str:
        n = len(self.selected)
        return "shard" if world == 1 or (n >= world and n % world == 0) else "index"

    def share(self, rank: int, world: int) -> list[tuple[int, int | None]]:
        """The shards process `rank` reads."""
        if self.mode(world) == "shard":
            return self.selected[rank::world]
        return list(self.selected)

    def _wanted(self, index: int | None, rank: int, world: int, by_index: bool) -> bool:
        if index is None:
            raise UserError(f"{self.adapter.source}: a sample's key is not its index, so its "
                            "place in the split is unknown: give --data-path (a local copy).")
        if index < self.start or (self.end is not None and index >= self.end):
            return False
        if index in self.exclude:
            return False
        return not by_index or index % world == rank

    # ------------------------------------------------------------------ reading

    def examples(self, rank: int = 0, world: int = 1) -> Iterator[tuple[int, dict]]:
        """(global index, record) of this process's share, in file order."""
        from ..data import hub
        from ..data.streamed import key_index

        adapter, by_index = self.adapter, self.mode(world) == "index"
        for k, first in self.share(rank, world):
            if self.end is not None and first is not None and first >= self.end:
                break
            with adapter._errors():
                rows = hub.open_files("webdataset", adapter.split, [self.shards[k]])
                for position, row in enumerate(rows):
                    index = first + position if first is not None else \
                        key_index(row.get("__key__"))
                    if self.end is not None and index is not None and index >= self.end:
                        if first is None:  # keys are global indices, growing shard by shard
                            return
                        break
                    if self._wanted(index, rank, world, by_index):
                        yield index, adapter._safe_record(index, row)

    def pairs_in_order(self, rank: int = 0, world: int = 1) -> Iterator[tuple]:
        """(index, caption number, image bytes, caption) of the share, in file order."""
        for index, record in self.examples(rank, world):
            if record.get("unusable") or not record["images"]:
                log.warning("Skipped example %s of %s: %s", index, self.adapter.name,
                            record.get("unusable", "no image"))
                continue
            for c, caption in enumerate(record["captions"]):
                yield index, c, record["images"][0], caption

    def epoch(self, epoch: int, rank: int = 0, world: int = 1) -> Iterator[tuple]:
        rng = random.Random(f"el-finetune-stream-{self.seed}-{world}-{rank}-{epoch}")
        return shuffle_buffer(self.pairs_in_order(rank, world), self.buffer, rng)

    def endless(self, rank: int = 0, world: int = 1) -> Iterator[tuple]:
        epoch = 0
        while True:
            empty = True
            for item in self.epoch(epoch, rank, world):
                empty = False
                yield item
            if empty:
                raise UserError(f"Process {rank} of {world} has no pairs to read in "
                                f"{self.adapter.name} ({self.describe(world)}): give more "
                                "data (--count) or fewer processes.")
            epoch += 1

    def micro_batches(self, per: int, first: int = 0, rank: int = 0,
                      world: int = 1) -> Iterator[list[tuple]]:
        """Lists of `per` pairs: micro-batch `first`, `first + 1`, ... of this process."""
        stream = self.endless(rank, world)
        for _ in range(first * per):  # replay to the resume point (no image decoded)
            next(stream)
        while True:
            yield [next(stream) for _ in range(per)]

    def describe(self, world: int) -> str:
        mode = self.mode(world)
        how = "each process its own shards" if mode == "shard" else \
            "every process all shards, example index modulo the processes"
        return f"{len(self.selected)} shard(s), {how}"

    # ------------------------------------------------------------------ size

    def n_pairs(self) -> int | None:
        """Pairs in the selection: counted from a local copy's caption members, else None."""
        if self._n_pairs is None and self.adapter.data_path is not None \
                and self.starts is not None:
            held = hashlib.sha1(repr(sorted(self.exclude)).encode()).hexdigest()[:12]
            self._n_pairs = self.adapter._cached(
                ("stream-pairs", self.adapter.split, self.start, self.end, held),
                self._count_local)
        return self._n_pairs

    def _count_local(self) -> int:
        from ..data.streamed import sample_key

        total = 0
        for k, first in self.selected:
            index, previous = first - 1, None
            with tarfile.open(self.shards[k], "r:") as tar:
                for member in tar:
                    key = sample_key(member.name) if member.isfile() else None
                    if key is None:
                        continue
                    if key != previous:
                        index, previous = index + 1, key
                    if member.name.endswith(".txt") and self._wanted(index, 0, 1, False):
                        text = tar.extractfile(member).read().decode("utf-8", "replace")
                        total += sum(1 for line in text.splitlines() if line.strip())
        return total

    def batch_order(self, batch_size: int) -> StreamedPairs:
        """Itself, with `per_epoch` (full batches of B pairs per pass; None for a Hub stream)."""
        n = self.n_pairs()
        self.per_epoch = None if n is None else max(1, n // batch_size)
        return self

    def __len__(self) -> int:
        n = self.n_pairs()
        if n is None:
            raise TypeError("the number of pairs of a Hub stream is not known")
        return n


class StreamCollate:
    """Pixels and tokens of a micro-batch of streamed pairs; images decoded and normalised as
    the adapters do (`images.load_image`)."""

    def __init__(self, stream: StreamedPairs, processor, tokenizer) -> None:
        import threading

        self.stream, self.processor, self.tokenizer = stream, processor, tokenizer
        self._tokenizer_lock = threading.Lock()  # a fast tokenizer is not shared across threads

    def pairs(self, items: list[tuple]) -> tuple[list, list[str]]:
        """(images, captions); a pair whose image cannot be decoded takes the previous good
        pair of the batch (the first good one for a leading bad one)."""
        from ..data.images import ImageError, load_image

        decoded, bad = [], []
        for index, _, data, caption in items:
            try:
                decoded.append((load_image(data), caption))
            except ImageError as e:
                log.warning("Example %s of %s cannot be decoded (%s): its pair is replaced "
                            "by another of the batch.", index, self.stream.adapter.name, e)
                decoded.append(None)
                bad.append(index)
        good = [p for p in decoded if p is not None]
        if not good:
            raise UserError(f"No image of a batch of {self.stream.adapter.name} could be "
                            f"decoded (examples {bad[:5]}): check the copy of the data.")
        self.stream.skipped_images += len(bad)
        last, out = good[0], []
        for p in decoded:
            last = p if p is not None else last
            out.append(last)
        return [im for im, _ in out], [c for _, c in out]

    def __call__(self, items: list[tuple]) -> dict:
        images, captions = self.pairs(items)
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"]
        with self._tokenizer_lock:
            enc = self.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
        return {"pixel_values": pixels, "input_ids": enc["input_ids"],
                "attention_mask": enc["attention_mask"]}
