"""The AIST shape & pose experiment (seed 002 ch. 6): baseline DPC vs DPC trained on AIST-stylised renders.

    python -m eval.aist --config tiny --workdir runs/aist_exp/tiny          # whole chain on CPU, stand-in "real" data
    python -m eval.aist --config cars --workdir runs/aist_exp/cars --source_manual_dir /data/ShapeNetCore.v2 \\
        --phi_weights resnet18_imagenet.npz

Stages (each skipped when its output exists, so a rerun with the same --workdir resumes where it stopped; an
interrupted AIST or DPC run continues from its last checkpoint):

1. the source multi-view dataset (`multiview_shapes/<config>`) is built if missing (Beam, TF-free render workers);
2. one AIST CycleGAN per entry of `aist_runs` (`train.aist` presets; X = the source's train split as RGBA from
   images + masks, Y = `real_train`) -> `aist/<name>/G.keras`;
3. `aist_stylized` built from each generator (train, validation and test splits; mask agreement per split);
4. one DPC model per training set (`train.shape_pose` preset `dpc_config`): `baseline` on the original renders, and
   `<name>` on each stylised set -> `dpc/<experiment>/`;
5. evaluation (`tfsynth.dpc.evaluation`): every model on the original and every stylised test set (seed Table 6.2:
   precision, coverage, Chamfer x 100, pose accuracy at 30 degrees, median error, after the global ICP alignment
   on the model's own validation split), and the normalised mask disagreement on the held-out real segmentations
   `real_test` (Figure 6.5) and on as many random original test views (Figure 7.1, the reality gap).

Outputs under `<workdir>/eval/`: table.md / table.csv (Table 6.2), real_table.md / real_table.csv (disagreement
per experiment), real_kde.png (Figure 6.5), reality_gap_kde.png (Figure 7.1), results.json.

Real data: `real_train` / `real_test` are train.aist sources ('tfds:stanford_cars_clean/<config>:<split>' or a
folder of RGBA PNGs whose alpha is the segmentation) or 'standin:N' (N generated stand-ins, `tfsynth.aist.standin`,
written under `<workdir>/real/`; format only, for tests and the tiny config).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from typing import Optional

import numpy as np

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


def _has_checkpoints(workdir: str) -> bool:
    """Whether an interrupted training run left checkpoints in `workdir` (then the stage resumes)."""
    ckpt = os.path.join(workdir, "checkpoints")
    return os.path.isdir(ckpt) and bool(os.listdir(ckpt))


def cars() -> ExperimentConfig:
    """Seed 002 ch. 6: ShapeNet cars, AIST experiments 2 (constrained) and 3 (less constrained), DPC `cars` recipe.

    Cost (measured step times, see README): AIST 200 epochs at 256 px, batch 4, the reference generator; DPC
    600,000 steps each (x 3 models). Days on one GPU; use the per-stage commands to spread it over machines.
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


# ----------------------------------------------------------------------------------------------------------- helpers

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
    from tfsynth.dpc import configs as dpc_configs

    over = {"data": data, "val_data": val_data, "seed": config.seed}
    for field, value in (("steps", config.dpc_steps), ("batch_models", config.dpc_batch_models),
                         ("views_per_model", config.dpc_views_per_model)):
        if value:
            over[field] = value
    c = dpc_configs.get_config(config.dpc_config, over)
    return c.replace(log_every=min(c.log_every, c.steps), checkpoint_every=min(c.checkpoint_every, c.steps))


def resolve_real(spec: str, folder: str, size: int, seed: int) -> str:
    """'standin:N' -> a folder of N stand-in RGBA PNGs (written once); anything else unchanged."""
    if not spec.startswith("standin:"):
        return spec
    from tfsynth.aist import standin

    try:
        n = int(spec.split(":", 1)[1])
    except ValueError:
        raise ConfigError(f"{spec!r}: expected 'standin:N'") from None
    standin.write_standin_folder(folder, n, size, seed)
    return folder


def load_real_segmentations(spec: str, data_dir: Optional[str] = None, max_images: int = 0):
    """(images (N, H, W, 3) uint8 on white, masks (N, H, W) uint8 0/1) of real segmentations: a folder of RGBA PNGs
    or 'tfds:name/config:split' with an RGBA 'image' feature (stanford_cars_clean) or a multi-view source."""
    from tfsynth.dpc import data as dpc_data
    from tfsynth.dpc import evaluation

    if spec.startswith("tfds:") and spec.count(":") == 2:
        from tfsynth.aist import data as aist_data

        try:
            src = aist_data.load_source(spec, data_dir, max_images)
        except aist_data.SourceError as err:
            if "no feature 'image'" in str(err):  # a multi-view source: its masks
                return evaluation.load_real(spec, data_dir, max_images)
            raise dpc_data.SourceError(str(err)) from None
        rgba = np.stack([np.asarray(src.decode(item)) for item in src.items])
        if rgba.shape[-1] != 4 or rgba[..., 3].min() == 255:
            raise dpc_data.SourceError(f"{spec}: real segmentations need an alpha channel (the mask)")
        return dpc_data._rgb_on_white(rgba), (rgba[..., 3] > 127).astype(np.uint8)
    return evaluation.load_real(spec, data_dir, max_images)


