"""Fine-tuning a pre-trained (or random) network on a downstream TFDS dataset, with an optional cross-validated
hyper-parameter search; `run(config, workdir, source)` is everything `python -m train.finetune` does.

The training loop, checkpoints, `--resume`, TensorBoard logs and results.json are those of train.pretrain
(`tfsynth.training.trainer.fit_classifier`). The workdir holds::

    source.json              the pre-trained source (kind, path, arch, name)
    config.json, checkpoints/, history.csv, logs/, model.keras    the final run, as in train.pretrain
    results.json             written last; its 'transfer' entry is what eval.transfer tabulates:
                             {role: 'final', source, arch, downstream, train_split, eval_split, seed, top1, cv}
    cv/                      only with --cv_folds k:
      lr<lr>_wd<wd>/fold<i>/ one trial (config.json, history.csv, logs/, results.json; checkpoints are deleted
                             once it finishes), trained on the other k-1 folds, scored on fold i
      lr<lr>_wd<wd>/summary/ TensorBoard hparams session of the grid point with its mean CV top-1
      logs/                  the sweep's hparams experiment summary (tensorboard --logdir <workdir>/cv)
      cv_results.json, cv_results.csv    every trial, the per-point summary and the chosen point

A search resumes trial by trial: finished trials (results.json) are kept, an interrupted one continues from its
last checkpoint.
"""
from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import shutil
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfsynth.input import datasets
from tfsynth.training.checkpoint import atomic_write_text
from tfsynth.training.trainer import fit_classifier, make_deterministic, prepare_run
from tfsynth.transfer import cv
from tfsynth.transfer.configs import FinetuneConfig
from tfsynth.transfer.heads import Source, SourceError, build_finetune_model
from tfsynth.workdir import RESULTS_NAME

CV_HPARAMS = ("lr", "weight_decay", "fold", "role", "source", "data", "seed")


@dataclasses.dataclass
class SubsetMixture(datasets.Mixture):
    """A Mixture restricted to chosen examples: `masks[i]` (bool, file order) selects source i's examples."""

    masks: list = dataclasses.field(default_factory=list)
    part: str = ""  # human-readable name of the subset, e.g. 'fold 2 held out'

    def encoded_datasets(self, try_autocache: bool = True) -> list[tf.data.Dataset]:
        out = []
        for ds, mask in zip(super().encoded_datasets(try_autocache), self.masks):
            keep = tf.constant(mask, tf.bool)
            ds = ds.enumerate().filter(lambda i, example, keep=keep: tf.gather(keep, i))
            out.append(ds.map(lambda i, example: example))
        return out


def mixture_labels(mixture: datasets.Mixture) -> list[np.ndarray]:
    """The labels (mixed label space) of each source's examples in file order."""
    labels = []
    for ds in mixture.encoded_datasets(try_autocache=False):
        batches = ds.map(lambda encoded, label: label).batch(8192)
        values = [b.numpy() for b in batches]
        labels.append(np.concatenate(values) if values else np.zeros([0], np.int64))
    return labels


def subset(mixture: datasets.Mixture, indices: np.ndarray, part: str) -> SubsetMixture:
    """The examples of `mixture` at `indices` (positions in the concatenation of its sources, in file order)."""
    indices = np.asarray(indices)
    masks, sources, start = [], [], 0
    for source in mixture.sources:
        mask = np.zeros(source.num_examples, bool)
        local = indices[(indices >= start) & (indices < start + source.num_examples)] - start
        mask[local] = True
        masks.append(mask)
        sources.append(dataclasses.replace(source, num_examples=int(mask.sum())))
        start += source.num_examples
    return SubsetMixture(spec=mixture.spec, split=mixture.split, sources=sources, masks=masks, part=part)


def _write_json(path: str, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2))


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _check_workdir(workdir: str, resume: bool, source: Source) -> None:
    started = [name for name in (RESULTS_NAME, "checkpoints", "cv") if os.path.exists(os.path.join(workdir, name))]
    if started and not resume:
        raise FileExistsError(f"{workdir} already holds a run ({', '.join(started)}); pass --resume to continue it "
                              "or choose another --workdir")
    source_path = os.path.join(workdir, "source.json")
    if resume and os.path.exists(source_path):
        saved = _read_json(source_path)
        if saved != source.as_dict():
            raise ValueError(f"--resume with another pre-trained source than {source_path}: {saved} != "
                             f"{source.as_dict()}")


def _transfer_entry(config: FinetuneConfig, source: Source, info: dict, results: dict, role: str) -> dict:
    final_eval = results.get("final_eval") or {}
    return {"role": role, "source": source.label, "source_kind": source.kind, "arch": info["arch"],
            "downstream": config.data, "train_split": config.train_split, "eval_split": config.eval_split,
            "seed": config.seed, "images_per_class": config.images_per_class, "lr": config.lr,
            "weight_decay": config.weight_decay,
            "top1": final_eval.get("top1"), "top5": final_eval.get("top5"), "loss": final_eval.get("loss")}


