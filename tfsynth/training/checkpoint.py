"""Atomic per-epoch checkpoints: `<dir>/ckpt-epoch0007.keras` holds the model, optimizer state and step count
after 7 completed epochs. Each is written under a temporary name and renamed (os.replace), so a file with the
final name is always complete; only the newest `keep` checkpoints are kept (two by default in the configs, so that a
damaged newest checkpoint still leaves one to resume from: `latest_intact_checkpoint`).
"""
from __future__ import annotations

import glob
import os
import re
from typing import Optional

import keras

from tfsynth.atomic import atomic_write, atomic_write_text  # noqa: F401  (re-exported)

_CKPT_RE = re.compile(r"^ckpt-epoch(\d+)\.keras$")


def checkpoint_path(directory: str, epoch: int) -> str:
    return os.path.join(directory, f"ckpt-epoch{epoch:04d}.keras")


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """[(epochs_completed, path)] of the finished checkpoints in `directory`, oldest first."""
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _CKPT_RE.match(name)
        if match:
            found.append((int(match[1]), os.path.join(directory, name)))
    return sorted(found)


def latest_checkpoint(directory: str) -> Optional[tuple[int, str]]:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def latest_intact_checkpoint(directory: str) -> Optional[tuple[int, str]]:
    """The newest checkpoint that is a complete .keras archive; damaged newer ones are named and skipped.

    A file with the final name is complete when this module wrote it (atomic rename), but a disk, a copy or a user
    can still truncate it. Raises tfsynth.workdir.WorkdirError, naming every damaged file, when no checkpoint is
    intact."""
    from tfsynth.models.files import ModelFileError, check_keras_file
    from tfsynth.workdir import WorkdirError

    damaged = []
    for epoch, path in reversed(list_checkpoints(directory)):
        try:
            check_keras_file(path, "checkpoint")
        except ModelFileError as err:
            print(f"WARNING: {err}; skipping it", flush=True)
            damaged.append(path)
            continue
        if damaged:
            print(f"Resuming from the newest intact checkpoint, {path}", flush=True)
        return epoch, path
    if damaged:
        raise WorkdirError(f"--resume: no intact checkpoint in {directory}: {', '.join(damaged)} "
                           f"{'is' if len(damaged) == 1 else 'are'} damaged; start a new run (another --workdir)")
    return None


def atomic_save_model(model: keras.Model, path: str) -> None:
    atomic_write(path, lambda tmp: model.save(tmp, overwrite=True))


def save_checkpoint(model: keras.Model, directory: str, epoch: int, keep: int = 1) -> str:
    """Saves the compiled `model` (with optimizer state) as the checkpoint after `epoch` completed epochs."""
    path = checkpoint_path(directory, epoch)
    atomic_save_model(model, path)
    for _, old in list_checkpoints(directory)[:-max(1, keep)]:
        os.remove(old)
    # Temporaries left behind by a killed writer are never read; clear them.
    for stale in glob.glob(os.path.join(directory, ".tmp-ckpt-epoch*")):
        os.remove(stale)
    return path


def restore_checkpoint(model: keras.Model, path: str) -> None:
    """Loads weights and optimizer state into an already compiled `model` (build it under the strategy scope)."""
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    model.load_weights(path)


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes `ckpt-epoch{N}.keras` after every epoch (N = epochs completed); keeps the newest `keep`."""

    def __init__(self, directory: str, keep: int = 1):
        super().__init__()
        self.directory, self.keep = directory, keep

    def on_epoch_end(self, epoch, logs=None):
        save_checkpoint(self.model, self.directory, epoch + 1, keep=self.keep)


def prepare_workdir(workdir: str, config: dict, resume: bool, may_change=("keep_checkpoints",)) -> str:
    """Creates `workdir`, refuses to start over an existing run unless resuming, writes config.json.

    On resume, fields outside `may_change` that differ from the run's config.json stop it (WorkdirError, one line).
    Returns the checkpoint directory (`<workdir>/checkpoints`)."""
    import json

    from tfsynth.workdir import check_resume_config

    os.makedirs(workdir, exist_ok=True)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    if not resume and os.path.exists(ckpt_dir) and os.listdir(ckpt_dir):
        raise FileExistsError(f"{workdir} already holds a run; pass --resume or choose a new --workdir")
    if resume and os.path.exists(ckpt_dir) and os.listdir(ckpt_dir):
        check_resume_config(workdir, config, may_change)
    atomic_write_text(os.path.join(workdir, "config.json"), json.dumps(config, indent=2))
    return ckpt_dir
