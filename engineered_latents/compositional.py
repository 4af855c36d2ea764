"""SugarCrepe and ARO as benchmarks: one image, the correct caption first, then its negatives.

Accuracy: the correct caption (option 0) scores strictly highest (a tie is wrong), as for
What'sUp (`metrics.whatsup_correct`). Per item the runner keeps index, the captions' scores,
correct or not, the margin (correct score minus the best negative) and the item's tag (its
relation or attribute where the dataset has one, else the subset). Where items carry a relation
(ARO VG-Relation) or an attribute (VG-Attribution, if the copy has the column), accuracy is also
given per tag (`by_relation` / `by_attribute`) and as the macro average over tags
(`macro_accuracy`, with a normal-approximation 95% interval: the sum of the tags' binomial
variances over the number of tags squared).

Suites: `sugarcrepe` (the seven subsets, with the means per family and overall) and
`compositional` (Winoground, What'sUp A/B, SugarCrepe and ARO); `suite_summary` computes the
means from finished results.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import metrics
from .data.sugarcrepe import FAMILIES, SUBSETS, dataset_name
from .data.sugarcrepe import repo_id as sugarcrepe_repo
from .features import pooled_image_embeddings, pooled_text_embeddings
from .siglip import model_scores

SUGARCREPE = [dataset_name(s) for s in SUBSETS]
ARO = ["aro-vg-relation", "aro-vg-attribution", "aro-coco-order", "aro-flickr-order"]
SUITES = {
    "sugarcrepe": SUGARCREPE,
    "compositional": ["winoground", "whatsup-a", "whatsup-b", *SUGARCREPE, *ARO],
}

_SUGARCREPE_REF = {"replace_obj": 90.9, "replace_att": 80.1, "replace_rel": 69.2,
                   "swap_obj": 61.4, "swap_att": 64.0, "add_obj": 77.2, "add_att": 68.8}
_SUGARCREPE_SOURCE = ("SugarCrepe (Hsieh et al. 2023), openai/clip-vit-base-patch32, as quoted "
                      "in issue 16 / REFERENCE.md; the paper's table and its authors' per-model "
                      "table differ by up to 0.6 and which of the two this is was not checked")
_ARO_SOURCE = ("ARO paper (Yuksekgonul et al. 2023), two digits; a public reproduction got "
               "59.9 / 63.2 / 47.4 / 58.8 (VG-R / VG-A / COCO / Flickr)")

# name -> (hub folder under --data-root, {metric: published %}, source, chance %)
SPECS = {
    **{dataset_name(s): (sugarcrepe_repo(s).split("/")[1], {"accuracy": _SUGARCREPE_REF[s]},
                         _SUGARCREPE_SOURCE, 50.0) for s in SUBSETS},
    "aro-vg-relation": ("ARO-Visual-Relation", {"macro_accuracy": 59.0},
                        _ARO_SOURCE + "; the published number is the macro average over "
                        "relations (ARO's evaluation code averages per-relation accuracies; "
                        "some copies of it first drop symmetric relations: unverified which the "
                        "paper used)", 50.0),
    "aro-vg-attribution": ("ARO-Visual-Attribution", {"accuracy": 62.0},
                           _ARO_SOURCE + "; compared with the micro accuracy here (ARO's code "
                           "may macro-average over attribute pairs: unverified)", 50.0),
    "aro-coco-order": ("ARO-COCO-order", {"accuracy": 46.0}, _ARO_SOURCE, 20.0),
    "aro-flickr-order": ("ARO-Flickr-Order", {"accuracy": 59.0}, _ARO_SOURCE, 20.0),
}

_TAG_KINDS = ("relation", "attribute")  # meta keys with a per-tag breakdown and a macro


def choice_batch(lm, examples, context) -> dict:
    """Scores of each item's captions against its one image, and each item's tag."""
    img = pooled_image_embeddings(lm, [ex.images[0] for ex in examples])  # [b, D]
    txt = pooled_text_embeddings(lm, [c for ex in examples for c in ex.captions])  # [sum m, D]
    bounds = np.cumsum([0] + [len(ex.captions) for ex in examples])
    scores = [model_scores(lm, txt[a:b] @ img[i])  # [m_i]; CLIP: float32 cosines
              for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))]
    kinds = [next((k for k in _TAG_KINDS if ex.meta.get(k) is not None), None)
             for ex in examples]
    tags = [str(ex.meta[k]) if k else str(ex.meta.get("tag", ex.meta.get("subset", "")))
            for ex, k in zip(examples, kinds)]
    return {"index": [ex.index for ex in examples], "scores": scores, "tags": tags,
            "tag_kinds": kinds}


def margin(scores) -> float:
    """Correct score minus the best negative: option scores [m], or Winoground's s[c][i]
    (the text margin: min(s00 - s10, s11 - s01), positive iff the text score is right)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 2:
        return float(min(s[0, 0] - s[1, 0], s[1, 1] - s[0, 1]))
    return float(s[0] - s[1:].max())


