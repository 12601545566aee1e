"""Seed 002, chapters 4 and 6 at laptop scale: does AIST keep annotations where a plain CycleGAN changes them?

    python -m experiments.aist_invariance --config tiny --workdir /tmp/aist_invariance_tiny     # whole chain (tests)
    python -m experiments.aist_invariance --config small --workdir /work/runs/aist_invariance_small \\
        --publish docs/results/aist_invariance_small                                          # the laptop run

The domain pair (generated here, no download): X = `multiview_shapes/vehicles` renders (uniformly coloured, shaded
cars, about a fifth of the frame, white background; RGBA from images + masks), Y = `tfsynth.aist.target_domain`
(blobs of boxes and ellipsoids filling most of the frame, two-colour Perlin textures, side light, dark textured
background; alpha = silhouette). Y differs from X in silhouettes as well as appearance, so a plain CycleGAN, whose
discriminator D_Y sees Y's outlines, has a reason to change the cars' outlines; AIST's alpha loss forbids it.

Stages, in order; each is done when its marker `<workdir>/stages/<stage>.json` exists (written atomically, last),
so rerunning the command skips finished stages (an interrupted training stage continues from its checkpoint):

  data                  X built into the data dir (the project's auto-build: Beam in-process, TF-free render
                        workers); Y written as RGBA PNGs (<workdir>/y/train, <workdir>/y/test, disjoint indices)
  baselines             on held-out X: the identity (IoU 1, appearance unchanged) and "paint Y's outline" (the IoU
                        of each X mask with a random Y mask: what a generator that draws Y silhouettes scores)
  aist-<model>-s<seed>  `tfsynth.aist.training.run` (the job behind `python -m train.aist`) for model `cyclegan`
                        (the reference CycleGAN: RGB, ReLU, identity 0.5, no alpha / feature terms), `constrained`
                        and `less_constrained` (seed Table 6.1), all at the experiment's size (`aist` overrides)
  invariance-<m>-s<s>   the generator G: X -> Y on every held-out X view (`tfsynth.aist.stylize`): mask agreement
                        (IoU of the source mask and the output's outline: its alpha > 0.5, or for the RGB CycleGAN
                        the pixels that are not near-black, any channel > 25 of 255, since Y's background is black
                        in that mode; the seed's strict "non-black" alpha is also recorded) and appearance change
                        (total-variation distance between the 8x8x8 RGB histograms of object pixels of G(X) and of
                        held-out Y, beside the same distance for X itself)
  stylize-<model>       `aist_stylized/<model>` from the generator of seed `dpc_seed` (every split of X)
  dpc-<set>             one DPC model (learned poses: the seed's pose ensemble + student) on `original` X and on
                        each stylised set (input: the stylised view, target: the original mask)
  table                 every DPC model on every test set in the seed's Table 6.2 layout (Chamfer x 100 after the
                        global ICP alignment, pose accuracy at 30 degrees, median angular error)
  report                results.md, results.json (per model and seed), panels.png, iou.png in <workdir>/report
                        (`--publish DIR` copies it); redone whenever another stage finished after it

Configs are functions (`tiny`, `small`) returning an `ExperimentConfig`; the networks, losses, training and metrics
are the project's (`tfsynth.models.aist`, `tfsynth.aist`, `tfsynth.dpc`).
"""
from __future__ import annotations

import argparse
import inspect
import dataclasses
import glob
import json
import os
import shlex
import sys
from typing import Callable, Optional

import numpy as np

from experiments.common import (check_workdir, git_commit, publish_report, read_json, run_stages, savez,
                                stage_marker, write_json)
from tfsynth.atomic import atomic_write_text
from tfsynth.workdir import RESULTS_NAME

