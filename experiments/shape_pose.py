"""Seed 002, chapter 5 (DPC: differentiable point clouds, Insafutdinov & Dosovitskiy 2018) at laptop scale: shape
from silhouettes with known cameras, and unsupervised shape + pose, on one procedural family of car-like meshes.

    python -m experiments.shape_pose --config tiny --workdir /tmp/shape_pose_tiny      # whole chain, ~3 min (tests)
    python -m experiments.shape_pose --config small --workdir /work/runs/shape_pose_small \\
        --publish docs/results/shape_pose_small                                        # the laptop run (see `small`)

Stages, in order; each is done when its marker `<workdir>/stages/<stage>.json` exists (written atomically, last, with
the stage's CPU and wall time), so rerunning the command skips finished stages (a training stage that was killed
continues from its last checkpoint: `tfsynth.dpc.training.run`'s resume):

  data                      `multiview_shapes/<config>` (train, validation, test) built into <workdir>/tfds through
                            the project's auto-build path (Beam in-process, rendering in TF-free workers)
  baselines                 input-blind shapes scored on the held-out (test) models with the same Chamfer code:
                            the mean training shape (voxel occupancy averaged over training models, thresholded at the
                            level that fits the training models best) and the best single training shape (the
                            training model closest on average to the other training models)
  train-<setting>-s<seed>   `tfsynth.dpc.training.run` (the job behind `python -m train.shape_pose`) with
                            `predict_pose` False (known_pose: ground-truth cameras drive the projection) or True
                            (learned_pose: the seed's pose ensemble + student), in <workdir>/train/<setting>-s<seed>/
  eval-<setting>-s<seed>    `tfsynth.dpc.evaluation` on the test models: Chamfer (x 100, precision + coverage); for
                            learned poses also after the global ICP alignment estimated on validation models, pose
                            accuracy at 30 degrees and median angular error; the same for the untrained network of
                            that seed
  report                    results.md, results.json (per run and seed), curves.png, point_clouds.png,
                            pose_errors.png in <workdir>/report (`--publish DIR` copies it); redone whenever another
                            stage finished after it

Chance level of the pose scores: a uniformly random rotation's angle has density (1 - cos t) / pi on [0, pi], so
P(angle < 30 deg) = (pi/6 - sin(pi/6)) / pi = 0.0075 and the median angle is 132.3 deg (the mean is 126.5 deg).
Configs are functions (`tiny`, `small`) returning an `ExperimentConfig`; nothing here trains or scores by itself:
the network, training, alignment and metrics are the project's (`tfsynth.models.dpc`, `tfsynth.dpc`).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import json
import os
import shlex
import sys
from typing import Callable, Optional

import numpy as np

from experiments.common import (stage_marker, check_workdir, git_commit, publish_report, read_json, run_stages, savez,
                                write_json)
from tfsynth.atomic import atomic_write_text
from tfsynth.workdir import RESULTS_NAME
from tfsynth.dpc import metrics

SETTINGS = ("known_pose", "learned_pose")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything the experiment varies; `dpc` overrides `DPCConfig`'s reference defaults for every run."""

    name: str
    dataset: str = "multiview_shapes/vehicles"  # TFDS name/config with train, validation and test splits
    dpc: dict = dataclasses.field(default_factory=dict)  # DPCConfig fields shared by every run
    known_steps: int = 1000  # training steps with known poses
    learned_steps: int = 1000  # training steps with learned poses
    settings: tuple = SETTINGS
    seeds: tuple = (1, 2, 3)  # training seeds (initialisation, batches, dropout)
    train_models: int = 0  # train on the first N training models (0 = all)
    test_models: int = 0  # score the first N held-out models (0 = all)
    align_models: int = 50  # validation models for the global ICP alignment
    baseline_models: int = 100  # training models the baselines are fitted on
    baseline_grid: int = 32  # voxels per side of the mean-shape occupancy grid over [-0.5, 0.5]^3
    baseline_thresholds: tuple = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)  # mean-occupancy levels tried
    figure_models: int = 4  # held-out models drawn in point_clouds.png
    verbose: int = 2  # progress output of the training stages (2: one line per run, 0: none)

    def __post_init__(self):
        if not self.settings or not set(self.settings) <= set(SETTINGS) or len(set(self.settings)) != len(
                self.settings):
            raise ValueError(f"settings must be distinct names among {', '.join(SETTINGS)}, got {self.settings}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if min(self.known_steps, self.learned_steps, self.align_models, self.baseline_models, self.baseline_grid,
               self.figure_models) < 1:
            raise ValueError("known_steps, learned_steps, align_models, baseline_models, baseline_grid and "
                             "figure_models must be >= 1")
        if not self.baseline_thresholds or not all(0 < t < 1 for t in self.baseline_thresholds):
            raise ValueError(f"baseline_thresholds must lie in (0, 1), got {self.baseline_thresholds}")
        self.dpc_config("learned_pose", self.seeds[0])  # unknown or invalid DPC fields fail here, in one line

    def split(self, split: str) -> str:
        return f"tfds:{self.dataset}:{split}"

    def steps(self, setting: str) -> int:
        return self.known_steps if setting == "known_pose" else self.learned_steps

    def dpc_config(self, setting: str, seed: int):
        """The `tfsynth.dpc.configs.DPCConfig` of one training run."""
        from tfsynth.dpc.configs import ConfigError, DPCConfig

        fields = {f.name for f in dataclasses.fields(DPCConfig)}
        unknown = sorted(set(self.dpc) - fields)
        if unknown:
            raise ValueError(f"unknown DPCConfig field(s) in dpc: {', '.join(unknown)}")
        try:
            return DPCConfig(**self.dpc).replace(
                data=self.split("train"), val_data=self.split("validation"), max_models=self.train_models,
                predict_pose=setting == "learned_pose", steps=self.steps(setting), seed=seed)
        except ConfigError as err:
            raise ValueError(f"dpc: {err}") from None

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples as lists: comparable with the stored JSON