def choice_summary(batches: list[dict]) -> tuple[dict, dict, list, dict]:
    scores = [s for b in batches for s in b["scores"]]
    tags = [t for b in batches for t in b["tags"]]
    kinds = [k for b in batches for k in b["tag_kinds"]]
    correct = metrics.whatsup_correct(scores)
    index = [i for b in batches for i in b["index"]]
    examples = [{"index": int(i), "scores": s.tolist(), "correct": bool(c),
                 "margin": round(margin(s), 6), "tag": t}
                for i, s, c, t in zip(index, scores, correct, tags)]
    hits = {"accuracy": correct}
    values = {"accuracy": float(correct.mean() * 100)}
    extra = {}
    kind = next((k for k in kinds if k), None)
    if kind is not None:
        by_tag = per_tag(correct, [t if k else "" for t, k in zip(tags, kinds)])
        values["macro_accuracy"], ci = macro_accuracy(by_tag)
        extra[f"by_{kind}"] = by_tag
        extra["macro_accuracy_ci95"] = ci
    return values, hits, examples, extra


def per_tag(correct: Sequence[bool], tags: Sequence[str]) -> dict:
    """{tag: {"accuracy" (%), "n"}} in order of first appearance."""
    correct = np.asarray(correct, dtype=bool)
    tags = np.asarray(tags, dtype=object)
    out = {}
    for tag in dict.fromkeys(tags.tolist()):
        mask = tags == tag
        out[tag] = {"accuracy": round(float(correct[mask].mean() * 100), 2),
                    "n": int(mask.sum())}
    return out


def macro_accuracy(by_tag: dict) -> tuple[float, list[float]]:
    """The mean of the tags' accuracies (%), and its normal-approximation 95% interval."""
    p = np.array([v["accuracy"] / 100 for v in by_tag.values()])
    n = np.array([v["n"] for v in by_tag.values()])
    macro = float(p.mean())
    half = 1.96 * math.sqrt(float(np.sum(p * (1 - p) / n))) / len(p)
    return macro * 100, [round(100 * max(0.0, macro - half), 2),
                         round(100 * min(1.0, macro + half), 2)]


def suite_summary(name: str, results: Sequence) -> dict:
    """Means over a suite's finished results: SugarCrepe per family and overall (of the subsets'
    accuracies), with the same means of the published numbers when every member has one."""
    by_name = {r.benchmark: r for r in results}
    rows = {}
    groups = {f: [dataset_name(s) for s in SUBSETS if s.startswith(f)] for f in FAMILIES}
    groups["overall"] = SUGARCREPE
    for group, members in groups.items():
        if not all(m in by_name for m in members):
            continue
        got = [by_name[m] for m in members]
        row = {"accuracy": round(float(np.mean([r.metrics["accuracy"] for r in got])), 2),
               "members": members, "n": int(sum(r.n for r in got))}
        if all("accuracy" in r.reference for r in got):
            row["reference"] = round(float(np.mean([r.reference["accuracy"] for r in got])), 2)
        rows[f"sugarcrepe-{group}"] = row
    return {"suite": name, "means": rows,
            "note": "family and overall means are unweighted means of the subsets' accuracies"}


