"""The AIST shape & pose experiment (seed 002 ch. 6, Table 6.2, Figures 6.5 / 7.1): baseline DPC on the original
renders vs DPC on each AIST-stylised copy, scored on every test set and on held-out real segmentations.

    python -m experiments.aist_shape_pose --config tiny --workdir runs/aist_exp/tiny    # whole chain on CPU, minutes
    python -m experiments.aist_shape_pose --config cars --workdir runs/aist_exp/cars \\
        --source_manual_dir /data/ShapeNetCore.v2 --phi_weights resnet18_imagenet.npz   # the seed's (GPU days)
    python -m experiments.aist_shape_pose --config cars --workdir runs/aist_exp/cars ...  # rerun: resumes

Stages, in order; each is done when its marker `<workdir>/stages/<stage>.json` exists (written atomically, last),
so rerunning the command skips finished stages (an interrupted AIST or DPC run continues from its checkpoint):

  data              the source multi-view dataset (`source`, e.g. `multiview_shapes/shapenet_cars`) built into the
                    data dir if missing (Beam, TF-free render workers); 'standin:N' real data written as RGBA PNGs
                    under <workdir>/real/ (`tfsynth.aist.standin`: format only, for tests and the tiny config)
  aist-<name>       one AIST CycleGAN per entry of `aist_runs` (`tfsynth.aist.training.run`, the job behind
                    `python -m train.aist`, with that preset; X = the source's train split as RGBA from images +
                    masks, Y = `real_train`) -> <workdir>/aist/<name>/G.keras
  stylize-<name>    `aist_stylized/<name>` built from that generator (train, validation and test splits; the mask
                    agreement per split is recorded)
  dpc-<experiment>  one DPC model per training set (`train.shape_pose` preset `dpc_config`): `baseline` on the
                    original renders, `<name>` on each stylised set -> <workdir>/dpc/<experiment>/
  report            `eval.aist`'s evaluation of every DPC model on the original and every stylised test set (Table
                    6.2 layout) and on the held-out real segmentations `real_test` (Figure 6.5) and as many random
                    original test views (Figure 7.1), in <workdir>/report/: table.md|csv, real_table.md|csv,
                    real_kde.png, reality_gap_kde.png, results.json (with every stage's record); redone whenever
                    another stage finished after it

Configs are functions (`cars`, `procedural`, `tiny`) returning an `ExperimentConfig`; every field is also a flag
that overrides the selected config (a workdir holds one config's run: rerun with the same flags). `--stage S` runs
only S (repeatable). The networks, losses, training and metrics are the project's (`tfsynth.aist`, `tfsynth.dpc`,
`eval.aist`). Real data: `real_train` / `real_test` are train.aist sources ('tfds:stanford_cars_clean/<config>:
<split>' or a folder of RGBA PNGs whose alpha is the segmentation) or 'standin:N'.
"""
from __future__ import annotations

import dataclasses
import os
import shlex
import sys
from typing import Optional

from experiments.common import stage_marker, check_workdir, git_commit, read_json, run_stages
from tfsynth import config_flags
from tfsynth.aist import configs as aist_configs
from tfsynth.config_flags import ConfigError

