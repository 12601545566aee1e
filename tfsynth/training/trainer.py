"""The training loop of the classifier jobs (pre-training: tfsynth.training.pretrain; fine-tuning:
tfsynth.transfer.finetune): `prepare_run` checks the workdir and sets determinism, strategy and precision,
`fit_classifier` trains, checkpoints, resumes and writes the workdir (layout: tfsynth.training.pretrain).

The config is a `tfsynth.training.config.TrainConfig` (PretrainConfig, FinetuneConfig).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import tempfile
import time
from typing import Callable, Optional

import keras
import tensorflow as tf

from tfsynth.cli import keras_verbosity
from tfsynth.input import datasets, pipeline
from tfsynth.input.augment import decode_rgb
from tfsynth.models.classifier import backbone_from_classifier
from tfsynth.training import callbacks as cb
from tfsynth.training.checkpoint import (EpochCheckpoint, atomic_save_model, atomic_write_text, latest_checkpoint,
                                         latest_intact_checkpoint, restore_checkpoint)
from tfsynth.training.config import STRATEGIES, TrainConfig
from tfsynth.training.optim import MultiStepSchedule, TorchSGD
from tfsynth.workdir import RESULTS_NAME, check_resume_config


def make_strategy(name: str, tpu: Optional[str] = None) -> tf.distribute.Strategy:
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":  # cluster from the TF_CONFIG environment variable
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown --strategy {name!r}; valid: {', '.join(STRATEGIES)}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True unless this is a non-chief worker of a multi-worker strategy (those must not write the workdir)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type or isinstance(strategy, tf.distribute.TPUStrategy):
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def _keras_multi_worker_fixes(model: keras.Model) -> None:
    """Works around two bugs of Keras 3.15's `fit`/`evaluate` under MultiWorkerMirroredStrategy (> 1 worker).

    1. Before training, `_maybe_symbolic_build` (keras/src/backend/tensorflow/trainer.py) passes the first batch, a
       tuple of PerReplica values, to `strategy.reduce("MEAN", batch)`, which takes no nests: `ValueError: Attempt
       to convert a value (PerReplica:{...}) ... to a Tensor`. The batch only serves to build the model
       symbolically (shapes, dtypes), so this model builds from the local replica's part of it instead (the same
       collective `next()` on every worker, no reduction).
    2. After every step `reduce_per_replica(..., reduction="auto")` reduces each log with `strategy.reduce("MEAN",
       v, axis=0)` on multi-worker strategies, but the logs (loss, metric results) are scalars: `ValueError: Invalid
       reduction dimension 0 for input with 0 dimensions`. Scalars are averaged over the replicas instead (axis
       None): each replica's log is its own running mean over equally many examples (the global batch is split
       evenly), so their mean is the global one. The replacement is installed in Keras' trainer module (process
       wide); it changes only rank-0 values under MultiWorkerMirroredStrategy.
    """
    from keras.src.backend.tensorflow import trainer as tf_trainer

    strategy = model.distribute_strategy

    def local(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(local, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build

    original = getattr(tf_trainer.reduce_per_replica, "_tfsynth_original", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction="auto"):
        if not (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean")):
            return original(values, strategy, reduction)

        def reduce(value):
            # One replica per worker: `strategy.run` gives plain tensors, not PerReplica values.
            if (isinstance(value, tf.distribute.DistributedValues) or tf.is_tensor(value)) \
                    and local(value).shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)

        return tf.nest.map_structure(reduce, values)

    reduce_per_replica._tfsynth_original = original
    tf_trainer.reduce_per_replica = reduce_per_replica


def make_deterministic() -> None:
    """Bitwise-repeatable training for a given seed: deterministic kernels and one inter-op thread.

    On 2 CPU cores ResNet-50 steps differ from run to run without both (op determinism alone is not enough:
    concurrently scheduled ops change the order of floating-point accumulations); with both, two runs give the same
    weights at no measurable cost here. Threading can only be set before TensorFlow's runtime starts.
    """
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # runtime already initialised (e.g. a second run in one process)
        if tf.config.threading.get_inter_op_parallelism_threads() != 1:
            print("WARNING: TensorFlow is already initialised; inter-op threads stay at "
                  f"{tf.config.threading.get_inter_op_parallelism_threads()}, runs may not repeat bitwise.",
                  flush=True)


def lr_schedule(config: TrainConfig, steps_per_epoch: int) -> MultiStepSchedule:
    return MultiStepSchedule(config.lr, steps_per_epoch, config.lr_milestones, config.lr_gamma)


def compile_classifier(model: keras.Model, config, num_classes: int, schedule: MultiStepSchedule) -> keras.Model:
    """Compiles `model` (logits) with TorchSGD, cross-entropy on logits, top-1 and top-5 metrics (under the scope).

    `config` needs `momentum` and `weight_decay` (a TrainConfig or any config with those fields)."""
    optimizer = TorchSGD(schedule, momentum=config.momentum, torch_weight_decay=config.weight_decay)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="top1"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, num_classes), name="top5")],
    )
    return model


def _sample_grids(train_ds: tf.data.Dataset, mixture: datasets.Mixture, n: int = 16) -> dict:
    """The first training batch (as fed to the model) and the first `n` full images of every source."""
    grids = {"train/first_batch": next(iter(train_ds))[0][:n]}
    for source, ds in zip(mixture.sources, mixture.encoded_datasets(try_autocache=False)):
        images = [decode_rgb(encoded) for encoded, _ in ds.take(n)]
        grids[f"samples/{source.source.name}_{source.source.config}"] = tf.stack(images)
    return grids


def _read_history(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        # CSVLogger writes 'NA' for metrics absent in an epoch (e.g. val_* without validation that epoch).
        return [{k: (int(v) if k == "epoch" else float(v)) for k, v in row.items() if v not in ("", "NA")}
                for row in csv.DictReader(f)]


# Config fields that may differ from the checkpointed run's config.json on --resume (the others fix the data order,
# the model or the optimizer state that the checkpoint holds).
RESUME_MAY_CHANGE = ("epochs", "lr_milestones", "lr_gamma", "eval_split", "eval_batch_size", "validation_freq",
                     "keep_checkpoints", "auto_build")


@dataclasses.dataclass
class RunSetup:
    """What `prepare_run` decided for a training run (see `fit_classifier`)."""

    workdir: str  # absolute path of the run's directory
    out_dir: str  # where this process writes: the workdir on the chief, a scratch directory on other workers
    chief: bool
    dist: tf.distribute.Strategy
    strategy: str
    latest: Optional[tuple[int, str]]  # newest checkpoint (epochs completed, path) or None
    initial_epoch: int  # epochs already done (resume) or 0
    start: float  # time.time() when the run started


def prepare_run(config, workdir: str, *, resume: bool = False, strategy: str = "default",
                tpu: Optional[str] = None) -> RunSetup:
    """Checks the workdir (an existing run needs `resume`), sets determinism, the strategy and the precision policy.

    Call it before anything starts TensorFlow's runtime (see `make_deterministic`). `config` needs `deterministic`
    and `mixed_precision`."""
    start = time.time()
    workdir = os.path.abspath(workdir)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    results_path = os.path.join(workdir, RESULTS_NAME)
    latest = latest_checkpoint(ckpt_dir)
    if not resume and (latest or os.path.exists(results_path)):
        raise FileExistsError(f"{workdir} already holds a run ({'checkpoints' if latest else RESULTS_NAME}); "
                              "pass --resume to continue it or choose another --workdir")
    if resume:
        check_resume_config(workdir, config.to_dict(), RESUME_MAY_CHANGE)
        latest = latest_intact_checkpoint(ckpt_dir)  # a truncated newest checkpoint is named and skipped

    if config.deterministic:
        make_deterministic()
    dist = make_strategy(strategy, tpu)
    keras.mixed_precision.set_global_policy(
        ("mixed_bfloat16" if strategy == "tpu" else "mixed_float16") if config.mixed_precision else "float32")
    chief = is_chief(dist)
    # Non-chief workers take part in every save (collectives) but write to a scratch directory.
    out_dir = workdir if chief else tempfile.mkdtemp(prefix="pretrain-worker-")
    initial_epoch = latest[0] if (resume and latest) else 0
    if resume and not latest:
        print(f"--resume: no checkpoint in {ckpt_dir}; starting from epoch 0", flush=True)
    return RunSetup(workdir=workdir, out_dir=out_dir, chief=chief, dist=dist, strategy=strategy, latest=latest,
                    initial_epoch=initial_epoch, start=start)


def fit_classifier(setup: RunSetup, config, train_mix: datasets.Mixture, eval_mix: Optional[datasets.Mixture],
                   build_model: Callable[[int], keras.Model], *, resize: int = 0, verbose="auto",
                   save_model: bool = True, save_backbone: bool = True, hparams: Optional[dict] = None,
                   hparams_config: bool = True, trial_id: Optional[str] = None,
                   extra_results: Optional[dict] = None,
                   on_results: Optional[Callable[[dict], None]] = None) -> dict:
    """The training loop shared by the pre-training and fine-tuning jobs; returns results.json's dict.

    `build_model(num_classes)` returns the (uncompiled) classifier of logits; it is called under the strategy
    scope after `keras.utils.set_random_seed(config.seed)`. `config` is a TrainConfig (or a config with its
    optimisation/bookkeeping fields: batch_size, crop_size, epochs, lr*, momentum, weight_decay, seed, ...).
    `hparams` (default: the config) go to TensorBoard's hparams plugin, with the experiment summary unless
    `hparams_config` is False (a sweep writes one for all its trials). `save_model` / `save_backbone` write
    model.keras / backbone.keras (backbone: `build_classifier` layouts only). `extra_results` are merged into
    results.json; `on_results(results)` may add entries computed from the final metrics before it is written.
    """
    verbose = keras_verbosity(verbose)
    workdir, out_dir, chief, dist = setup.workdir, setup.out_dir, setup.chief, setup.dist
    initial_epoch, latest = setup.initial_epoch, setup.latest
    log_dir = os.path.join(out_dir, "logs")
    history_path = os.path.join(out_dir, "history.csv")
    results_path = os.path.join(workdir, RESULTS_NAME)

    # Seed after the data are loaded: an automatic dataset build must not shift the initialisation.
    keras.utils.set_random_seed(config.seed)
    train_ds, steps = pipeline.train_dataset(
        train_mix, batch_size=config.batch_size, crop_size=config.crop_size, seed=config.seed,
        epochs=config.epochs, initial_epoch=min(initial_epoch, config.epochs), shuffle_buffer=config.shuffle_buffer,
        resize=resize)
    eval_ds = (pipeline.eval_dataset(eval_mix, batch_size=config.eval_batch_size, crop_size=config.crop_size,
                                     resize=resize)
               if eval_mix is not None else None)
    print(f"Data {train_mix.spec}: {train_mix.num_classes} classes, {train_mix.num_examples} training examples "
          f"({train_mix.split}), {steps} steps/epoch of {config.batch_size}"
          + (f"; {eval_mix.num_examples} held-out ({eval_mix.split})" if eval_mix else ""), flush=True)

    os.makedirs(out_dir, exist_ok=True)
    schedule = lr_schedule(config, steps)
    with dist.scope():
        model = compile_classifier(build_model(train_mix.num_classes), config, train_mix.num_classes, schedule)
        if isinstance(dist, tf.distribute.MultiWorkerMirroredStrategy):
            _keras_multi_worker_fixes(model)
        if initial_epoch:
            print(f"Resuming from {latest[1]} (epoch {initial_epoch} of {config.epochs} done)", flush=True)
            restore_checkpoint(model, latest[1])
            # Dynamic loss scaling (mixed precision) skips the update of steps with non-finite gradients.
            iterations, expected = int(model.optimizer.iterations.numpy()), initial_epoch * steps
            if iterations > expected or (iterations != expected and not config.mixed_precision):
                raise ValueError(f"checkpoint {latest[1]} has {iterations} optimizer steps, expected "
                                 f"{initial_epoch} epochs x {steps} steps; batch size or data changed?")

    if chief:
        if initial_epoch == 0:
            atomic_write_text(os.path.join(workdir, "config.json"), json.dumps(config.to_dict(), indent=2))
            cb.write_hparams(log_dir, config.to_dict() if hparams is None else hparams,
                             trial_id=trial_id or os.path.basename(workdir), write_config=hparams_config)
            cb.write_image_grids(os.path.join(log_dir, "train"), _sample_grids(train_ds, train_mix))
        else:  # prepare_run has compared it with the run's config.json; record the allowed changes
            atomic_write_text(os.path.join(workdir, "config.json"), json.dumps(config.to_dict(), indent=2))
        if os.path.exists(results_path):  # a finished run being extended is no longer finished
            os.remove(results_path)
        cb.truncate_csv_history(history_path, initial_epoch)

    # Logs first, checkpoint last: an epoch killed in between is redone and its CSV row replaced on resume.
    callbacks = [
        cb.EpochLearningRate(schedule.lr_at_epoch),
        keras.callbacks.CSVLogger(history_path, append=True),
        cb.TensorBoard(log_dir=log_dir, write_graph=False, profile_batch=0),
        EpochCheckpoint(os.path.join(out_dir, "checkpoints"), keep=config.keep_checkpoints),
    ]
    fit = model.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch, steps_per_epoch=steps,
                    validation_data=eval_ds if config.validation_freq > 0 else None,
                    validation_freq=max(1, config.validation_freq), callbacks=callbacks, shuffle=False, verbose=verbose)

    history = _read_history(history_path)
    final_train = {k: history[-1][k] for k in ("loss", "top1", "top5") if history and k in history[-1]}
    final_eval = None
    if eval_ds is not None:
        final_eval = model.evaluate(eval_ds, return_dict=True, verbose=verbose)
        final_eval = {k: float(v) for k, v in final_eval.items()}

    model_path = os.path.join(out_dir, "model.keras") if save_model else None
    backbone_path = os.path.join(out_dir, "backbone.keras") if save_backbone else None
    if model_path:
        atomic_save_model(model, model_path)
    if backbone_path:
        atomic_save_model(backbone_from_classifier(model), backbone_path)
    tensorboard_cmd = f"tensorboard --logdir {log_dir}"
    results = {
        "config": config.to_dict(),
        "data": {"train": [s.as_dict() for s in train_mix.sources],
                 "eval": [s.as_dict() for s in eval_mix.sources] if eval_mix else None,
                 "num_classes": train_mix.num_classes, "train_examples": train_mix.num_examples,
                 "eval_examples": eval_mix.num_examples if eval_mix else 0, "steps_per_epoch": steps},
        "epochs_completed": initial_epoch + len(fit.epoch),
        "optimizer_steps": int(model.optimizer.iterations.numpy()),
        "resumed_from_epoch": initial_epoch,
        "epochs_this_run": list(fit.epoch),
        "final_train": final_train,
        "final_eval": final_eval,
        "history": history,
        "strategy": setup.strategy,
        "num_replicas": dist.num_replicas_in_sync,
        "wall_time_s_this_run": round(time.time() - setup.start, 1),
        "model": model_path,
        "backbone": backbone_path,
        "tensorboard": tensorboard_cmd,
        **(extra_results or {}),
    }
    if on_results is not None:
        on_results(results)
    atomic_write_text(os.path.join(out_dir, RESULTS_NAME), json.dumps(results, indent=2))
    if not chief:
        shutil.rmtree(out_dir, ignore_errors=True)
    return results