MODELS = ("cyclegan", "constrained", "less_constrained")
HIST_BINS = 8  # per RGB channel, for the appearance distance
NEAR_BLACK = 25  # uint8: an RGB generator's output pixel with every channel <= this is background (Y's is black)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything the experiment varies."""

    name: str
    dataset: str = "multiview_shapes/vehicles"  # X: TFDS name/config with train, validation and test splits
    y_train: int = 1500  # Y training images
    y_test: int = 300  # held-out Y images (appearance reference)
    y_size: int = 64  # Y image size (X's renders are 64 px)
    models: tuple = MODELS
    seeds: tuple = (1, 2, 3)
    aist: dict = dataclasses.field(default_factory=dict)  # AISTConfig overrides for every model (size, steps, ...)
    test_models: int = 0  # held-out X models scored (0: all)
    panel_views: int = 6  # held-out X views shown in panels.png
    dpc_seed: int = 1  # the AIST seed whose generators stylise the DPC training sets; also the DPC seed
    dpc: dict = dataclasses.field(default_factory=dict)  # DPCConfig fields of every DPC model
    dpc_steps: int = 1000
    align_models: int = 50  # validation models for the global ICP alignment
    verbose: int = 2
    alpha_diagnostic: float = 0.0  # > 0: one more `constrained` run (seed dpc_seed) with both alpha weights x this

    @property
    def diagnostic_model(self) -> str:
        """The diagnostic run's model name ('' without one): `constrained` with the alpha weights scaled."""
        return f"constrained_alpha{self.alpha_diagnostic:g}".replace(".", "p") if self.alpha_diagnostic else ""

    def __post_init__(self):
        if not self.models or not set(self.models) <= set(MODELS) or len(set(self.models)) != len(self.models):
            raise ValueError(f"models must be distinct names among {', '.join(MODELS)}, got {self.models}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if self.dpc_seed not in self.seeds:
            raise ValueError(f"dpc_seed {self.dpc_seed} must be one of the seeds {self.seeds}")
        if self.alpha_diagnostic < 0:
            raise ValueError(f"alpha_diagnostic must be >= 0, got {self.alpha_diagnostic}")
        if min(self.y_train, self.y_test, self.y_size, self.dpc_steps, self.align_models) < 1:
            raise ValueError("y_train, y_test, y_size, dpc_steps and align_models must be >= 1")
        for model in self.models:
            self.aist_config(model, self.seeds[0], "x", "y")  # unknown or invalid fields fail here, in one line
        self.dpc_config("tfds:x:train", "tfds:x:validation")

    def split(self, split: str) -> str:
        return f"tfds:{self.dataset}:{split}"

    def aist_config(self, model: str, seed: int, x_data: str, y_data: str):
        """The `tfsynth.aist.configs.AISTConfig` of one AIST run: the model's preset with the experiment's sizes."""
        from tfsynth.aist import configs
        from tfsynth.config_flags import ConfigError

        fields = {f.name for f in dataclasses.fields(configs.AISTConfig)}
        unknown = sorted(set(self.aist) - fields)
        if unknown:
            raise ValueError(f"unknown AISTConfig field(s) in aist: {', '.join(unknown)}")
        preset, extra = model, {}
        if model and model == self.diagnostic_model:
            base = configs.constrained()
            preset = "constrained"
            extra = {k: getattr(base, k) * self.alpha_diagnostic for k in ("lambda_alpha_G", "lambda_alpha_F")}
        try:
            return configs.get_config(preset).replace(**self.aist, **extra, x_data=x_data, y_data=y_data, seed=seed)
        except ConfigError as err:
            raise ValueError(f"aist: {err}") from None

    def dpc_config(self, data: str, val_data: str):
        from tfsynth.dpc.configs import ConfigError, DPCConfig

        try:
            return DPCConfig(**self.dpc).replace(data=data, val_data=val_data, predict_pose=True,
                                                 steps=self.dpc_steps, seed=self.dpc_seed)
        except (ConfigError, TypeError) as err:
            raise ValueError(f"dpc: {err}") from None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples as lists: comparable with the stored JSON


# The DPC network of experiments.shape_pose's laptop configs (the reference: 128 px, 1024-wide layers, 8,000 points).
_LAPTOP_DPC = dict(image_size=32, f_dim=8, fc_dim=128, z_dim=128, num_points=2000, vox_size=32, kernel_size=11,
                   sigma_start=2.0, sigma_end=0.5, keep_prob_start=0.5, batch_models=4, views_per_model=4, lr=1e-3,
                   log_every=50, checkpoint_every=250)


def small() -> ExperimentConfig:
    """The laptop run: 3 models x 3 seeds of AIST, then 4 DPC models. Shrunk relative to the seed (ShapeNet cars and
    cleaned Stanford Cars photos at 256 px, the reference networks, 200 epochs; days on a GPU):

    - data: X = `multiview_shapes/vehicles` (600 training models x 5 views = 3,000 images; 100 held-out models,
      500 views), Y = 1,500 + 300 procedural images (`tfsynth.aist.target_domain`);
    - AIST at 32 px with generators of width 16 and 4 residual blocks, discriminators of width 16 (the reference:
      256 px, 64, 9 blocks, 64); 1,000 steps of 4 images per domain (2 epochs of 250 steps at constant LR, then 2
      of linear decay) at LR 4e-4 (2e-4, for 200 epochs); batch 4 for the plain CycleGAN too (its reference batch
      is 1), so that every model sees the same images; the feature-distance network Phi is a randomly initialised
      ResNet-18 (the seed's is ImageNet-trained, which cannot be downloaded here);
    - DPC: the `shape_pose` laptop network (32 px input, 2,000 points, 32^3 grid), learned poses, 1,000 steps.

    Diagnosis run (added after the first seed's results): `constrained` with both alpha weights x 10, seed 1.
    """
    return ExperimentConfig(
        name="small", y_train=1500, y_test=300,
        aist=dict(image_size=32, ngf=16, ndf=16, n_blocks=4, batch_size=4, lr=4e-4, n_epochs=2, n_epochs_decay=2,
                  steps_per_epoch=250, num_panels=4),
        dpc=dict(_LAPTOP_DPC), dpc_steps=1000, test_models=100, align_models=50, alpha_diagnostic=10.0)


def tiny() -> ExperimentConfig:
    """The whole chain in minutes (tests): `multiview_shapes/vehicles_tiny`, 24 + 12 Y images, tiny nets (width 8,
    1 block), 2 x 3 AIST steps per model, one seed, 30 DPC steps. Its numbers carry no signal."""
    return ExperimentConfig(
        name="tiny", dataset="multiview_shapes/vehicles_tiny", y_train=24, y_test=12, seeds=(1,),
        aist=dict(image_size=32, ngf=8, ndf=8, n_blocks=1, batch_size=2, lr=1e-3, n_epochs=1, n_epochs_decay=1,
                  steps_per_epoch=3, num_panels=2, pool_size=4),
        dpc=dict(_LAPTOP_DPC, batch_models=2, views_per_model=2, log_every=10, checkpoint_every=15), dpc_steps=30,
        align_models=4, panel_views=3, verbose=0, alpha_diagnostic=10.0)


CONFIGS: dict[str, Callable[[], ExperimentConfig]] = {"small": small, "tiny": tiny}


# ----------------------------------------------------------------------------------------------------------------
# Layout.

def run_names(config: ExperimentConfig) -> list[str]:
    # Seed-major: every model's first seed is trained before any second seed, so a partial run compares models.
    runs = [f"{model}-s{seed}" for seed in config.seeds for model in config.models]
    return runs + ([f"{config.diagnostic_model}-s{config.dpc_seed}"] if config.diagnostic_model else [])


def train_sets(config: ExperimentConfig) -> list[str]:
    return ["original", *config.models]


def stage_names(config: ExperimentConfig) -> list[str]:
    runs = run_names(config)
    return ["data", "baselines", *(s for r in runs for s in (f"aist-{r}", f"invariance-{r}")),
            *(f"stylize-{m}" for m in config.models), *(f"dpc-{t}" for t in train_sets(config)), "table", "report"]




def _data_dir(workdir: str) -> str:
    return os.path.join(workdir, "tfds")


def _y_dir(workdir: str, split: str) -> str:
    return os.path.join(workdir, "y", split)


def _aist_dir(workdir: str, run: str) -> str:
    return os.path.join(workdir, "aist", run)


def _dpc_dir(workdir: str, train_set: str) -> str:
    return os.path.join(workdir, "dpc", train_set)


def _set_source(config: ExperimentConfig, train_set: str) -> str:
    return f"tfds:{config.dataset}" if train_set == "original" else f"tfds:aist_stylized/{train_set}"


# ----------------------------------------------------------------------------------------------------------------
# Measures (NumPy).

def colour_histogram(images: np.ndarray, masks: np.ndarray, bins: int = HIST_BINS) -> np.ndarray:
    """Normalised joint RGB histogram (bins^3,) of the object pixels (mask > 0) of uint8 images (N, H, W, 3)."""
    images = np.asarray(images).reshape(-1, 3)
    keep = np.asarray(masks).reshape(-1) > 0
    idx = (images[keep].astype(np.int64) * bins) // 256
    flat = (idx[:, 0] * bins + idx[:, 1]) * bins + idx[:, 2]
    hist = np.bincount(flat, minlength=bins ** 3).astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance of two normalised histograms, in [0, 1]."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def load_y(folder: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rgb (N, size, size, 3) uint8, masks (N, size, size) uint8 0/1) of the Y PNGs of a folder."""
    from PIL import Image

    files = sorted(glob.glob(os.path.join(folder, "*.png")))
    if not files:
        raise ValueError(f"{folder}: no Y images (run the data stage)")
    rgba = np.stack([np.asarray(Image.open(f).convert("RGBA").resize((size, size), Image.BILINEAR)) for f in files])
    return rgba[..., :3], (rgba[..., 3] > 127).astype(np.uint8)


def outline_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pair IoU of two stacks of masks (N, H, W) (> 0 = object); empty vs empty counts as 1."""
    a = np.asarray(a).reshape(len(a), -1) > 0
    b = np.asarray(b).reshape(len(b), -1) > 0
    inter, union = (a & b).sum(1), (a | b).sum(1)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


# ----------------------------------------------------------------------------------------------------------------
# Stages.

def _load_x(config: ExperimentConfig, workdir: str, split: str, max_models: int = 0, auto_build: bool = False):
    from tfsynth.dpc import data as dpc_data

    return dpc_data.load_source(config.split(split), data_dir=_data_dir(workdir), max_models=max_models,
                                auto_build=auto_build)


def _views(data) -> tuple[np.ndarray, np.ndarray]:
    m, v = len(data), data.num_views
    images = data.images.reshape((m * v,) + data.images.shape[2:])
    masks = data.masks.reshape((m * v,) + data.masks.shape[2:])
    return images, masks.reshape(masks.shape[:3])


def stage_data(config: ExperimentConfig, workdir: str) -> dict:
    from tfsynth.aist import target_domain
    from tfsynth.render.pool import get_pool

    info = {}
    for split in ("train", "validation", "test"):
        data = _load_x(config, workdir, split, auto_build=True)
        info[split] = {"models": len(data), "views": data.num_views}
    get_pool().close()  # the render workers exit here, so their CPU time counts for this stage
    target_domain.write_target_folder(_y_dir(workdir, "train"), 0, config.y_train, config.y_size)
    target_domain.write_target_folder(_y_dir(workdir, "test"), config.y_train, config.y_test, config.y_size)
    return {"x": config.dataset, "x_splits": info, "y_train": config.y_train, "y_test": config.y_test}


def stage_baselines(config: ExperimentConfig, workdir: str) -> dict:
    images, masks = _views(_load_x(config, workdir, "test", config.test_models))
    y_rgb, y_masks = load_y(_y_dir(workdir, "test"), images.shape[1])
    rng = np.random.default_rng(0)
    paint_y = outline_iou(masks, y_masks[rng.integers(0, len(y_masks), len(masks))])
    h_y = colour_histogram(y_rgb, y_masks)
    return {"views": int(len(masks)), "x_object_fraction": round(float((masks > 0).mean()), 4),
            "y_object_fraction": round(float((y_masks > 0).mean()), 4),
            "identity": {"mean_iou": 1.0, "appearance_tv_to_y": round(tv_distance(colour_histogram(images, masks),
                                                                                   h_y), 4)},
            "paint_y_outline": {"mean_iou": round(float(paint_y.mean()), 4),
                                "median_iou": round(float(np.median(paint_y)), 4)}}


def stage_aist(config: ExperimentConfig, workdir: str, model: str, seed: int) -> dict:
    import keras

    from tfsynth.aist import training

    keras.backend.clear_session()
    run = f"{model}-s{seed}"
    wd = _aist_dir(workdir, run)
    acfg = config.aist_config(model, seed, f"tfds:{config.dataset}:train:images+masks", _y_dir(workdir, "train"))
    resume = os.path.isdir(os.path.join(wd, "checkpoints")) and bool(os.listdir(os.path.join(wd, "checkpoints")))
    r = training.run(acfg, wd, resume=resume, data_dir=_data_dir(workdir))
    return {"workdir": wd, "alpha_mode": acfg.alpha_mode, "seconds_per_step": r["seconds_per_step"],
            "steps": acfg.total_epochs * r["steps_per_epoch"], "final_epoch_losses": r["final_epoch_losses"],
            "images_x": r["images_x"], "images_y": r["images_y"]}


def output_outline(raw_rgb: np.ndarray, alphas: np.ndarray, alpha_mode: str) -> np.ndarray:
    """(N, H, W) bool outline of generator outputs: the output alpha > 0.5 ('channel'), or for RGB generators
    ('nonblack') the pixels that are not near-black (any channel > NEAR_BLACK): the seed's strict "any channel >
    -1" is true almost everywhere for a tanh output, so it would call every pixel object."""
    if alpha_mode == "channel":
        return np.asarray(alphas)[..., 0] > 127
    return np.asarray(raw_rgb).max(-1) > NEAR_BLACK


def stage_invariance(config: ExperimentConfig, workdir: str, model: str, seed: int) -> dict:
    import keras

    from tfsynth.aist import stylize

    keras.backend.clear_session()
    run = f"{model}-s{seed}"
    g = stylize.load_generator(_aist_dir(workdir, run))
    _, _, mode = stylize.generator_spec(g)
    images, masks = _views(_load_x(config, workdir, "test", config.test_models))
    out = stylize.stylize(g, images, masks, composite="none")  # raw RGB; out["iou"]: the seed's alpha vs the mask
    outline = output_outline(out["images"], out["alphas"], mode)
    iou = outline_iou(masks, outline)
    y_rgb, y_masks = load_y(_y_dir(workdir, "test"), images.shape[1])
    h_y = colour_histogram(y_rgb, y_masks)
    h_out = colour_histogram(out["images"], outline)
    a = out["alphas"].astype(np.float32) / 255.0 if mode == "channel" else outline[..., None].astype(np.float32)
    over_white = np.round(out["images"] * a + 255.0 * (1.0 - a)).astype(np.uint8)
    k = min(config.panel_views, len(images))
    savez(os.path.join(workdir, "invariance", f"{run}.npz"), iou=iou.astype(np.float32),
          panel_x=images[:k], panel_gx=over_white[:k], panel_raw=out["images"][:k],
          panel_alpha=(outline[:k] * 255).astype(np.uint8))
    return {"model": model, "seed": seed, "alpha_mode": mode, "views": int(len(images)),
            "mean_iou": round(float(iou.mean()), 4), "median_iou": round(float(np.median(iou)), 4),
            "frac_iou_ge_0.9": round(float((iou >= 0.9).mean()), 4),
            "seed_alpha_mean_iou": round(float(out["iou"].mean()), 4),
            "output_object_fraction": round(float(outline.mean()), 4),
            "appearance_tv_to_y": round(tv_distance(h_out, h_y), 4),
            "appearance_tv_to_x": round(tv_distance(h_out, colour_histogram(images, masks)), 4)}


def stage_stylize(config: ExperimentConfig, workdir: str, model: str) -> dict:
    import keras

    from tfsynth.aist.stylize import stylized_builder
    from tfsynth.input.datasets import build_dataset

    keras.backend.clear_session()
    generator = os.path.join(_aist_dir(workdir, f"{model}-s{config.dpc_seed}"), "G.keras")
    builder = stylized_builder(model, config.dataset, generator, _data_dir(workdir), "output_alpha")
    if not builder.is_prepared():
        build_dataset(builder)
    return {"dataset": f"aist_stylized/{model}", "generator": generator,
            "mask_agreement": dict(builder.info.metadata).get("mask_agreement", {})}


def stage_dpc(config: ExperimentConfig, workdir: str, train_set: str) -> dict:
    import keras

    from tfsynth.dpc import training

    keras.backend.clear_session()
    base = _set_source(config, train_set)
    r = training.run(config.dpc_config(f"{base}:train", f"{base}:validation"), _dpc_dir(workdir, train_set),
                     resume=True, data_dir=_data_dir(workdir), verbose=config.verbose)
    return {"train_set": train_set, "steps_done": r["steps_done"], "seconds_per_step": r["seconds_per_step"],
            "last_logged": r["last_logged"]}


def stage_table(config: ExperimentConfig, workdir: str) -> dict:
    import keras

    from tfsynth.dpc import data as dpc_data
    from tfsynth.dpc import evaluation, training

    rows = []
    for train_set in train_sets(config):
        keras.backend.clear_session()
        model, dcfg = training.load_trained(_dpc_dir(workdir, train_set))
        base = _set_source(config, train_set)
        val = dpc_data.load_source(f"{base}:validation", data_dir=_data_dir(workdir), max_models=config.align_models)
        q_align, _ = evaluation.estimate_alignment(model, dcfg, val, config.align_models, seed=config.dpc_seed)
        for test_set in train_sets(config):
            test = dpc_data.load_source(f"{_set_source(config, test_set)}:test", data_dir=_data_dir(workdir),
                                        max_models=config.test_models)
            row = evaluation.score_set(model, dcfg, test, q_align)
            rows.append({"experiment": train_set, "dataset": test_set,
                         **{k: round(float(row[k]), 4) for k in ("precision", "coverage", "chamfer", "accuracy",
                                                                 "median_error_deg")}, "models": row["models"]})
    return {"rows": rows}


# ----------------------------------------------------------------------------------------------------------------
# Report (TF-free).

def _table(header: list, rows: list) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(map(str, r)) + " |"
                                                                          for r in rows]