# train.aist presets, plus the tiny sizes with the less-constrained lambdas (the tiny experiment's second run).
AIST_PRESETS = (*aist_configs.CONFIGS, "tiny_less_constrained")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Every setting of one AIST shape & pose experiment."""

    # --- data ---
    source: str = "multiview_shapes/shapenet_cars"  # multi-view source 'name/config' (built when missing)
    source_manual_dir: str = ""  # --manual_dir for building the source (ShapeNetCore root for shapenet_*)
    data_dir: str = ""  # TFDS data dir for the source and the stylised sets ('' = <workdir>/tfds)
    real_train: str = "tfds:stanford_cars_clean/maskrcnn:train"  # AIST domain Y: train.aist source or standin:N
    real_test: str = "tfds:stanford_cars_clean/maskrcnn:test"  # held-out real segmentations (§6.3) or standin:N
    real_size: int = 64  # image size of stand-in real images (standin:N only)
    max_real_test: int = 0  # use at most this many real test images (0: all)
    # --- AIST ---
    aist_runs: str = "stylized2=constrained,stylized3=less_constrained"  # NAME=train.aist preset, comma-separated
    aist_epochs: int = 0  # constant-LR epochs and decay epochs each (0: the preset's 100 + 100)
    aist_steps_per_epoch: int = 0  # AIST steps per epoch (0: max(|X|, |Y|) // batch)
    aist_image_size: int = 0  # AIST image size (0: the preset's)
    phi_weights: str = ""  # Phi weights for the ResDist loss (ResNet-18 .npz or .keras; '' = random init)
    composite: str = "output_alpha"  # stylised image composite: output_alpha | original_mask | none
    # --- DPC ---
    dpc_config: str = "cars"  # train.shape_pose preset for every DPC model
    dpc_steps: int = 0  # DPC training steps (0: the preset's)
    dpc_batch_models: int = 0  # objects per DPC batch (0: the preset's)
    dpc_views_per_model: int = 0  # views per object in a DPC batch (0: the preset's)
    # --- evaluation ---
    alignment: str = "icp"  # 'icp' (global alignment on validation models) or 'none'
    align_models: int = 50  # validation models for the alignment
    max_test_models: int = 0  # score at most this many test models per set (0: all)
    gap_images: int = 0  # synthetic test views for Figure 7.1 (0: as many as real test images)
    seed: int = 0  # AIST and DPC seeds, stand-ins, Figure 7.1 view draw

    def __post_init__(self):
        config_flags.check_ranges(self, EXPERIMENT_RANGES)
        self.runs()  # validates the syntax
        if self.alignment not in ("icp", "none"):
            raise ConfigError(f"alignment must be 'icp' or 'none', got {self.alignment!r}")
        if "/" not in self.source:
            raise ConfigError(f"source must be 'name/config', got {self.source!r}")

    def runs(self) -> dict:
        out = {}
        for item in filter(None, (s.strip() for s in self.aist_runs.split(","))):
            name, sep, preset = item.partition("=")
            if not sep or not name or not preset or not name.replace("_", "").isalnum():
                raise ConfigError(f"aist_runs: expected NAME=PRESET items (NAME alphanumeric/_), got {item!r}")
            if name in ("baseline", "original") or name in out:
                raise ConfigError(f"aist_runs: name {name!r} is reserved or repeated")
            if preset not in AIST_PRESETS:
                raise ConfigError(f"aist_runs: unknown train.aist preset {preset!r}; valid: {', '.join(AIST_PRESETS)}")
            out[name] = preset
        return out

    def replace(self, **overrides) -> "ExperimentConfig":
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Valid values of the fields (tfsynth.config_flags.check_ranges rules).
EXPERIMENT_RANGES = {
    "real_size": ">= 1", "max_real_test": ">= 0", "aist_epochs": ">= 0", "aist_steps_per_epoch": ">= 0",
    "aist_image_size": ">= 0", "composite": "{output_alpha, original_mask, none}", "dpc_steps": ">= 0",
    "dpc_batch_models": ">= 0", "dpc_views_per_model": ">= 0", "align_models": ">= 1", "max_test_models": ">= 0",
    "gap_images": ">= 0",
}


def cars() -> ExperimentConfig:
    """Seed 002 ch. 6: ShapeNet cars, AIST experiments 2 (constrained) and 3 (less constrained), DPC `cars` recipe.

    Cost (measured step times, see README): AIST 200 epochs at 256 px, batch 4, the reference generator; DPC
    600,000 steps each (x 3 models). Days on one GPU; `--stage` runs one stage, to spread it over machines.
    """
    return ExperimentConfig()


def procedural() -> ExperimentConfig:
    """No ShapeNet: procedural multi-view renders, the two AIST presets (20 + 20 epochs), DPC `procedural`."""
    return ExperimentConfig(source="multiview_shapes/procedural", aist_epochs=20, dpc_config="procedural")


def tiny() -> ExperimentConfig:
    """The whole chain on CPU in a few minutes: procedural_tiny (10 models, 3 views, 64 px), stand-in real images,
    two tiny AIST runs (32 px, 2 x 2 epochs of 3 steps), tiny DPC models (40 steps of 3 objects x 3 views).

    The numbers only show that every stage runs and connects; see `cars` for the experiment.
    """
    return ExperimentConfig(source="multiview_shapes/procedural_tiny", real_train="standin:12",
                            real_test="standin:8", aist_runs="stylized2=tiny,stylized3=tiny_less_constrained",
                            aist_epochs=2, aist_steps_per_epoch=3, dpc_config="tiny", dpc_steps=40,
                            dpc_batch_models=3, dpc_views_per_model=3, align_models=4)


CONFIGS = {"cars": cars, "procedural": procedural, "tiny": tiny}


def get_config(name: str, overrides: Optional[dict] = None) -> ExperimentConfig:
    return config_flags.get_config(CONFIGS, ExperimentConfig, name, overrides)


# ----------------------------------------------------------------------------------------------------------------
# Job configs of the stages.

def aist_config(config: ExperimentConfig, preset: str, x_data: str, y_data: str):
    """The train.aist config of one AIST run: a train.aist preset (or 'tiny_less_constrained': the tiny sizes with
    the less-constrained lambdas) with the experiment's overrides."""
    if preset == "tiny_less_constrained":
        lc = aist_configs.less_constrained()
        base = aist_configs.tiny().replace(**{k: getattr(lc, k) for k in lc.loss_weights()})
    else:
        base = aist_configs.get_config(preset)
    over = {"x_data": x_data, "y_data": y_data, "seed": config.seed}
    if config.aist_epochs:
        over.update(n_epochs=config.aist_epochs, n_epochs_decay=config.aist_epochs)
    if config.aist_steps_per_epoch:
        over["steps_per_epoch"] = config.aist_steps_per_epoch
    if config.aist_image_size:
        over["image_size"] = config.aist_image_size
    if config.phi_weights:
        over["phi_weights"] = config.phi_weights
    return base.replace(**over)


