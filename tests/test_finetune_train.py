"""Fine-tuning end to end on a tiny CLIP (64 px, 4 x 4 patches) and demo scenes, in-process:
outputs every command loads, determinism, resume = uninterrupted, checkpoints, what trains."""

import json
import math
import os
import signal

import pytest
import torch
from conftest import save_tiny_clip

from engineered_latents.errors import UserError
from engineered_latents.finetune import TrainSpec, fit
from engineered_latents.finetune import checkpoints as ckpt
from engineered_latents.finetune.data import BatchOrder, DemoScenes
from engineered_latents.finetune.setup import lr_factor


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("ft_tiny"), image_size=64, patch_size=16)


def _spec(tmp_path, tiny, name="out", **kw):
    base = dict(out=str(tmp_path / name), model=tiny, count=32, val_count=8, batch_size=8,
                steps=6, val_every=2, checkpoint_every=2, lr=1e-3, track="none", warmup="1")
    return TrainSpec(**{**base, **kw})


def _curve(record):
    """The history without wall-clock times."""
    return [{k: v for k, v in e.items() if k != "seconds"} for e in record["history"]]


def _quiet(msg):
    pass


def test_fit_writes_a_model_every_command_loads(tmp_path, tiny):
    from engineered_latents.__main__ import main
    from engineered_latents.history import read
    from engineered_latents.models import resolve_model

    spec = _spec(tmp_path, tiny, loss="contrastive+0.1*cluster")
    record = fit(spec, _quiet)
    out = spec.out
    saved = json.loads(open(os.path.join(out, "train.json")).read())
    assert saved["steps_done"] == 6 and len(saved["history"]) == 6
    for key in ("config", "base_model", "history", "val", "best_step", "seconds", "provenance"):
        assert key in saved
    entry = saved["history"][0]
    assert {"step", "loss", "lr", "contrastive", "cluster"} <= set(entry)
    assert entry["loss"] == pytest.approx(entry["contrastive"] + 0.1 * entry["cluster"], abs=1e-5)
    assert [v["step"] for v in saved["val"]] == [0, 2, 4, 6]  # 0: the base model
    assert {"val_loss", "val_contrastive", "val_cluster", "cosine", "r1_i2t", "r1_t2i"} <= set(
        saved["val"][0])
    assert saved["config"]["lr"] == 1e-3 and saved["config"]["total_steps"] == 6
    assert record["base_model"] == resolve_model(tiny).weights_id
    assert resolve_model(out).weights_id != resolve_model(tiny).weights_id
    assert main(["cuts", "--model", out, "--count", "2", "--n-eig", "4", "--clusters", "2",
                 "--out", str(tmp_path / "cuts")]) == 0
    assert main(["bench", "--benchmark", "demo", "--model", out, "--limit", "4"]) == 0
    runs = [r for r in read(os.environ["EL_CACHE_DIR"]) if r.get("kind") == "train"]
    assert runs and runs[-1]["out"] == out and runs[-1]["steps_done"] == 6


def test_the_same_command_gives_the_same_loss_history(tmp_path, tiny):
    a = fit(_spec(tmp_path, tiny, "a", steps=3, val_every=3), _quiet)
    b = fit(_spec(tmp_path, tiny, "b", steps=3, val_every=3), _quiet)
    assert _curve(a) == _curve(b)
    c = fit(_spec(tmp_path, tiny, "c", steps=3, val_every=3, seed=7), _quiet)
    assert _curve(c) != _curve(a)


