"""The train.shape_pose job: DPC training with checkpoints, --resume and TensorBoard.

One step (reference `model_pc.py`): encode all B x V images; the shape (points, occupancy scale) of each object
comes from its first view, the pose candidates from every view; the shape is projected into every view with each
candidate (point dropout, blur sigma from the schedules); projection loss = the best candidate's L2 silhouette
error; student loss = 1 - w^2 against the best candidate (stop-gradient) x student_weight; weight decay on the
kernels; Adam. With `predict_pose=False` the ground-truth camera of each view replaces the candidates (one 'candidate',
no student loss): shape learning with known poses.

Workdir layout::

    config.json          the resolved config
    checkpoints/         tf.train.Checkpoint of model, optimizer, step (atomic, newest `keep_checkpoints` kept)
    logs/train, logs/val TensorBoard: losses, sigma, keep probability, occupancy scale; true | predicted silhouettes;
                         predicted point clouds (mesh plugin)
    dpc.weights.h5       final weights; `load_trained(workdir)` rebuilds the model from config.json
    history.csv          step, losses
    results.json         first / last logged losses, seconds per step
"""
from __future__ import annotations

import csv
import json
import os
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from tfsynth.dpc import data as dpc_data
from tfsynth.dpc.configs import DPCConfig
from tfsynth.models import dpc
from tfsynth.training import checkpoint as ckpt_lib
from tfsynth.workdir import RESULTS_NAME


def build_model(config: DPCConfig) -> keras.Model:
    return dpc.build_dpc(dpc.DPCNetConfig(**config.net_kwargs()), seed=config.seed)


def prepare_inputs(config: DPCConfig, images, masks):
    """Resize images to the encoder size and masks (bilinear, as the reference) to the silhouette size."""
    images = tf.convert_to_tensor(images, tf.float32)
    masks = tf.convert_to_tensor(masks, tf.float32)
    if images.shape[1] != config.image_size:
        images = tf.image.resize(images, [config.image_size, config.image_size], antialias=True)
    if masks.shape[1] != config.vox_size:
        masks = tf.image.resize(masks, [config.vox_size, config.vox_size], method="bilinear", antialias=True)
    return images, masks


class DPCTrainer:
    """Model, optimiser, step counter and the compiled train / eval steps of one run."""

    def __init__(self, config: DPCConfig):
        self.config = config
        self.model = build_model(config)
        self.projection = dpc.ProjectionConfig(**config.projection_kwargs())
        self.optimizer = keras.optimizers.Adam(config.lr)
        self.optimizer.build(self.model.trainable_variables)
        self.step = tf.Variable(0, dtype=tf.int64, name="step", trainable=False)
        self._kernels = [w for w in self.model.trainable_weights if w.path.endswith("kernel")]
        self.seed_gen = tf.random.Generator.from_seed(config.seed)
        self._train = tf.function(self._train_step, reduce_retracing=True)
        self._eval = tf.function(self._losses, reduce_retracing=True)

    def schedules(self, step):
        c = self.config
        sigma = dpc.sigma_schedule(step, c.steps, c.sigma_start, c.sigma_end)
        keep = dpc.keep_prob_schedule(step, c.steps, c.keep_prob_start)
        return sigma, keep

    def _losses(self, images, masks, quats, training=False):
        c = self.config
        v, k = c.views_per_model, c.pose_candidates
        out = self.model(images, training=training)
        points = out["points"][::v]  # shape from the first view of each object
        scale = out["scale"][::v]
        n_views = tf.shape(images)[0]
        all_points = dpc.repeat_rows(dpc.repeat_rows(points, v), k)  # (B*V*K, N, 3)
        all_scale = dpc.repeat_rows(dpc.repeat_rows(scale, v), k)
        sigma, keep = self.schedules(self.step)
        if training and c.keep_prob_start < 1.0:
            all_points = dpc.point_dropout(all_points, keep, self.seed_gen.uniform(tf.shape(all_points)[:2]))
        poses = out["poses"] if c.predict_pose else quats[:, None, :]  # (B*V, K, 4); known poses: K = 1
        proj = dpc.project(all_points, tf.reshape(poses, [-1, 4]), self.projection, sigma, all_scale)
        proj_loss, best = dpc.candidate_projection_loss(masks, proj["silhouette"], k)
        logs = {"proj_loss": proj_loss}
        total = proj_loss
        if "pose_student" in out:
            s_loss = dpc.student_loss(poses, out["pose_student"], best)
            logs["student_loss"] = s_loss
            total = total + c.student_weight * s_loss
        if c.weight_decay > 0:
            reg = tf.add_n([tf.nn.l2_loss(w) for w in self._kernels])
            logs["reg_loss"] = c.weight_decay * reg
            total = total + c.weight_decay * reg
        logs["total_loss"] = total
        logs["silhouette_mse"] = tf.reduce_mean(tf.square(
            tf.gather(tf.reshape(proj["silhouette"], [n_views, k, c.vox_size, c.vox_size]), best, batch_dims=1)
            - masks[..., 0]))
        logs["sigma"] = sigma
        logs["keep_prob"] = keep
        logs["occupancy_scale"] = tf.reduce_mean(scale)
        return total, logs, out, proj, best

    def _train_step(self, images, masks, quats):
        with tf.GradientTape() as tape:
            total, logs, _, _, _ = self._losses(images, masks, quats, training=True)
        grads = tape.gradient(total, self.model.trainable_variables)
        # Known poses leave the pose head's biases out of the loss: zero gradients, so Adam leaves them unchanged.
        grads = [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, self.model.trainable_variables)]
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        self.step.assign_add(1)
        return logs

    def train_step(self, images, masks, quats) -> dict:
        """One optimiser step; quats (B*V, 4) are the views' ground-truth cameras (used when poses are known)."""
        images, masks = prepare_inputs(self.config, images, masks)
        return {k: float(v) for k, v in self._train(images, masks, _quats(quats)).items()}

    def evaluate(self, images, masks, quats) -> tuple[dict, dict]:
        images, masks = prepare_inputs(self.config, images, masks)
        _, logs, out, proj, best = self._eval(images, masks, _quats(quats), training=False)
        return {k: float(v) for k, v in logs.items()}, {"out": out, "proj": proj, "best": best, "masks": masks}