def dpc_config(config: ExperimentConfig, data: str, val_data: str):
    """The train.shape_pose config of one DPC model: preset `dpc_config` with the experiment's sizes."""
    from tfsynth.dpc import configs as dpc_configs

    over = {"data": data, "val_data": val_data, "seed": config.seed}
    for field, value in (("steps", config.dpc_steps), ("batch_models", config.dpc_batch_models),
                         ("views_per_model", config.dpc_views_per_model)):
        if value:
            over[field] = value
    c = dpc_configs.get_config(config.dpc_config, over)
    return c.replace(log_every=min(c.log_every, c.steps), checkpoint_every=min(c.checkpoint_every, c.steps))


# ----------------------------------------------------------------------------------------------------------------
# Layout.

def train_sets(config: ExperimentConfig) -> list[str]:
    """The DPC experiments: `baseline` (original renders), then one per AIST run."""
    return ["baseline", *config.runs()]


def stage_names(config: ExperimentConfig) -> list[str]:
    names = list(config.runs())
    return ["data", *(s for n in names for s in (f"aist-{n}", f"stylize-{n}")),
            *(f"dpc-{e}" for e in train_sets(config)), "report"]




def _data_dir(config: ExperimentConfig, workdir: str) -> str:
    return config.data_dir or os.path.join(workdir, "tfds")


def _set_base(config: ExperimentConfig, train_set: str) -> str:
    """'tfds:name/config' of a DPC training set (its splits: train, validation if present, test)."""
    return f"tfds:{config.source}" if train_set == "baseline" else f"tfds:aist_stylized/{train_set}"


def resolve_real(spec: str, folder: str, size: int, seed: int, write: bool = True) -> str:
    """'standin:N' -> a folder of N stand-in RGBA PNGs (written once, when `write`); anything else unchanged."""
    if not spec.startswith("standin:"):
        return spec
    try:
        n = int(spec.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"{spec!r}: expected 'standin:N'") from None
    if write:
        from tfsynth.aist import standin

        standin.write_standin_folder(folder, n, size, seed)
    return folder


def real_source(config: ExperimentConfig, workdir: str, split: str, write: bool = False) -> str:
    """The train.aist / eval.aist source of the real data of `split` ('train': AIST's Y, 'test': held out)."""
    spec, seed = (config.real_train, config.seed) if split == "train" else (config.real_test, config.seed + 1)
    return resolve_real(spec, os.path.join(workdir, "real", split), config.real_size, seed, write)


def _has_checkpoints(workdir: str) -> bool:
    """Whether an interrupted training run left checkpoints in `workdir` (then the stage resumes)."""
    ckpt = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt) and bool(os.listdir(ckpt))