# Shrunk DPC network and projection shared by both configs (the reference: 128 px, f_dim 16, 1024-wide FC layers,
# 8,000 points, 64^3 grid, 21 taps, sigma 3.0 -> 0.2, keep probability 0.07 -> 1, Adam 1e-4, 8 models x 4 views).
_LAPTOP_DPC = dict(image_size=32, f_dim=8, fc_dim=128, z_dim=128, num_points=2000, vox_size=32, kernel_size=11,
                   sigma_start=2.0, sigma_end=0.5, keep_prob_start=0.5, batch_models=4, views_per_model=4, lr=1e-3)


def small() -> ExperimentConfig:
    """The laptop run, 3 seeds per setting, NOT RUN YET: estimated 1.8 CPU-hours on this 2-core machine (pilots of
    this network measured 0.09 CPU-s per step with known poses and 0.31 with learned poses; the dataset build about
    300 CPU-s). Shrunk relative to the seed (ShapeNet cars, the reference recipe):

    - data: `multiview_shapes/vehicles`, one procedural family of car-like meshes (600 training, 50 validation, 100
      test models, 5 views each, rendered at 64 px) instead of ShapeNet's cars, which cannot be downloaded here;
    - input 32 px (the seed: 128), silhouettes and splatting grid 32^3 (64^3), 2,000 points (8,000), 11 blur taps
      with sigma 2.0 -> 0.5 voxels (21 taps, 3.0 -> 0.2), point dropout keep probability 0.5 -> 1 (0.07 -> 1: with
      4x fewer points the projections must stay dense);
    - network: first conv 8 filters (16), fully connected layers and codes 128 wide (1024);
    - training: Adam 1e-3 (1e-4, which needs the seed's 600,000 steps), batches of 4 models x 4 views (8 x 4),
      4,000 steps with known poses and 2,000 with learned poses (600,000): a learned-pose step projects 4 pose
      candidates and costs 3.4x a known-pose step (5,000 were planned; cut to 2,000 when the run measured 0.4
      CPU-s per learned step on the shared machine, so that it fits one session); 1,500-step pilots on 300
      training models already learned poses (42.8 % at 30 degrees on held-out views) but not shapes closer than
      the mean training shape (Chamfer 7.8 against 4.4).
    """
    return ExperimentConfig(name="small", dataset="multiview_shapes/vehicles",
                            dpc=dict(_LAPTOP_DPC, log_every=50, checkpoint_every=500), known_steps=4000,
                            learned_steps=2000, seeds=(1, 2, 3), test_models=100, align_models=50, baseline_models=100)


def tiny() -> ExperimentConfig:
    """The whole chain in a few minutes (tests): `multiview_shapes/vehicles_tiny` (16 / 4 / 4 models), the `small`
    network, 60 steps per setting, one seed. Its numbers carry no signal; its CPU-s per step are `small`'s."""
    return ExperimentConfig(name="tiny", dataset="multiview_shapes/vehicles_tiny",
                            dpc=dict(_LAPTOP_DPC, log_every=10, checkpoint_every=30), known_steps=60,
                            learned_steps=60, seeds=(1,), align_models=4, baseline_models=16, figure_models=2,
                            verbose=0)


CONFIGS: dict[str, Callable[[], ExperimentConfig]] = {"small": small, "tiny": tiny}


# ----------------------------------------------------------------------------------------------------------------
# Bookkeeping: atomic files, stage markers, CPU time.

def run_names(config: ExperimentConfig) -> list[str]:
    return [f"{setting}-s{seed}" for setting in config.settings for seed in config.seeds]


def stage_names(config: ExperimentConfig) -> list[str]:
    runs = run_names(config)
    return ["data", "baselines", *(f"train-{r}" for r in runs), *(f"eval-{r}" for r in runs), "report"]




def _data_dir(workdir: str) -> str:
    return os.path.join(workdir, "tfds")


def _train_dir(workdir: str, run: str) -> str:
    return os.path.join(workdir, "train", run)


def _eval_file(workdir: str, run: str) -> str:
    return os.path.join(workdir, "eval", f"{run}.npz")


def _baselines_file(workdir: str) -> str:
    return os.path.join(workdir, "baselines.npz")


# ----------------------------------------------------------------------------------------------------------------
# Baselines (NumPy): input-blind shapes, scored with `tfsynth.dpc.metrics.chamfer` like the network's predictions.