def train_one(config: FinetuneConfig, workdir: str, source: Source, train_mix: datasets.Mixture,
              eval_mix: Optional[datasets.Mixture], *, role: str, resume: bool, strategy: str = "default",
              tpu: Optional[str] = None, verbose="auto", save_model: bool = True, hparams: Optional[dict] = None,
              hparams_config: bool = True, trial_id: Optional[str] = None, extra: Optional[dict] = None) -> dict:
    """One fine-tuning run of `config` from `source` in `workdir`; returns its results.json dict."""
    setup = prepare_run(config, workdir, resume=resume, strategy=strategy, tpu=tpu)
    model_info = {}

    def build_model(num_classes: int) -> keras.Model:
        model, info = build_finetune_model(source, num_classes, arch=config.arch, mean=config.mean, std=config.std,
                                           keep_source_normalization=config.keep_source_normalization)
        model_info.update(info)
        return model

    def add_transfer_entry(results: dict) -> None:
        results["model_info"] = model_info
        results["transfer"] = _transfer_entry(config, source, model_info, results, role)
        if extra and "cv" in extra:
            results["transfer"]["cv"] = extra["cv"]
        if results["transfer"]["top1"] is not None:  # the reported number, also in TensorBoard (hparams metric)
            writer = tf.summary.create_file_writer(os.path.join(setup.out_dir, "logs"))
            with writer.as_default():
                tf.summary.scalar("final_top1", results["transfer"]["top1"], step=results["epochs_completed"])
            writer.flush()
            writer.close()

    return fit_classifier(setup, config, train_mix, eval_mix, build_model, resize=config.resize, verbose=verbose,
                          save_model=save_model, save_backbone=False, hparams=hparams, hparams_config=hparams_config,
                          trial_id=trial_id, extra_results={"source": source.as_dict(), **(extra or {})},
                          on_results=add_transfer_entry)


def _write_sweep_experiment(log_dir: str) -> None:
    """The hparams experiment summary shared by all trials and grid-point summaries of a CV search."""
    from tensorboard.plugins.hparams import api as hp

    metrics = [hp.Metric("final_top1", display_name="held-out top1 at the end (CV fold; test split for the final run)"),
               hp.Metric("epoch_top1", group="validation", display_name="held-out top1 per epoch"),
               hp.Metric("epoch_top1", group="train", display_name="train top1"),
               hp.Metric("cv_mean_top1", display_name="mean CV top1"),
               hp.Metric("cv_std_top1", display_name="std CV top1")]
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in CV_HPARAMS], metrics=metrics)
    writer.flush()
    writer.close()


def _write_point_summary(log_dir: str, point: dict, source: Source, config: FinetuneConfig) -> None:
    from tensorboard.plugins.hparams import api as hp

    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams({"lr": point["lr"], "weight_decay": point["weight_decay"], "fold": "mean", "role": "cv_mean",
                    "source": source.label, "data": config.data, "seed": config.seed},
                   trial_id=f"{cv.point_name(point)}/mean")
        tf.summary.scalar("cv_mean_top1", point["mean_top1"], step=0)
        if not math.isnan(point["std_top1"]):
            tf.summary.scalar("cv_std_top1", point["std_top1"], step=0)
    writer.flush()
    writer.close()