def _ci(values) -> dict:
    from tfsynth.stats import mean_ci

    mean, std, half = mean_ci(values)
    return {"mean": round(mean, 4), "ci95": None if np.isnan(half) else round(half, 4), "n": len(values),
            "values": [round(float(v), 4) for v in values]}


def _fmt(s: dict, digits: int = 3) -> str:
    return f"{s['mean']:.{digits}f}" + ("" if s["ci95"] is None else f" ± {s['ci95']:.{digits}f}")


def summarise(config: ExperimentConfig, markers: dict) -> dict:
    """Per model: mean IoU and appearance distances over seeds (mean ± 95 % CI), and paired differences
    (AIST - CycleGAN, same seed)."""
    per_model = {}
    for model in config.models:
        runs = [markers[f"invariance-{model}-s{s}"] for s in config.seeds if f"invariance-{model}-s{s}" in markers]
        if runs:
            per_model[model] = {k: _ci([r[k] for r in runs]) for k in
                                ("mean_iou", "frac_iou_ge_0.9", "appearance_tv_to_y", "appearance_tv_to_x",
                                 "output_object_fraction")}
    paired = {}
    for model in config.models:
        if model == "cyclegan":
            continue
        diffs = {k: [markers[f"invariance-{model}-s{s}"][k] - markers[f"invariance-cyclegan-s{s}"][k]
                     for s in config.seeds if f"invariance-{model}-s{s}" in markers
                     and f"invariance-cyclegan-s{s}" in markers] for k in ("mean_iou", "appearance_tv_to_y")}
        if diffs["mean_iou"]:
            paired[f"{model} - cyclegan"] = {k: _ci(v) for k, v in diffs.items()}
    diagnostic = {}
    keys = ("mean_iou", "appearance_tv_to_y", "output_object_fraction")
    if config.diagnostic_model:
        for model in ("cyclegan", "constrained", config.diagnostic_model):
            marker = markers.get(f"invariance-{model}-s{config.dpc_seed}")
            if marker:
                diagnostic[model] = {k: marker[k] for k in keys}
    return {"per_model": per_model, "paired": paired, "diagnostic": diagnostic}


