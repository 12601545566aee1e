"""`TrainConfig`: the fields of a supervised classifier training run, shared by the pre-training
(`tfsynth.training.pretrain_configs.PretrainConfig`) and fine-tuning (`tfsynth.transfer.configs.FinetuneConfig`)
configs, which extend it (TF-free: the jobs parse their flags before importing TensorFlow).

The defaults and flag help here are the pre-training recipe's (FractalDB, official code); FinetuneConfig declares
the fields whose default or help differ again, and adds its own (`tfsynth.config_flags.after` places them).
`tfsynth.training.trainer.fit_classifier` trains any TrainConfig.
"""
from __future__ import annotations

import dataclasses

from tfsynth.config_flags import ConfigMixin

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")  # --strategy choices (tf.distribute)

# Valid values of the shared fields (tfsynth.config_flags.check_ranges rules); the subclasses add theirs.
TRAIN_RANGES = {
    "crop_size": ">= 1", "shuffle_buffer": ">= 1", "batch_size": ">= 1", "epochs": ">= 1", "lr": "> 0",
    "lr_milestones": ">= 1", "lr_gamma": "> 0", "momentum": "[0, 1)", "weight_decay": ">= 0", "eval_batch_size": ">= 1",
    "validation_freq": ">= 0", "keep_checkpoints": ">= 1", "std": "> 0",
}


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    """Every hyper-parameter of a classifier training run. Each field is also a command-line flag of the jobs."""

    # --- data ---
    data: str = "fractal_db/1k"  # --data spec, e.g. 'fractal_db/1k:500,proc_synth_db/1k:500'
    train_split: str = "train"  # TFDS split (slicing allowed, e.g. 'train[:75%]')
    eval_split: str = ""  # held-out split evaluated with a centre crop; '' = none
    auto_build: bool = False  # build missing datasets (Beam DirectRunner) before training
    resize: int = 0  # shorter side resized to this (bilinear, antialiased) before cropping; 0 = keep (the recipe)
    crop_size: int = 224  # RandomCrop size (train) and CenterCrop size (eval)
    shuffle_buffer: int = 20_000  # examples (encoded) in the per-epoch shuffle buffer
    mean: tuple[float, ...] = (0.2, 0.2, 0.2)  # per-channel normalisation on [0, 1] pixels (official code)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)  # per-channel std on [0, 1] pixels (official code)
    # --- model ---
    arch: str = "resnet50"  # resnet18|34|50|101|152 (tfsynth.models.resnet, torchvision layout)
    mixed_precision: bool = False  # mixed_float16 (mixed_bfloat16 on TPU); logits and softmax stay float32
    # --- optimisation (torch.optim.SGD + MultiStepLR semantics) ---
    batch_size: int = 256  # global batch, split across replicas
    epochs: int = 90  # passes over the training split (each drops the last partial batch)
    lr: float = 0.1  # official code default; the paper's text says 0.01
    lr_milestones: tuple[int, ...] = (30, 60)  # epochs at which the LR is multiplied by lr_gamma
    lr_gamma: float = 0.1  # LR factor at each milestone
    momentum: float = 0.9  # PyTorch-style momentum buffer
    weight_decay: float = 1e-4  # coupled L2 on every trainable variable, added to the gradient before momentum
    # --- evaluation / bookkeeping ---
    eval_batch_size: int = 256  # batch for the held-out evaluation
    validation_freq: int = 1  # evaluate eval_split every N epochs during training (0: only at the end)
    keep_checkpoints: int = 2  # newest per-epoch checkpoints kept in <workdir>/checkpoints
    seed: int = 1  # data order, crops and initialisation all derive from it
    deterministic: bool = True  # deterministic ops + 1 inter-op thread (cf. cudnn.deterministic); bitwise for ResNet-18 on CPU  # noqa: E501


    RANGES = TRAIN_RANGES

