"""Fine-tuning experiments, one config each; every field is also a flag of `python -m train.finetune` (TF-free).

    python -m train.finetune --config digits_demo --backbone runs/demo/X/backbone.keras --workdir runs/ft/fdb
    python -m train.finetune --config cifar10 --init scratch --workdir runs/ft/scratch-c10 --seed 2
    python -m train.finetune --config cifar10 --reference resnet50 --weights resnet50_imagenet.npz --workdir ...

Recipe (official FractalDB code, `finetuning/main.py` + `args.py`, Kataoka et al. ACCV 2020): replace the final
Linear of the pre-trained ResNet-50, train every layer with SGD (LR 0.01, momentum 0.9, weight decay 1e-4 coupled
as torch.optim.SGD, see tfsynth.training.optim), batch 256 (drop_last), 90 epochs, LR x0.1 after epochs 30 and
60 (MultiStepLR), seed 1. Images: `Resize(256)` (shorter side, bilinear) then `RandomCrop(224)` for training,
`CenterCrop(224)` for testing, no flips or other augmentation, `Normalize` with the ImageNet mean/std for every
pre-training source (also FractalDB ones, whose pre-training used mean 0.2 / std 0.5). The test split is
evaluated after every epoch; its top-1 after the last epoch is the reported number.

Hyper-parameter search ("Beyond Flatland" §3.3): `cv_folds` > 1 runs stratified k-fold cross-validation on the
training split over the grid `grid_lr` x `grid_wd` (around the recipe's 0.01 / 1e-4), picks the best mean CV
top-1, and trains the final model with it on the whole training split.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from tfsynth import config_flags
from tfsynth.config_flags import ConfigError, after  # noqa: F401  (ConfigError re-exported)
from tfsynth.imagenet import IMAGENET_MEAN, IMAGENET_STD
from tfsynth.training.config import TRAIN_RANGES, TrainConfig

# Valid values of the fields (tfsynth.config_flags.check_ranges rules): TrainConfig's and these.
FINETUNE_RANGES = {**TRAIN_RANGES, "resize": ">= 0", "cv_folds": ">= 0"}


@dataclasses.dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    """Every hyper-parameter of a fine-tuning run. Each field is also a command-line flag of train.finetune.

    TrainConfig's fields, those declared here with the fine-tuning recipe's default and help; the fields of
    fine-tuning only (`after`) keep their place among them in the flags and config.json."""

    # --- data ---
    data: str = "cifar10"  # downstream TFDS dataset[/config] with 'image' and ClassLabel 'label' features
    train_split: str = "train"  # TFDS split fine-tuned on (the CV search folds this split only)
    eval_split: str = "test"  # split of the reported top-1 (centre crops); '' = none
    auto_build: bool = False  # build the downstream dataset when missing (TFDS download_and_prepare)
    images_per_class: int = after("auto_build", 0)  # low-data regime: fine-tune on this many train_split images per class, drawn per  # noqa: E501
    #                            seed (tfsynth.transfer.cv.per_class_sample); 0 = the whole split
    resize: int = 256  # shorter side resized to this (bilinear, as torchvision Resize) before cropping; 0 = keep
    mean: tuple[float, ...] = IMAGENET_MEAN  # per-channel normalisation on [0, 1] pixels (official fine-tuning code)
    std: tuple[float, ...] = IMAGENET_STD  # per-channel std on [0, 1] pixels (official fine-tuning code)
    keep_source_normalization: bool = after("std", False)  # use the .keras source's own 'normalize' mean/std instead
    # --- model ---
    arch: str = "resnet50"  # architecture of --init scratch runs (a source's own architecture otherwise)
    # --- optimisation ---
    lr: float = 0.01  # base learning rate (official fine-tuning default)
    # --- cross-validated hyper-parameter search ---
    cv_folds: int = after("weight_decay", 0)  # k of the stratified k-fold search on train_split; 0 = no search (train with lr/weight_decay)  # noqa: E501
    grid_lr: tuple[float, ...] = after("cv_folds", (0.003, 0.01, 0.03))  # learning rates tried by the CV search
    grid_wd: tuple[float, ...] = after("grid_lr", (1e-5, 1e-4, 1e-3))  # weight decays tried by the CV search
    cv_seed: int = after("grid_wd", 0)  # seeds the fold assignment (per class: SeedSequence([cv_seed, class]))
    # --- evaluation / bookkeeping ---
    eval_batch_size: int = 512  # batch for the held-out evaluation (official test batch)
    seed: int = 1  # data order, crops and head initialisation derive from it; one run per seed
    deterministic: bool = True  # deterministic ops + 1 inter-op thread: runs repeat bitwise

    RANGES = FINETUNE_RANGES

    def validate(self) -> "FinetuneConfig":
        if self.cv_folds == 1 or self.cv_folds < 0:
            raise ConfigError(f"--cv_folds must be 0 (no search) or >= 2, got {self.cv_folds}")
        if self.cv_folds and (not self.grid_lr or not self.grid_wd):
            raise ConfigError("a CV search needs at least one --grid_lr and one --grid_wd value")
        if self.images_per_class < 0:
            raise ConfigError(f"--images_per_class must be >= 0 (0 = the whole split), got {self.images_per_class}")
        if self.images_per_class and self.cv_folds:
            raise ConfigError("--images_per_class and --cv_folds together are not supported: the CV search folds "
                              "the whole training split")
        if self.resize and self.resize < self.crop_size:
            raise ConfigError(f"--resize {self.resize} is smaller than --crop_size {self.crop_size}")
        if any(v <= 0 for v in self.grid_lr) or self.lr <= 0:
            raise ConfigError("learning rates must be positive")
        if any(v < 0 for v in self.grid_wd) or self.weight_decay < 0:
            raise ConfigError("weight decays must be >= 0")
        return self


def default() -> FinetuneConfig:
    """The official recipe on CIFAR-10 (the official code's default downstream task).

        tfds build cifar10          # or pass --auto_build
        python -m train.finetune --backbone runs/fdb1k/backbone.keras --workdir runs/ft/fdb1k-cifar10
    """
    return FinetuneConfig()


def cifar10() -> FinetuneConfig:
    """The recipe on CIFAR-10 (32 px images resized to 256, 224 crops)."""
    return FinetuneConfig(data="cifar10")


def cifar100() -> FinetuneConfig:
    """The recipe on CIFAR-100."""
    return FinetuneConfig(data="cifar100")


def places365() -> FinetuneConfig:
    """The recipe on Places-365 (TFDS `places365_small`, 256 px; its labelled held-out split is 'validation')."""
    return FinetuneConfig(data="places365_small", eval_split="validation")


def omniglot() -> FinetuneConfig:
    """The recipe on Omniglot's background set (964 characters x 20 drawers): TFDS `omniglot` 'train' holds it
    and 'test' holds other characters, so this fine-tunes on the first 75 % and tests on the last 25 % of 'train'
    (TFDS stores examples in a hashed, class-mixed order)."""
    return FinetuneConfig(data="omniglot", train_split="train[:75%]", eval_split="train[75%:]")


def cars196() -> FinetuneConfig:
    """The recipe on Stanford Cars (TFDS `cars196`)."""
    return FinetuneConfig(data="cars196")


def digits() -> FinetuneConfig:
    """The recipe unchanged on the bundled digits (32 px upsampled to 256, 224 crops): hours on a laptop."""
    return FinetuneConfig(data="digits/32px", auto_build=True)


def digits_demo() -> FinetuneConfig:
    """Laptop demo (about 1.5 min and 140 CPU-seconds per run on 2 CPU cores): the recipe shrunk to digits/32px.

        python -m train.finetune --config digits_demo --backbone runs/demo/X/backbone.keras --workdir runs/demo/X/ft
        python -m train.finetune --config digits_demo --init scratch --workdir runs/demo/X/ft-scratch

    ResNet-50 as the recipe; no resize, 28 px random crops of the 32 px images (centre crops for the 359 test
    images, scored once at the end); all 1,438 training images, batch 32, 3 epochs with the LR x0.1 for the last.
    LR 0.005: batch 32 instead of 256, and the recipe's 0.01 makes the training loss spike here.
    """
    return FinetuneConfig(
        data="digits/32px", auto_build=True, resize=0, crop_size=28, shuffle_buffer=2_048, batch_size=32,
        eval_batch_size=128, epochs=3, lr=0.005, lr_milestones=(2,), validation_freq=0)


CONFIGS: dict[str, Callable[[], FinetuneConfig]] = {
    "default": default,
    "cifar10": cifar10,
    "cifar100": cifar100,
    "places365": places365,
    "omniglot": omniglot,
    "cars196": cars196,
    "digits": digits,
    "digits_demo": digits_demo,
}


def get_config(name: str, overrides: Optional[dict] = None) -> FinetuneConfig:
    """The named config with `overrides` (field -> value) applied; unknown names/fields raise ConfigError."""
    return config_flags.get_config(CONFIGS, FinetuneConfig, name, overrides).validate()