def _plot(config: ExperimentConfig, workdir: str, markers: dict, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # panels.png: per model (seed dpc_seed), rows x | G(x) over white | output alpha.
    shown = [*config.models] + ([config.diagnostic_model] if config.diagnostic_model else [])
    loaded = {m: np.load(os.path.join(workdir, "invariance", f"{m}-s{config.dpc_seed}.npz")) for m in shown
              if os.path.exists(os.path.join(workdir, "invariance", f"{m}-s{config.dpc_seed}.npz"))}
    if loaded:
        first = next(iter(loaded.values()))
        k = len(first["panel_x"])
        rows = [("x (source render)", first["panel_x"])]
        for m, z in loaded.items():
            rows += [(f"{m}: G(x)", z["panel_gx"]), (f"{m}: outline", np.repeat(z["panel_alpha"][..., None], 3, -1))]
        fig, axes = plt.subplots(len(rows), k, figsize=(1.3 * k, 1.35 * len(rows)), squeeze=False)
        for i, (label, ims) in enumerate(rows):
            for j in range(k):
                axes[i, j].imshow(ims[j])
                axes[i, j].set_xticks([])
                axes[i, j].set_yticks([])
            axes[i, 0].set_ylabel(label, fontsize=6, rotation=0, ha="right", va="center")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "panels.png"), dpi=110)
        plt.close(fig)
    # iou.png: per-view IoU distributions, seeds pooled.
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for m in config.models:
        vals = [np.load(p)["iou"] for p in sorted(glob.glob(os.path.join(workdir, "invariance", f"{m}-s*.npz")))]
        if vals:
            v = np.sort(np.concatenate(vals))
            ax.plot(v, np.arange(1, len(v) + 1) / len(v), label=m)
    ax.set_xlabel("IoU of source mask and output outline (held-out views)")
    ax.set_ylabel("fraction of views <= IoU")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "iou.png"), dpi=110)
    plt.close(fig)