def subsample(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points of a cloud (without replacement when it has enough, else with)."""
    points = np.asarray(points, np.float32)
    return points[rng.choice(len(points), n, replace=len(points) < n)]


def occupancy(points: np.ndarray, grid: int) -> np.ndarray:
    """(grid,) * 3 bool: voxels of [-0.5, 0.5]^3 that hold at least one point."""
    idx = np.clip(np.floor((np.asarray(points, np.float64) + 0.5) * grid).astype(np.int64), 0, grid - 1)
    out = np.zeros((grid,) * 3, bool)
    out[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    return out


def mean_occupancy(clouds: list, grid: int) -> np.ndarray:
    """Fraction of the clouds occupying each voxel: the voxel average of the training shapes."""
    return np.mean([occupancy(c, grid) for c in clouds], axis=0)


def cloud_from_voxels(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points spread uniformly over the voxels of `mask` (a voxel drawn at random, a uniform point inside it)."""
    grid = mask.shape[0]
    cells = np.argwhere(mask)
    if len(cells) == 0:
        raise ValueError("empty voxel mask")
    pick = cells[rng.integers(0, len(cells), n)]
    return ((pick + rng.uniform(0.0, 1.0, (n, 3))) / grid - 0.5).astype(np.float32)


def mean_chamfer(cloud: np.ndarray, targets: list) -> float:
    """Mean Chamfer (precision + coverage, not x 100) of one cloud against each target cloud."""
    return float(np.mean([metrics.chamfer(cloud, t)["chamfer"] for t in targets]))


def fit_mean_shape(train_clouds: list, num_points: int, grid: int, thresholds, rng: np.random.Generator) -> dict:
    """The mean training shape: voxels whose mean occupancy reaches a threshold, as `num_points` points; the threshold
    is the one whose shape has the lowest mean Chamfer to the training clouds (fitted on training models only)."""
    occ = mean_occupancy(train_clouds, grid)
    fits = {}
    for t in thresholds:
        if (occ >= t).any():
            cloud = cloud_from_voxels(occ >= t, num_points, rng)
            fits[float(t)] = (mean_chamfer(cloud, train_clouds), cloud)
    if not fits:
        raise ValueError(f"no voxel reaches any threshold {tuple(thresholds)}")
    best = min(fits, key=lambda t: fits[t][0])
    return {"cloud": fits[best][1], "threshold": best, "voxels": int((occ >= best).sum()),
            "train_chamfer": {str(t): round(100 * v[0], 4) for t, v in fits.items()}}


def best_single_shape(train_clouds: list, num_points: int, rng: np.random.Generator) -> dict:
    """The training shape with the lowest mean Chamfer to the other training shapes (the medoid), as `num_points`
    points: the best constant prediction among the training models, chosen without looking at held-out models."""
    clouds = [subsample(c, num_points, rng) for c in train_clouds]
    n = len(clouds)
    if n < 2:
        raise ValueError("the best single training shape needs at least two training models")
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            d[i, j] = d[j, i] = metrics.chamfer(clouds[i], clouds[j])["chamfer"]
    index = int(np.argmin(d.sum(1) / (n - 1)))
    return {"cloud": clouds[index], "index": index, "train_chamfer": round(100 * float(d[index].sum() / (n - 1)), 4)}


def score_constant(cloud: np.ndarray, test_clouds: list) -> dict:
    """Chamfer precision / coverage / sum (x 100) of one constant prediction on every held-out model, averaged like
    `tfsynth.dpc.evaluation.score_set` (`metrics.chamfer_table`)."""
    per_model = np.array([[metrics.chamfer(cloud, t)[k] for k in ("precision", "coverage")] for t in test_clouds])
    return metrics.chamfer_table(per_model[:, None, :])


def subsampling_floor(test_clouds: list, num_points: int, rng: np.random.Generator) -> dict:
    """Chamfer (x 100) of each held-out model's own ground truth, subsampled to `num_points`, against its full
    ground truth: what a perfect shape scores with that many points (the metric's floor, not a baseline)."""
    per_model = np.array([[metrics.chamfer(subsample(t, num_points, rng), t)[k] for k in ("precision", "coverage")]
                          for t in test_clouds])
    return metrics.chamfer_table(per_model[:, None, :])


def constant_pose_baselines(train_q: np.ndarray, test_q: np.ndarray, rng: np.random.Generator,
                            candidates: int = 500, pairs: int = 20000, threshold_deg: float = 30.0) -> dict:
    """Input-blind pose predictions scored like the network's (`metrics.angular_error`, `metrics.pose_table`):

    - best constant pose: the training camera (among up to `candidates`) with the highest accuracy at
      `threshold_deg` over all training views (ties: the lower median), predicted for every held-out view;
    - random training pose: a random training view's camera for each held-out view (`pairs` random pairs).

    The cameras are not uniform on SO(3) (azimuth uniform, elevation in a band), so these floors lie above the
    uniform-rotation chance level.
    """
    train_q, test_q = np.asarray(train_q, np.float64).reshape(-1, 4), np.asarray(test_q, np.float64).reshape(-1, 4)
    pool = train_q[rng.choice(len(train_q), min(candidates, len(train_q)), replace=False)]
    errors = metrics.angular_error(pool[:, None, :], train_q[None, :, :])  # (candidates, training views)
    acc = np.mean(errors < np.deg2rad(threshold_deg), axis=1)
    med = np.median(errors, axis=1)
    best = pool[np.lexsort((med, -acc))[0]]
    constant = metrics.pose_table(metrics.angular_error(best[None, :], test_q), threshold_deg)
    i, j = rng.integers(0, len(train_q), pairs), rng.integers(0, len(test_q), pairs)
    random_pose = metrics.pose_table(metrics.angular_error(train_q[i], test_q[j]), threshold_deg)
    return {"best_constant_pose": {**constant, "quaternion": [round(float(x), 6) for x in best]},
            "random_training_pose": {**random_pose, "pairs": pairs}}


# ----------------------------------------------------------------------------------------------------------------
# Stages that need TensorFlow (imported inside, so that the report and the baselines' NumPy stay TF-free).

def _load(config: ExperimentConfig, workdir: str, split: str, max_models: int = 0, image_size: int = 128,
          auto_build: bool = False):
    from tfsynth.dpc import data as dpc_data

    return dpc_data.load_source(config.split(split), image_size, _data_dir(workdir), max_models,
                                auto_build=auto_build)


def stage_data(config: ExperimentConfig, workdir: str) -> dict:
    from tfsynth.render.pool import get_pool

    info = {}
    for split in ("train", "validation", "test"):
        data = _load(config, workdir, split, auto_build=True)
        info[split] = {"models": len(data), "views": data.num_views, "image_size": int(data.images.shape[2]),
                       "mean_gt_points": round(float(np.mean([len(p) for p in data.points])), 1)}
    get_pool().close()  # the render workers exit here, so their CPU time counts for this stage
    return {"dataset": config.dataset, "splits": info}


def stage_baselines(config: ExperimentConfig, workdir: str) -> dict:
    num_points = config.dpc_config("known_pose", config.seeds[0]).num_points
    train = _load(config, workdir, "train", min(config.baseline_models, config.train_models or config.baseline_models))
    test = _load(config, workdir, "test", config.test_models)
    rng = np.random.default_rng(0)
    mean = fit_mean_shape(train.points, num_points, config.baseline_grid, config.baseline_thresholds, rng)
    single = best_single_shape(train.points, num_points, rng)
    k = min(config.figure_models, len(test))
    savez(_baselines_file(workdir), mean_shape=mean["cloud"], best_single_shape=single["cloud"],
           figure_images=test.images[:k, 0], figure_gt=np.stack([subsample(p, 3000, rng) for p in test.points[:k]]),
           figure_model_ids=np.array(test.model_ids[:k]))
    poses = constant_pose_baselines(train.quaternions, test.quaternions, rng)
    return {"num_points": num_points, "train_models": len(train), "test_models": len(test), **poses,
            "ground_truth_subsampled": subsampling_floor(test.points, num_points, rng),
            "mean_shape": {**score_constant(mean["cloud"], test.points), "threshold": mean["threshold"],
                           "voxels": mean["voxels"], "grid": config.baseline_grid,
                           "train_chamfer_by_threshold": mean["train_chamfer"]},
            "best_single_shape": {**score_constant(single["cloud"], test.points),
                                  "model_id": train.model_ids[single["index"]],
                                  "train_chamfer": single["train_chamfer"]}}


def stage_train(config: ExperimentConfig, workdir: str, setting: str, seed: int) -> dict:
    import keras

    from tfsynth.dpc import training

    keras.backend.clear_session()
    run = f"{setting}-s{seed}"
    results = training.run(config.dpc_config(setting, seed), _train_dir(workdir, run), resume=True,
                           data_dir=_data_dir(workdir), verbose=config.verbose)
    return {"train_dir": _train_dir(workdir, run), "steps_done": results["steps_done"],
            "seconds_per_step": results["seconds_per_step"], "train_models": results["train_models"],
            "first_logged": results["first_logged"], "last_logged": results["last_logged"]}


def _val_curve(train_dir: str) -> list[dict]:
    """The held-out projection loss the training job logged to TensorBoard (logs/val), one entry per step."""
    import tensorflow as tf

    by_step = {}
    for path in sorted(glob.glob(os.path.join(train_dir, "logs", "val", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == "loss/proj_loss":
                    by_step[int(event.step)] = float(tf.make_ndarray(value.tensor))
    return [{"step": s, "proj_loss": v} for s, v in sorted(by_step.items())]


def _row(row: dict, pose: bool = True) -> dict:
    """The numbers of one `score_set` row (pose scores only where they mean something: after alignment)."""
    keep = ("precision", "coverage", "chamfer") + (("accuracy", "median_error_deg") if pose else ())
    return {k: round(float(row[k]), 4) for k in keep}


def stage_eval(config: ExperimentConfig, workdir: str, setting: str, seed: int) -> dict:
    import keras

    from tfsynth.dpc import evaluation, training

    keras.backend.clear_session()
    run = f"{setting}-s{seed}"
    model, dcfg = training.load_trained(_train_dir(workdir, run))
    keras.utils.set_random_seed(dcfg.seed)  # the initial network of this run: same seed, same initialisers
    untrained = training.build_model(dcfg)
    test = _load(config, workdir, "test", config.test_models, dcfg.image_size)
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    pred_path = os.path.join(workdir, "eval", f"predictions_{run}.npz")
    k = min(config.figure_models, len(test))
    out = {"setting": setting, "seed": seed, "test_models": len(test), "views": test.num_views,
           "val_curve": _val_curve(_train_dir(workdir, run)), "predictions": pred_path}
    arrays = {}
    if setting == "known_pose":  # the network's frame is the ground truth's: no alignment
        out["trained"] = _row(evaluation.score_set(model, dcfg, test, None, save_path=pred_path), pose=False)
        out["untrained"] = _row(evaluation.score_set(untrained, dcfg, test, None), pose=False)
        with np.load(pred_path) as p:
            arrays["figure_points"] = p["points"][:k, 0].astype(np.float32)
    else:
        val = _load(config, workdir, "validation", config.align_models, dcfg.image_size)
        for name, net in (("trained", model), ("untrained", untrained)):
            q_align, _ = evaluation.estimate_alignment(net, dcfg, val, config.align_models)
            save = pred_path if name == "trained" else ""
            aligned = evaluation.score_set(net, dcfg, test, q_align, save_path=save)
            raw = evaluation.score_set(net, dcfg, test, None)
            out[name] = {**_row(raw, pose=False), **{f"{key}_icp": v for key, v in _row(aligned).items()},
                         "alignment": [round(float(x), 6) for x in q_align]}
            if name == "trained":
                with np.load(pred_path) as p:
                    errors = metrics.angular_error(metrics.align_pose(p["poses"], q_align), test.quaternions)
                    arrays["figure_points"] = np.stack([metrics.align_points(p["points"][i, 0].astype(np.float32),
                                                                             q_align) for i in range(k)])
                arrays["pose_errors_deg"] = np.rad2deg(errors)
    savez(_eval_file(workdir, run), **arrays)
    out["eval_file"] = _eval_file(workdir, run)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Report (TF-free: reads the stage markers and the saved arrays).

def _history(train_dir: str) -> list[dict]:
    path = os.path.join(train_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_entries(config: ExperimentConfig, markers: dict) -> list[dict]:
    """results.json's `runs`: one entry per (setting, seed); Chamfer x 100, pose accuracy as a fraction."""
    runs = []
    for run in run_names(config):
        ev, tr = markers[f"eval-{run}"], markers[f"train-{run}"]
        t, u = ev["trained"], ev["untrained"]
        entry = {"setting": ev["setting"], "seed": ev["seed"], "chamfer": t["chamfer"], "precision": t["precision"],
                 "coverage": t["coverage"], "untrained_chamfer": u["chamfer"], "steps": tr["steps_done"],
                 "seconds_per_step": tr["seconds_per_step"],
                 "train_cpu_s_per_step": round(tr["cpu_s"] / max(tr["steps_done"], 1), 4)}
        if ev["setting"] == "learned_pose":
            entry.update(pose_acc30=t["accuracy_icp"], median_angle_deg=t["median_error_deg_icp"],
                         chamfer_icp=t["chamfer_icp"], precision_icp=t["precision_icp"],
                         coverage_icp=t["coverage_icp"], untrained_chamfer_icp=u["chamfer_icp"],
                         untrained_pose_acc30=u["accuracy_icp"], untrained_median_angle_deg=u["median_error_deg_icp"],
                         alignment=t["alignment"])
        runs.append(entry)
    return runs


def summarise(runs: list[dict]) -> dict:
    """Per setting and metric: mean, standard deviation (over seeds, ddof 1), min, max and n."""
    out = {}
    for setting in SETTINGS:
        rows = [r for r in runs if r["setting"] == setting]
        if not rows:
            continue
        keys = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and k not in ("seed", "steps")]
        out[setting] = {}
        for key in keys:
            v = np.array([r[key] for r in rows if r.get(key) is not None], np.float64)
            out[setting][key] = {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                                 "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}
    return out


def comparisons(runs: list[dict], baselines: dict, chance: dict) -> dict:
    """The questions the experiment asks, answered per seed (counts of seeds) from the numbers."""
    best_baseline = min(baselines["mean_shape"]["chamfer"], baselines["best_single_shape"]["chamfer"])
    out = {"best_baseline_chamfer": best_baseline}
    known = [r for r in runs if r["setting"] == "known_pose"]
    if known:
        out["known_pose"] = {
            "seeds": len(known),
            "below_untrained": sum(r["chamfer"] < r["untrained_chamfer"] for r in known),
            "below_half_untrained": sum(r["chamfer"] < 0.5 * r["untrained_chamfer"] for r in known),
            "below_mean_shape": sum(r["chamfer"] < baselines["mean_shape"]["chamfer"] for r in known),
            "below_best_single_shape": sum(r["chamfer"] < baselines["best_single_shape"]["chamfer"] for r in known)}
    learned = [r for r in runs if r["setting"] == "learned_pose"]
    if learned:
        out["learned_pose"] = {
            "seeds": len(learned),
            "pose_acc30_above_chance": sum(r["pose_acc30"] > chance["pose_acc30"] for r in learned),
            "pose_acc30_above_untrained": sum(r["pose_acc30"] > r["untrained_pose_acc30"] for r in learned),
            "pose_acc30_above_best_constant_pose": sum(
                r["pose_acc30"] > baselines["best_constant_pose"]["accuracy"] for r in learned),
            "median_below_chance": sum(r["median_angle_deg"] < chance["median_angle_deg"] for r in learned),
            "median_below_best_constant_pose": sum(
                r["median_angle_deg"] < baselines["best_constant_pose"]["median_error_deg"] for r in learned),
            "chamfer_icp_below_untrained": sum(r["chamfer_icp"] < r["untrained_chamfer_icp"] for r in learned),
            "chamfer_icp_below_best_baseline": sum(r["chamfer_icp"] < best_baseline for r in learned)}
    return out


def _plot_curves(config: ExperimentConfig, workdir: str, markers: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(config.settings), figsize=(6 * len(config.settings), 4), squeeze=False)
    for ax, setting in zip(axes[0], config.settings):
        for i, seed in enumerate(config.seeds):
            run = f"{setting}-s{seed}"
            hist = _history(_train_dir(workdir, run))
            colour = f"C{i}"
            ax.plot([h["step"] for h in hist], [h["proj_loss"] for h in hist], color=colour,
                    label=f"seed {seed}: training (mean over {config.dpc.get('log_every', 100)} steps)")
            val = markers[f"eval-{run}"]["val_curve"]
            if val:
                ax.plot([v["step"] for v in val], [v["proj_loss"] for v in val], "o--", color=colour,
                        label=f"seed {seed}: validation batch")
        ax.set(xlabel="step", ylabel="projection loss (best candidate)", title=setting.replace("_", " "),
               yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_point_clouds(config: ExperimentConfig, workdir: str, path: str) -> None:
    """Rows: held-out models; columns: input view, ground truth, each setting's prediction (first seed; learned
    poses after the global alignment), the mean training shape. 3D scatter, up = +y, the same camera everywhere."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.load(_baselines_file(workdir)) as b:
        images, gt, ids, mean = b["figure_images"], b["figure_gt"], b["figure_model_ids"], b["mean_shape"]
    preds = {}
    for setting in config.settings:
        with np.load(_eval_file(workdir, f"{setting}-s{config.seeds[0]}")) as e:
            preds[setting] = e["figure_points"]
    columns = ["input view", "ground truth"] + [
        f"{s.replace('_', ' ')} (seed {config.seeds[0]})" + (", aligned" if s == "learned_pose" else "")
        for s in config.settings] + ["mean training shape"]
    fig = plt.figure(figsize=(3 * len(columns), 3 * len(images)))
    for r in range(len(images)):
        clouds = [gt[r]] + [preds[s][r] for s in config.settings] + [mean]
        ax = fig.add_subplot(len(images), len(columns), r * len(columns) + 1)
        ax.imshow(images[r])
        ax.set_axis_off()
        ax.set_title(f"{ids[r]}: {columns[0]}" if r == 0 else str(ids[r]), fontsize=8)
        for c, cloud in enumerate(clouds):
            ax = fig.add_subplot(len(images), len(columns), r * len(columns) + c + 2, projection="3d")
            ax.scatter(cloud[:, 0], cloud[:, 2], cloud[:, 1], s=0.5, c=cloud[:, 1], cmap="viridis")
            ax.set(xlim=(-0.5, 0.5), ylim=(-0.5, 0.5), zlim=(-0.5, 0.5), xticks=[], yticks=[], zticks=[])
            ax.view_init(elev=20, azim=-60)
            if r == 0:
                ax.set_title(columns[c + 1], fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_pose_errors(config: ExperimentConfig, workdir: str, path: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "learned_pose" not in config.settings:
        return False
    errors = []
    for seed in config.seeds:
        with np.load(_eval_file(workdir, f"learned_pose-s{seed}")) as e:
            errors.append(e["pose_errors_deg"].ravel())
    errors = np.concatenate(errors)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(errors, bins=np.arange(0, 181, 10), density=True, alpha=0.6,
            label=f"learned poses, aligned ({len(errors)} views, {len(config.seeds)} seeds)")
    t = np.linspace(0, np.pi, 200)
    ax.plot(np.rad2deg(t), (1 - np.cos(t)) / np.pi * np.pi / 180, "k--", label="uniformly random rotations")
    ax.axvline(30, color="grey", lw=0.8)
    ax.set(xlabel="angular error (degrees)", ylabel="density per degree", xlim=(0, 180))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _fmt(s: dict, digits: int = 2) -> str:
    return f"{s['mean']:.{digits}f} ± {s['sd']:.{digits}f}" if s["n"] > 1 else f"{s['mean']:.{digits}f}"


def _summary_text(result: dict) -> str:
    summary, comp, base, chance = result["summary"], result["comparisons"], result["baselines"], result["chance"]
    text = []
    if "known_pose" in summary:
        k, c = summary["known_pose"], comp["known_pose"]
        text.append(
            f"Known poses: held-out Chamfer {_fmt(k['chamfer'])} (x 100, mean ± sd over {c['seeds']} seed(s)) against "
            f"{_fmt(k['untrained_chamfer'])} for the untrained network, {base['mean_shape']['chamfer']:.2f} for the "
            f"mean training shape and {base['best_single_shape']['chamfer']:.2f} for the best single training shape; "
            f"below the untrained network in {c['below_untrained']} of {c['seeds']} seeds (below half of it in "
            f"{c['below_half_untrained']}), below the mean training shape in {c['below_mean_shape']} and below the "
            f"best single training shape in {c['below_best_single_shape']}.")
    if "learned_pose" in summary:
        s, c, const = summary["learned_pose"], comp["learned_pose"], base["best_constant_pose"]
        text.append(
            f"Learned poses: pose accuracy at 30 degrees {_fmt(s['pose_acc30'], 3)} and median angular error "
            f"{_fmt(s['median_angle_deg'], 1)} degrees on held-out views after the global alignment, against "
            f"{chance['pose_acc30']:.4f} and {chance['median_angle_deg']:.1f} degrees for uniformly random "
            f"rotations and {_fmt(s['untrained_pose_acc30'], 3)} / {_fmt(s['untrained_median_angle_deg'], 1)} "
            f"degrees for the untrained network aligned the same way and {const['accuracy']:.3f} / "
            f"{const['median_error_deg']:.1f} degrees for the best constant pose (input-blind; "
            f"the cameras are not uniform rotations); accuracy above uniform chance in {c['pose_acc30_above_chance']} "
            f"of {c['seeds']} seeds, above the untrained network in {c['pose_acc30_above_untrained']} and above the "
            f"best constant pose in {c['pose_acc30_above_best_constant_pose']}; median below uniform chance in "
            f"{c['median_below_chance']} and below the best constant pose's in "
            f"{c['median_below_best_constant_pose']}. Chamfer after "
            f"the alignment {_fmt(s['chamfer_icp'])} (untrained network {_fmt(s['untrained_chamfer_icp'])}, best "
            f"baseline {comp['best_baseline_chamfer']:.2f}): below the best baseline in "
            f"{c['chamfer_icp_below_best_baseline']} of {c['seeds']} seeds.")
    return " ".join(text)


def _table(header: list, rows: list) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _write_markdown(config: ExperimentConfig, result: dict, out: str) -> None:
    import textwrap

    base, chance, data = result["baselines"], result["chance"], result["data"]
    lines = [f"# Seed 002, chapter 5 (DPC shape and pose) at laptop scale: `{config.name}`", "",
             _summary_text(result), "",
             "Command (from the repository root):", "", f"    {result['command']}", "",
             f"Commit `{result['git']['commit']}`" + (" (with uncommitted changes)" if result["git"]["dirty"] else "")
             + f". Numbers: `{RESULTS_NAME}` (per setting and seed). Chamfer distances are x 100, as the reference "
             "prints them (non-squared nearest-neighbour distances, precision = prediction to truth, coverage = truth "
             "to prediction, their sum), on the held-out test models, every view.", ""]
    shrunk = (textwrap.dedent("    " + (small.__doc__ or "").split("Shrunk relative to the seed")[-1].split(":", 1)[-1])
              .strip() if config.name == "small" else "A smoke-scale configuration (tests); its numbers carry no "
              "signal.")
    lines += ["## Set-up and what was shrunk", "", shrunk, ""]
    lines += _table(["split", "models", "views", "image size", "mean ground-truth points"],
                    [[s, v["models"], v["views"], v["image_size"], v["mean_gt_points"]]
                     for s, v in data["splits"].items()]) + [""]
    lines += [f"Dataset `{config.dataset}`; training on {result['train_models']} models, scoring on "
              f"{base['test_models']} held-out models. DPC settings of every run: `{json.dumps(config.dpc)}`; "
              f"{config.known_steps} steps with known poses, {config.learned_steps} with learned poses.", ""]
    summary = result["summary"]
    rows = []
    for setting in config.settings:
        s = summary[setting]
        rows.append([setting, f"{_fmt(s['chamfer'])}", f"{_fmt(s['precision'])}", f"{_fmt(s['coverage'])}",
                     _fmt(s["chamfer_icp"]) if "chamfer_icp" in s else "–",
                     _fmt(s["pose_acc30"], 3) if "pose_acc30" in s else "–",
                     _fmt(s["median_angle_deg"], 1) if "median_angle_deg" in s else "–"])
        rows.append([f"{setting}: untrained network", _fmt(s["untrained_chamfer"]), "", "",
                     _fmt(s["untrained_chamfer_icp"]) if "untrained_chamfer_icp" in s else "–",
                     _fmt(s["untrained_pose_acc30"], 3) if "untrained_pose_acc30" in s else "–",
                     _fmt(s["untrained_median_angle_deg"], 1) if "untrained_median_angle_deg" in s else "–"])
    for key, title in (("mean_shape", "mean training shape"), ("best_single_shape", "best single training shape")):
        b = base[key]
        rows.append([title, f"{b['chamfer']:.2f}", f"{b['precision']:.2f}", f"{b['coverage']:.2f}", "–", "–", "–"])
    for key, title in (("best_constant_pose", "best constant pose (training cameras)"),
                       ("random_training_pose", "random training camera")):
        b = base[key]
        rows.append([title, "–", "–", "–", "–", f"{b['accuracy']:.3f}", f"{b['median_error_deg']:.1f}"])
    rows.append(["uniformly random rotations (chance)", "–", "–", "–", "–", f"{chance['pose_acc30']:.4f}",
                 f"{chance['median_angle_deg']:.1f}"])
    floor = base["ground_truth_subsampled"]
    rows.append([f"floor: the true shape as {base['num_points']} points", f"{floor['chamfer']:.2f}",
                 f"{floor['precision']:.2f}", f"{floor['coverage']:.2f}", "–", "–", "–"])
    lines += ["## Results on the held-out models", "", "Mean ± sd over seeds. Chamfer without alignment: the network's "
              "own frame (the ground truth's when poses are known); 'after ICP': after the global rotation estimated "
              f"on {config.align_models} validation models (the reference's compute_alignment).", ""]
    lines += _table(["", "Chamfer", "precision", "coverage", "Chamfer after ICP", "pose accuracy @ 30°",
                     "median angular error (°)"], rows) + [""]
    lines += ["Chance level: a uniformly random rotation's angle t has density (1 - cos t) / pi on [0, pi], so "
              f"P(t < 30°) = (pi/6 - sin(pi/6)) / pi = {chance['pose_acc30']:.4f} and the median angle is "
              f"{chance['median_angle_deg']:.1f}° (the root of (t - sin t) / pi = 1/2; the mean is 126.5°). The "
              "views' cameras are not uniform rotations (azimuth uniform, elevation in a band), so input-blind "
              "predictions do better: the best constant pose is the training camera with the highest accuracy at 30° "
              "over the training views, predicted for every held-out view; the random training camera predicts a "
              "random training view's camera. The untrained network aligned the same way is the floor of the whole "
              "procedure (network plus alignment).", "",
              "Baselines (input-blind shapes, scored with the same Chamfer code on the same held-out models, "
              f"{base['num_points']} points like the network's predictions): the mean training shape is the voxel "
              f"occupancy of {base['train_models']} training models averaged on a {base['mean_shape']['grid']}^3 "
              f"grid and thresholded at {base['mean_shape']['threshold']} ({base['mean_shape']['voxels']} voxels; the "
              "threshold with the lowest mean Chamfer to those training models among "
              f"{', '.join(base['mean_shape']['train_chamfer_by_threshold'])}); the best single training shape is "
              f"`{base['best_single_shape']['model_id']}`, the training model with the lowest mean Chamfer to the "
              "other training models.", ""]
    header = ["setting", "seed", "Chamfer", "untrained", "Chamfer after ICP", "pose acc @ 30°", "median (°)",
              "steps", "wall s/step", "CPU-s/step (stage)"]
    lines += ["## Per seed", ""] + _table(header, [
        [r["setting"], r["seed"], f"{r['chamfer']:.2f}", f"{r['untrained_chamfer']:.2f}",
         f"{r['chamfer_icp']:.2f}" if "chamfer_icp" in r else "–",
         f"{r['pose_acc30']:.3f}" if "pose_acc30" in r else "–",
         f"{r['median_angle_deg']:.1f}" if "median_angle_deg" in r else "–", r["steps"],
         f"{r['seconds_per_step']:.3f}" if r["seconds_per_step"] else "–", f"{r['train_cpu_s_per_step']:.3f}"]
        for r in result["runs"]]) + [""]
    lines += ["## Learning curves", "", "Projection loss of the best pose candidate (the known camera when poses are "
              "known): training (logged means) and one fixed validation batch.", "", "![curves](curves.png)", "",
              "## Predicted point clouds beside the ground truth", "", "![point clouds](point_clouds.png)", ""]
    if result["has_pose_plot"]:
        lines += ["## Pose errors", "", "![pose errors](pose_errors.png)", ""]
    lines += ["## CPU time per stage (user + system, this process and its children)", ""]
    lines += _table(["stage", "CPU [s]", "wall [s]"], [[s, f"{v:.0f}", f"{result['wall_s'][s]:.0f}"]
                                                     for s, v in result["cpu_s"].items()])
    lines += [f"| total | {result['cpu_s_total']:.0f} ({result['cpu_s_total'] / 3600:.2f} CPU-hours) | |", ""]
    atomic_write_text(os.path.join(out, "results.md"), "\n".join(lines))


def stage_report(config: ExperimentConfig, workdir: str, command: str) -> dict:
    out = os.path.join(workdir, "report")
    os.makedirs(out, exist_ok=True)
    markers = {s: read_json(stage_marker(workdir, s)) for s in stage_names(config) if s != "report"}
    runs = run_entries(config, markers)
    baselines = markers["baselines"]
    chance = {"pose_acc30": metrics.chance_pose_accuracy(30.0), "median_angle_deg": metrics.chance_median_error_deg()}
    _plot_curves(config, workdir, markers, os.path.join(out, "curves.png"))
    _plot_point_clouds(config, workdir, os.path.join(out, "point_clouds.png"))
    has_pose_plot = _plot_pose_errors(config, workdir, os.path.join(out, "pose_errors.png"))
    cpu = {s: m["cpu_s"] for s, m in markers.items()}
    train_models = {markers[f"train-{r}"]["train_models"] for r in run_names(config)}
    result = {"experiment": "shape_pose", "config": config.name, "command": command, "git": git_commit(),
              "settings": config.to_dict(), "data": markers["data"], "train_models": min(train_models),
              "runs": runs, "summary": summarise(runs),
              "baselines": {k: v for k, v in baselines.items() if k not in ("cpu_s", "wall_s")},
              "chance": chance, "comparisons": comparisons(runs, baselines, chance), "has_pose_plot": has_pose_plot,
              "learning_curves": {r: {"train": _history(_train_dir(workdir, r)),
                                      "validation": markers[f"eval-{r}"]["val_curve"]} for r in run_names(config)},
              "cpu_s": cpu, "wall_s": {s: m["wall_s"] for s, m in markers.items()},
              "cpu_s_total": round(sum(cpu.values()), 1)}
    _write_markdown(config, result, out)
    write_json(os.path.join(out, RESULTS_NAME), result)
    return {"report": out}


# ----------------------------------------------------------------------------------------------------------------
# Driver.

def run(config: ExperimentConfig, workdir: str, *, command: str = "", only: Optional[list[str]] = None,
        publish: Optional[str] = None) -> dict:
    """Runs every unfinished stage in order (or only `only`); returns {stage: marker dict}."""
    workdir = check_workdir(workdir)
    def run_stage(stage):
        kind, _, run_name = stage.partition("-")
        if stage == "data":
            return stage_data(config, workdir)
        if stage == "baselines":
            return stage_baselines(config, workdir)
        if kind in ("train", "eval"):
            setting, _, seed = run_name.rpartition("-s")
            return (stage_train if kind == "train" else stage_eval)(config, workdir, setting, int(seed))
        missing = [s for s in stage_names(config)[:-1] if not os.path.exists(stage_marker(workdir, s))]
        if missing:
            raise ValueError(f"report: stages not done yet: {', '.join(missing)}")
        return stage_report(config, workdir, command)

    done = run_stages(workdir, config, stage_names(config), run_stage, only)
    if publish:
        publish_report(workdir, publish, RESULTS_NAME)
    return done


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.shape_pose", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS), help="experiment size")
    parser.add_argument("--workdir", required=True,
                        help="datasets, models, evaluations, stage markers and the report (outside the repository)")
    parser.add_argument("--stage", action="append", default=None,
                        help="run only this stage (repeatable; default: every unfinished stage)")
    parser.add_argument("--publish", default=None, metavar="DIR",
                        help="copy the report there afterwards (e.g. docs/results/shape_pose_small)")
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]()
    if args.stage:
        unknown = sorted(set(args.stage) - set(stage_names(config)))
        if unknown:
            parser.error(f"--stage {', '.join(unknown)}: unknown; stages: {', '.join(stage_names(config))}")
    given = list(sys.argv[1:] if argv is None else argv)
    kept = [a for i, a in enumerate(given)  # the command that reproduces the run: --publish only copies files
            if not a.startswith("--publish") and not (i and given[i - 1] == "--publish")]
    command = "python -m experiments.shape_pose " + " ".join(shlex.quote(a) for a in kept)
    return run(config, args.workdir, command=command, only=args.stage, publish=args.publish)


if __name__ == "__main__":
    from tfsynth.cli import run_cli
    from tfsynth.dpc.data import SourceError

    run_cli(main, user_errors=(ValueError, FileNotFoundError, SourceError), onednn=True)