def cross_validate(config: FinetuneConfig, workdir: str, source: Source, train_mix: datasets.Mixture, *,
                   strategy: str = "default", tpu: Optional[str] = None, verbose="auto") -> dict:
    """The k-fold search over grid_lr x grid_wd on `train_mix`; writes <workdir>/cv; returns cv_results.

    Trials with a results.json are reused, trials with checkpoints continue from the newest one."""
    cv_dir = os.path.join(workdir, "cv")
    os.makedirs(cv_dir, exist_ok=True)
    labels = np.concatenate(mixture_labels(train_mix))
    folds = cv.stratified_folds(labels, config.cv_folds, config.cv_seed)
    points = cv.grid(config.grid_lr, config.grid_wd)
    if not os.path.isdir(os.path.join(cv_dir, "logs")):
        _write_sweep_experiment(os.path.join(cv_dir, "logs"))
    print(f"CV search: {len(points)} grid points x {config.cv_folds} folds of {len(labels)} examples "
          f"({config.data} {config.train_split})", flush=True)

    trials = []
    for p_index, point in enumerate(points):
        for f_index, (train_idx, heldout_idx) in enumerate(folds):
            name = f"{cv.point_name(point)}/fold{f_index}"
            trial_dir = os.path.join(cv_dir, cv.point_name(point), f"fold{f_index}")
            trial_config = config.replace(lr=point["lr"], weight_decay=point["weight_decay"], cv_folds=0,
                                          eval_split=config.train_split)
            done = os.path.join(trial_dir, RESULTS_NAME)
            if os.path.exists(done):
                results = _read_json(done)
                print(f"[{name}] done before: held-out top-1 {results['transfer']['top1']:.4f}", flush=True)
            else:
                print(f"\n[{name}] trial {p_index * len(folds) + f_index + 1}/{len(points) * len(folds)}: "
                      f"{len(train_idx)} training, {len(heldout_idx)} held-out examples", flush=True)
                results = train_one(
                    trial_config, trial_dir, source,
                    subset(train_mix, train_idx, f"folds != {f_index}"),
                    subset(train_mix, heldout_idx, f"fold {f_index}"),
                    role="cv_trial", resume=os.path.isdir(os.path.join(trial_dir, "checkpoints")),
                    strategy=strategy, tpu=tpu, verbose=verbose, save_model=False,
                    hparams={"lr": point["lr"], "weight_decay": point["weight_decay"], "fold": str(f_index),
                             "role": "cv_trial", "source": source.label, "data": config.data, "seed": config.seed},
                    hparams_config=False, trial_id=name,
                    extra={"cv_trial": {"fold": f_index, "folds": config.cv_folds, "cv_seed": config.cv_seed,
                                        **point}})
                shutil.rmtree(os.path.join(trial_dir, "checkpoints"), ignore_errors=True)
                keras.backend.clear_session()
                gc.collect()
            trials.append({**point, "fold": f_index, "train_examples": len(train_idx),
                           "heldout_examples": len(heldout_idx), "top1": results["transfer"]["top1"],
                           "loss": results["transfer"]["loss"], "epochs": results["epochs_completed"],
                           "workdir": trial_dir})
        point_trials = [t for t in trials if t["lr"] == point["lr"] and t["weight_decay"] == point["weight_decay"]]
        summary = cv.summarize(point_trials)[0]
        summary_dir = os.path.join(cv_dir, cv.point_name(point), "summary")
        if not os.path.isdir(summary_dir):
            _write_point_summary(summary_dir, summary, source, config)
        print(f"[{cv.point_name(point)}] mean CV top-1 {summary['mean_top1']:.4f} over {summary['n_folds']} folds",
              flush=True)

    summary = cv.summarize(trials)
    best = cv.select_best(summary)
    cv_results = {"folds": config.cv_folds, "cv_seed": config.cv_seed, "split": config.train_split,
                  "num_examples": int(len(labels)), "fold_sizes": [int(len(h)) for _, h in folds],
                  "grid": points, "trials": trials, "summary": summary, "best": best}
    _write_json(os.path.join(cv_dir, "cv_results.json"), cv_results)
    atomic_write_text(os.path.join(cv_dir, "cv_results.csv"), cv.trials_csv(trials))
    return cv_results


def run(config: FinetuneConfig, workdir: str, source: Source, *, resume: bool = False, strategy: str = "default",
        tpu: Optional[str] = None, data_dir: Optional[str] = None, verbose="auto") -> dict:
    """Fine-tunes `config` from `source` in `workdir` (after a CV search if config.cv_folds); returns results.json."""
    config.validate()
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir, resume, source)
    if source.kind != "scratch" and not os.path.isfile(source.path):
        raise SourceError(f"{'--backbone' if source.kind == 'backbone' else '--weights'} file {source.path} "
                          "does not exist")
    os.makedirs(workdir, exist_ok=True)
    _write_json(os.path.join(workdir, "source.json"), source.as_dict())

    # Determinism (threading) must be set before the first TensorFlow op, i.e. the data loading.
    if config.deterministic:
        make_deterministic()
    train_mix = datasets.load_mixture(config.data, config.train_split, data_dir=data_dir,
                                      auto_build=config.auto_build)
    eval_mix = (datasets.load_mixture(config.data, config.eval_split, data_dir=data_dir)
                if config.eval_split else None)
    if config.images_per_class:
        labels = np.concatenate(mixture_labels(train_mix))
        train_mix = subset(train_mix, cv.per_class_sample(labels, config.images_per_class, config.seed),
                           part=f"{config.images_per_class} images per class (seed {config.seed})")

    cv_results = None
    final_config = config
    if config.cv_folds:
        cv_results = cross_validate(config, workdir, source, train_mix, strategy=strategy, tpu=tpu, verbose=verbose)
        best = cv_results["best"]
        final_config = config.replace(lr=best["lr"], weight_decay=best["weight_decay"])
        print(f"\nCV best: lr {best['lr']:g}, weight decay {best['weight_decay']:g} (mean CV top-1 "
              f"{best['mean_top1']:.4f}); final run on the whole {config.train_split}", flush=True)
    cv_entry = None if cv_results is None else {
        "folds": cv_results["folds"], "best": cv_results["best"],
        "results": os.path.join(workdir, "cv", "cv_results.json")}
    hparams = ({"lr": final_config.lr, "weight_decay": final_config.weight_decay, "fold": "all", "role": "final",
                "source": source.label, "data": config.data, "seed": config.seed}
               if cv_results else {**final_config.to_dict(), "source": source.label})
    return train_one(final_config, workdir, source, train_mix, eval_mix, role="final", resume=resume,
                     strategy=strategy, tpu=tpu, verbose=verbose, hparams=hparams,
                     hparams_config=cv_results is None, trial_id=os.path.basename(workdir),
                     extra={"cv": cv_entry} if cv_entry else None)