def _y_sheet(workdir: str, out: str, n: int = 8) -> None:
    """domain_pair.png: the first training images of X's panel views and of Y, side by side."""
    from PIL import Image

    files = sorted(glob.glob(os.path.join(_y_dir(workdir, "train"), "*.png")))[:n]
    if files:
        ys = [np.asarray(Image.open(f).convert("RGB")) for f in files]
        Image.fromarray(np.concatenate(ys, 1)).save(os.path.join(out, "y_examples.png"))


def _write_markdown(config: ExperimentConfig, result: dict, out: str) -> None:
    s, b = result["summary"], result["baselines"]
    lines = [f"# AIST annotation invariance, `{config.name}` config", "",
             f"Command: `{result['command']}`  ", f"Commit: `{result['git']['commit']}`"
             + (" (with uncommitted changes)" if result["git"]["dirty"] else ""), ""]
    if not result["complete"]:
        lines += [f"**Incomplete report** (`--partial_report`): stages not run yet: "
                  f"{', '.join(result['missing_stages'])}.", ""]
    lines += [
             "Seed 002's claim (chapters 4 and 6): AIST (CycleGAN + alpha loss + ResNet feature distance) changes a "
             "render's appearance towards the target domain while keeping its outline, so the render's annotation "
             "(mask, shape, pose) stays valid; a plain CycleGAN is free to change outlines. Domain pair, built "
             "here: X = `multiview_shapes/vehicles` renders, Y = procedural textured blobs "
             "(`tfsynth.aist.target_domain`, examples in y_examples.png) whose outlines are larger and rounder "
             f"(object fraction of the frame: X {b['x_object_fraction']:.2f}, Y {b['y_object_fraction']:.2f}).", "",
             "## Mask agreement and appearance change on held-out X views", "",
             f"Mean ± 95 % interval over seeds ({len(config.seeds)} per model; {b['views']} held-out views each). "
             "IoU: source mask vs the output's outline (its alpha > 0.5; for the RGB CycleGAN, whose Y images lie on "
             "black, the pixels with any channel above 25 of 255: the seed's strict 'non-black' alpha, any channel "
             "above 0, is true almost everywhere for a tanh output and would make every pixel object). Appearance: "
             "total-variation distance between the 8x8x8 RGB histograms of object pixels of G(x) and of held-out Y "
             "(lower = closer to Y's colours; the untouched renders score the identity row).", ""]
    rows = [["identity (x itself)", "1.000", "1.000", f"{b['identity']['appearance_tv_to_y']:.3f}", "0.000", "–"],
            ["paint Y's outline", f"{b['paint_y_outline']['mean_iou']:.3f}", "–", "–", "–", "–"]]
    for m, v in s["per_model"].items():
        rows.append([m, _fmt(v["mean_iou"]), _fmt(v["frac_iou_ge_0.9"]), _fmt(v["appearance_tv_to_y"]),
                     _fmt(v["appearance_tv_to_x"]), _fmt(v["output_object_fraction"])])
    lines += _table(["model", "mean IoU", "views with IoU >= 0.9", "colour distance to Y", "colour distance to X",
                     "object fraction of output"], rows) + [""]
    if s["paired"]:
        lines += ["Paired differences (same seed), mean ± 95 % interval:", ""]
        lines += _table(["comparison", "mean IoU", "colour distance to Y"],
                        [[k, _fmt(v["mean_iou"]), _fmt(v["appearance_tv_to_y"])] for k, v in s["paired"].items()])
        lines += [""]
    if s.get("diagnostic"):
        lines += [f"Diagnosis: the same `constrained` run (seed {config.dpc_seed}) with both alpha weights x "
                  f"{config.alpha_diagnostic:g} (lambda_alpha {2 * config.alpha_diagnostic:g} instead of 2), beside "
                  "the seed-weighted runs of that seed:", ""]
        lines += _table(["model (seed %d)" % config.dpc_seed, "mean IoU", "colour distance to Y",
                         "object fraction of output"],
                        [[m, f"{v['mean_iou']:.3f}", f"{v['appearance_tv_to_y']:.3f}",
                          f"{v['output_object_fraction']:.3f}"] for m, v in s["diagnostic"].items()]) + [""]
    lines += ["![IoU distributions](iou.png)", "",
              f"## Panels (seed {config.dpc_seed}): x, G(x) over white (RGB CycleGAN: outside its outline), outline",
              "", "![panels](panels.png)", ""]
    if result.get("table"):
        lines += ["## DPC on each training set (seed Table 6.2 layout)", "",
                  "One DPC model (learned poses) per training set: `original` renders and each model's stylised "
                  f"set (seed-{config.dpc_seed} generator; input the stylised view, target the original mask). "
                  "Chamfer terms x 100 after the global ICP alignment; accuracy = fraction of views with pose error "
                  "< 30 degrees; median error in degrees. Chance (uniform rotations): 0.0075 and 132.3 degrees.", ""]
        lines += _table(["Experiment", "Dataset", "Precision", "Coverage", "Chamfer", "Accuracy", "Median error"],
                        [[r["experiment"], r["dataset"], f"{r['precision']:.2f}", f"{r['coverage']:.2f}",
                          f"{r['chamfer']:.2f}", f"{r['accuracy']:.2f}", f"{r['median_error_deg']:.1f}"]
                         for r in result["table"]]) + [""]
    lines += ["## Shrunk relative to the seed", "", inspect.cleandoc(CONFIGS[config.name].__doc__ or ""), "",
              "## CPU time per stage (user + system)", ""]
    lines += _table(["stage", "CPU [s]", "wall [s]"], [[k, f"{v:.0f}", f"{result['wall_s'][k]:.0f}"]
                                                     for k, v in result["cpu_s"].items()])
    lines += [f"| total | {result['cpu_s_total']:.0f} ({result['cpu_s_total'] / 3600:.2f} CPU-hours) | |", ""]
    atomic_write_text(os.path.join(out, "results.md"), "\n".join(lines))


