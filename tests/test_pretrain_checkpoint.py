"""Atomic checkpoints: complete or absent, newest kept, weights + optimizer state restored."""
import os

import keras
import numpy as np
import pytest

from tfsynth.training.callbacks import truncate_csv_history
from tfsynth.training.checkpoint import (atomic_write, latest_checkpoint, list_checkpoints, restore_checkpoint,
                                         save_checkpoint)
from tfsynth.training.optim import TorchSGD


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2)])
    model.compile(optimizer=TorchSGD(0.1, momentum=0.9, torch_weight_decay=1e-4), loss="mse")
    return model


def test_failed_write_leaves_nothing(tmp_path):
    def crash(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(str(tmp_path / "ckpt-epoch0001.keras"), crash)
    assert os.listdir(tmp_path) == []


def test_save_keep_and_restore(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(8, 3)), np.ones((8, 2))
    model = _model(0)
    for epoch in (1, 2, 3):
        model.fit(x, y, batch_size=4, verbose=0)
        save_checkpoint(model, str(tmp_path), epoch, keep=2)
    (tmp_path / ".tmp-ckpt-epoch0009.keras-abc.keras").write_text("left by a killed writer")
    (tmp_path / "ckpt-epoch0004.keras.partial").write_text("not a checkpoint name")
    assert [e for e, _ in list_checkpoints(str(tmp_path))] == [2, 3]
    epoch, path = latest_checkpoint(str(tmp_path))
    assert epoch == 3

    fresh = _model(1)  # different initial weights, optimizer not built yet
    restore_checkpoint(fresh, path)
    for a, b in zip(model.weights, fresh.weights, strict=True):  # includes BN moving statistics
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.optimizer.iterations.numpy()) == 6
    for a, b in zip(model.optimizer.variables, fresh.optimizer.variables, strict=True):  # momentum buffers
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    save_checkpoint(fresh, str(tmp_path), 4, keep=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt-epoch0003.keras", "ckpt-epoch0004.keras",
                                            "ckpt-epoch0004.keras.partial"]
    assert latest_checkpoint(str(tmp_path / "missing")) is None


def test_truncate_csv_history(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.5\n2,0.4\n")
    truncate_csv_history(str(path), 2)
    assert path.read_text() == "epoch,loss\n0,1.0\n1,0.5\n"
