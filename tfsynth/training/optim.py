"""Optimiser and learning-rate schedule of the FractalDB recipe with PyTorch semantics.

The official FractalDB code trains with::

    optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 60], gamma=0.1)   # stepped once per epoch

`torch.optim.SGD` (dampening 0, nesterov False) updates every parameter p with gradient g as::

    g   = g + weight_decay * p          # coupled L2: before momentum, on *every* parameter (BN and biases too)
    buf = momentum * buf + g            # (buf = g on the first step)
    p   = p - lr * buf

Keras's `SGD(weight_decay=...)` is decoupled (p -= lr * wd * p outside the momentum) and keeps the velocity
`v = momentum * v - lr * g`, which differs from PyTorch right after an LR change. `TorchSGD` implements the PyTorch
update exactly; `MultiStepSchedule` is MultiStepLR expressed in steps.
"""
from __future__ import annotations

from typing import Sequence

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfsynth")
class TorchSGD(keras.optimizers.SGD):
    """SGD with `torch.optim.SGD` semantics: coupled weight decay (`torch_weight_decay`), PyTorch momentum buffer.

    Keras's own (decoupled) `weight_decay` argument must stay None; use `torch_weight_decay`.
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, torch_weight_decay=0.0, name="torch_sgd",
                 **kwargs):
        if kwargs.get("weight_decay"):
            raise ValueError("TorchSGD applies coupled weight decay via `torch_weight_decay`; "
                             "Keras's decoupled `weight_decay` must be None")
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, name=name, **kwargs)
        self.torch_weight_decay = float(torch_weight_decay)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.torch_weight_decay:
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.torch_weight_decay, variable.dtype), variable))
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(learning_rate, gradient))
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        buf = self.momentums[self._get_variable_index(variable)]
        # buf starts at zero, so the first step gives buf = g exactly as PyTorch's initialisation does.
        self.assign(buf, ops.add(ops.multiply(momentum, buf), gradient))
        step = ops.add(gradient, ops.multiply(momentum, buf)) if self.nesterov else buf
        self.assign_sub(variable, ops.multiply(learning_rate, step))

    def get_config(self):
        config = super().get_config()
        config["torch_weight_decay"] = self.torch_weight_decay
        return config


@keras.saving.register_keras_serializable(package="tfsynth")
class MultiStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """`torch.optim.lr_scheduler.MultiStepLR` in steps: lr = base_lr * gamma ** #{m in milestones: step >= m * spe}.

    `step` is the optimizer's iteration count before the update (0 for the first batch), so every batch of epoch e
    (0-based) uses base_lr * gamma ** #{m <= e}, as PyTorch does when `scheduler.step()` runs after each epoch.
    Under mixed_float16, steps whose update dynamic loss scaling skips (non-finite gradients: a few at the start,
    then about one per 2,000 steps) do not advance Keras's iteration count, so milestones arrive that many steps
    late (FractalDB-1k: well under 1% of an epoch).
    """

    def __init__(self, base_lr: float, steps_per_epoch: int, milestones: Sequence[int] = (30, 60),
                 gamma: float = 0.1):
        self.base_lr = float(base_lr)
        self.steps_per_epoch = int(steps_per_epoch)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)
        if self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if self.milestones != sorted(self.milestones):
            raise ValueError(f"milestones must be increasing, got {self.milestones}")

    def lr_at_epoch(self, epoch: int) -> float:
        """The learning rate used during (0-based) `epoch`, as a Python float."""
        return self.base_lr * self.gamma ** sum(epoch >= m for m in self.milestones)

    def __call__(self, step):
        epoch = ops.floor_divide(ops.cast(step, "int64"), self.steps_per_epoch)
        passed = ops.zeros((), "float32")
        for m in self.milestones:
            passed = passed + ops.cast(ops.greater_equal(epoch, m), "float32")
        return ops.multiply(ops.cast(self.base_lr, "float32"), ops.power(ops.cast(self.gamma, "float32"), passed))

    def get_config(self):
        return {"base_lr": self.base_lr, "steps_per_epoch": self.steps_per_epoch, "milestones": self.milestones,
                "gamma": self.gamma}