def stage_report(config: ExperimentConfig, workdir: str, command: str, partial: bool = False) -> dict:
    out = os.path.join(workdir, "report")
    os.makedirs(out, exist_ok=True)
    markers = {s: read_json(stage_marker(workdir, s)) for s in stage_names(config)
               if s != "report" and os.path.exists(stage_marker(workdir, s))}
    cpu = {s: m["cpu_s"] for s, m in markers.items()}
    result = {"experiment": "aist_invariance", "config": config.name, "command": command, "git": git_commit(),
              "settings": config.to_dict(), "complete": not partial,
              "missing_stages": [s for s in stage_names(config)[:-1] if s not in markers],
              "data": markers.get("data"), "baselines": {k: v for k, v in markers["baselines"].items()
                                                         if k not in ("cpu_s", "wall_s")},
              "runs": {s.split("-", 1)[1]: {k: v for k, v in m.items() if k not in ("cpu_s", "wall_s")}
                       for s, m in markers.items() if s.startswith("invariance-")},
              "aist": {s.split("-", 1)[1]: {k: v for k, v in m.items() if k not in ("wall_s",)}
                       for s, m in markers.items() if s.startswith("aist-")},
              "summary": summarise(config, markers), "table": markers.get("table", {}).get("rows"),
              "cpu_s": cpu, "wall_s": {s: m["wall_s"] for s, m in markers.items()},
              "cpu_s_total": round(sum(cpu.values()), 1)}
    _plot(config, workdir, markers, out)
    _y_sheet(workdir, out)
    _write_markdown(config, result, out)
    write_json(os.path.join(out, RESULTS_NAME), result)
    return {"report": out}