def _val_split(workdir: str) -> str:
    return read_json(stage_marker(workdir, "data"))["val_split"]


# ----------------------------------------------------------------------------------------------------------------
# Stages.

def stage_data(config: ExperimentConfig, workdir: str) -> dict:
    from tfsynth.aist.stylize import source_builder
    from tfsynth.input.datasets import beam_download_config, build_dataset

    data_dir = _data_dir(config, workdir)
    builder = source_builder(config.source, data_dir)
    if not builder.is_prepared():
        dl = beam_download_config(manual_dir=config.source_manual_dir or None)
        print(f"[data] building {config.source} in {data_dir}", flush=True)
        build_dataset(builder, dl)  # a bad --source_manual_dir: the last line of the build error only
    splits = {name: int(s.num_examples) for name, s in builder.info.splits.items()}
    if not {"train", "test"} <= set(splits):
        raise ValueError(f"{config.source}: needs train and test splits, has {sorted(splits)}")
    return {"source": config.source, "data_dir": data_dir, "splits": splits,
            "val_split": "validation" if "validation" in splits else "train",
            "real_train": real_source(config, workdir, "train", write=True),
            "real_test": real_source(config, workdir, "test", write=True)}


def stage_aist(config: ExperimentConfig, workdir: str, name: str) -> dict:
    import keras

    from tfsynth.aist import training

    keras.backend.clear_session()
    preset = config.runs()[name]
    wd = os.path.join(workdir, "aist", name)
    if not os.path.exists(os.path.join(wd, "G.keras")):
        acfg = aist_config(config, preset, f"tfds:{config.source}:train:images+masks",
                           real_source(config, workdir, "train"))
        print(f"[aist-{name}] AIST {name} ({preset})", flush=True)
        training.run(acfg, wd, resume=_has_checkpoints(wd), data_dir=_data_dir(config, workdir))
    r = read_json(os.path.join(wd, "results.json"))
    return {"preset": preset, "workdir": wd, "seconds_per_step": r.get("seconds_per_step"),
            "final_epoch_losses": r.get("final_epoch_losses")}


def stage_stylize(config: ExperimentConfig, workdir: str, name: str) -> dict:
    import keras

    from tfsynth.aist.stylize import stylized_builder
    from tfsynth.input.datasets import build_dataset

    keras.backend.clear_session()
    generator = os.path.join(workdir, "aist", name, "G.keras")
    builder = stylized_builder(name, config.source, generator, _data_dir(config, workdir), config.composite)
    if not builder.is_prepared():
        build_dataset(builder)
    return {"dataset": f"aist_stylized/{name}", "generator": generator,
            "mask_agreement": dict(builder.info.metadata).get("mask_agreement", {})}


def stage_dpc(config: ExperimentConfig, workdir: str, train_set: str) -> dict:
    import keras

    from tfsynth.dpc import training

    keras.backend.clear_session()
    base = _set_base(config, train_set)
    wd = os.path.join(workdir, "dpc", train_set)
    if not os.path.exists(os.path.join(wd, "dpc.weights.h5")):
        dcfg = dpc_config(config, f"{base}:train", f"{base}:{_val_split(workdir)}")
        print(f"[dpc-{train_set}] DPC {train_set} on {base}", flush=True)
        training.run(dcfg, wd, resume=_has_checkpoints(wd), data_dir=_data_dir(config, workdir))
    r = read_json(os.path.join(wd, "results.json"))
    return {"train_set": train_set, "workdir": wd, "seconds_per_step": r.get("seconds_per_step"),
            "last_logged": r.get("last_logged")}


