"""Supervised pre-training of a ResNet on one or a mixture of TFDS datasets (the FractalDB recipe).

`run(config, workdir)` is everything `python -m train.pretrain` does. The workdir holds::

    config.json              the PretrainConfig of the run (written when it starts)
    checkpoints/ckpt-epochNNNN.keras   model + optimizer state after NNNN epochs (atomic; newest 2 kept)
    history.csv              one row per epoch: loss, top1, top5, learning_rate (+ val_*)
    logs/                    TensorBoard: train/ and validation/ scalars, image grids, hparams
    model.keras              the trained classifier (normalisation + ResNet + fc), with optimizer state; load it
                             with `import tfsynth.training.optim` first (TorchSGD), or with compile=False
    backbone.keras           normalisation + ResNet up to the pooled features; loads with plain Keras
    results.json             final metrics, data, config; written last, so its presence marks a finished run
"""
from __future__ import annotations

from typing import Optional

import keras

from tfsynth.input import datasets
from tfsynth.models.classifier import build_classifier
from tfsynth.training.optim import MultiStepSchedule
from tfsynth.training.pretrain_configs import PretrainConfig
from tfsynth.training.trainer import (RESUME_MAY_CHANGE, RunSetup, compile_classifier, fit_classifier,  # noqa: F401
                                      is_chief, lr_schedule, make_deterministic, make_strategy, prepare_run)

# The training loop (prepare_run, fit_classifier, ...) is tfsynth.training.trainer's, shared with fine-tuning; its
# names stay importable from here.


def compile_model(config: PretrainConfig, num_classes: int, schedule: MultiStepSchedule) -> keras.Model:
    """The classifier with TorchSGD, cross-entropy on logits, top-1 and top-5 metrics (build under the scope)."""
    model = build_classifier(num_classes, arch=config.arch, mean=config.mean, std=config.std)
    return compile_classifier(model, config, num_classes, schedule)


def run(config: PretrainConfig, workdir: str, *, resume: bool = False, strategy: str = "default",
        tpu: Optional[str] = None, data_dir: Optional[str] = None, verbose="auto") -> dict:
    """Trains `config` in `workdir` (resuming from its last checkpoint if `resume`); returns results.json's dict."""
    setup = prepare_run(config, workdir, resume=resume, strategy=strategy, tpu=tpu)
    train_mix = datasets.load_mixture(config.data, config.train_split, data_dir=data_dir,
                                      auto_build=config.auto_build)
    eval_mix = (datasets.load_mixture(config.data, config.eval_split, data_dir=data_dir)
                if config.eval_split else None)

    def build_model(num_classes: int) -> keras.Model:
        return build_classifier(num_classes, arch=config.arch, mean=config.mean, std=config.std)

    return fit_classifier(setup, config, train_mix, eval_mix, build_model, resize=config.resize, verbose=verbose)


