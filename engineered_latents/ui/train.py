"""The Train tab: fine-tune a model from the page with the `train` command's library loop, watch
its curves grow, Stop and Resume, then compare the trained model with its base.

Runs go through `finetune.jobs.JobRunner`: a background thread of the server, outside Gradio's
queue, so Explore, Compare and Benchmarks keep answering while a run trains. A `gr.Timer` polls
the watched run once a second; a run keeps going when the browser closes, and the page shows the
latest run again when it is reopened (its curves from the job, or from train.json / the last
checkpoint). Runs live in `<cache>/models/<name>`; finished ones are listed in every model
picker (`ui.models`).

Events and their API names: `/train_start` (Run), `/train_resume`, `/train_stop`,
`/train_status` (the watched run as JSON), `/train_export` (train.json, the curves as HTML, the
model as a zip). Handlers take `gr.Request`, found by annotation: no `from __future__ import
annotations` here.
"""

import argparse
import functools
import html
import json
import os
import time
import zipfile
from pathlib import Path

import gradio as gr

from .. import train_figures as TF
from ..config import Settings
from ..errors import UserError
from ..finetune import jobs
from ..finetune.data import PAIR_DATASETS
from ..finetune.losses import LOSSES
from ..finetune.spec import TrainSpec
from . import components as C
from . import export, gpu
from . import train_link as L
from .explore import VIEWS_POOL, max_uploads, mirror_path, page_text, user_errors
from .models import DEFAULT_CHOICE, choice_for, model_choices, model_spec_for
from .upload import UPLOAD_DATASET, stage_upload

HELD_OUT = "held-out"  # the validation choice "the dataset's own held-out pairs"
# the fields the page sets, in the order of the API's inputs (after name, model, files, captions)
MAIN_FIELDS = ("dataset", "start", "count", "val_dataset", "val_count", "loss", "k", "alpha",
               "beta", "gamma", "train", "steps", "epochs", "batch_size", "lr", "scheduler",
               "warmup", "seed")
ADVANCED_FIELDS = ("split", "val_fraction", "cluster_graph", "cluster_nodes", "lora_rank",
                   "accum", "weight_decay", "optimizer", "min_lr", "grad_clip", "val_every",
                   "checkpoint_every", "keep", "early_stop", "dtype")
FIELDS = MAIN_FIELDS + ADVANCED_FIELDS
LOSS_EXAMPLES = ("contrastive+0.1*cluster", "contrastive+0.5*cka")
TRAIN_CHOICES = ("full", "lora", "projections", "last-1", "last-2")
RUN_HEADERS = ["name", "state", "steps", "loss", "trains", "data", "val loss", "R@1 i→t"]
POLL_S = 1.0


# ----------------------------------------------------------------------------- the CLI's fields


@functools.lru_cache(maxsize=1)
def cli_actions() -> dict[str, argparse.Action]:
    """dest -> the `train` command's argparse action (its default, help and choices)."""
    from ..finetune.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    train = parser._subparsers._group_actions[0].choices["train"]
    return {a.dest: a for a in train._actions}


def _kind(name: str) -> str:
    annotation = str(TrainSpec.__dataclass_fields__[name].type)
    return "int" if "int" in annotation else "float" if "float" in annotation else "str"


def default(name: str):
    return TrainSpec.__dataclass_fields__[name].default


def _info(name: str) -> str:
    """The CLI's help with its default; an option without one says how to leave it unset."""
    text, value = cli_actions()[name].help or "", default(name)
    if value is not None:
        return f"{text} (default {value})".strip()
    return f"{text} (0 or empty: unset)" if _kind(name) != "str" else f"{text} (empty: unset)"


