"""DPC shape & pose experiments, one config each; every field is a flag of train.shape_pose (TF-free).

    python -m train.shape_pose --config cars --data tfds:multiview_shapes/shapenet_cars:train --workdir runs/dpc/cars
    python -m train.shape_pose --config cars --data runs/aist/stylized_npz ...   # AIST experiments (npz folder)
    python -m train.shape_pose --config tiny --workdir runs/dpc/tiny     # CPU smoke run on procedural objects

Reference recipe (`default_config.yaml` + `chair_unsupervised/config.yaml`, which the seed used for cars): 128 px
RGB input, 8,000 points, 64^3 grid, 21-tap blur with sigma 3.0 -> 0.2 voxels (linear over training), point
dropout keep probability 0.07 -> 1 (linear), 4 pose candidates + student (weight 20), weight decay 0.001 on the
kernels, Adam 1e-4, 600,000 steps of 8 objects x 4 views. With `predict_pose=False` (the reference's default,
used by its `chair_camera_supervision` experiment) the ground-truth cameras drive the projection and only the shape
is learned; the pose head is then built with one candidate and no student and gets no gradient from the losses.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from tfsynth import config_flags
from tfsynth.config_flags import ConfigError  # noqa: F401  (re-exported)


@dataclasses.dataclass(frozen=True)
class DPCConfig:
    """Every hyper-parameter of a DPC run."""

    # --- data ---
    data: str = "procedural:200"  # 'tfds:name/config:split', a folder of per-model .npz files, or 'procedural:N'
    val_data: str = ""  # same forms; validation models for the loss curve ('' = none)
    max_models: int = 0  # use at most this many training models (0: all)
    # --- network (reference sizes) ---
    image_size: int = 128  # encoder input (images are resized)
    f_dim: int = 16  # first conv width
    fc_dim: int = 1024  # fully connected widths
    z_dim: int = 1024  # shape / pose code width
    num_points: int = 8000  # predicted points
    predict_pose: bool = True  # False (--no-predict_pose): ground-truth cameras drive the projection (shape only)
    num_candidates: int = 4  # pose candidates (1: single head, no student)
    student: bool = True  # student pose head
    # --- projection ---
    vox_size: int = 64  # splatting grid and silhouette resolution
    kernel_size: int = 21  # blur taps
    sigma_start: float = 3.0  # blur sigma (voxels) at step 0
    sigma_end: float = 0.2  # blur sigma at the last step
    keep_prob_start: float = 0.07  # point-dropout keep probability at step 0 (linear to 1 at the last step)
    focal_length: float = 1.875  # perspective focal length
    camera_distance: float = 2.0  # camera distance
    # --- losses and optimisation ---
    student_weight: float = 20.0  # weight of the student pose loss
    batch_models: int = 8  # objects per batch
    views_per_model: int = 4  # views per object in a batch (shape from the first, poses from all)
    lr: float = 1e-4  # Adam learning rate
    weight_decay: float = 0.001  # times the sum of l2_loss (half squared norm) of every kernel (reference; no biases)
    steps: int = 600000  # training steps (the schedules span them)
    # --- bookkeeping ---
    log_every: int = 100  # scalar summaries every N steps
    checkpoint_every: int = 5000  # checkpoint (and image / point-cloud summaries) every N steps
    keep_checkpoints: int = 2  # newest checkpoints kept
    seed: int = 0  # initialisation, batch sampling and dropout

    def __post_init__(self):
        if self.num_candidates < 1:
            raise ConfigError(f"num_candidates must be >= 1, got {self.num_candidates}")
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ConfigError(f"image_size must be a power of two >= 8, got {self.image_size}")
        if self.views_per_model < 1 or self.batch_models < 1:
            raise ConfigError("batch_models and views_per_model must be >= 1")
        if not 0 < self.keep_prob_start <= 1:
            raise ConfigError(f"keep_prob_start must be in (0, 1], got {self.keep_prob_start}")
        config_flags.check_ranges(self, DPC_RANGES)  # every other field with a valid range, one line

    @property
    def pose_candidates(self) -> int:
        """Pose candidates the projection uses: 1 (the ground-truth camera) when poses are not predicted."""
        return self.num_candidates if self.predict_pose else 1

    def net_kwargs(self) -> dict:
        return dict(image_size=self.image_size, f_dim=self.f_dim, fc_dim=self.fc_dim, z_dim=self.z_dim,
                    num_points=self.num_points, num_candidates=self.pose_candidates,
                    student=self.student and self.predict_pose)

    def projection_kwargs(self) -> dict:
        return dict(vox_size=self.vox_size, focal_length=self.focal_length, camera_distance=self.camera_distance,
                    kernel_size=self.kernel_size)

    def replace(self, **overrides) -> "DPCConfig":
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Valid values of the fields (tfsynth.config_flags.check_ranges rules).
DPC_RANGES = {
    "max_models": ">= 0", "image_size": ">= 1", "f_dim": ">= 1", "fc_dim": ">= 1", "z_dim": ">= 1",
    "num_points": ">= 1",
    "num_candidates": ">= 1", "vox_size": ">= 1", "kernel_size": ">= 1", "sigma_start": "> 0", "sigma_end": "> 0",
    "keep_prob_start": "(0, 1]", "focal_length": "> 0", "camera_distance": "> 0", "student_weight": ">= 0",
    "batch_models": ">= 1", "views_per_model": ">= 1", "lr": "> 0", "weight_decay": ">= 0", "steps": ">= 1",
    "log_every": ">= 1", "checkpoint_every": ">= 1", "keep_checkpoints": ">= 1",
}


def cars() -> DPCConfig:
    """Seed 002 baseline (experiment 1): the reference unsupervised shape & pose recipe on ShapeNet cars renders."""
    return DPCConfig(data="tfds:multiview_shapes/shapenet_cars:train",
                     val_data="tfds:multiview_shapes/shapenet_cars:validation")


def seed_batch() -> DPCConfig:
    """As `cars` with the seed's batch: 16 views of 4 models."""
    return cars().replace(batch_models=4, views_per_model=4)


def procedural() -> DPCConfig:
    """Reference sizes on procedural objects (no ShapeNet needed), 20,000 steps."""
    return DPCConfig(data="procedural:500", val_data="", steps=20000, checkpoint_every=2000)


def tiny() -> DPCConfig:
    """CPU smoke run: 32 px input, narrow nets, 2,000 points, 32^3 grid, 11 taps, 300 steps on 24 procedural objects.

    Not the reference sizes (see `cars`); it exists to run the whole job in a few minutes. The points-per-voxel
    ratio stays near the reference's (8,000 points on 64^3), so projected silhouettes are dense from the start.
    """
    return DPCConfig(data="procedural:24", val_data="procedural:8", image_size=32, f_dim=8, fc_dim=128, z_dim=128,
                     num_points=2000, vox_size=32, kernel_size=11, sigma_start=2.0, sigma_end=0.5,
                     keep_prob_start=0.5, batch_models=4, views_per_model=4, lr=1e-3, steps=300,
                     log_every=25, checkpoint_every=100)


CONFIGS = {"cars": cars, "seed_batch": seed_batch, "procedural": procedural, "tiny": tiny}


def get_config(name: str, overrides: Optional[dict] = None) -> DPCConfig:
    return config_flags.get_config(CONFIGS, DPCConfig, name, overrides)
