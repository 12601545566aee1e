"""Seed paper 000 ("Beyond Flatland": 2D vs 3D synthetic pre-training) at laptop scale, as one experiment.

    python -m experiments.beyond_flatland --config tiny --workdir runs/bf_tiny        # whole chain, ~2 min (a test)
    python -m experiments.beyond_flatland --config small --workdir runs/bf_small      # the laptop run (see `small`)
    python -m experiments.beyond_flatland --config small --workdir runs/bf_small \\
        --publish docs/results/beyond_flatland_small                                 # copy the report there
    python -m experiments.beyond_flatland --config small_long --workdir runs/bf_small_long   # 4x pre-training

Stages, each skipped when its output exists (kill the run anywhere and rerun the same command):
  build     every source dataset at the config's builder scale and the fine-tuning target (`tfds` builders)
  pretrain  one backbone per source with one recipe (`train.pretrain`'s library entry), equal examples seen
  finetune  every backbone and a scratch network on the target, each fine-tuning seed, full and low data
            (`train.finetune` with --images_per_class; the same per-class draw for every source of one seed)
  probe     frozen-feature logistic regression on pooled features (`eval.linear_probe`), same regimes and draws
  neural    PLS predictivity and RSA per region on SIMULATED brain data (`eval.neural --demo`), plus any real
            brain dataset that is built (majaj_hong_2015)
  filters   first-layer filters of every backbone side by side (`eval.filters`)
  report    results.json (one entry per source x regime x seed), results.md, plots (`eval.transfer` tables)

The jobs run in this process through their library entry points (one TensorFlow start instead of ~100).
CPU-seconds per stage (this process and its render workers) accumulate in <workdir>/stages.json.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import shutil
import sys
import textwrap
import time
from typing import Callable, Optional

from experiments.common import cpu_seconds, git_commit, publish_report, read_json, write_json
from tfsynth import markdown
from tfsynth.cli import run_cli
from tfsynth.training import pretrain_configs
from tfsynth.workdir import RESULTS_NAME

SCRATCH = "scratch"
STAGES = ("build", "pretrain", "finetune", "probe", "neural", "filters", "report")
# Pre-training sources: Table 2's six sets plus FlatWorldDB (the 3D objects seen only through 2D transforms).
SOURCES = tuple(pretrain_configs.COMBOS) + ("flatworld",)


@dataclasses.dataclass(frozen=True)
class Regime:
    """One fine-tuning data regime: images per class (0 = the whole training split) and its schedule."""

    images_per_class: int
    epochs: int
    lr_milestones: tuple[int, ...]
    seeds: tuple[int, ...] = ()  # fine-tuning seeds of this regime; () = the config's

    @property
    def name(self) -> str:
        return "full" if self.images_per_class == 0 else f"{self.images_per_class}pc"


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything the chain varies; `pretrain` and `finetune` are field overrides of the jobs' configs."""

    scale: str  # builder config of every synthetic source: 'tiny' | 'small' | '1k'
    sources: tuple[str, ...]  # names in SOURCES
    pretrain: dict  # PretrainConfig overrides shared by every source (the one recipe)
    pretrain_examples: int  # training examples seen per source: epochs = round(this / the source's train examples)
    milestones: tuple[float, ...]  # LR x0.1 points as fractions of the pre-training epochs
    target: str  # fine-tuning / probe target (TFDS name/config)
    finetune: dict  # FinetuneConfig overrides shared by every run
    regimes: tuple[Regime, ...]
    seeds: tuple[int, ...]  # fine-tuning (and probe) seeds
    probe_images_per_class: tuple[int, ...] = ()  # linear-probe regimes (default: the fine-tuning ones)
    probe_crop: int = 28
    neural_image_size: int = 64


