"""Learning-rate schedule and optimiser pieces of torchvision's segmentation reference, on top of TorchSGD.

torchvision `references/segmentation/train.py`::

    params = [{"params": backbone}, {"params": classifier}, {"params": aux_classifier, "lr": args.lr * 10}]
    optimizer = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    lr_scheduler = PolynomialLR(optimizer, total_iters=iters_per_epoch * args.epochs, power=0.9)  # stepped per batch

`PolySchedule` is PolynomialLR in optimizer steps; `GroupLRSGD` is `TorchSGD` (PyTorch update, coupled weight decay)
with per-group learning-rate factors selected by variable path prefix (the aux head: 'aux_classifier.').
"""
from __future__ import annotations

from typing import Mapping, Optional

import keras
from keras import ops

from tfsynth.training.optim import TorchSGD


@keras.saving.register_keras_serializable(package="tfsynth")
class PolySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step) = base_lr * (1 - min(step, total_steps) / total_steps) ** power (step = updates done before)."""

    def __init__(self, base_lr: float, total_steps: int, power: float = 0.9):
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.base_lr, self.total_steps, self.power = float(base_lr), int(total_steps), float(power)

    def lr_at_step(self, step: int) -> float:
        return self.base_lr * (1.0 - min(step, self.total_steps) / self.total_steps) ** self.power

    def __call__(self, step):
        progress = ops.minimum(ops.cast(step, "float32"), float(self.total_steps)) / float(self.total_steps)
        return self.base_lr * ops.power(1.0 - progress, self.power)

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "power": self.power}


@keras.saving.register_keras_serializable(package="tfsynth")
class GroupLRSGD(TorchSGD):
    """TorchSGD where variables whose path starts with a key of `lr_multipliers` use learning rate x factor."""

    def __init__(self, *args, lr_multipliers: Optional[Mapping[str, float]] = None, name="group_lr_sgd", **kwargs):
        super().__init__(*args, name=name, **kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}

    def factor(self, variable) -> float:
        """The learning-rate factor of a Keras variable (by its path, e.g. 'aux_classifier.4/kernel')."""
        path = getattr(variable, "path", "") or ""
        for prefix, factor in self.lr_multipliers.items():
            if path.startswith(prefix):
                return factor
        return 1.0

    def build(self, variables):
        super().build(variables)
        # update_step sees backend variables (no Keras path) on TensorFlow: look the factors up by index.
        self._lr_factors = [self.factor(v) for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        factor = self._lr_factors[self._get_variable_index(variable)]
        if factor != 1.0:
            learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype), factor)
        super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}