def control(name: str, label: str | None = None, **kwargs):
    """A page field for a TrainSpec option, with the CLI's default and help."""
    label = label or name.replace("_", " ").capitalize()
    action, value = cli_actions()[name], default(name)
    if action.choices:
        none = [] if value is not None else [("none", "")]
        return C.Dropdown(none + [(c, c) for c in action.choices], value=value or "",
                          label=label, info=_info(name), **kwargs)
    if _kind(name) == "int":
        return gr.Number(value, precision=0, label=label, info=_info(name), **kwargs)
    if _kind(name) == "float":
        return gr.Number(value, label=label, info=_info(name), **kwargs)
    return gr.Textbox(value or "", label=label, info=_info(name), **kwargs)


def page_defaults() -> dict:
    """The page's value of every field before the user changes it (the API's defaults)."""
    values = {name: default(name) for name in FIELDS}
    values.update(val_dataset=HELD_OUT, split="", early_stop="", dtype="")
    return {k: ("" if v is None and _kind(k) == "str" else v) for k, v in values.items()}


# ----------------------------------------------------------------------------- rules


def training_allowed(settings: Settings, share: bool = False,
                     env: dict | None = None) -> tuple[bool, str]:
    """(allowed, why not): on for a local app; off on ZeroGPU; off when shared publicly
    (`--share`, GRADIO_SHARE, a Space: SPACE_ID) unless EL_ALLOW_TRAIN=1; EL_ALLOW_TRAIN=0 off."""
    env = os.environ if env is None else env
    if gpu.enabled(env):
        return False, ("Training is off on ZeroGPU hardware: a call may hold the GPU only for "
                       f"{settings.gpu_duration_s} s, and a fine-tune needs it for much longer. "
                       "Run the app on a machine with its own GPU, or use the `train` command.")
    if settings.allow_train is not None:
        return settings.allow_train, ("" if settings.allow_train else
                                      "Training is off on this server (EL_ALLOW_TRAIN=0).")
    shared = share or str(env.get("GRADIO_SHARE", "")).lower() in ("1", "true")
    if shared or env.get("SPACE_ID"):
        where = "on a Space" if env.get("SPACE_ID") else "through a public share link"
        return False, (f"Training is off because this app is served {where}: a public page "
                       "must not let any visitor occupy the GPU. The owner can turn it on "
                       "with EL_ALLOW_TRAIN=1.")
    return True, ""


# ----------------------------------------------------------------------------- runs on disk