def tiny() -> ExperimentConfig:
    """The whole chain in a few minutes (tests): one mixture of two 4-class tiny sources, two seeds, 2 regimes."""
    arch = {"arch": "resnet18"}
    return ExperimentConfig(
        scale="tiny", sources=("procsynth+fractal",),
        pretrain={**arch, "resize": 40, "crop_size": 32, "batch_size": 8, "eval_batch_size": 32, "lr": 0.01,
                  "shuffle_buffer": 256, "validation_freq": 0},
        pretrain_examples=32, milestones=(0.5,), target="digits/32px",
        finetune={**arch, "resize": 0, "crop_size": 28, "batch_size": 16, "eval_batch_size": 256, "lr": 0.01,
                  "shuffle_buffer": 2048, "validation_freq": 0, "train_split": "train[:128]",
                  "eval_split": "test[:64]"},
        regimes=(Regime(0, 1, ()), Regime(3, 2, (1,))), seeds=(1, 2), neural_image_size=32)


def small() -> ExperimentConfig:
    """The laptop replication (about 2 CPU-hours on this 2-core machine). Shrunk relative to the seed paper:

    - sources: the `small` builder configs, 100 classes (Table 2's 1,000) x 20 instances (FractalDB 40; 1,000 in
      the paper) at 128 px, mixtures at equal total class count (50 + 50, 33 + 33 + 33);
    - network: ResNet-18 (the paper: ResNet-50), images resized to 40 px and randomly cropped to 32 px (the paper:
      224 crops of 362 px);
    - pre-training: batch 64, LR 0.025 (the recipe's 0.1 at batch 256, linearly scaled), SGD momentum 0.9,
      weight decay 1e-4, LR x0.1 at 2/3 and 5/6 of training, 32,000 examples seen per source (16 epochs of a
      2,000-image source; the paper: 90 epochs of 1M images); 10 % of each source held out for a sanity top-1;
    - target: sklearn's handwritten digits at 32 px (the paper: CIFAR, ImageNet-100, Places, ...; nothing can be
      downloaded here), 28 px random crops, batch 32, LR 0.01 (x0.1 for the last quarter), full data (1,438 images,
      3 epochs; 3 seeds) and 10 images per class (25 epochs; 5 seeds); the linear probe adds 50 per class and
      runs 5 seeds everywhere (more fine-tuning runs did not fit one working session on this shared 2-core machine).
    """
    arch = {"arch": "resnet18"}
    return ExperimentConfig(
        scale="small", sources=SOURCES,
        pretrain={**arch, "resize": 40, "crop_size": 32, "batch_size": 64, "eval_batch_size": 256, "lr": 0.025,
                  "shuffle_buffer": 4096, "validation_freq": 0},
        pretrain_examples=32_000, milestones=(2 / 3, 5 / 6), target="digits/32px",
        finetune={**arch, "resize": 0, "crop_size": 28, "batch_size": 32, "eval_batch_size": 512, "lr": 0.01,
                  "shuffle_buffer": 2048, "validation_freq": 0},
        regimes=(Regime(10, 25, (18,)), Regime(0, 3, (2,), seeds=(1, 2, 3))), seeds=(1, 2, 3, 4, 5),
        probe_images_per_class=(10, 50, 0))


def small_long() -> ExperimentConfig:
    """The follow-up to `small`'s negative result, changing one thing: 4x longer pre-training (128,000 examples
    per source instead of 32,000), on the two sources the seed paper contrasts most (FractalDB, ProcSynthDB) and
    FlatWorldDB (ProcSynthDB's objects seen only through 2D transforms). Fine-tuning, probe, target and seeds as in
    `small`, with 5 seeds at full data too, so each number is directly comparable with `small`'s."""
    base = small()
    return dataclasses.replace(
        base, sources=("fractal", "procsynth", "flatworld"), pretrain_examples=4 * base.pretrain_examples,
        regimes=(Regime(10, 25, (18,)), Regime(0, 3, (2,))))