def test_resume_after_ctrl_c_equals_an_uninterrupted_run(tmp_path, tiny):
    whole = fit(_spec(tmp_path, tiny, "whole", checkpoint_every=100), _quiet)

    def interrupt(step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    spec = _spec(tmp_path, tiny, "parts", checkpoint_every=100)
    with pytest.raises(KeyboardInterrupt):
        fit(spec, _quiet, on_step=interrupt)
    assert 3 in [s for s, _ in ckpt.step_dirs(spec.out)]  # saved at the interruption
    resumed = fit(spec, _quiet)
    assert len(resumed["history"]) == 6
    for x, y in zip(_curve(whole), _curve(resumed), strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert y[key] == pytest.approx(x[key], abs=1e-5), key
    assert resumed["val"] == whole["val"]


def test_a_different_configuration_is_refused_naming_the_fields(tmp_path, tiny):
    fit(_spec(tmp_path, tiny, steps=2), _quiet)
    with pytest.raises(UserError, match=r"lr \(0\.001 there, 0\.002 now\).*seed"):
        fit(_spec(tmp_path, tiny, steps=2, lr=2e-3, seed=1), _quiet)
    record = fit(_spec(tmp_path, tiny, steps=2, lr=2e-3, overwrite=True), _quiet)
    assert record["config"]["lr"] == 2e-3 and record["history"][0]["lr"] == pytest.approx(2e-3)


def test_an_out_folder_with_other_files_is_refused(tmp_path, tiny):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="holds other files"):
        fit(_spec(tmp_path, tiny), _quiet)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, tiny, monkeypatch):
    from engineered_latents.finetune import loop

    real = loop.combined
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        total, values = real(*args, **kwargs)
        calls["n"] += torch.is_grad_enabled()  # training steps, not validations
        return (total * float("nan") if calls["n"] == 3 else total), values

    monkeypatch.setattr(loop, "combined", poisoned)
    spec = _spec(tmp_path, tiny, val_every=100, checkpoint_every=1)
    with pytest.raises(UserError, match=r"nan at step 3.*step-2.*lower --lr"):
        fit(spec, _quiet)
    kept = ckpt.step_dirs(spec.out)
    assert [s for s, _ in kept] == [1, 2]
    assert json.loads((kept[-1][1] / "state.json").read_text())["step"] == 2


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, tiny, monkeypatch):
    spec = _spec(tmp_path, tiny, val_every=100, checkpoint_every=2)
    real = torch.save
    seen = {"n": 0}

    def full_disk(obj, path, *a, **k):
        seen["n"] += 1
        if seen["n"] > 3:  # the second checkpoint's first file
            raise OSError(28, "No space left on device")
        return real(obj, path, *a, **k)

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(UserError, match=r"step 4.*No space left.*step-2 is intact"):
        fit(spec, _quiet)
    monkeypatch.setattr(ckpt.torch, "save", real)
    assert [s for s, _ in ckpt.step_dirs(spec.out)] == [2]
    assert not [p for p in ckpt.folder(spec.out).iterdir() if p.name.startswith(".tmp")]
    resumed = fit(spec, _quiet)  # the intact checkpoint resumes
    assert resumed["steps_done"] == 6


def test_lora_is_merged_into_a_plain_clip(tmp_path, tiny):
    from safetensors.torch import load_file
    from transformers import CLIPModel

    spec = _spec(tmp_path, tiny, train="lora", lora_rank=2, steps=3, lr=1e-2)
    fit(spec, _quiet)
    weights = load_file(os.path.join(spec.out, "model.safetensors"))
    assert not [k for k in weights if "lora" in k]
    base = CLIPModel.from_pretrained(tiny).state_dict()
    q = "text_model.encoder.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(weights[q], base[q])  # the adapters were merged in
    emb = "text_model.embeddings.token_embedding.weight"
    assert torch.equal(weights[emb], base[emb])  # frozen
    CLIPModel.from_pretrained(spec.out)


@pytest.mark.parametrize("train, expected", [
    ("projections", 2 * 32 * 16 + 1),
    # per block of width 32: 4 attention projections (32x32 + 32), MLP 32x64+64 and 64x32+32,
    # 2 layer norms (2 x 64); plus the tower's final norm (64) and its projection (32 x 16)
    ("last-1", 2 * (4 * (32 * 32 + 32) + 32 * 64 + 64 + 64 * 32 + 32 + 2 * 64 + 64 + 32 * 16)
     + 1),
])
def test_what_trains(tiny, train, expected):
    from engineered_latents.finetune.model import count_parameters, load_base, select_trainable

    _, clip, _, _ = load_base(tiny)
    last_n = 1 if train == "last-1" else None
    model = select_trainable(clip, train, last_n, 4)
    assert count_parameters(model)[0] == expected


def test_lr_schedules_warm_up_then_reach_the_floor():
    spec = TrainSpec(out="x", lr=1.0, min_lr=0.1, scheduler="cosine")
    f = lr_factor(spec, total=11, warmup=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(11) == pytest.approx(0.1)
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))
    lin = lr_factor(TrainSpec(out="x", lr=1.0, scheduler="linear"), total=10, warmup=0)
    assert lin(5) == pytest.approx(0.5)
    const = lr_factor(TrainSpec(out="x", lr=1.0, scheduler="constant"), total=10, warmup=4)
    assert [const(1), const(9)] == [0.5, 1.0]


def test_demo_scenes_go_beyond_24_and_never_overlap_validation():
    train = DemoScenes("train", 100, seed=0)
    val = DemoScenes("val", 40)
    assert len(train.pairs()) == 100
    val_sets = [frozenset((o.colour, o.shape, o.box) for o in objs) for objs, _ in val.scenes]
    train_sets = {frozenset((o.colour, o.shape, o.box) for o in objs) for objs, _ in train.scenes}
    assert not train_sets & set(val_sets)
    named = [frozenset((o.colour, o.shape) for o in objs) for objs, _ in val.scenes]
    assert len(set(named)) == 40  # distinct objects: one right caption per image
    assert DemoScenes("train", 5, seed=1).scenes != DemoScenes("train", 5, seed=0).scenes


