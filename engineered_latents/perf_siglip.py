"""`perf --arch siglip-b16`: the SigLIP B/16 architecture next to CLIP B/32 on one slice.

Both with seeded random weights built from their configs (no download; speed does not depend on
the values), on the same synthetic Winoground-shaped slice (64 pairs by default), one repeat
each (SigLIP B/16 has 4x the patches of B/32, so every stage is heavier): the floor (a bare
batched forward of every image and caption: SigLIP's captions padded to 64 tokens), the cuts
pipeline cold in scalar and joint mode, and the graph's node count in each mode. Never asserted
by tests (wall-clock time depends on the machine).
"""

from __future__ import annotations

import time

ARCHS = ("siglip-b16",)


def demo_resolved(seed: int = 0):
    """SigLIP B/16 at 224 px with seeded random weights (`siglip.load(None)`)."""
    from .models import DEMO_WARNING, ResolvedModel

    return ResolvedModel("google/siglip-base-patch16-224", f"siglip:demo-seed-{seed}", None, True,
                         DEMO_WARNING.replace("ViT-B/32", "SigLIP B/16"), family="siglip")


def _floor(lm, examples) -> None:
    from .features import _pixels, _tokens
    from .siglip import _inference

    images = [im for ex in examples for im in ex.images]
    captions = [c for ex in examples for c in ex.captions]

    @_inference
    def run():
        for start in range(0, len(images), 32):
            pixels = _pixels(lm, images[start:start + 32])
            lm.model.vision_model(pixel_values=pixels.to(lm.device, lm.dtype))
        for start in range(0, len(captions), 64):
            enc = _tokens(lm, captions[start:start + 64])
            enc = enc[0] if isinstance(enc, tuple) else enc  # CLIP: (encoding, truncated)
            lm.model.text_model(input_ids=enc["input_ids"].to(lm.device))
    run()


def _timed(fn) -> float:
    import torch

    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return round(time.perf_counter() - start, 3)


def measure(arch: str = "siglip-b16", pairs: int = 64, device: str | None = None,
            dtype: str | None = None, log=print) -> dict:
    """{"pairs", "rows": {arch: {grid, floor_s, scalar_s, joint_s, scalar_nodes,
    joint_nodes}}} for CLIP B/32 and `arch`, one repeat each."""
    from .config import CutSpec
    from .features import EncodeSettings
    from .models import demo_resolved as clip_resolved
    from .models import load_model
    from .perf import synthetic_examples
    from .pipeline import cut_examples

    if arch not in ARCHS:
        from .errors import UserError

        raise UserError(f"--arch {arch!r}: use one of {', '.join(ARCHS)}.")
    examples = synthetic_examples(pairs)
    rows = {}
    for name, resolved in (("clip-b32", clip_resolved()), (arch, demo_resolved())):
        log(f"measuring {name} at {pairs} pairs (one repeat) ...")
        lm = load_model(resolved, device, dtype)
        ncut_device = "cuda" if lm.device.type == "cuda" else "cpu"
        _floor(lm, examples[:2])  # warm-up: first calls allocate
        row = {"grid": "x".join(map(str, lm.patch_grid)), "dtype": str(lm.dtype)[6:],
               "floor_s": _timed(lambda lm=lm: _floor(lm, examples))}
        for mode in ("scalar", "joint"):
            timings: dict = {}
            result = {}

            def run(mode=mode, timings=timings, result=result, lm=lm, device_=ncut_device):
                result["r"] = cut_examples(examples, lm, CutSpec(mode=mode), EncodeSettings(),
                                           None, timings=timings, ncut_device=device_)[0]
            row[f"{mode}_s"] = _timed(run)
            row[f"{mode}_ncut_s"] = timings.get("ncut")
            row[f"{mode}_nodes"] = int(result["r"].eigvec.shape[0])
        rows[name] = row
    return {"pairs": len(examples) * 2, "rows": rows}


def table_lines(report: dict) -> list[str]:
    """The architecture comparison as lines of `perf`'s table."""
    lines = [f"architectures at {report['pairs']} pairs (random weights, one repeat):",
             f"  {'model':<12}{'grid':>6}{'floor s':>9}{'scalar s':>10}{'nodes':>8}"
             f"{'joint s':>9}{'nodes':>7}"]
    for name, r in report["rows"].items():
        lines.append(f"  {name:<12}{r['grid']:>6}{r['floor_s']:>9.2f}{r['scalar_s']:>10.2f}"
                     f"{r['scalar_nodes']:>8}{r['joint_s']:>9.2f}{r['joint_nodes']:>7}")
    return lines