CONFIGS: dict[str, Callable[[], ExperimentConfig]] = {"tiny": tiny, "small": small, "small_long": small_long}


def data_spec(source: str, scale: str) -> str:
    """The `--data` spec of a source at a builder scale (mixtures at equal total class count)."""
    if source == "flatworld":
        return f"flat_world_db/{scale}"
    return pretrain_configs.combo_data_spec(source, scale)


def datasets_of(config: ExperimentConfig) -> list[str]:
    """'name/config' of every dataset the chain reads, target last."""
    names = []
    for source in config.sources:
        for item in data_spec(source, config.scale).split(","):
            name = item.split(":")[0]
            if name not in names:
                names.append(name)
    return names + [config.target]


# --- bookkeeping -------------------------------------------------------------------------------------------------

class StageLog:
    """CPU- and wall-seconds per stage, accumulated over resumed invocations, in <workdir>/stages.json."""

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, "stages.json")
        self.data = read_json(self.path) if os.path.exists(self.path) else {}

    def run(self, name: str, fn: Callable[[], Optional[dict]]) -> None:
        cpu, wall = cpu_seconds(), time.time()
        print(f"\n=== stage {name} ===", flush=True)
        extra = fn() or {}
        if os.path.exists(self.path):  # another process of the same run may have logged meanwhile
            self.data = read_json(self.path)
        entry = self.data.setdefault(name, {"cpu_s": 0.0, "wall_s": 0.0})
        entry["cpu_s"] = round(entry["cpu_s"] + cpu_seconds() - cpu, 1)
        entry["wall_s"] = round(entry["wall_s"] + time.time() - wall, 1)
        entry.update(extra)
        write_json(self.path, self.data)
        print(f"=== stage {name}: {entry['cpu_s']:.0f} CPU-s, {entry['wall_s']:.0f} s wall (all invocations) ===",
              flush=True)


def _release_tf_memory() -> None:
    import keras

    keras.backend.clear_session()
    gc.collect()


# --- stages ------------------------------------------------------------------------------------------------------

def stage_build(config: ExperimentConfig, workdir: str) -> dict:
    from tfsynth.input import datasets

    counts = {}
    for name in datasets_of(config):
        mixture = datasets.load_mixture(name, "train", auto_build=True)
        counts[name] = {"classes": mixture.num_classes, "train_examples": mixture.num_examples}
        print(f"{name}: {mixture.num_classes} classes, {mixture.num_examples} training examples", flush=True)
    return {"datasets": counts}


def pretrain_config(config: ExperimentConfig, source: str, num_examples: int):
    """The source's PretrainConfig: the shared recipe with epochs set so every source sees about
    `config.pretrain_examples` examples, LR milestones at the config's fractions of training."""
    epochs = max(1, round(config.pretrain_examples / num_examples))
    milestones = tuple(sorted({max(1, round(f * epochs)) for f in config.milestones if round(f * epochs) < epochs}))
    return pretrain_configs.PretrainConfig(
        data=data_spec(source, config.scale), train_split="train[:90%]", eval_split="train[90%:]",
        epochs=epochs, lr_milestones=milestones, **config.pretrain)


def stage_pretrain(config: ExperimentConfig, workdir: str) -> dict:
    from tfsynth.input import datasets
    from tfsynth.training import checkpoint, pretrain

    out = {}
    for source in config.sources:
        run_dir = os.path.join(workdir, "pretrain", source)
        results_path = os.path.join(run_dir, RESULTS_NAME)
        if not os.path.exists(results_path):
            n = datasets.load_mixture(data_spec(source, config.scale), "train[:90%]").num_examples
            pc = pretrain_config(config, source, n)
            print(f"\n--- pre-training on {source} ({pc.data}: {n} images, {pc.epochs} epochs) ---", flush=True)
            cpu = cpu_seconds()
            resume = checkpoint.latest_checkpoint(os.path.join(run_dir, "checkpoints")) is not None
            pretrain.run(pc, run_dir, resume=resume, verbose=2)
            write_json(os.path.join(run_dir, "cpu.json"), {"cpu_s": round(cpu_seconds() - cpu, 1)})
            _release_tf_memory()
        results = read_json(results_path)
        out[source] = {"heldout_top1": (results.get("final_eval") or {}).get("top1"),
                       "train_top1": (results.get("final_train") or {}).get("top1"),
                       "epochs": results["config"]["epochs"], "data": results["config"]["data"]}
    return {"sources": out}


