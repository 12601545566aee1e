"""Segmentation experiments of Holm (2022), one config each, every hyper-parameter in one place (big_vision style).

    python -m train.segment --config holm2022 --workdir runs/segment/holm2022          # the paper's experiment
    python -m train.segment --config tiny --auto_build --coco_dir DIR --data_dir /tmp/tfds   # tests: ~1 min, 2 CPUs
    python -m train.segment --config holm2022 --epochs 20 --lr 0.02                     # flags override fields

One run = these stages, each in `<workdir>/<stage>/` (stage names in brackets):
  [baseline]          FCN-ResNet-50 (21 classes) from scratch on `finetune_data` (COCO, 20 VOC classes)
  [pretrain-<name>]   FCN-ResNet-50 (4 classes) from scratch on each synthetic dataset of `pretrain_data`
  [transfer-<name>]   FCN-ResNet-50 (21 classes) on `finetune_data` starting from [pretrain-<name>]'s backbone
                      (`transfer='backbone'`: heads re-initialised) or from every weight of equal shape
                      (`transfer='matching'`: only the final 1x1 convs re-initialised)
Every stage starts from `keras.utils.set_random_seed(seed)`, so the baseline and the transfers share the data order
and the heads' initial weights; they differ only in the transferred weights.

The seed's recipe (its author's code, github.com/sorenmulli/imgseg-fake-balloons, `imgseg02561/`): torchvision
`fcn_resnet50(weights=None)` without the auxiliary head, `torch.optim.SGD(lr=0.01, weight_decay=1e-4)` (no
momentum, constant learning rate), batch 8, 10 epochs for pre-training and for COCO, every image resized so its
shorter side is 520 (training and evaluation, no crop, no flip), batches padded (image 0, label 255), pixel-wise
cross-entropy ignoring 255, ImageNet mean/std normalisation; the whole model except the last 1x1 conv
(`classifier.4`) transferred. The issue asks for backbone-only transfer by default, hence `transfer='backbone'`;
`--transfer matching` is the author's choice. torchvision's own reference recipe is `torchvision_recipe`.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from tfsynth import config_flags
from tfsynth.config_flags import ConfigError  # noqa: F401  (re-exported)
from tfsynth.imagenet import IMAGENET_MEAN, IMAGENET_STD

TRANSFER_MODES = ("backbone", "matching")
LR_SCHEDULES = ("constant", "poly")
DILATED_CONV = ("auto", "native", "im2col")




@dataclasses.dataclass(frozen=True)
class SegmentConfig(config_flags.ConfigMixin):
    """Every hyper-parameter of a segmentation run. Each field is also a command-line flag of train.segment."""

    # --- data ---
    pretrain_data: tuple[str, ...] = (  # synthetic datasets, one pre-training + transfer each
        "noise_scenes/perlin", "noise_scenes/sc")
    finetune_data: str = "coco_seg20/1k"  # downstream dataset: baseline from scratch + one transfer per pretrain_data
    train_split: str = "train"  # TFDS split used for training (slicing allowed)
    eval_split: str = "validation"  # TFDS split evaluated after every epoch
    auto_build: bool = False  # build missing datasets first (coco_seg20 also needs --coco_dir)
    coco_dir: str = ""  # local COCO 2017 (manual_dir of coco_seg20), used when auto_build builds it
    shuffle_buffer: int = 1_000  # encoded examples in the per-epoch shuffle buffer
    # --- preprocessing (pixels stay uint8 until the model's normalisation layer) ---
    train_min_size: int = 520  # training: shorter side resized to a size drawn from U{min..max} (torchvision RandomResize)  # noqa: E501
    train_max_size: int = 520  # see train_min_size
    hflip_prob: float = 0.0  # probability of a horizontal flip (training)
    crop_size: int = 0  # training: random crop (padded with 0 / 255 where smaller); 0 = whole images in padded batches
    eval_size: int = 520  # evaluation: shorter side resized to this (0 = as stored); batches padded with label 255
    mean: tuple[float, ...] = IMAGENET_MEAN  # per-channel normalisation on [0, 1] pixels
    std: tuple[float, ...] = IMAGENET_STD  # per-channel std on [0, 1] pixels
    # --- model (tfsynth.models.fcn: torchvision fcn_resnet50) ---
    aux_loss: bool = False  # auxiliary FCN head on layer3, loss weight aux_weight
    aux_weight: float = 0.5  # torchvision reference: loss = out + 0.5 aux
    aux_lr_mult: float = 10.0  # learning-rate factor of the auxiliary head (torchvision reference: 10)
    transfer: str = "backbone"  # backbone | matching (every weight of equal shape: all but the last 1x1 convs)
    dilated_conv: str = "auto"  # auto | native | im2col: how dilated convs run (speed only, see DilatedConv2D)
    # --- optimisation (torch.optim.SGD semantics: coupled weight decay) ---
    batch_size: int = 8  # training batch
    pretrain_epochs: int = 10  # epochs on each synthetic dataset
    epochs: int = 10  # epochs on finetune_data (baseline and transfers)
    lr: float = 0.01  # base learning rate
    lr_schedule: str = "constant"  # constant | poly: lr * (1 - step / total_steps) ** lr_power per step
    lr_power: float = 0.9  # exponent of the poly schedule
    momentum: float = 0.0  # PyTorch-style momentum (the seed's code: none)
    weight_decay: float = 1e-4  # coupled L2 on every trainable variable
    jit_compile: bool = False  # XLA for the train step (recompiles for every new padded batch shape)
    # --- evaluation / bookkeeping ---
    eval_batch_size: int = 8  # evaluation batch (1 = every image on its own, as torchvision's reference)
    eval_before_training: bool = True  # also evaluate the initial model (epoch 0 of the curves, as the seed's code)
    num_overlays: int = 4  # validation images whose predicted masks go to TensorBoard every epoch
    ci_alpha: float = 0.05  # confidence level of the intervals: 1 - ci_alpha
    keep_checkpoints: int = 2  # newest per-epoch checkpoints kept per stage
    seed: int = 1  # data order, augmentation and initialisation all derive from it

    def __post_init__(self):
        """All checks across fields in one message, then the ranges (not ConfigMixin's order: its messages kept)."""
        problems = []
        if self.transfer not in TRANSFER_MODES:
            problems.append(f"transfer must be one of {TRANSFER_MODES}, got {self.transfer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.dilated_conv not in DILATED_CONV:
            problems.append(f"dilated_conv must be one of {DILATED_CONV}, got {self.dilated_conv!r}")
        if not 0 < self.train_min_size <= self.train_max_size:
            problems.append(f"need 0 < train_min_size <= train_max_size, "
                            f"got {self.train_min_size}, {self.train_max_size}")
        if self.crop_size < 0 or self.eval_size < 0:
            problems.append("crop_size and eval_size must be >= 0")
        if not 0.0 <= self.hflip_prob <= 1.0:
            problems.append(f"hflip_prob must be in [0, 1], got {self.hflip_prob}")
        if min(self.batch_size, self.eval_batch_size) < 1 or min(self.epochs, self.pretrain_epochs) < 0:
            problems.append("batch sizes must be >= 1 and epochs >= 0")
        if len(self.mean) != 3 or len(self.std) != 3:
            problems.append("mean and std need 3 values")
        if not self.finetune_data and not self.pretrain_data:
            problems.append("nothing to train: finetune_data and pretrain_data are both empty")
        if problems:
            raise ConfigError("; ".join(problems))
        config_flags.check_ranges(self, SEGMENT_RANGES)  # every other field with a valid range, one line


# Valid values of the fields (tfsynth.config_flags.check_ranges rules).
SEGMENT_RANGES = {
    "shuffle_buffer": ">= 1", "train_min_size": ">= 1", "train_max_size": ">= 1", "hflip_prob": "[0, 1]",
    "crop_size": ">= 0", "eval_size": ">= 0", "std": "> 0", "aux_weight": ">= 0", "aux_lr_mult": "> 0",
    "transfer": "{backbone, matching}", "dilated_conv": "{auto, native, im2col}", "batch_size": ">= 1",
    "pretrain_epochs": ">= 0", "epochs": ">= 0", "lr": "> 0", "lr_schedule": "{constant, poly}", "lr_power": "> 0",
    "momentum": "[0, 1)", "weight_decay": ">= 0", "eval_batch_size": ">= 1", "num_overlays": ">= 0",
    "ci_alpha": "(0, 1)", "keep_checkpoints": ">= 1",
}


def holm2022() -> SegmentConfig:
    """The seed's experiment: perlin and sc (9,000 + 1,000 at 512 px), COCO-VOC 1k/1k, the author's recipe.

        tfds build noise_scenes --imports tfds_builders.noise_scenes --config perlin   (and --config sc)
        tfds build coco_seg20 --imports tfds_builders.coco_seg20 --config 1k --manual_dir ~/data/coco
        python -m train.segment --config holm2022 --workdir runs/segment/holm2022
        python -m eval.segmentation --run runs/segment/holm2022

    Tables 2-3 and Figures 4-5 of the seed come from `eval.segmentation`. One GPU: about 3 h per synthetic
    dataset and 0.5 h per COCO run on an A100 (the seed's numbers).
    """
    return SegmentConfig()


def holm2022_small() -> SegmentConfig:
    """The same at laptop-friendlier sizes: perlin_small / sc_small (900 + 100 at 256 px), images resized to 256."""
    return SegmentConfig(pretrain_data=("noise_scenes/perlin_small", "noise_scenes/sc_small"),
                         train_min_size=256, train_max_size=256, eval_size=256)


def torchvision_recipe() -> SegmentConfig:
    """torchvision's reference recipe for fcn_resnet50 (references/segmentation/train.py, presets.py) at 1 GPU:

    RandomResize(260, 1040) + horizontal flip 0.5 + RandomCrop(480) for training, shorter side 520 for evaluation
    (one image per batch), SGD momentum 0.9, weight decay 1e-4, poly schedule (power 0.9) per step, auxiliary
    head (loss weight 0.5, learning rate x10). torchvision trains 30 epochs at 8 GPUs x 4 images with lr 0.02;
    here 10 epochs of 8 images with lr 0.01.
    """
    return SegmentConfig(train_min_size=260, train_max_size=1040, hflip_prob=0.5, crop_size=480, eval_size=520,
                         eval_batch_size=1, momentum=0.9, lr_schedule="poly", aux_loss=True)


def tiny() -> SegmentConfig:
    """Tests and smoke runs (~1 min on 2 CPU cores): noise_scenes/perlin_tiny (12 + 4 at 64 px) and coco_seg20/tiny
    (3 + 2 images built from the tests' COCO-format fixture: pass --coco_dir with --auto_build), 32 px images."""
    return SegmentConfig(pretrain_data=("noise_scenes/perlin_tiny",), finetune_data="coco_seg20/tiny",
                         train_min_size=32, train_max_size=32, eval_size=32, batch_size=4, eval_batch_size=4,
                         pretrain_epochs=2, epochs=1, lr=0.02, num_overlays=2, shuffle_buffer=100)


CONFIGS: dict[str, Callable[[], SegmentConfig]] = {
    "holm2022": holm2022,
    "holm2022_small": holm2022_small,
    "torchvision_recipe": torchvision_recipe,
    "tiny": tiny,
}


def get_config(name: str, overrides: Optional[dict] = None) -> SegmentConfig:
    """The named config with `overrides` (field -> value) applied; unknown names/fields raise ConfigError."""
    return config_flags.get_config(CONFIGS, SegmentConfig, name, overrides)


def source_label(spec: str, specs: tuple[str, ...]) -> str:
    """Short name of a pre-training dataset for stage names and table rows: its config ('perlin'), or the
    whole spec with '/' -> '_' when two specs share a config name."""
    config = spec.split("/")[-1]
    if sum(s.split("/")[-1] == config for s in specs) > 1:
        return spec.replace("/", "_")
    return config


@dataclasses.dataclass(frozen=True)
class Stage:
    name: str  # directory under the workdir
    method: str  # table row label: 'baseline' or the pre-training dataset's label
    kind: str  # 'pretrain' | 'finetune'
    data: str  # dataset spec name/config
    epochs: int
    init_from: Optional[str] = None  # stage whose final model initialises this one


def plan_stages(config: SegmentConfig) -> list[Stage]:
    """The stages of a run in execution order (a transfer right after its pre-training)."""
    stages = []
    if config.finetune_data:
        stages.append(Stage("baseline", "baseline", "finetune", config.finetune_data, config.epochs))
    for spec in config.pretrain_data:
        label = source_label(spec, config.pretrain_data)
        stages.append(Stage(f"pretrain-{label}", label, "pretrain", spec, config.pretrain_epochs))
        if config.finetune_data:
            stages.append(Stage(f"transfer-{label}", label, "finetune", config.finetune_data, config.epochs,
                                init_from=f"pretrain-{label}"))
    return stages