def _write_csv(path: str, rows: list, fields: list) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def real_table(summary: dict) -> str:
    lines = ["| Experiment | Real: mean | Real: median | Synthetic test: mean | Synthetic test: median |",
             "|---|---|---|---|---|"]
    for exp, s in summary.items():
        lines.append(f"| {exp} | {s['real_mean']:.3f} | {s['real_median']:.3f} | {s['synthetic_mean']:.3f} "
                     f"| {s['synthetic_median']:.3f} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------- stages

def build_source(config: ExperimentConfig, data_dir: str):
    from tfsynth.aist.stylize import source_builder
    from tfsynth.input.datasets import beam_download_config, build_dataset

    builder = source_builder(config.source, data_dir)
    if not builder.is_prepared():
        dl = beam_download_config(manual_dir=config.source_manual_dir or None)
        print(f"[eval.aist] building {config.source} in {data_dir}", flush=True)
        build_dataset(builder, dl)  # a bad --source_manual_dir: the last line of the build error only
    return builder


def build_stylized(config: ExperimentConfig, name: str, generator: str, data_dir: str):
    from tfsynth.aist.stylize import stylized_builder
    from tfsynth.input.datasets import build_dataset

    builder = stylized_builder(name, config.source, generator, data_dir, config.composite)
    if not builder.is_prepared():
        build_dataset(builder)
    return builder


def run(config: ExperimentConfig, workdir: str) -> dict:
    """All stages (see the module docstring); returns results.json's content."""
    from tfsynth.aist import training as aist_training
    from tfsynth.dpc import data as dpc_data
    from tfsynth.dpc import evaluation, metrics
    from tfsynth.dpc import training as dpc_training
    from tfsynth.training import checkpoint as ckpt_lib

    start = time.time()
    os.makedirs(workdir, exist_ok=True)
    ckpt_lib.atomic_write_text(os.path.join(workdir, "experiment.json"), json.dumps(config.to_dict(), indent=2))
    data_dir = config.data_dir or os.path.join(workdir, "tfds")
    timings = {}

    t = time.time()
    source = build_source(config, data_dir)
    timings["source_build_s"] = time.time() - t
    splits = set(source.info.splits)
    if not {"train", "test"} <= splits:
        raise ValueError(f"{config.source}: needs train and test splits, has {sorted(splits)}")
    val_split = "validation" if "validation" in splits else "train"
    real_train = resolve_real(config.real_train, os.path.join(workdir, "real", "train"), config.real_size,
                              config.seed)
    real_test = resolve_real(config.real_test, os.path.join(workdir, "real", "test"), config.real_size,
                             config.seed + 1)

    # --- AIST generators and stylised datasets
    aist_results, stylized = {}, {}
    for name, preset in config.runs().items():
        wd = os.path.join(workdir, "aist", name)
        g_path = os.path.join(wd, "G.keras")
        t = time.time()
        if not os.path.exists(g_path):
            acfg = aist_config(config, preset, f"tfds:{config.source}:train:images+masks", real_train)
            resume = _has_checkpoints(wd)
            print(f"[eval.aist] AIST {name} ({preset})", flush=True)
            aist_training.run(acfg, wd, resume=resume, data_dir=data_dir)
        timings[f"aist_{name}_s"] = time.time() - t
        with open(os.path.join(wd, "results.json")) as f:
            r = json.load(f)
        t = time.time()
        builder = build_stylized(config, name, g_path, data_dir)
        timings[f"stylize_{name}_s"] = time.time() - t
        agreement = dict(builder.info.metadata).get("mask_agreement", {})
        aist_results[name] = {"preset": preset, "seconds_per_step": r.get("seconds_per_step"),
                              "final_epoch_losses": r.get("final_epoch_losses"), "mask_agreement": agreement}
        stylized[name] = f"tfds:aist_stylized/{name}"

    # --- DPC models
    train_sets = {"baseline": f"tfds:{config.source}", **stylized}
    dpc_results = {}
    for exp, base in train_sets.items():
        wd = os.path.join(workdir, "dpc", exp)
        t = time.time()
        if not os.path.exists(os.path.join(wd, "dpc.weights.h5")):
            dcfg = dpc_config(config, f"{base}:train", f"{base}:{val_split}")
            resume = _has_checkpoints(wd)
            print(f"[eval.aist] DPC {exp} on {base}", flush=True)
            dpc_training.run(dcfg, wd, resume=resume, data_dir=data_dir)
        timings[f"dpc_{exp}_s"] = time.time() - t
        with open(os.path.join(wd, "results.json")) as f:
            r = json.load(f)
        dpc_results[exp] = {"seconds_per_step": r.get("seconds_per_step"), "last_logged": r.get("last_logged")}

    # --- evaluation
    t = time.time()
    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    test_sets = {"original": f"tfds:{config.source}", **stylized}
    real_images, real_masks = load_real_segmentations(real_test, data_dir, config.max_real_test)
    rows, real_scores, gap_scores, alignments = [], {}, {}, {}
    for exp, base in train_sets.items():
        model, mcfg = dpc_training.load_trained(os.path.join(workdir, "dpc", exp))
        q_align = None
        if config.alignment == "icp":
            val = dpc_data.load_source(f"{base}:{val_split}", mcfg.image_size, data_dir, config.align_models)
            q_align, _ = evaluation.estimate_alignment(model, mcfg, val, config.align_models, seed=config.seed)
            alignments[exp] = np.asarray(q_align).tolist()
        for ds_name, ds_base in test_sets.items():
            test = dpc_data.load_source(f"{ds_base}:test", mcfg.image_size, data_dir, config.max_test_models)
            row = {"experiment": exp, "dataset": ds_name, **evaluation.score_set(model, mcfg, test, q_align)}
            rows.append(row)
        real_scores[exp] = evaluation.real_disagreement(model, mcfg, real_images, real_masks)
        # Figure 7.1: the same metric on random views of the original synthetic test set.
        test = dpc_data.load_source(f"tfds:{config.source}:test", mcfg.image_size, data_dir, config.max_test_models)
        m, v = len(test), test.num_views
        imgs = test.images.reshape((m * v,) + test.images.shape[2:])
        msks = test.masks.reshape((m * v,) + test.masks.shape[2:])
        keep = msks.reshape(len(msks), -1).max(1) > 0
        imgs, msks = imgs[keep], msks[keep]
        n = min(config.gap_images or len(real_images), len(imgs))
        pick = np.sort(np.random.default_rng(np.random.SeedSequence([config.seed, 71])).choice(len(imgs), n,
                                                                                              replace=False))
        gap_scores[exp] = evaluation.real_disagreement(model, mcfg, imgs[pick], msks[pick])
    timings["evaluation_s"] = time.time() - t

    table = evaluation.markdown_table(rows)
    fields = ["experiment", "dataset", "precision", "coverage", "chamfer", "accuracy", "median_error_deg",
              "models", "views"]
    _write_csv(os.path.join(out, "table.csv"), rows, fields)
    summary = {exp: {"real_mean": float(np.mean(real_scores[exp])), "real_median": float(np.median(real_scores[exp])),
                     "synthetic_mean": float(np.mean(gap_scores[exp])),
                     "synthetic_median": float(np.median(gap_scores[exp])),
                     "real_images": len(real_scores[exp]), "synthetic_images": len(gap_scores[exp])}
               for exp in train_sets}
    rtable = real_table(summary)
    _write_csv(os.path.join(out, "real_table.csv"), [{"experiment": k, **v} for k, v in summary.items()],
               ["experiment", "real_mean", "real_median", "synthetic_mean", "synthetic_median", "real_images",
                "synthetic_images"])
    for path, text in (("table.md", table), ("real_table.md", rtable)):
        ckpt_lib.atomic_write_text(os.path.join(out, path), text + "\n")
    metrics.plot_kde_cdfs({k: list(v) for k, v in real_scores.items()}, os.path.join(out, "real_kde.png"),
                          title="Real test segmentations (Fig. 6.5)")
    both = {f"{k} (real)": list(v) for k, v in real_scores.items()}
    both.update({f"{k} (synthetic)": list(v) for k, v in gap_scores.items()})
    metrics.plot_kde_cdfs(both, os.path.join(out, "reality_gap_kde.png"), title="Reality gap (Fig. 7.1)")
    results = {
        "config": config.to_dict(), "rows": rows, "real_disagreement": summary,
        "real_scores": {k: np.asarray(v).tolist() for k, v in real_scores.items()},
        "synthetic_scores": {k: np.asarray(v).tolist() for k, v in gap_scores.items()},
        "alignment": config.alignment, "alignment_quaternions": alignments,
        "aist": aist_results, "dpc": dpc_results, "timings_s": timings, "wall_time_s": time.time() - start,
        "outputs": {k: os.path.join(os.path.abspath(out), k) for k in
                    ("table.md", "table.csv", "real_table.md", "real_table.csv", "real_kde.png",
                     "reality_gap_kde.png")},
    }
    ckpt_lib.atomic_write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2))
    print("Table 6.2 layout (Chamfer terms x 100, accuracy at 30 degrees, median error in degrees):")
    print(table)
    print("Normalised mask disagreement (seed §6.3):")
    print(rtable)
    return results