def backbone_path(workdir: str, source: str) -> str:
    return os.path.join(workdir, "pretrain", source, "backbone.keras")


def finetune_dir(workdir: str, source: str, regime: Regime, seed: int) -> str:
    return os.path.join(workdir, "finetune", source, regime.name, f"seed{seed}")


def _claim(run_dir: str) -> bool:
    """Takes a fine-tuning run for this process (two processes may share the stage): False if a live process
    holds it. A claim left by a killed process is taken over (its run resumes)."""
    path = run_dir.rstrip("/") + ".claim"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                with open(path, encoding="utf-8") as f:
                    pid = int(f.read().strip() or 0)
                os.kill(pid, 0)
                if pid != os.getpid():
                    return False
                return True
            except (ProcessLookupError, ValueError, FileNotFoundError):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)  # its holder is gone
                continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        return True
    return False


def stage_finetune(config: ExperimentConfig, workdir: str, ready_only: bool = False) -> dict:
    """Every (regime, seed, source) run; with `ready_only`, only those whose backbone exists now (a second process
    can so overlap fine-tuning with pre-training; runs are claimed, never done twice)."""
    from tfsynth.transfer import configs as ft_configs
    from tfsynth.transfer import finetune
    from tfsynth.transfer.heads import Source

    done = pending = 0
    # regime-major, then seed: an interrupted run has whole regimes (every source and seed) for its first regimes
    for regime in config.regimes:
        for seed in regime.seeds or config.seeds:
            for source in (SCRATCH,) + config.sources:
                run_dir = finetune_dir(workdir, source, regime, seed)
                if os.path.exists(os.path.join(run_dir, RESULTS_NAME)):
                    done += 1
                    continue
                ready = source == SCRATCH or os.path.exists(os.path.join(workdir, "pretrain", source,
                                                                         RESULTS_NAME))
                if (ready_only and not ready) or not _claim(run_dir):
                    pending += 1
                    continue
                fc = ft_configs.FinetuneConfig(**{
                    "data": config.target, "auto_build": True, **config.finetune,
                    "images_per_class": regime.images_per_class, "epochs": regime.epochs,
                    "lr_milestones": regime.lr_milestones, "seed": seed}).validate()
                src = (Source("scratch", arch=fc.arch, name=SCRATCH) if source == SCRATCH
                       else Source("backbone", path=backbone_path(workdir, source), name=source))
                print(f"\n--- fine-tuning {source} on {config.target}, {regime.name}, seed {seed} ---", flush=True)
                finetune.run(fc, run_dir, src, resume=os.path.isdir(run_dir), verbose=2)
                os.remove(run_dir.rstrip("/") + ".claim")
                _release_tf_memory()
                done += 1
    if pending and ready_only:
        print(f"fine-tuning: {done} runs done, {pending} left (backbones not ready or runs held by another "
              "process)", flush=True)
    elif pending:  # runs held by another live process: wait for them (or take them over if it dies)
        time.sleep(30)
        return stage_finetune(config, workdir)
    return {"runs": done}