# ----------------------------------------------------------------------------------------------------------------
# Driver.

def run(config: ExperimentConfig, workdir: str, *, command: str = "", only: Optional[list[str]] = None,
        publish: Optional[str] = None, partial_report: bool = False) -> dict:
    """Runs every unfinished stage in order (or only `only`); returns {stage: marker dict}. `partial_report`: write
    the report from the stages finished so far (marked incomplete), without running anything else."""
    workdir = check_workdir(workdir)
    os.makedirs(os.path.join(workdir, "invariance"), exist_ok=True)

    def run_stage(stage):
        kind, _, rest = stage.partition("-")
        if stage == "data":
            return stage_data(config, workdir)
        if stage == "baselines":
            return stage_baselines(config, workdir)
        if kind in ("aist", "invariance"):
            model, _, seed = rest.rpartition("-s")
            return (stage_aist if kind == "aist" else stage_invariance)(config, workdir, model, int(seed))
        if kind == "stylize":
            return stage_stylize(config, workdir, rest)
        if kind == "dpc":
            return stage_dpc(config, workdir, rest)
        if stage == "table":
            return stage_table(config, workdir)
        missing = [s for s in stage_names(config)[:-1] if not os.path.exists(stage_marker(workdir, s))]
        if missing:
            raise ValueError(f"report: stages not done yet: {', '.join(missing)} (--partial_report writes one "
                             "from the finished stages)")
        return stage_report(config, workdir, command)

    if partial_report:
        done = {"report": stage_report(config, workdir, command, partial=True)}
    else:
        done = run_stages(workdir, config, stage_names(config), run_stage, only)
    if publish:
        publish_report(workdir, publish, RESULTS_NAME)
    return done


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.aist_invariance", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS), help="experiment size")
    parser.add_argument("--workdir", required=True,
                        help="datasets, models, evaluations, stage markers and the report (outside the repository)")
    parser.add_argument("--stage", action="append", default=None,
                        help="run only this stage (repeatable; default: every unfinished stage)")
    parser.add_argument("--partial_report", action="store_true",
                        help="write the report from the stages finished so far, marked incomplete; run nothing")
    parser.add_argument("--publish", default=None, metavar="DIR",
                        help="copy the report there afterwards (e.g. docs/results/aist_invariance_small)")
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]()
    if args.stage:
        unknown = sorted(set(args.stage) - set(stage_names(config)))
        if unknown:
            parser.error(f"--stage {', '.join(unknown)}: unknown; stages: {', '.join(stage_names(config))}")
    given = list(sys.argv[1:] if argv is None else argv)
    kept = [a for i, a in enumerate(given)  # the command that reproduces the run: --publish only copies files
            if not a.startswith(("--publish", "--partial_report")) and not (i and given[i - 1] == "--publish")]
    command = "python -m experiments.aist_invariance " + " ".join(shlex.quote(a) for a in kept)
    return run(config, args.workdir, command=command, only=args.stage, publish=args.publish,
               partial_report=args.partial_report)


if __name__ == "__main__":
    from tfsynth.cli import run_cli
    from tfsynth.dpc.data import SourceError

    run_cli(main, user_errors=(ValueError, FileNotFoundError, SourceError), onednn=True)