def test_batch_order_is_a_seeded_permutation_per_epoch():
    order = BatchOrder(10, 4, seed=3)
    assert order.per_epoch == 2
    epoch0 = order.rows(0) + order.rows(1)
    assert len(set(epoch0)) == 8
    assert order.rows(2) + order.rows(3) != epoch0  # epoch 1: another permutation
    assert BatchOrder(10, 4, seed=3).rows(3) == order.rows(3)


def test_early_stopping_after_patience(tmp_path, tiny):
    # lr 0 is refused; a tiny lr keeps the loss flat, so R@1 cannot keep improving
    spec = _spec(tmp_path, tiny, steps=20, val_every=1, lr=1e-9, early_stop="r1_i2t:2")
    record = fit(spec, _quiet)
    assert record["stopped"].startswith("early stop: r1_i2t")
    assert record["steps_done"] == 2 and record["best_step"] == 0  # 0: before training


def test_trackio_records_the_run_offline(tmp_path, tiny, monkeypatch):
    import sqlite3

    db = os.path.join(os.environ["EL_CACHE_DIR"], "trackio", "engineered_latents.db")
    monkeypatch.setenv("TRACKIO_DIR", os.path.dirname(db))  # restored after the test
    spec = _spec(tmp_path, tiny, steps=2, track="trackio")
    fit(spec, _quiet)
    with sqlite3.connect(db) as con:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        assert tables
        assert any(con.execute(f"select count(*) from {t}").fetchone()[0] for t in tables)


def test_projections_only_change_the_projections(tmp_path, tiny):
    from safetensors.torch import load_file

    spec = _spec(tmp_path, tiny, train="projections", steps=2, lr=1e-2)
    fit(spec, _quiet)
    after = load_file(os.path.join(spec.out, "model.safetensors"))
    before = load_file(os.path.join(tiny, "model.safetensors"))
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["logit_scale", "text_projection.weight", "visual_projection.weight"]


def test_rerunning_a_finished_run_changes_nothing(tmp_path, tiny):
    spec = _spec(tmp_path, tiny, steps=2)
    first = fit(spec, _quiet)
    again = fit(spec, _quiet)
    assert again["history"] == first["history"] and again["steps_done"] == 2


def test_epochs_and_accumulation_set_the_schedule(tmp_path, tiny):
    # 32 pairs / batch 8 = 4 batches an epoch; accum 2 -> 2 steps an epoch; warm-up 1 epoch
    record = fit(_spec(tmp_path, tiny, steps=None, epochs=1.5, accum=2, warmup="1ep",
                       scheduler="constant"), _quiet)
    assert record["config"]["total_steps"] == 3 and record["config"]["warmup_steps"] == 2
    assert [h["lr"] for h in record["history"]] == pytest.approx([5e-4, 1e-3, 1e-3])


def test_validation_on_another_dataset(tmp_path, tiny):
    from tests.fixtures_data import pattern

    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(12):
        pattern((16, 16), seed=i).save(folder / f"{i}.png")
    (folder / "captions.txt").write_text("\n".join(f"tile number {i}" for i in range(12)))
    record = fit(_spec(tmp_path, tiny, dataset="upload", data_path=str(folder), count=None,
                       val_dataset="demo", steps=2), _quiet)
    assert record["provenance"]["data"]["n_train"] == 12
    assert record["provenance"]["data"]["val"].startswith("demo-val")


def test_prune_keeps_the_last_and_the_best(tmp_path):
    for step in range(1, 7):
        (ckpt.folder(tmp_path) / f"step-{step}").mkdir(parents=True)
        (ckpt.folder(tmp_path) / f"step-{step}" / "state.json").write_text("{}")
    (ckpt.folder(tmp_path) / "step-9").mkdir()  # incomplete: no state.json, never counted
    ckpt.prune(tmp_path, keep=2, best_step=2)
    assert [s for s, _ in ckpt.step_dirs(tmp_path)] == [2, 5, 6]


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam)])
def test_fused_adam_on_the_cpu_takes_the_reference_update(tiny, name, cls):
    """On the CPU Adam and AdamW run torch's fused kernel (setup.build_optimizer); three steps
    on the same gradients match torch's plain for-loop implementation (the oracle)."""
    from engineered_latents.finetune.model import load_base, param_groups
    from engineered_latents.finetune.setup import make_optimizer

    _, clip, _, _ = load_base(tiny)
    _, ref_clip, _, _ = load_base(tiny)
    opt = make_optimizer(TrainSpec(out="x", optimizer=name, weight_decay=0.2, lr=1e-3), clip,
                         "cpu")
    assert opt.defaults["fused"] is True
    ref = cls(param_groups(ref_clip, 0.2), lr=1e-3, foreach=False, fused=False)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for p, q in zip(clip.parameters(), ref_clip.parameters()):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
    for (n, p), q in zip(clip.named_parameters(), ref_clip.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=1e-5), n


