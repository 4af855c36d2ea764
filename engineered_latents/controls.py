"""The run parameters a user sets, in one table: name, type, default, range, help.

The CLI's options (`add_to_parser`), the page's controls (`ui/explore.py`), the deep-link fields
(`ui/share.py`) and the API's checks (`check`) are all read from `CONTROLS`, so a default or a
range is written once. Defaults are those of `config.CutSpec` / `SliceSpec` / `ModelSpec`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from . import argtypes
from .config import AUTO_CLUSTERS, COLOUR_METHODS
from .errors import UserError, quoted


@dataclass(frozen=True)
class Control:
    name: str  # the spec field (CutSpec, SliceSpec or ModelSpec)
    kind: type  # int, float, str or bool
    default: object
    help: str
    lo: float | None = None  # inclusive bounds of a number
    hi: float | None = None
    lo_open: bool = False  # the lower bound itself is refused
    choices: tuple | None = None
    link: str | None = None  # deep-link parameter name (default: `name`)
    flag: str | None = None  # CLI flag (default: --name-with-dashes)
    page_hi: float | None = None  # a smaller upper end for the page's slider

    @property
    def link_name(self) -> str:
        return self.link or self.name

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def check(self, value):
        """The value converted to `kind` and checked against the range or the choices;
        a `UserError` naming the control otherwise. None passes for an optional control."""
        if value is None and self.default is None:
            return None
        try:
            if self.kind is bool:
                return bool(value)
            converted = self.kind(value)
            if self.kind is int and isinstance(value, float) and value != converted:
                raise ValueError(value)
        except (TypeError, ValueError, OverflowError):
            raise UserError(f"{self.name} is {quoted(value)}: give a "
                            f"{'whole number' if self.kind is int else self.kind.__name__}."
                            ) from None
        if self.choices is not None and converted not in self.choices:
            raise UserError(f"{self.name} is {quoted(value)}: choose one of "
                            f"{', '.join(map(str, self.choices))}.")
        if self.kind in (int, float):
            if not math.isfinite(converted):
                raise UserError(f"{self.name} is {quoted(value)}: give a finite number.")
            low = self.lo is not None and (converted <= self.lo if self.lo_open
                                           else converted < self.lo)
            if low or (self.hi is not None and converted > self.hi):
                raise UserError(f"{self.name} is {quoted(value)}: {self.range_text()}.")
        return converted

    def range_text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"allowed {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"
        if self.lo is not None:
            return f"at least {self.lo:g}"
        return f"at most {self.hi:g}" if self.hi is not None else "any value"

    def arg_type(self):
        """argparse `type=` that refuses what `check` refuses (one line, exit 2)."""
        if self.kind is int:
            return argtypes.int_range(_int(self.lo), _int(self.hi))
        if self.kind is float:
            return argtypes.float_range(self.lo, self.hi, lo_open=self.lo_open)
        return str


def _int(bound):
    return None if bound is None else int(bound)


CONTROLS: dict[str, Control] = {c.name: c for c in [
    Control("mode", str, "scalar", "scalar: every patch x token affinity is a node (the original "
            "method); joint: every patch and token embedding is a node",
            choices=("scalar", "joint")),
    Control("n_eig", int, 20, "number of eigenvectors", lo=2, hi=1000, page_hi=100),
    Control("clusters", int, None, f"k for k-way clusters, at most n_eig (default: "
            f"min({AUTO_CLUSTERS}, n_eig))", lo=2, hi=100, page_hi=20),
    Control("sharpness", float, None, "ncut-pytorch's A_degree in (0, 1): lower is sharper "
            "(default: its median-distance bandwidth)", lo=0, hi=0.99, lo_open=True),
    Control("seed", int, 0, "seed for NCut's sampling", lo=0, hi=argtypes.SEED_MAX),
    Control("similarity", str, "cosine", "patch x token affinity: cosine, or the raw dot "
            "product as the original code", choices=("cosine", "dot")),
    Control("include_special", bool, False, "make the CLS patch and the start/end tokens graph "
            "nodes", link="special"),
    Control("start", int, 0, "first example index", lo=0, hi=2**31 - 1),
    Control("count", int, 8, "number of examples", lo=1, hi=100_000),
    Control("crossed_pairs", bool, False, "Winoground-style examples: also pair image_0 with "
            "caption_1 and image_1 with caption_0", link="crossed"),
    Control("all_captions", bool, False, "coco, flickr30k: one pair per caption of each image "
            "(default: the first caption only)"),
    Control("layer", int, None, "hidden-state index for patch and token states (0 = embeddings, "
            "-2 = second to last; default: last layer)", lo=-1000, hi=1000, page_hi=48),
    Control("patch_norm", bool, True, "vision post_layernorm before projecting patches"),
    Control("rgb", str, "1, 2, 3", "three different eigenvectors shown as red, green, blue "
            "(colour rgb; default 1, 2, 3, capped at n_eig - 1)"),
    Control("colour", str, "rgb", "the RGB view's colours: rgb = the three eigenvectors of "
            "--rgb; tsne / umap = ncut-pytorch's t-SNE / UMAP of eigenvectors 1..k-1, patches "
            "and words in one embedding (fitted on at most 1,000 anchors, then propagated)",
            choices=COLOUR_METHODS),
    Control("perplexity", int, 30, "t-SNE's perplexity (colour tsne): the slice needs at least "
            "twice as many distinct patches and words", lo=2, hi=500),
    # a view of a finished cut, not a spec field: `recursive.recursive_cut`
    Control("recursive", int, 1, "levels of the recursive cut: 1 = the slice's k-way clusters "
            "only; each level below cuts every cluster of the level above again into k",
            lo=1, hi=3),
]}


def add_to_parser(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the named controls as options, with their defaults, ranges and help."""
    for name in names:
        c = CONTROLS[name]
        if c.kind is bool:
            continue  # flags read differently per command (--include-special, --no-patch-norm)
        extra = {"choices": list(c.choices)} if c.choices else {}
        parser.add_argument(c.cli_flag, type=c.arg_type(), default=c.default,
                            help=c.help + (f" ({c.range_text()})" if c.lo is not None else ""),
                            **extra)