def stage_probe(config: ExperimentConfig, workdir: str) -> None:
    from eval import linear_probe

    argv = [f"--model={s}={backbone_path(workdir, s)}" for s in config.sources]
    argv += [f"--model={SCRATCH}=random:{config.pretrain['arch']}", f"--data={config.target}",
             "--images_per_class=" + ",".join(str(k) for k in (config.probe_images_per_class or
                                                               tuple(r.images_per_class for r in config.regimes))),
             "--seeds=" + ",".join(map(str, config.seeds)), f"--crop_size={config.probe_crop}",
             f"--out={os.path.join(workdir, 'probe')}"]
    linear_probe.main(argv)
    _release_tf_memory()


def stage_neural(config: ExperimentConfig, workdir: str) -> None:
    from eval.neural.__main__ import main as neural_main

    models = [f"{s}={backbone_path(workdir, s)}" for s in config.sources]
    argv = ["--demo", f"--image_size={config.neural_image_size}",
            f"--workdir={os.path.join(workdir, 'neural', 'simulated')}"]
    for m in models:
        argv += ["--model", m]
    neural_main(argv)
    _release_tf_memory()
    if _brain_dataset_built("majaj_hong_2015"):
        argv = ["--brain", "majaj_hong_2015", f"--workdir={os.path.join(workdir, 'neural', 'majaj_hong_2015')}"]
        for m in models:
            argv += ["--model", m]
        neural_main(argv)
        _release_tf_memory()


def _brain_dataset_built(name: str) -> bool:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name).is_prepared()
    except Exception:  # builder not registered / not importable: treat as absent
        return False


def stage_filters(config: ExperimentConfig, workdir: str) -> None:
    from eval import filters

    argv = [f"--model={s}={backbone_path(workdir, s)}" for s in config.sources]
    full = next((r for r in config.regimes if r.images_per_class == 0), config.regimes[0])
    scratch_model = os.path.join(finetune_dir(workdir, SCRATCH, full, config.seeds[0]), "model.keras")
    argv += [f"--model=scratch_finetuned={scratch_model}", f"--out={os.path.join(workdir, 'filters')}"]
    filters.main(argv)
    _release_tf_memory()


# --- report ------------------------------------------------------------------------------------------------------

def finetune_runs(records) -> list[dict]:
    """results.json's `runs`: one entry per fine-tuning run (top-1 in percent)."""
    return sorted(({"source": r.source, "target": r.downstream, "images_per_class": r.images_per_class,
                    "seed": r.seed, "top1": round(100 * r.top1, 3)} for r in records),
                  key=lambda r: (r["source"] != SCRATCH, r["source"], r["images_per_class"], r["seed"]))