class _FloatGradients:  # what clipped_step asks of the Accelerator with float32 gradients
    scaler = None

    def unscale_gradients(self):
        pass


_OPTIMIZERS = {"fused adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1, fused=True),
               "for-loop adamw": lambda ps: torch.optim.AdamW(ps, lr=0.1, foreach=False),
               "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9)}


@pytest.mark.parametrize("optimizer", sorted(_OPTIMIZERS))
@pytest.mark.parametrize("max_norm", [0.0, 0.05, 1.0, 1e6])
def test_clipped_step_matches_torchs_clip_grad_norm_then_step(max_norm, optimizer):
    """loop.clipped_step against torch.nn.utils.clip_grad_norm_ + step() (the oracle): the same
    norm before clipping and the same weights after, clipped or not (0 never clips); a fused
    optimizer clips inside its kernel, and the plain step after it is not scaled by that."""
    from engineered_latents.finetune.loop import clipped_step

    gen = torch.Generator().manual_seed(1)
    start = [torch.randn(s, generator=gen) for s in [(4, 3), (7,), (2, 2, 2)]]
    ours = [w.clone().requires_grad_() for w in start]
    ref = [w.clone().requires_grad_() for w in start]
    opt, ref_opt = _OPTIMIZERS[optimizer](ours), _OPTIMIZERS[optimizer](ref)
    for _ in range(2):  # a step clipped at max_norm, then one never clipped
        for p, q in zip(ours, ref):
            p.grad = torch.randn(p.shape, generator=gen) * 0.1
            q.grad = p.grad.clone()
        norm = clipped_step(_FloatGradients(), opt, ours, max_norm)
        want = torch.nn.utils.clip_grad_norm_(ref, max_norm if max_norm > 0 else float("inf"))
        ref_opt.step()
        assert norm == pytest.approx(float(want), rel=1e-6)
        for p, q in zip(ours, ref):
            assert torch.allclose(p, q, rtol=1e-6, atol=1e-7), (max_norm, optimizer)
        assert getattr(opt, "grad_scale", None) is None
        max_norm = 0.0
    assert all(not torch.equal(p, w) for p, w in zip(ours, start))


def test_clipping_in_the_fused_kernel_changes_the_weights():
    """Adam ignores one scale common to every step, so two steps whose gradients have norms
    2.2 and 224, both clipped to 1, must end elsewhere than unclipped (the oracle test above
    would also pass if neither side clipped)."""
    from engineered_latents.finetune.loop import clipped_step

    def run(max_norm):
        w = torch.zeros(5, requires_grad=True)
        opt = torch.optim.AdamW([w], lr=0.1, fused=True, weight_decay=0.0)
        for g in (torch.ones(5), torch.full((5,), 100.0)):
            w.grad = g.clone()
            clipped_step(_FloatGradients(), opt, [w], max_norm)
        return w.detach()

    assert not torch.allclose(run(0.0), run(1.0))


def test_reused_pixel_buffer_gives_the_history_of_fresh_batches(tmp_path, tiny, monkeypatch):
    """The loop's in-line batches share one pixel buffer (Collate.reusing): over three epochs
    (the later ones from kept pixels) the history equals that of fresh batches (Collate's
    `__call__`), so no batch is overwritten while a step still uses it."""
    from engineered_latents.finetune.data import Collate

    reused = fit(_spec(tmp_path, tiny, "reused", count=16, steps=6, val_every=6), _quiet)
    monkeypatch.setattr(Collate, "reusing", Collate.__call__)
    fresh = fit(_spec(tmp_path, tiny, "fresh", count=16, steps=6, val_every=6), _quiet)
    assert _curve(reused) == _curve(fresh)


def test_dataloader_workers_give_the_same_batches(tmp_path, tiny):
    thread = fit(_spec(tmp_path, tiny, "thread", steps=3, val_every=3), _quiet)
    workers = fit(_spec(tmp_path, tiny, "workers", steps=3, val_every=3, workers=2), _quiet)
    assert _curve(workers) == _curve(thread)


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                       ("sgd", torch.optim.SGD)])
def test_optimizers_and_weight_decay_groups(tiny, name, cls):
    from engineered_latents.finetune.model import load_base
    from engineered_latents.finetune.setup import make_optimizer

    _, clip, _, _ = load_base(tiny)
    opt = make_optimizer(TrainSpec(out="x", optimizer=name, weight_decay=0.2), clip)
    assert type(opt) is cls
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.2 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in clip.named_parameters()}
    assert "logit_scale" in {names[id(p)] for p in no_decay["params"]}
    assert all(p.ndim == 2 for p in decay["params"])
    assert not any("embedding" in names[id(p)] for p in decay["params"])
