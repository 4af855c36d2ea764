"""Paired benchmark comparison: two or more models on exactly the same items.

`pair_results(base, others)` takes finished `BenchResult`s of one benchmark (the `--model` one
first) and, per metric, the difference in points (compared minus base) with a paired bootstrap 95%
interval and the exact McNemar p-value, and the items only one of the two gets right
(`metrics.paired`). Items are paired by their ids (dataset indices): results whose item sets
differ are refused, never paired.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import history, metrics
from .benchmarks import BenchResult
from .errors import UserError

SHOWN_FLIPS = 20  # flipped items printed per metric and direction


@dataclass
class PairedBench:
    benchmark: str
    base: BenchResult
    others: list[BenchResult]
    labels: list[str]  # base first, then each compared model (unique)
    paired: dict  # compared label -> metric -> statistics
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        """`models`: each model's single-model JSON; `paired`: metric -> statistics (keyed by
        compared model first when several are compared)."""
        results = [self.base, *self.others]
        paired = self.paired[self.labels[1]] if len(self.others) == 1 else self.paired
        return {"benchmark": self.benchmark, "model": self.labels[0],
                "compare": self.labels[1:],
                "models": {label: r.to_json() for label, r in zip(self.labels, results)},
                "paired": paired, "notes": self.notes}


def _labels(results: list[BenchResult]) -> list[str]:
    labels = []
    for r in results:
        label, k = r.model, 2
        while label in labels:
            label, k = f"{r.model} ({k})", k + 1
        labels.append(label)
    return labels


def _check_same_items(base: BenchResult, other: BenchResult) -> None:
    if base.benchmark != other.benchmark:
        raise UserError(f"Cannot pair {base.benchmark} with {other.benchmark}: one benchmark.")
    if not base.hits or not other.hits:
        raise UserError("A result has no per-item outcomes (computed by an older version): "
                        "run the benchmark again to pair it.")
    if set(base.hits) != set(other.hits):
        raise UserError(f"{base.model} and {other.model} report different metrics on "
                        f"{base.benchmark} ({sorted(base.hits)} vs {sorted(other.hits)}): "
                        "they cannot be paired.")
    for name in base.hits:
        a, b = base.item_ids.get(name), other.item_ids.get(name)
        if a != b:
            only_a = len([i for i in a or [] if i not in (b or [])])
            raise UserError(
                f"{base.benchmark}: {base.model} and {other.model} were evaluated on different "
                f"items for {name} ({len(a or [])} vs {len(b or [])} items, {only_a} only in "
                "the first), so they are not paired. Run both with the same --limit and data, "
                "and check that no examples were skipped in one run only.")


def pair_results(base: BenchResult, others: list[BenchResult],
                 n_resamples: int = 1000) -> PairedBench:
    """Paired statistics of each of `others` against `base` (same benchmark, same items)."""
    if not others:
        raise ValueError("pair_results needs at least one compared result.")
    labels = _labels([base, *others])
    paired, notes = {}, []
    for label, other in zip(labels[1:], others):
        _check_same_items(base, other)
        if other.provenance.get("weights") and \
                other.provenance.get("weights") == base.provenance.get("weights") and \
                other.provenance.get("dtype") == base.provenance.get("dtype"):
            notes.append(f"{label} is the same model as {labels[0]}: the differences are zero "
                         "by construction.")
        stats = metrics.paired(base.hits, other.hits, base.item_ids, n_resamples=n_resamples)
        paired[label] = {m: _rounded(s) for m, s in stats.items()}
    if any(r.demo_weights for r in [base, *others]):
        notes.append("DEMO WEIGHTS in at least one model: the differences say nothing about "
                     "CLIP.")
    return PairedBench(base.benchmark, base, list(others), labels, paired, notes)


def _rounded(stats: dict) -> dict:
    return {**stats, "difference": round(stats["difference"], 2),
            "ci95": [round(v, 2) for v in stats["ci95"]],
            "p_value": float(f"{stats['p_value']:.4g}")}


def record(cache_dir: str, result: PairedBench) -> None:
    """One history line for the comparison (each model's own run is recorded by the runner)."""
    history.append(cache_dir, {
        "kind": "bench-compare", "benchmark": result.benchmark, "model": result.labels[0],
        "compare": result.labels[1:], "n": result.base.n,
        "demo_weights": any(r.demo_weights for r in [result.base, *result.others]),
        "paired": {label: {m: {k: s[k] for k in ("difference", "ci95", "p_value",
                                                 "n_discordant")}
                           for m, s in stats.items()}
                   for label, stats in result.paired.items()},
    })


def table(result: PairedBench) -> str:
    """Per compared model: metric, both values, difference, paired interval, p, discordant
    counts; then the flipped items both ways with their dataset indices."""
    lines = []
    for label, other in zip(result.labels[1:], result.others):
        stats = result.paired[label]
        lines += [f"paired {result.benchmark}: A = {result.labels[0]}  vs  B = {label}  "
                  f"(n = {result.base.n}; difference B - A in points)",
                  f"{'metric':<16}{'A':>8}{'B':>8}{'B - A':>8}  {'paired 95% CI':<18}"
                  f"{'p McNemar':>10}{'discord.':>9}{'A only':>7}{'B only':>7}"]
        for name, s in stats.items():
            a, b = result.base.metrics.get(name, float("nan")), other.metrics.get(name,
                                                                                 float("nan"))
            lo, hi = s["ci95"]
            lines.append(f"{name:<16}{a:>8.2f}{b:>8.2f}{s['difference']:>+8.2f}  "
                         f"[{lo:+6.2f}, {hi:+6.2f}]  {s['p_value']:>9.3g}{s['n_discordant']:>9}"
                         f"{len(s['a_only']):>7}{len(s['b_only']):>7}")
        for name, s in stats.items():
            for side, who in (("a_only", "A right, B wrong"), ("b_only", "B right, A wrong")):
                if s[side]:
                    shown = ", ".join(_item(name, i) for i in s[side][:SHOWN_FLIPS])
                    more = f" ... ({len(s[side])} in all)" if len(s[side]) > SHOWN_FLIPS else ""
                    lines.append(f"  {name} {who}: {shown}{more}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def _item(metric: str, item) -> str:
    if metric.startswith("t2i") and isinstance(item, list):
        return f"{item[0]}/{item[1]}"  # retrieval caption: image index / caption number
    if isinstance(item, list):  # a group: its members
        return "(" + " ".join(str(v) for v in item) + ")"
    return str(item)