def saved_runs(cache_dir: str) -> list[dict]:
    """Every run under `<cache>/models` (newest first) with its record (`jobs.saved_record`)."""
    root = jobs.models_root(cache_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        record = jobs.saved_record(path) if path.is_dir() else None
        if record is not None:
            found.append({"name": path.name, "mtime": path.stat().st_mtime, **record})
    return sorted(found, key=lambda r: -r["mtime"])


def run_row(name: str, state: str, identity: dict, history: list, val: list,
            total=None) -> list:
    last = val[-1] if val else {}
    steps = history[-1]["step"] if history else 0
    total = total or identity.get("steps") or "?"
    return [name, state, f"{steps} / {total}", identity.get("loss", ""),
            identity.get("train", ""), identity.get("dataset", ""),
            f"{last['val_loss']:.4f}" if "val_loss" in last else "",
            f"{last['r1_i2t']:.1f}" if "r1_i2t" in last else ""]


def progress_html(status: dict) -> str:
    """A progress bar with the step, loss, lr, samples/s and ETA."""
    total, step = status.get("total_steps") or 0, status.get("step") or 0
    pct = 100 * step / total if total else 0
    last = status["history"][-1] if status.get("history") else {}
    parts = [f"step {step}" + (f" of {total}" if total else "")]
    if "loss" in last:
        parts.append(f"loss {last['loss']:.4f}")
    if "lr" in last:
        parts.append(f"lr {last['lr']:.2e}")
    if status.get("samples_s"):
        parts.append(f"{status['samples_s']:.1f} samples/s")
    if status.get("eta_s") is not None and status.get("state") == jobs.RUNNING:
        parts.append(f"ETA {status['eta_s']:.0f} s")
    return (f'<div id="el-train-bar" style="width:100%"><progress max="100" value="{pct:.1f}" '
            f'style="width:100%;height:14px"></progress><div style="font-size:12px">'
            f"{html.escape(' · '.join(parts))}</div></div>")


def _zip_model(out: Path, target: Path) -> Path:
    """The model folder (not its checkpoints) as a zip."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(out.rglob("*")):
            rel = path.relative_to(out)
            if path.is_file() and rel.parts[0] != "checkpoints" and not path.name.startswith("."):
                z.write(path, Path(out.name) / rel)
    return target


@export.writes_files
def train_files(out: Path, status: dict) -> list[str]:
    """train.json (scrubbed), the curves as HTML, and the model folder as a zip."""
    if not (out / "train.json").is_file() or not (out / "config.json").is_file():
        raise UserError("The downloads are ready when the run has finished: train.json and the "
                        "model are written at its end.")
    folder = export.new_folder()
    export.write_json(folder / "train.json", json.loads((out / "train.json").read_text()))
    figures = {"Training loss": TF.loss_curves(status["history"]),
               "Validation": TF.val_curves(status["val"])}
    export.write_html(folder / "curves.html", figures, f"Training run {out.name}")
    _zip_model(out, folder / f"{out.name}.zip")
    return [str(folder / n) for n in ("train.json", "curves.html", f"{out.name}.zip")]


# ----------------------------------------------------------------------------- the tab


class TrainTab:
    """Builds the tab inside the current Blocks. `link(...)` then wires the buttons that open the
    Compare and Benchmarks tabs and the model pickers a finished run refreshes."""

    def __init__(self, explorer, tabs: gr.Tabs, share: bool = False,
                 runner: jobs.JobRunner | None = None):
        self.explorer, self.tabs = explorer, tabs
        self.settings = explorer.settings
        self.allowed, self.why_not = training_allowed(self.settings, share)
        self.runner = runner or jobs.JobRunner(self.settings.max_train_jobs)
        self.base_choice: dict[str, str] = {}  # run name -> its base model's dropdown value
        self.pickers: list = []
        self._layout()
        self._wire()

    # ------------------------------------------------------------------ layout

    def _layout(self) -> None:
        self.watched = gr.State(None)  # the run name this session watches
        self.shown = gr.State(None)  # (name, reports, state) last drawn: skip redrawing
        if not self.allowed:
            gr.Markdown(f"**{self.why_not}**", elem_id="el-train-off")
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                self._config_controls()
                with gr.Row():
                    self.run_button = gr.Button("Run", variant="primary", elem_id="el-train-run",
                                                interactive=self.allowed)
                    self.stop_button = gr.Button("Stop", variant="stop", elem_id="el-train-stop",
                                                 interactive=self.allowed)
                    self.resume_button = gr.Button("Resume", elem_id="el-train-resume",
                                                   interactive=self.allowed)
                self.note = gr.Markdown(self.why_not or "Configure a run and press Run.",
                                        elem_id="el-train-note", min_height=48)
                self.bar = gr.HTML("", elem_id="el-train-progress")
                with gr.Accordion("Share", open=False):
                    self.link_button = gr.Button("Copy link to this configuration", size="sm",
                                                 elem_id="el-train-copy-link")
                    self.link_box = gr.Textbox("", label="Link", interactive=False,
                                               buttons=["copy"], elem_id="el-train-link")
            with gr.Column(scale=3):
                self.loss_plot = gr.Plot(TF.loss_curves([], title=""), label="Training loss",
                                         elem_id="el-train-loss")
                self.val_plot = gr.Plot(TF.val_curves([], title=""), label="Validation",
                                        elem_id="el-train-val")
                with gr.Row():
                    self.compare_button = gr.Button("Compare with the base model", visible=False,
                                                    elem_id="el-train-compare")
                    self.bench_button = gr.Button("Benchmark before and after", visible=False,
                                                  elem_id="el-train-bench")
                with gr.Accordion("Download", open=False):
                    self.export_button = gr.Button("Prepare downloads", size="sm",
                                                   elem_id="el-train-export")
                    self.downloads = gr.File(file_count="multiple", interactive=False,
                                             height=140, label="train.json, curves.html, "
                                             "the model folder as a zip")
                self.status_json = gr.JSON(visible=False)
        gr.Markdown("### Training runs\nEvery run under the cache's models folder (newest "
                    "first). Click a row to restore its configuration and curves.")
        self.runs_table = gr.Dataframe(headers=RUN_HEADERS, interactive=False, wrap=True,
                                       max_height=300, elem_id="el-train-runs")
        self.refresh_button = gr.Button("Refresh", size="sm", elem_id="el-train-refresh")
        self.timer = gr.Timer(POLL_S)

    def _config_controls(self) -> None:
        c: dict = {}
        self.name = gr.Textbox("demo-contrastive", label="Name", max_length=64,
                               info="the run's folder under the cache's models folder; a name "
                                    "that exists is resumed (Resume) or refused",
                               elem_id="el-train-name")
        self.model = C.Dropdown(model_choices(self.explorer.default_model), value=DEFAULT_CHOICE,
                                allow_custom_value=True, label="Base model",
                                info="or type a Hub id", elem_id="el-train-model")
        c["dataset"] = C.Dropdown(list(PAIR_DATASETS), value=default("dataset"),
                                  label="Training data", info=_info("dataset"),
                                  elem_id="el-train-dataset")
        with gr.Group(visible=False) as self.upload_group:
            self.files = gr.File(file_count="multiple", file_types=["image"], label="Your images")
            self.captions = gr.Textbox(lines=4, label="Captions",
                                       placeholder="one line per image, in order")
        with gr.Row():
            c["start"] = control("start", "Start")
            c["count"] = control("count", "Count", elem_id="el-train-count")
        with gr.Row():
            c["val_dataset"] = C.Dropdown([(HELD_OUT, HELD_OUT)] + list(PAIR_DATASETS),
                                          value=HELD_OUT, label="Validation data",
                                          info=_info("val_dataset"))
            c["val_count"] = control("val_count", "Validation count")
        c["loss"] = C.Dropdown(list(LOSSES) + list(LOSS_EXAMPLES), value=default("loss"),
                               allow_custom_value=True, label="Loss", info=_info("loss"),
                               elem_id="el-train-loss-name")
        for pair in (("k", "alpha"), ("beta", "gamma")):
            with gr.Row():
                for name in pair:
                    c[name] = control(name, name, min_width=100)
        c["train"] = C.Dropdown(list(TRAIN_CHOICES), value=default("train"),
                                allow_custom_value=True, label="What trains",
                                info=_info("train"))
        with gr.Row():
            c["steps"] = control("steps", "Steps", elem_id="el-train-steps")
            c["epochs"] = control("epochs", "Epochs")
        with gr.Row():
            c["batch_size"] = control("batch_size", "Batch size", elem_id="el-train-batch")
            c["lr"] = control("lr", "Learning rate", elem_id="el-train-lr")
        with gr.Row():
            c["scheduler"] = control("scheduler", "Schedule")
            c["warmup"] = control("warmup", "Warm-up", elem_id="el-train-warmup")
        c["seed"] = control("seed", "Seed")
        with gr.Accordion("Advanced", open=False):
            for name in ADVANCED_FIELDS:
                c[name] = control(name)
        self.fields = c

    # ------------------------------------------------------------------ events

    @property
    def config_inputs(self) -> list:
        return [self.name, self.model, self.files, self.captions,
                *[self.fields[n] for n in FIELDS]]

    @property
    def poll_outputs(self) -> list:
        return [self.note, self.bar, self.loss_plot, self.val_plot, self.compare_button,
                self.bench_button, self.status_json, self.shown, self.runs_table]

    def _wire(self) -> None:
        self.fields["dataset"].change(lambda d: gr.update(visible=d == UPLOAD_DATASET),
                                      self.fields["dataset"], self.upload_group, queue=False,
                                      api_visibility="private")
        quick = dict(concurrency_id="train", concurrency_limit=4)
        self.run_button.click(self.on_start, self.config_inputs, [self.watched, self.note],
                              api_name="train_start",
                              api_description="Start a training run (the Train tab's Run).",
                              **quick)
        self.resume_button.click(self.on_resume, self.config_inputs, [self.watched, self.note],
                                 api_name="train_resume",
                                 api_description="Resume the run of that name from its last "
                                                 "checkpoint.", **quick)
        self.stop_button.click(self.on_stop, self.watched, self.note, api_name="train_stop",
                               api_description="Stop the watched run (a checkpoint, then it "
                                               "ends).", **quick)
        self.status_api = gr.Button(visible=False)
        self.status_api.click(self.on_status, self.name, self.status_json,
                              api_name="train_status",
                              api_description="The run of that name: state, step, history, "
                                              "validations, samples/s, ETA.", **quick)
        self.export_button.click(self.on_export, self.watched, self.downloads,
                                 api_name="train_export", concurrency_id=VIEWS_POOL,
                                 concurrency_limit=4)
        for event in (self.refresh_button.click,):
            event(self.on_runs, None, self.runs_table, api_visibility="private", queue=False)
        self.runs_table.select(self.on_pick, None,
                               [self.watched, self.shown, self.note, self.name, self.model,
                                *[self.fields[n] for n in FIELDS]],
                               api_visibility="private", queue=False)

    def on_load(self, demo: gr.Blocks) -> None:
        """Reopening the page shows the running (or latest) run, the list of runs, and the
        trained models in every picker; a `tab=train` link sets the configuration."""
        from .explore import COPY_LINK_JS

        demo.load(self.on_page_load, None,
                  [self.watched, self.runs_table, *self.pickers, self.tabs, self.name,
                   self.model, *[self.fields[n] for n in FIELDS]],
                  api_visibility="private", queue=False)
        self.link_button.click(
            self.on_link, [self.name, self.model, *[self.fields[n] for n in FIELDS]],
            self.link_box, api_name="train_link", api_visibility="undocumented", queue=False,
        ).then(None, self.link_box, self.link_box, js=COPY_LINK_JS, queue=False)

    def link_defaults(self) -> dict:
        return {"name": self.name.value, "model": DEFAULT_CHOICE, **page_defaults()}

    def on_link(self, name, model, *values):
        """The query string of a link to this configuration (the page adds its address)."""
        return L.query({"name": name, "model": model, **dict(zip(FIELDS, values))},
                       self.link_defaults())

    def linked(self, params: dict) -> tuple:
        """The tab, name, model and field values a `tab=train` link sets (skips otherwise)."""
        n = 3 + len(FIELDS)
        if not L.is_train_link(params):
            return (gr.skip(),) * n
        kinds = {"name": "str", "model": "str", **{f: _kind(f) for f in FIELDS}}
        choices = {f: [v for _, v in c.choices] for f, c in self.fields.items()
                   if isinstance(c, gr.Dropdown) and not c.allow_custom_value}
        values, problems = L.parse(params, self.link_defaults(), kinds, choices)
        for problem in problems:
            gr.Warning(page_text(problem))
        return (gr.Tabs(selected="train"), values["name"], values["model"],
                *[values[f] for f in FIELDS])

    def link(self, compare=None, bench=None, pickers: list | None = None) -> None:
        """Wire the poll (the curves; the model pickers, `pickers`, refreshed when a run
        finishes), "Compare with the base model" (Compare tab) and "Benchmark before and after"
        (Benchmarks tab). Call it once, after every tab is built."""
        self.pickers = [self.model, *(pickers or [])]
        # outside the queue: every open page polls, and its ticks must not fill EL_QUEUE_SIZE
        self.timer.tick(self.on_poll, [self.watched, self.shown],
                        self.poll_outputs + self.pickers, api_visibility="private",
                        show_progress="hidden", queue=False)
        if compare is not None:
            from .compare import RUN_IF_PENDING_JS

            opened = [self.note, self.tabs, compare.pending, compare.restore,
                      *compare.restore_outputs]
            self.compare_button.click(
                functools.partial(self.on_compare, compare), self.watched, opened,
                api_name="train_compare", api_visibility="undocumented", queue=False,
            ).then(None, compare.pending, None, js=RUN_IF_PENDING_JS, queue=False)
        if bench is not None:
            self.bench_button.click(self.on_bench, self.watched,
                                    [self.note, self.tabs, bench.model, bench.compare],
                                    api_name="train_bench", api_visibility="undocumented",
                                    queue=False)
            # a training run picked in the Benchmarks tab's run history: restored here
            bench.history_table.select(
                self.on_history_pick, bench.records,
                [self.watched, self.shown, self.note, self.name, self.model,
                 *[self.fields[n] for n in FIELDS]], api_visibility="private", queue=False)

    def on_history_pick(self, records, evt: gr.SelectData):
        """`restore` for a `train` row of the run history (other rows leave this tab alone)."""
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        record = records[int(row)] if records and 0 <= int(row) < len(records) else {}
        if record.get("kind") != "train":
            return tuple(gr.skip() for _ in range(5 + len(FIELDS)))
        name = os.path.basename(os.path.normpath(str(record.get("out", ""))))
        try:
            return self.restore(name)
        except UserError as e:
            return (gr.skip(), gr.skip(), page_text(str(e)),
                    *[gr.skip() for _ in range(2 + len(FIELDS))])

    # ------------------------------------------------------------------ handlers

    def _spec(self, values: tuple) -> tuple[str, str, TrainSpec]:
        name, model, files, captions, *rest = values
        v = dict(zip(FIELDS, rest))
        name = jobs.check_name(name)
        base = model_spec_for(model, self.explorer.default_model).name
        options = {}
        for field in FIELDS:
            value = v.get(field)
            if value in ("", None) or (field == "val_dataset" and value == HELD_OUT) or \
                    (default(field) is None and _kind(field) != "str" and value == 0):
                value = None  # the page's Number shows an unset option as 0
            elif _kind(field) == "int":
                value = _whole(value, field)
            elif _kind(field) == "float":
                value = _number(value, field)
            if value is None and default(field) is not None:
                value = default(field)  # an emptied field: its default
            options[field] = value
        if options["dataset"] == UPLOAD_DATASET:
            options["data_path"] = self._kept_upload(files, captions)
        else:
            options["data_path"] = mirror_path(options["dataset"], self.settings)
        if options["val_dataset"] and options["val_dataset"] != options["dataset"]:
            options["val_data_path"] = mirror_path(options["val_dataset"], self.settings)
        out = jobs.run_folder(self.settings.cache_dir, name)
        spec = TrainSpec(out=str(out), model=base, cache_dir=self.settings.cache_dir,
                         track="none", **options)
        return name, model or DEFAULT_CHOICE, spec

    def _kept_upload(self, files, captions) -> str:
        """The uploaded pairs copied under the cache (`train_uploads/<content hash>`): staged
        uploads are pruned after an hour, a run may read them longer, and the same upload gives
        the same folder, so a Resume with the same images finds its run."""
        import shutil

        staged = Path(stage_upload(files, captions, max_uploads(self.settings)))
        kept = Path(self.settings.cache_dir) / "train_uploads" / staged.name
        if not (kept / "captions.json").is_file():
            shutil.copytree(staged, kept, dirs_exist_ok=True)
        return str(kept)

    def _begin(self, request, values, resume: bool):
        if not self.allowed:
            raise UserError(self.why_not)
        name, choice, spec = self._spec(values)
        owner = getattr(request, "username", None) or "a visitor"
        job = self.runner.start(spec, name, owner, resume=resume)
        self.base_choice[name] = choice
        verb = "Resuming" if resume else "Training"
        return name, f"{verb} **{html.escape(name)}** ({job.where()}) …"

    @user_errors
    def on_start(self, request: gr.Request, *values):
        """Run: start a new run (a name that exists is refused: Resume continues it)."""
        return self._begin(request, values, resume=False)

    @user_errors
    def on_resume(self, request: gr.Request, *values):
        """Resume: continue the run of that name from its last checkpoint."""
        return self._begin(request, values, resume=True)

    @user_errors
    def on_stop(self, watched):
        if not watched:
            raise UserError("No run is watched here: start one (Run) first.")
        job = self.runner.stop(watched)
        return (f"Stopping **{html.escape(watched)}** after its current step ({job.where()}): "
                "a checkpoint is written; Resume continues from it.")

    def status(self, name: str | None) -> dict | None:
        """The run's status: the live job, else what its folder holds."""
        if not name:
            return None
        job = self.runner.get(name)
        if job is not None:
            return job.status()
        try:
            record = jobs.saved_record(jobs.run_folder(self.settings.cache_dir, name))
        except UserError:
            return None
        if record is None:
            return None
        identity = record.get("identity", {})
        return {"name": name, "state": record["state"], "owner": None, "started": None,
                "step": record["steps_done"],
                "total_steps": (record.get("config") or {}).get("total_steps"),
                "history": record["history"], "val": record["val"], "samples_s": None,
                "eta_s": None, "reports": len(record["history"]), "messages": [],
                "error": None, "config": identity}

    @user_errors
    def on_status(self, name):
        status = self.status(jobs.check_name(name))
        if status is None:
            raise UserError(f"There is no run named {name!r}.")
        return status

    def on_poll(self, watched, shown):
        """The watched run's note, progress bar and curves when it reported something new;
        the model pickers once it has finished."""
        status = self.status(watched)
        skips = [gr.skip()] * len(self.pickers)
        if status is None:
            return (*[gr.skip()] * 6, None, shown, gr.skip(), *skips)
        key = [watched, status["reports"], status["state"]]
        if key == shown:
            return (*[gr.skip()] * 7, shown, gr.skip(), *skips)
        done = status["state"] == jobs.FINISHED
        changed = shown is None or shown[0] != watched or shown[2] != status["state"]
        pickers = self.picker_updates() if done and changed else skips
        return (self._note(status), progress_html(status),
                TF.loss_curves(status["history"], title=""), TF.val_curves(status["val"], title=""),
                gr.update(visible=done), gr.update(visible=done), status, key,
                self.on_runs() if changed else gr.skip(), *pickers)

    def picker_updates(self) -> list:
        """Every model picker's choices, with the trained models."""
        from .bench import NO_COMPARE

        choices = model_choices(self.explorer.default_model)
        return [gr.update(choices=[("none", NO_COMPARE)] + choices)
                if p.elem_id == "el-bench-compare" else gr.update(choices=choices)
                for p in self.pickers]

    def _note(self, status: dict) -> str:
        name, state = html.escape(status["name"]), status["state"]
        if state == jobs.FAILED:
            return f"Run **{name}** failed: {page_text(status['error'] or '')}"
        if state == jobs.FINISHED:
            return (f"Run **{name}** finished ({status['step']} steps): the model is listed in "
                    f"every model picker as `local: {name}`.")
        if state == jobs.STOPPED:
            return f"Run **{name}** stopped at step {status['step']}: Resume continues it."
        if state == jobs.STOPPING:
            return f"Stopping **{name}** after its current step …"
        return f"Training **{name}**: step {status['step']} of {status['total_steps'] or '?'}."

    def on_page_load(self, request: gr.Request):
        job = self.runner.latest()
        runs = saved_runs(self.settings.cache_dir)
        watched = job.name if job is not None else (runs[0]["name"] if runs else None)
        params = dict(request.query_params) if request is not None else {}
        return watched, self._rows(runs), *self.picker_updates(), *self.linked(params)

    def _rows(self, runs: list[dict]) -> list[list]:
        rows = []
        for r in runs:
            job = self.runner.get(r["name"])
            if job is not None and job.active:
                s = job.status()
                rows.append(run_row(r["name"], s["state"], r["identity"], s["history"],
                                    s["val"], s["total_steps"]))
            else:
                rows.append(run_row(r["name"], r["state"], r["identity"], r["history"],
                                    r["val"], (r.get("config") or {}).get("total_steps")))
        return rows

    def on_runs(self):
        return self._rows(saved_runs(self.settings.cache_dir))

    @user_errors
    def on_pick(self, evt: gr.SelectData):
        """A run of the list: watched (its curves), its configuration in the controls."""
        row = evt.index[0] if isinstance(evt.index, list | tuple) else evt.index
        runs = saved_runs(self.settings.cache_dir)
        if not 0 <= int(row) < len(runs):
            raise UserError("That run is gone: press Refresh.")
        return self.restore(runs[int(row)]["name"])

    def restore(self, name: str) -> tuple:
        """The outputs of `on_pick` for the run `name` (e.g. a `train` row of the run history):
        watched, shown (None: redraw), note, then the name, model and every field."""
        record = jobs.saved_record(jobs.run_folder(self.settings.cache_dir, name))
        if record is None:
            raise UserError(f"There is no training run named {name!r} on this server.")
        run = {"name": name, **record}
        identity = run["identity"]
        try:
            model = choice_for(identity.get("model"), self.explorer.default_model)
        except UserError:
            model = DEFAULT_CHOICE
        values = page_defaults()
        for field in FIELDS:
            if identity.get(field) is not None:
                values[field] = identity[field]
        note = f"Restored run **{html.escape(run['name'])}** ({run['state']})."
        if identity.get("dataset") == UPLOAD_DATASET:
            note += " Its uploaded images are not kept by the page: upload them again to resume."
        return (run["name"], None, note, run["name"], model, *[values[f] for f in FIELDS])

    def _finished(self, watched) -> tuple[dict, str]:
        status = self.status(watched)
        if status is None or status["state"] != jobs.FINISHED:
            raise UserError("Finish a run first: its model is written at the end.")
        base = self.base_choice.get(watched)
        if base is None:
            try:
                base = choice_for(status["config"].get("model"), self.explorer.default_model)
            except UserError:
                base = DEFAULT_CHOICE
        return status, base

    @user_errors
    def on_compare(self, compare, watched):
        """The Compare tab with the base model (A) and the trained one (B) on the validation
        data's first pairs (the demo's validation scenes are not a dataset slice: the demo's)."""
        status, base = self._finished(watched)
        config = status["config"]
        dataset = config.get("val_dataset") or config.get("dataset") or "demo"
        if dataset == UPLOAD_DATASET:
            dataset = "demo"
        values = {**compare.link_defaults, "tab": "compare", "dataset": dataset, "start": 0,
                  "count": min(8, int(config.get("val_count") or 8)), "indices": "",
                  "model": base, "model_b": f"local:{watched}"}
        note = f"Comparing the base model with **{html.escape(watched)}** on the Compare tab."
        return (note, gr.Tabs(selected="compare"), True, None, *compare.restore_values(values))

    @user_errors
    def on_bench(self, watched):
        status, base = self._finished(watched)
        note = (f"The Benchmarks tab has the base model and **{html.escape(watched)}** (Compare "
                "with): press Run there for the paired statistics.")
        return note, gr.Tabs(selected="benchmarks"), base, f"local:{watched}"

    @user_errors
    def on_export(self, watched):
        status = self.status(watched)
        if status is None:
            raise UserError("Run or pick a training run first: there is nothing to download.")
        return train_files(jobs.run_folder(self.settings.cache_dir, watched), status)


def _number(value, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"{field.replace('_', ' ').capitalize()} {str(value)[:40]!r} is not a "
                        "number.") from None


def _whole(value, field: str) -> int:
    number = _number(value, field)
    if number != int(number):
        raise UserError(f"{field.replace('_', ' ').capitalize()} {value} is not a whole number.")
    return int(number)


def wait_for(runner: jobs.JobRunner, name: str, timeout: float = 300) -> dict:
    """Block until the run `name` is no longer active (for scripts and tests); its status."""
    job = runner.get(name)
    end = time.time() + timeout
    while job is not None and job.active and time.time() < end:
        time.sleep(0.1)
    return job.status() if job is not None else {}