def items_by_margin(examples: Sequence[dict], n: int) -> tuple[list[dict], list[dict]]:
    """The `n` items with the smallest and the `n` with the largest margin."""
    scored = [e for e in examples if "scores" in e]
    ranked = sorted(scored, key=lambda e: e.get("margin", margin(e["scores"])))
    return ranked[:n], ranked[::-1][:n]


def items_table(result, n: int) -> str:
    """Lines for `bench --show-items N`: the items with the smallest and largest margins."""
    low, high = items_by_margin(result.examples, n)
    if not low:
        return f"items: {result.benchmark} keeps no per-item scores"
    lines = []
    two_by_two = np.ndim(low[0]["scores"]) == 2
    what = ("the text margin, min(s(c0,i0) - s(c1,i0), s(c1,i1) - s(c0,i1))" if two_by_two
            else "positive minus best negative")
    for title, items in (("smallest", low), ("largest", high)):
        lines.append(f"{result.benchmark}: {len(items)} items with the {title} margins ({what})")
        for e in items:
            ok = e.get("correct", e.get("text"))
            tag = e.get("tag", "")
            lines.append(f"  #{e['index']:<7} margin {e.get('margin', margin(e['scores'])):+.4f}"
                         f"  {'correct' if ok else 'wrong':<8}{tag}")
    return "\n".join(lines)


def finish(result):
    """A final result's last touches: the macro accuracy's interval beside the others, and the
    source of the published numbers when they are shown. Returns `result`."""
    if "macro_accuracy_ci95" in result.extra:
        result.ci95.setdefault("macro_accuracy", result.extra["macro_accuracy_ci95"])
    spec = SPECS.get(result.benchmark)
    if spec and result.reference and not any("reference_source" in n for n in result.notes):
        result.notes.append({"reference_source": spec[2]})
    if spec and not any("chance" in n for n in result.notes):
        result.notes.append({"chance": spec[3]})
    return result


def suite_table(name: str, results: Sequence, summary: dict) -> str:
    """One table for a suite: a row per benchmark metric, then the suite's means."""
    lines = [f"{name}: {results[0].model if results else '-'}"
             + ("  (DEMO WEIGHTS: the numbers say nothing about CLIP)"
                if any(r.demo_weights for r in results) else ""),
             f"{'benchmark':<24}{'metric':<16}{'value':>8}  {'95% CI':<16}{'n':>7}"
             f"{'reference':>11}{'diff':>8}"]
    for r in results:
        for metric, value in r.metrics.items():
            lo, hi = r.ci95.get(metric, [float("nan")] * 2)
            ref = r.reference.get(metric)
            ref_text = f"{ref:>11.2f}{value - ref:>+8.2f}" if ref is not None else ""
            lines.append(f"{r.benchmark:<24}{metric:<16}{value:>8.2f}  [{lo:6.2f}, {hi:6.2f}]"
                         f"{r.n:>7}{ref_text}")
    for group, row in summary.get("means", {}).items():
        ref = row.get("reference")
        ref_text = f"{ref:>11.2f}{row['accuracy'] - ref:>+8.2f}" if ref is not None else ""
        lines.append(f"{group:<24}{'mean accuracy':<16}{row['accuracy']:>8.2f}  {'':<16}"
                     f"{row['n']:>7}{ref_text}")
    notes: dict[str, list[str]] = {}  # each note once, with the benchmarks it is about
    for r in results:
        for note in r.notes:
            text = "; ".join(f"{k}: {v}" for k, v in note.items())
            notes.setdefault(text, []).append(r.benchmark)
    for text, names in notes.items():
        about = "all" if len(names) == len(results) > 1 else ", ".join(names)
        lines.append(f"note ({about}): {text}")
    return "\n".join(lines)