def stage_report(config: ExperimentConfig, workdir: str, command: str) -> dict:
    """`eval.aist.evaluate` on the experiment's models and test sets; results.json also records every stage."""
    import keras

    from eval import aist as eval_aist

    keras.backend.clear_session()
    markers = {s: read_json(stage_marker(workdir, s)) for s in stage_names(config)[:-1]}
    out = os.path.join(workdir, "report")
    models = {e: os.path.join(workdir, "dpc", e) for e in train_sets(config)}
    tests = {"original": f"tfds:{config.source}", **{n: f"tfds:aist_stylized/{n}" for n in config.runs()}}
    cpu = {s: m["cpu_s"] for s, m in markers.items()}
    strip = ("cpu_s", "wall_s")
    extra = {"experiment": "aist_shape_pose", "command": command, "git": git_commit(), "settings": config.to_dict(),
             "data": {k: v for k, v in markers["data"].items() if k not in strip},
             "aist": {n: {**{k: v for k, v in markers[f"aist-{n}"].items() if k not in strip},
                          "mask_agreement": markers[f"stylize-{n}"]["mask_agreement"]} for n in config.runs()},
             "dpc": {e: {k: v for k, v in markers[f"dpc-{e}"].items() if k not in strip} for e in train_sets(config)},
             "cpu_s": cpu, "wall_s": {s: m["wall_s"] for s, m in markers.items()},
             "cpu_s_total": round(sum(cpu.values()), 1)}
    eval_aist.evaluate(models, tests, markers["data"]["real_test"], out, data_dir=_data_dir(config, workdir),
                       alignment=config.alignment, align_models=config.align_models,
                       max_test_models=config.max_test_models, max_real=config.max_real_test,
                       gap_images=config.gap_images, seed=config.seed, extra=extra)
    return {"report": out}


# ----------------------------------------------------------------------------------------------------------------
# Driver.

def needs(config: ExperimentConfig, stage: str) -> list[str]:
    """The stages whose outputs `stage` reads."""
    kind, _, rest = stage.partition("-")
    if kind == "aist" or stage == "dpc-baseline":
        return ["data"]
    if kind == "stylize":
        return ["data", f"aist-{rest}"]
    if kind == "dpc":
        return ["data", f"stylize-{rest}"]
    return [] if stage == "data" else [s for s in stage_names(config) if s != "report"]


def run(config: ExperimentConfig, workdir: str, *, command: str = "", only: Optional[list[str]] = None) -> dict:
    """Runs every unfinished stage in order (or only `only`); returns {stage: marker dict}."""
    workdir = check_workdir(workdir)

    def run_stage(stage):
        missing = [s for s in needs(config, stage) if not os.path.exists(stage_marker(workdir, s))]
        if missing:
            raise ValueError(f"{stage}: stages not done yet: {', '.join(missing)}")
        kind, _, rest = stage.partition("-")
        if stage == "data":
            return stage_data(config, workdir)
        if kind == "aist":
            return stage_aist(config, workdir, rest)
        if kind == "stylize":
            return stage_stylize(config, workdir, rest)
        if kind == "dpc":
            return stage_dpc(config, workdir, rest)
        return stage_report(config, workdir, command)

    return run_stages(workdir, config, stage_names(config), run_stage, only)


def build_parser():
    parser = config_flags.new_parser("python -m experiments.aist_shape_pose", __doc__)
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS), help="named experiment (cars: the seed's)")
    parser.add_argument("--workdir", required=True, help="datasets, models, stage markers and the report (outside "
                        "the repository, or under runs/); rerun with the same --workdir to resume")
    parser.add_argument("--stage", action="append", default=None,
                        help="run only this stage (repeatable; default: every unfinished stage)")
    config_flags.add_config_flags(parser, ExperimentConfig)
    return parser


def main(argv=None) -> dict:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = config_flags.config_from_args(args, CONFIGS, ExperimentConfig)
    if args.stage:
        unknown = sorted(set(args.stage) - set(stage_names(config)))
        if unknown:
            parser.error(f"--stage {', '.join(unknown)}: unknown; stages: {', '.join(stage_names(config))}")
    check_workdir(args.workdir)
    from tfsynth.workdir import claim_workdir

    claim_workdir(args.workdir, "experiments.aist_shape_pose", resume=True)  # one run at a time; before data work
    given = list(sys.argv[1:] if argv is None else argv)
    command = "python -m experiments.aist_shape_pose " + " ".join(shlex.quote(a) for a in given)
    done = run(config, args.workdir, command=command, only=args.stage)
    if "report" in done:
        print(f"Tables and plots: {done['report']['report']}")
    return done


if __name__ == "__main__":
    from tfsynth.cli import run_cli

    run_cli(main, user_errors=(ValueError, FileNotFoundError), onednn=True)  # ConfigError, SourceError: ValueErrors