def _plot_pretrain_curves(pretrain: dict, path: str) -> bool:
    """Training loss and top-1 per epoch of every source's pre-training (diagnosis: did it learn its classes?)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {s: p["history"] for s, p in pretrain.items() if p.get("history")}
    if not curves:
        return False
    fig, (ax_loss, ax_top1) = plt.subplots(1, 2, figsize=(11, 4))
    for source, history in curves.items():
        epochs = [h["epoch"] + 1 for h in history]
        ax_loss.plot(epochs, [h["loss"] for h in history], label=source)
        ax_top1.plot(epochs, [100 * h["top1"] for h in history], label=source)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="pre-training loss")
    ax_top1.set(xlabel="epoch", ylabel="training top-1 (%, random crops)", title="pre-training top-1")
    ax_top1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_depth(layer_csv: str, path: str) -> bool:
    """Predictivity by block depth, one line per model, one panel per region (from eval.neural's layer scores)."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not os.path.exists(layer_csv):
        return False
    with open(layer_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return False
    rows = [r for r in rows if r.get("metric", "pls") == "pls"]  # PLS predictivity (RSA rows are in the table)
    score_key = "score"
    order = ("V1", "V2", "V3", "V4", "IT")
    regions = sorted({r["region"] for r in rows}, key=lambda r: (order.index(r) if r in order else len(order), r))
    fig, axes = plt.subplots(1, len(regions), figsize=(4 * len(regions), 3.5), squeeze=False)
    for ax, region in zip(axes[0], regions):
        for model in sorted({r["model"] for r in rows}):
            pts = [(r["layer"], float(r[score_key])) for r in rows if r["region"] == region and r["model"] == model]
            ax.plot(range(len(pts)), [v for _, v in pts], marker=".", label=model)
            ax.set_xticks(range(len(pts)), [n for n, _ in pts], rotation=90, fontsize=6)
        ax.set_title(f"{region}: PLS predictivity (selection images)")
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def stage_report(config: ExperimentConfig, workdir: str, config_name: str, command: str) -> dict:
    """Writes <workdir>/report/: results.json, results.md and the plots (results.json last). The tables are
    eval.transfer's (fine-tuning) and eval.linear_probe's (probe), so they read exactly as those jobs print them."""
    from tfsynth.transfer import probe as probe_lib
    from tfsynth.transfer import table

    out = os.path.join(workdir, "report")
    os.makedirs(out, exist_ok=True)
    stages_path = os.path.join(workdir, "stages.json")
    stages = read_json(stages_path) if os.path.exists(stages_path) else {}
    transfer = table.write_report([os.path.join(workdir, "finetune")], os.path.join(out, "transfer"))
    shutil.copy2(transfer["paths"]["accuracy_vs_images.png"], os.path.join(out, "accuracy_vs_images.png"))
    probe_path = os.path.join(workdir, "probe", "probe.json")
    probe = read_json(probe_path) if os.path.exists(probe_path) else None
    probe_md = None
    if probe:
        table.accuracy_vs_images(table.build_table(probe_lib.records(probe["runs"], probe["models"])),
                                 os.path.join(out, "probe_vs_images.png"))
        with open(os.path.join(workdir, "probe", "probe.md"), encoding="utf-8") as f:
            probe_md = f.read()
    filters_png = os.path.join(workdir, "filters", "filters.png")
    if os.path.exists(filters_png):
        shutil.copy2(filters_png, os.path.join(out, "filters.png"))
    neural_dir = os.path.join(workdir, "neural", "simulated")
    has_depth = _plot_depth(os.path.join(neural_dir, "layer_scores.csv"), os.path.join(out, "predictivity_depth.png"))
    neural = read_json(os.path.join(neural_dir, RESULTS_NAME)) if os.path.exists(
        os.path.join(neural_dir, RESULTS_NAME)) else None
    pretrain = {}
    for source in config.sources:
        rp = os.path.join(workdir, "pretrain", source, RESULTS_NAME)
        if os.path.exists(rp):
            r = read_json(rp)
            cpu_path = os.path.join(workdir, "pretrain", source, "cpu.json")
            pretrain[source] = {"data": r["config"]["data"], "epochs": r["config"]["epochs"],
                                "train_examples": (r.get("data") or {}).get("train_examples"),
                                "heldout_top1": (r.get("final_eval") or {}).get("top1"),
                                "train_top1": (r.get("final_train") or {}).get("top1"),
                                "history": r.get("history"),
                                "cpu_s": read_json(cpu_path)["cpu_s"] if os.path.exists(cpu_path) else None}
    _plot_pretrain_curves(pretrain, os.path.join(out, "pretrain_curves.png"))
    cpu_total = sum(v.get("cpu_s", 0.0) for v in stages.values())
    results = {"experiment": "beyond_flatland", "config": config_name, "git_commit": git_commit()["commit"],
               "command": command, "settings": dataclasses.asdict(config),
               "runs": finetune_runs(transfer["records"]), "transfer_summary": transfer["summary"],
               "probe_runs": probe["runs"] if probe else [], "probe_summary": probe["summary"] if probe else None,
               "pretrain": pretrain, "neural_simulated": neural, "stages": stages,
               "cpu_hours_total": round(cpu_total / 3600, 2)}
    md = _results_markdown(config, config_name, results, transfer["markdown"], probe_md, has_depth, neural_dir)
    with open(os.path.join(out, "results.md"), "w", encoding="utf-8") as f:
        f.write(md)
    write_json(os.path.join(out, RESULTS_NAME), results)
    print(md)
    return results


def _shrunk_text(config_name: str) -> str:
    """What a config shrank relative to the paper: `small`'s list, after the config's own summary if it is another
    laptop config."""
    if config_name == "tiny":
        return "A smoke-scale configuration (tests); its numbers carry no signal."
    listed = textwrap.dedent("    " + (small.__doc__ or "").split("Shrunk relative to the seed paper:")[-1]).strip()
    if config_name == "small":
        return listed
    summary = " ".join((CONFIGS[config_name].__doc__ or "").split())
    return f"{summary}\n\nThe `small` configuration it starts from:\n\n{listed}"


def _results_markdown(config, config_name, results, transfer_md, probe_md, has_depth, neural_dir) -> str:
    parts = [f"# Beyond Flatland at laptop scale: `{config_name}`", "",
             f"Command: `{results['command']}`  ",
             f"Commit: `{results['git_commit']}`  ",
             f"Total CPU time: {results['cpu_hours_total']} CPU-hours (all stages; see the table at the end; "
             "a stage's time is logged when it completes, so invocations killed mid-stage are not counted).", "",
             "## What was shrunk relative to the seed paper", "",
             _shrunk_text(config_name), "",
             f"## Fine-tuning on `{config.target}` (`eval.transfer`)", "", transfer_md.strip(), "",
             "![accuracy vs images per class](accuracy_vs_images.png)", ""]
    if probe_md:
        parts += ["## Linear probe on frozen pooled features (`eval.linear_probe`)", "",
                  f"`{SCRATCH}` is a randomly initialised {config.pretrain['arch']} drawn from each probe seed.", "",
                  probe_md.strip(), "", "![probe vs images per class](probe_vs_images.png)", ""]
    parts += ["## Pre-training", "", markdown.table(
        ["source", "--data", "training images", "epochs", "train top-1 (last epoch)", "held-out top-1 (10 %)",
         "CPU-s"],
        [[s, f"`{p['data']}`", p["train_examples"], p["epochs"], _pct(p["train_top1"]), _pct(p["heldout_top1"]),
          p["cpu_s"]] for s, p in results["pretrain"].items()]), "", "![pre-training curves](pretrain_curves.png)", ""]
    for name, title in (("neural_predictivity.md", "Neural predictivity (SIMULATED brain data, `eval.neural`)"),
                        ("rsa.md", "RSA (SIMULATED brain data)")):
        path = os.path.join(neural_dir, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                body = f.read().strip()
            parts += [f"## {title}", "", body.lstrip("#").split("\n", 1)[-1].strip() if body.startswith("#")
                      else body, ""]
    if has_depth:
        parts += ["![predictivity by depth](predictivity_depth.png)", ""]
    parts += ["## First-layer filters (`eval.filters`)", "", "![filters](filters.png)", "",
              "## Data and CPU time per stage", "", markdown.table(
                  ["stage", "CPU-s", "wall-s"],
                  [[k, v.get("cpu_s"), v.get("wall_s")] for k, v in results["stages"].items()]), ""]
    build = results["stages"].get("build", {}).get("datasets", {})
    if build:
        parts += [markdown.table(["dataset", "classes", "training examples"],
                            [[f"`{k}`", v["classes"], v["train_examples"]] for k, v in build.items()]), ""]
    return "\n".join(parts)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def stage_done(workdir: str, stage: str, config: ExperimentConfig) -> bool:
    """Whether a stage's final output exists (each is written atomically, last)."""
    marker = {
        "build": os.path.join(workdir, "stages.json"),
        "pretrain": None, "finetune": None,
        "probe": os.path.join(workdir, "probe", "probe.json"),
        "neural": os.path.join(workdir, "neural", "simulated", "done.json"),
        "filters": os.path.join(workdir, "filters", "filters.png"),
        "report": os.path.join(workdir, "report", RESULTS_NAME),
    }[stage]
    if stage == "build":
        return os.path.exists(marker) and "build" in read_json(marker)
    if stage == "pretrain":
        return all(os.path.exists(os.path.join(workdir, "pretrain", s, RESULTS_NAME)) for s in config.sources)
    if stage == "finetune":
        return all(os.path.exists(os.path.join(finetune_dir(workdir, s, r, seed), RESULTS_NAME))
                   for s in (SCRATCH,) + config.sources for r in config.regimes for seed in r.seeds or config.seeds)
    return os.path.exists(marker)


def run(config_name: str, workdir: str, stages=STAGES, publish: Optional[str] = None, command: str = "",
        ready_only: bool = False) -> None:
    config = CONFIGS[config_name]()
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    meta_path = os.path.join(workdir, "experiment.json")
    meta = {"experiment": "beyond_flatland", "config": config_name}
    if os.path.exists(meta_path) and {k: read_json(meta_path).get(k) for k in meta} != meta:
        raise ValueError(f"{workdir} holds another experiment or config ({meta_path}); choose another --workdir")
    write_json(meta_path, {**meta, "settings": dataclasses.asdict(config)})
    log = StageLog(workdir)
    fns = {
        "build": lambda: stage_build(config, workdir),
        "pretrain": lambda: stage_pretrain(config, workdir),
        "finetune": lambda: stage_finetune(config, workdir, ready_only),
        "probe": lambda: stage_probe(config, workdir),
        "neural": lambda: _neural_with_marker(config, workdir),
        "filters": lambda: stage_filters(config, workdir),
    }
    for stage in stages:
        if stage == "report":
            continue
        if stage_done(workdir, stage, config) and stage not in ("pretrain", "finetune"):
            print(f"stage {stage}: done, skipped", flush=True)
            continue
        log.run(stage, fns[stage])
    if "report" in stages:
        stage_report(config, workdir, config_name, command)
        if publish:
            _publish(workdir, publish)


def _neural_with_marker(config: ExperimentConfig, workdir: str) -> None:
    stage_neural(config, workdir)
    write_json(os.path.join(workdir, "neural", "simulated", "done.json"), {"done": True})


def _publish(workdir: str, dest: str) -> None:
    publish_report(workdir, dest, RESULTS_NAME)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.beyond_flatland", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, choices=list(CONFIGS))
    p.add_argument("--workdir", required=True, help="run directory (outside the repository, e.g. runs/...)")
    p.add_argument("--stages", default=",".join(STAGES),
                   help=f"comma list of stages to run (default all: {','.join(STAGES)})")
    p.add_argument("--publish", default=None, metavar="DIR", help="copy the report there (docs/results/...)")
    p.add_argument("--ready_only", action="store_true",
                   help="finetune stage: only runs whose backbone exists now (a second process started with "
                        "--stages finetune --ready_only overlaps fine-tuning with pre-training)")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    stages = tuple(s.strip() for s in args.stages.split(",") if s.strip())
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ValueError(f"--stages: unknown {', '.join(unknown)}; valid: {', '.join(STAGES)}")
    given = list(argv if argv is not None else sys.argv[1:])
    # The command that reproduces the run: --publish only copies files, and --stages / --ready_only only choose
    # what this invocation does (a report-only rerun records the experiment's command).
    dropped = ("--publish", "--stages")
    kept = [a for i, a in enumerate(given)
            if not a.startswith(dropped) and a != "--ready_only" and not (i and given[i - 1] in dropped)]
    command = "python -m experiments.beyond_flatland " + " ".join(kept)
    run(args.config, args.workdir, stages, args.publish, command, args.ready_only)


if __name__ == "__main__":
    run_cli(main, user_errors=(ValueError,), onednn=True)
