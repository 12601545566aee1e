"""The job behind `python -m train.segment`: FCN-ResNet-50 pre-training on synthetic scenes, transfer to COCO-VOC,
and a from-scratch baseline (Holm 2022). `run(config, workdir)` does everything; the workdir holds::

    config.json                      the SegmentConfig and the stage names (written when the run starts)
    <stage>/stage.json               stage name, method, kind, dataset, class names, sizes, transfer source
    <stage>/checkpoints/ckpt-epochNNNN.keras   model + optimizer after NNNN epochs (atomic; newest kept)
    <stage>/history.json             one entry per validation pass: epochs_completed (0 = before training),
                                     train loss, learning rate, validation loss, confusion matrix, n images, scores
    <stage>/logs/{train,validation}  TensorBoard: per-epoch scalars (step = epochs completed), predicted-mask
                                     overlays of the first validation images every epoch, training samples, hparams
    <stage>/model.keras              the final model (load with `import tfsynth.segmentation.training` first)
    <stage>/weights_torchvision.npz  the same weights in torchvision's fcn_resnet50 state_dict layout (the transfer
                                     stages read their initialisation from here)
    <stage>/results.json             final scores of the stage; written last: marks the stage as finished
    report/                          Tables 2-3 (.md/.csv), Figures 4-5 (.png) -- see tfsynth.segmentation.report
    results.json                     the run's summary; written last: marks the run as finished

Stages (tfsynth.segmentation.configs.plan_stages): baseline, then pretrain-<name> + transfer-<name> per synthetic
dataset. `--resume` skips finished stages and continues the unfinished one from its last checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

import tfsynth.segmentation.optim  # noqa: F401 - registers PolySchedule / GroupLRSGD for loading checkpoints
from tfsynth.cli import keras_verbosity
from tfsynth.input.augment import image_grid
from tfsynth.models.fcn import (SegmentationCrossEntropy, fcn_resnet50, load_npz, save_torchvision_npz,
                                transfer_state_dict)
from tfsynth.segmentation import pipeline, report, visualize
from tfsynth.segmentation.configs import SegmentConfig, Stage, plan_stages
from tfsynth.segmentation.evaluation import Evaluator
from tfsynth.segmentation.metrics import METRICS
from tfsynth.segmentation.optim import GroupLRSGD, PolySchedule
from tfsynth.training import callbacks as cb
from tfsynth.training.checkpoint import (EpochCheckpoint, atomic_save_model, atomic_write, atomic_write_text,
                                         latest_checkpoint, latest_intact_checkpoint, restore_checkpoint)
from tfsynth.workdir import RESULTS_NAME, check_resume_config

# Fields that may differ from the run's config.json on --resume (the others fix data, models and optimiser state).
RESUME_MAY_CHANGE = ("auto_build", "coco_dir", "dilated_conv", "jit_compile", "eval_batch_size", "num_overlays",
                     "ci_alpha", "keep_checkpoints")

OVERLAY_SIZE = 128  # display height of each overlay row in TensorBoard
WEIGHTS_NPZ = "weights_torchvision.npz"  # final weights of a stage in torchvision's fcn_resnet50 state_dict layout


def build_model(config: SegmentConfig, num_classes: int) -> keras.Model:
    """torchvision-conformant FCN-ResNet-50 taking uint8 [0, 255] images (normalisation inside)."""
    return fcn_resnet50(num_classes=num_classes, aux_loss=config.aux_loss, mean=config.mean, std=config.std,
                        dilated_conv=config.dilated_conv)


def learning_rate(config: SegmentConfig, steps_per_epoch: int, epochs: int):
    if config.lr_schedule == "poly":
        return PolySchedule(config.lr, max(1, steps_per_epoch * epochs), config.lr_power)
    return config.lr


def lr_at_epoch(schedule, epoch: int, steps_per_epoch: int) -> float:
    """Learning rate of the first step of (0-based) `epoch`."""
    return schedule.lr_at_step(epoch * steps_per_epoch) if isinstance(schedule, PolySchedule) else float(schedule)


def compile_model(model: keras.Model, config: SegmentConfig, schedule) -> keras.Model:
    """TorchSGD semantics (coupled weight decay), pixel cross-entropy ignoring 255 (+ weighted aux loss)."""
    multipliers = {"aux_classifier.": config.aux_lr_mult} if config.aux_loss else {}
    optimizer = GroupLRSGD(schedule, momentum=config.momentum, torch_weight_decay=config.weight_decay,
                           lr_multipliers=multipliers)
    loss = {"out": SegmentationCrossEntropy()}
    weights = {"out": 1.0}
    if config.aux_loss:
        loss["aux"] = SegmentationCrossEntropy()
        weights["aux"] = config.aux_weight
    model.compile(optimizer=optimizer, loss=loss, loss_weights=weights, jit_compile=config.jit_compile)
    return model


def _display(rows: np.ndarray) -> tf.Tensor:
    """Rows of different sizes -> (N, OVERLAY_SIZE, 3 * OVERLAY_SIZE, 3) uint8, aspect ratio kept (padded)."""
    out = [tf.image.resize_with_pad(tf.convert_to_tensor(r), OVERLAY_SIZE, 3 * OVERLAY_SIZE, method="nearest")
           for r in rows]
    return tf.cast(tf.stack(out), tf.uint8)  # nearest keeps the values


class SegmentationMonitor(keras.callbacks.Callback):
    """After every epoch: streams the validation set (confusion matrix -> scores), appends to history.json,
    writes TensorBoard scalars (train/validation, step = epochs completed) and predicted-mask overlays."""

    def __init__(self, evaluator: Evaluator, eval_ds: tf.data.Dataset, overlay_examples: list, stage: Stage,
                 stage_dir: str, history: list, lr_at: callable, alpha: float, total_epochs: int, verbose: bool):
        super().__init__()
        self.evaluator, self.eval_ds, self.stage, self.alpha = evaluator, eval_ds, stage, alpha
        self.history, self.lr_at, self.total_epochs, self.verbose = history, lr_at, total_epochs, verbose
        self.history_path = os.path.join(stage_dir, report.HISTORY_FILE)
        logs = os.path.join(stage_dir, "logs")
        self.train_writer = tf.summary.create_file_writer(os.path.join(logs, "train"))
        self.val_writer = tf.summary.create_file_writer(os.path.join(logs, "validation"))
        self.overlay_images = [np.asarray(image) for image, _ in overlay_examples]
        self.overlay_labels = [np.asarray(label) for _, label in overlay_examples]
        self._epoch_start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        self.evaluate(epoch + 1, train_loss=(logs or {}).get("loss"), lr=self.lr_at(epoch))

    def evaluate(self, epochs_completed: int, train_loss: Optional[float] = None, lr: Optional[float] = None) -> dict:
        result = self.evaluator.evaluate(self.eval_ds)
        scores = result.scores(self.alpha)
        entry = {"epochs_completed": int(epochs_completed),
                 "train_loss": None if train_loss is None else float(train_loss),
                 "learning_rate": lr, "val_loss": result.loss, "num_images": result.num_images,
                 "num_pixels": result.num_pixels, **{m: scores[m] for m in METRICS},
                 "confusion_matrix": result.confusion_matrix.tolist()}
        self.history[:] = [e for e in self.history if e["epochs_completed"] < epochs_completed] + [entry]
        atomic_write_text(self.history_path, json.dumps(self.history))
        step = int(epochs_completed)
        with self.val_writer.as_default():
            tf.summary.scalar("epoch_loss", result.loss, step=step)
            for m in METRICS:
                tf.summary.scalar(f"epoch_{m}", scores[m], step=step)
            if self.overlay_images:
                rows = [visualize.comparison_rows(img[None], lab[None], self.evaluator.predict(img[None], lab[None]))[0]
                        for img, lab in zip(self.overlay_images, self.overlay_labels)]
                tf.summary.image("overlays/image_truth_prediction", image_grid(_display(rows), 1)[tf.newaxis],
                                 step=step, max_outputs=1)
        self.val_writer.flush()
        if train_loss is not None:
            with self.train_writer.as_default():
                tf.summary.scalar("epoch_loss", train_loss, step=step)
                if lr is not None:
                    tf.summary.scalar("epoch_learning_rate", lr, step=step)
            self.train_writer.flush()
        if self.verbose:
            took = f" ({time.time() - self._epoch_start:.0f} s)" if train_loss is not None else ""
            print(f"[{self.stage.name}] epoch {epochs_completed}/{self.total_epochs}"
                  + (f": train loss {train_loss:.4f}" if train_loss is not None else ": initial model")
                  + f"; validation loss {result.loss:.4f}, micro acc {scores['micro_accuracy']:.4f}, "
                    f"macro acc {scores['macro_accuracy']:.4f}, micro IoU {scores['micro_iou']:.4f}, "
                    f"macro IoU {scores['macro_iou']:.4f}, macro F1 {scores['macro_f1']:.4f}{took}", flush=True)
        return entry

    def close(self):
        self.train_writer.close()
        self.val_writer.close()


def _write_samples(log_dir: str, data: pipeline.SegmentationData, size: int, n: int = 8) -> None:
    """The first `n` examples of a split with their label overlays, once, at step 0."""
    examples = list(pipeline.eval_examples(data, size, try_autocache=False).take(n))
    if not examples:
        return
    rows = [np.concatenate([np.asarray(img), visualize.overlay(np.asarray(img), np.asarray(lab))], axis=1)
            for img, lab in examples]
    grid = [tf.image.resize_with_pad(tf.convert_to_tensor(r), OVERLAY_SIZE, 2 * OVERLAY_SIZE, method="nearest")
            for r in rows]
    grid = tf.cast(tf.stack(grid), tf.uint8)
    cb.write_image_grids(log_dir, {f"samples/{data.spec.replace('/', '_')}_{data.split}": grid}, step=0, columns=2)


def _write_hparams(log_dir: str, config: SegmentConfig, stage: Stage) -> None:
    from tensorboard.plugins.hparams import api as hp

    hparams = cb.flatten_hparams({**config.to_dict(), "stage": stage.name, "stage_data": stage.data})
    metrics = [hp.Metric(f"epoch_{m}", group="validation") for m in ("loss", *METRICS)]
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(k) for k in hparams], metrics=metrics)
        hp.hparams(hparams, trial_id=stage.name)
    writer.close()


def _link_or_copy(src: str, dst: str) -> None:
    """Hard-links `src` to `dst` atomically (copies where links are not supported)."""
    tmp = f"{dst}.tmp-{os.getpid()}"
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_stage(stage: Stage, config: SegmentConfig, workdir: str, *, data_dir: Optional[str] = None,
              verbose="auto") -> dict:
    """Trains one stage in <workdir>/<stage.name> (continuing from its last checkpoint if there is one)."""
    verbose = keras_verbosity(verbose)
    start = time.time()
    stage_dir = os.path.join(workdir, stage.name)
    results_path = os.path.join(stage_dir, RESULTS_NAME)
    if os.path.exists(results_path):
        print(f"[{stage.name}] finished earlier: {results_path}", flush=True)
        return _read_json(results_path)
    keras.utils.set_random_seed(config.seed)
    load = dict(data_dir=data_dir, auto_build=config.auto_build, manual_dir=config.coco_dir or None)
    train_data = pipeline.load_data(stage.data, config.train_split, **load)
    eval_data = pipeline.load_data(stage.data, config.eval_split, **load)
    num_classes = train_data.num_classes
    os.makedirs(stage_dir, exist_ok=True)
    atomic_write_text(os.path.join(stage_dir, report.STAGE_FILE), json.dumps({
        "name": stage.name, "method": stage.method, "kind": stage.kind, "data": stage.data, "epochs": stage.epochs,
        "init_from": stage.init_from, "transfer": config.transfer if stage.init_from else None,
        "num_classes": num_classes, "class_names": train_data.class_names,
        "train": train_data.as_dict(), "eval": eval_data.as_dict()}, indent=2))

    ckpt_dir = os.path.join(stage_dir, "checkpoints")
    latest = latest_intact_checkpoint(ckpt_dir)  # a damaged newest checkpoint is named and skipped
    initial_epoch = min(latest[0], stage.epochs) if latest else 0
    train_ds, steps = pipeline.train_dataset(
        train_data, batch_size=config.batch_size, seed=config.seed, epochs=stage.epochs, initial_epoch=initial_epoch,
        min_size=config.train_min_size, max_size=config.train_max_size, hflip_prob=config.hflip_prob,
        crop_size=config.crop_size, shuffle_buffer=config.shuffle_buffer, aux=config.aux_loss)
    eval_ds = pipeline.eval_dataset(eval_data, batch_size=config.eval_batch_size, eval_size=config.eval_size)
    print(f"[{stage.name}] {stage.data}: {num_classes} classes, {train_data.num_examples} training examples "
          f"({config.train_split}, {steps} steps/epoch of {config.batch_size}), {eval_data.num_examples} validation "
          f"({config.eval_split}); {stage.epochs} epochs", flush=True)

    model = build_model(config, num_classes)
    transfer = None
    transfer_path = os.path.join(stage_dir, "transfer.json")
    if stage.init_from and initial_epoch and os.path.exists(transfer_path):
        transfer = _read_json(transfer_path)  # what was transferred when the stage started
    elif stage.init_from:
        source_path = os.path.join(workdir, stage.init_from, WEIGHTS_NPZ)
        transfer = transfer_state_dict(load_npz(source_path), model, config.transfer)
        transfer["source"] = source_path
        print(f"[{stage.name}] initialised {len(transfer['transferred'])} layers from {source_path} "
              f"(transfer={config.transfer}); re-initialised: {', '.join(p for p in transfer['kept'])}", flush=True)
        atomic_write_text(transfer_path, json.dumps(transfer, indent=2))
    schedule = learning_rate(config, steps, stage.epochs)
    compile_model(model, config, schedule)
    if initial_epoch:
        print(f"[{stage.name}] resuming from {latest[1]} (epoch {initial_epoch} of {stage.epochs} done)", flush=True)
        restore_checkpoint(model, latest[1])
        iterations = int(model.optimizer.iterations.numpy())
        if iterations != initial_epoch * steps:
            raise ValueError(f"checkpoint {latest[1]} has {iterations} optimizer steps, expected {initial_epoch} "
                             f"epochs x {steps} steps; batch size or data changed?")

    history_path = os.path.join(stage_dir, report.HISTORY_FILE)
    history = [e for e in (_read_json(history_path) if os.path.exists(history_path) else [])
               if e["epochs_completed"] <= initial_epoch]  # evaluations after the checkpoint are redone
    log_dir = os.path.join(stage_dir, "logs")
    if not initial_epoch:
        _write_samples(os.path.join(log_dir, "train"), train_data, config.eval_size)
        _write_hparams(log_dir, config, stage)
    evaluator = Evaluator(model, num_classes)
    overlays = list(pipeline.eval_examples(eval_data, config.eval_size, try_autocache=False).take(config.num_overlays))
    monitor = SegmentationMonitor(evaluator, eval_ds, overlays, stage, stage_dir, history,
                                  lambda epoch: lr_at_epoch(schedule, epoch, steps), config.ci_alpha, stage.epochs,
                                  verbose=bool(verbose))
    if initial_epoch == 0 and config.eval_before_training and not any(e["epochs_completed"] == 0 for e in history):
        monitor.evaluate(0)
    fit_epochs = []
    if initial_epoch < stage.epochs:
        fit = model.fit(train_ds, epochs=stage.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                        callbacks=[monitor, EpochCheckpoint(ckpt_dir, keep=config.keep_checkpoints)],
                        shuffle=False, verbose=verbose)
        fit_epochs = list(fit.epoch)
    if not history or history[-1]["epochs_completed"] != stage.epochs:  # e.g. 0 epochs, or a lost history.json
        monitor.evaluate(stage.epochs)
    monitor.close()

    model_path = os.path.join(stage_dir, "model.keras")
    last = latest_checkpoint(ckpt_dir)
    if last and last[0] == stage.epochs:
        _link_or_copy(last[1], model_path)  # the final checkpoint is the final model: no second save
    else:
        atomic_save_model(model, model_path)
    atomic_write(os.path.join(stage_dir, WEIGHTS_NPZ), lambda tmp: save_torchvision_npz(model, tmp))
    final = history[-1]
    results = {
        "stage": stage.name, "method": stage.method, "kind": stage.kind, "data": stage.data,
        "epochs_completed": final["epochs_completed"], "resumed_from_epoch": initial_epoch,
        "epochs_this_run": fit_epochs, "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "steps_per_epoch": steps, "num_classes": num_classes,
        "final": {k: v for k, v in final.items() if k != "confusion_matrix"},
        "final_ci": report.entry_scores(final, config.ci_alpha)["ci"],
        "transfer": None if transfer is None else {"mode": config.transfer, "source": transfer["source"],
                                                   "layers_transferred": len(transfer["transferred"]),
                                                   "layers_reinitialised": transfer["kept"]},
        "model": model_path, "tensorboard": f"tensorboard --logdir {log_dir}",
        "wall_time_s_this_run": round(time.time() - start, 1),
    }
    atomic_write_text(results_path, json.dumps(results, indent=2))
    return results


def run(config: SegmentConfig, workdir: str, *, resume: bool = False, data_dir: Optional[str] = None,
        verbose="auto") -> dict:
    """Runs every stage of `config` in `workdir`, writes the report; returns the run's results.json dict."""
    start = time.time()
    workdir = os.path.abspath(workdir)
    stages = plan_stages(config)
    results_path = os.path.join(workdir, RESULTS_NAME)
    config_path = os.path.join(workdir, "config.json")
    if not resume and (os.path.exists(config_path) or os.path.exists(results_path)):
        raise FileExistsError(f"{workdir} already holds a run (config.json); pass --resume to continue it or choose "
                              "another --workdir")
    if resume:
        check_resume_config(workdir, config.to_dict(), RESUME_MAY_CHANGE, key="config")
    os.makedirs(workdir, exist_ok=True)
    atomic_write_text(config_path, json.dumps({"config": config.to_dict(), "stages": [s.name for s in stages]},
                                              indent=2))
    stage_results = {}
    for stage in stages:
        stage_results[stage.name] = run_stage(stage, config, workdir, data_dir=data_dir, verbose=verbose)
    rep = report.write_report(workdir, alpha=config.ci_alpha)
    results = {
        "config": config.to_dict(),
        "stages": stage_results,
        "tables": rep["tables"],
        "scores": rep["scores"],
        "report": rep["out_dir"],
        "tensorboard": f"tensorboard --logdir {workdir}",
        "wall_time_s_this_run": round(time.time() - start, 1),
    }
    atomic_write_text(results_path, json.dumps(results, indent=2))
    return results