def _quats(quats):
    return tf.convert_to_tensor(np.asarray(quats, np.float32))


def predict(model: keras.Model, config: DPCConfig, images, batch_size: int = 32) -> dict:
    """Per image: points (N, 3), pose (4,) [w, x, y, z] normalised (student if present, else candidate 0), scale."""
    pts, poses, scales = [], [], []
    for i in range(0, len(images), batch_size):
        x, _ = prepare_inputs(config, np.asarray(images[i:i + batch_size], np.float32),
                              np.zeros((1, config.vox_size, config.vox_size, 1), np.float32))
        out = model(x, training=False)
        q = out["pose_student"] if "pose_student" in out else out["poses"][:, 0]
        pts.append(out["points"].numpy())
        poses.append(dpc.q_normalize(q).numpy())
        scales.append(out["scale"].numpy()[:, 0])
    return {"points": np.concatenate(pts), "poses": np.concatenate(poses), "scale": np.concatenate(scales)}


def load_trained(workdir: str) -> tuple[keras.Model, DPCConfig]:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{workdir}: no config.json (not a train.shape_pose workdir)")
    with open(path) as f:
        config = DPCConfig(**json.load(f))
    model = build_model(config)
    weights = os.path.join(workdir, "dpc.weights.h5")
    if os.path.exists(weights):
        model.load_weights(weights)
    else:
        ckpt = tf.train.latest_checkpoint(os.path.join(workdir, "checkpoints"))
        if not ckpt:
            raise FileNotFoundError(f"{workdir}: neither dpc.weights.h5 nor a checkpoint")
        tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
    return model, config


def _silhouette_panel(masks, sil, best, k, n):
    """uint8 (n, G, 2G, 1): true | best predicted silhouette."""
    g = masks.shape[1]
    pred = tf.gather(tf.reshape(sil, [-1, k, g, g]), best, batch_dims=1)[:n, ..., None]
    return tf.cast(tf.concat([masks[:n], pred], axis=2) * 255, tf.uint8)


def run(config: DPCConfig, workdir: str, resume: bool = False, data_dir: Optional[str] = None,
        verbose="auto") -> dict:
    """Trains (or resumes) one run in `workdir`; verbose: the progress bar's (Keras Progbar: 1 a bar, 2 one line at
    the end, 0 none; 'auto' a bar on a terminal, one line otherwise)."""
    from tfsynth.cli import keras_verbosity

    start = time.time()
    ckpt_dir = ckpt_lib.prepare_workdir(workdir, config.to_dict(), resume,
                                        may_change=("steps", "val_data", "log_every", "checkpoint_every",
                                                    "keep_checkpoints"))
    keras.utils.set_random_seed(config.seed)
    train_set = dpc_data.load_source(config.data, config.image_size, data_dir, config.max_models, config.seed)
    val_set = (dpc_data.load_source(config.val_data, config.image_size, data_dir, 0, config.seed + 1)
               if config.val_data else None)
    trainer = DPCTrainer(config)
    checkpoint = tf.train.Checkpoint(model=trainer.model, optimizer=trainer.optimizer, step=trainer.step,
                                     rng=trainer.seed_gen)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints)
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resumed from {manager.latest_checkpoint} (step {int(trainer.step.numpy())})")
    first = int(trainer.step.numpy())
    history_path = os.path.join(workdir, "history.csv")
    if first == 0 and os.path.exists(history_path):
        os.remove(history_path)
    writer = tf.summary.create_file_writer(os.path.join(workdir, "logs", "train"))
    val_writer = tf.summary.create_file_writer(os.path.join(workdir, "logs", "val")) if val_set else None
    # Batches are a function of (seed, step), so a resumed run draws the same batches as an uninterrupted one.
    fixed_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    panel_idx = dpc_data.sample_batch(train_set, fixed_rng, config.batch_models, config.views_per_model)
    window, step_times, logged = {}, [], []
    progress = keras.utils.Progbar(config.steps, verbose=keras_verbosity(verbose))
    for step in range(first, config.steps):
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 2, step]))
        images, masks, quats = dpc_data.gather_batch(
            train_set, *dpc_data.sample_batch(train_set, rng, config.batch_models, config.views_per_model))
        t0 = time.perf_counter()
        logs = trainer.train_step(images, masks, quats)
        step_times.append(time.perf_counter() - t0)
        for k, v in logs.items():
            window.setdefault(k, []).append(v)
        done = step + 1
        progress.update(done, [("proj", logs["proj_loss"])] + ([("student", logs["student_loss"])]
                                                               if "student_loss" in logs else []))
        if done % config.log_every == 0 or done == config.steps:
            means = {k: float(np.mean(v)) for k, v in window.items()}
            window = {}
            with writer.as_default(step=done):
                for k, v in means.items():
                    tf.summary.scalar(f"loss/{k}" if k.endswith("loss") or k == "silhouette_mse" else f"meta/{k}", v)
            new_file = not os.path.exists(history_path)
            with open(history_path, "a", newline="") as f:
                w = csv.DictWriter(f, fieldnames=["step", *sorted(means)])
                if new_file:
                    w.writeheader()
                w.writerow({"step": done, **means})
            logged.append({"step": done, **means})
        if done % config.checkpoint_every == 0 or done == config.steps:
            _image_summaries(trainer, train_set, panel_idx, writer, done)
            if val_set is not None:
                vrng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
                vi, vm, vq = dpc_data.gather_batch(val_set, *dpc_data.sample_batch(
                    val_set, vrng, config.batch_models, config.views_per_model))
                vlogs, _ = trainer.evaluate(vi, vm, vq)
                with val_writer.as_default(step=done):
                    for k in ("proj_loss", "student_loss", "silhouette_mse"):
                        if k in vlogs:
                            tf.summary.scalar(f"loss/{k}", vlogs[k])
            writer.flush()
            manager.save(checkpoint_number=done)
    tmp = os.path.join(workdir, ".tmp-dpc.weights.h5")  # Keras insists on the '.weights.h5' suffix
    trainer.model.save_weights(tmp)
    os.replace(tmp, os.path.join(workdir, "dpc.weights.h5"))
    steady = step_times[1:] or step_times
    results = {
        "config": config.to_dict(), "steps_done": int(trainer.step.numpy()),
        "first_logged": logged[0] if logged else None, "last_logged": logged[-1] if logged else None,
        "seconds_per_step": float(np.median(steady)) if steady else None,
        "train_models": len(train_set), "wall_time_s_this_run": time.time() - start,
        "tensorboard": f"tensorboard --logdir {os.path.join(os.path.abspath(workdir), 'logs')}",
    }
    ckpt_lib.atomic_write_text(os.path.join(workdir, RESULTS_NAME), json.dumps(results, indent=2))
    return results


def _image_summaries(trainer: DPCTrainer, data, idx, writer, step):
    from tensorboard.plugins.mesh import summary_v2 as mesh_summary

    c = trainer.config
    images, masks, quats = dpc_data.gather_batch(data, *idx)
    _, extra = trainer.evaluate(images, masks, quats)
    n = min(4, len(images))
    panel = _silhouette_panel(extra["masks"], extra["proj"]["silhouette"][..., 0], extra["best"], c.pose_candidates,
                              n)
    pts = extra["out"]["points"][::c.views_per_model][:2]
    colours = tf.cast(tf.clip_by_value(pts + 0.5, 0, 1) * 255, tf.uint8)
    with writer.as_default(step=step):
        tf.summary.image("silhouettes/true_vs_predicted", panel, max_outputs=n)
        tf.summary.image("inputs", tf.convert_to_tensor(images[:n]), max_outputs=n)
        mesh_summary.mesh("point_clouds", vertices=pts, colors=colours,
                          config_dict={"material": {"cls": "PointsMaterial", "size": 0.02}})
