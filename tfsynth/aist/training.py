"""The train.aist job: AIST CycleGAN training with checkpoints, --resume, TensorBoard panels and exported generators.

Workdir layout::

    config.json             the resolved config
    checkpoints/            tf.train.Checkpoint of nets, both optimisers, both image pools and the epoch counter
    logs/train/             TensorBoard: every loss term, mask IoU, LR per epoch; x -> G(x) -> F(G(x)) and
                            y -> F(y) -> G(F(y)) panels (RGB over grey, then the alpha) each epoch
    G.keras, F.keras        the generators (X -> Y applies G), loadable with `import tfsynth.models.cyclegan`
    history.csv             per-epoch means of every term
    results.json            last epoch's terms, seconds per step, images per domain, wall time
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

from tfsynth.aist import data as aist_data
from tfsynth.aist.configs import AISTConfig
from tfsynth.models import aist
from tfsynth.training import checkpoint as ckpt_lib
from tfsynth.training.callbacks import truncate_csv_history


def build_model(config: AISTConfig) -> aist.AISTCycleGAN:
    weights = aist.LossWeights(**config.loss_weights())
    phi = aist.feature_extractor(config.phi_weights, config.image_size) if weights.uses_phi else None
    return aist.AISTCycleGAN(image_size=config.image_size, channels=config.channels, alpha_mode=config.alpha_mode,
                             weights=weights, phi=phi, activation=config.activation,
                             negative_slope=config.negative_slope, pool_size=config.pool_size,
                             batch_size=config.batch_size, seed=config.seed, ngf=config.ngf, ndf=config.ndf,
                             n_blocks=config.n_blocks)


def learning_rate(config: AISTConfig, epoch: int) -> float:
    if config.lr_policy == "constant":
        return config.lr
    return aist.linear_decay_lr(epoch, config.lr, config.n_epochs, config.n_epochs_decay)


def _display(images: np.ndarray) -> np.ndarray:
    """[-1, 1] (N, H, W, C) -> uint8 RGB for viewing: RGBA over mid-grey, alpha appended as a gray tile."""
    unit = (np.clip(images, -1, 1) + 1) / 2
    rgb = unit[..., :3]
    if images.shape[-1] == 4:
        a = unit[..., 3:4]
        rgb = np.concatenate([rgb * a + 0.5 * (1 - a), np.repeat(a, 3, -1)], axis=2)
    return (rgb * 255).round().astype(np.uint8)


def panels(model: aist.AISTCycleGAN, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """'x_G_FG' rows: x | G(x) | F(G(x)); 'y_F_GF' rows: y | F(y) | G(F(y)) (uint8, one image per row)."""
    gx = model.G(x, training=False)
    fgx = model.F(gx, training=False)
    fy = model.F(y, training=False)
    gfy = model.G(fy, training=False)
    row = lambda *ims: np.concatenate([_display(np.asarray(i)) for i in ims], axis=2)  # noqa: E731
    return {"x_G_FG": row(x, gx, fgx), "y_F_GF": row(y, fy, gfy)}


def run(config: AISTConfig, workdir: str, resume: bool = False, data_dir: Optional[str] = None) -> dict:
    start = time.time()
    ckpt_dir = ckpt_lib.prepare_workdir(workdir, config.to_dict(), resume,
                                        may_change=("n_epochs", "n_epochs_decay", "num_panels", "keep_checkpoints"))

    keras.utils.set_random_seed(config.seed)
    x_src = aist_data.load_source(config.x_data, data_dir, config.max_images)
    y_src = aist_data.load_source(config.y_data, data_dir, config.max_images)
    steps = aist_data.steps_per_epoch(config, len(x_src), len(y_src))
    model = build_model(config)
    model.compile(g_optimizer=aist.adam(config.lr, config.beta_1), d_optimizer=aist.adam(config.lr, config.beta_1))

    epoch_var = tf.Variable(0, dtype=tf.int64, name="epoch")
    # Optimiser slots exist only after the first apply; build them so a restore has somewhere to go.
    model.g_optimizer.build(model.G.trainable_variables + model.F.trainable_variables)
    model.d_optimizer.build(model.D_X.trainable_variables + model.D_Y.trainable_variables)
    checkpoint = tf.train.Checkpoint(G=model.G, F=model.F, D_X=model.D_X, D_Y=model.D_Y, pool_X=model.pool_X,
                                     pool_Y=model.pool_Y, g_optimizer=model.g_optimizer,
                                     d_optimizer=model.d_optimizer, epoch=epoch_var)
    manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints)
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Resumed from {manager.latest_checkpoint} (epoch {int(epoch_var.numpy())} done)")
    first_epoch = int(epoch_var.numpy())

    # Fixed panel images: the first images of each domain, unflipped.
    panel_x = np.stack([aist_data.to_model_input(x_src.decode(x_src.items[i]), config.image_size, config.alpha_mode)
                        [..., :config.channels] for i in range(min(config.num_panels, len(x_src)))])
    panel_y = np.stack([aist_data.to_model_input(y_src.decode(y_src.items[i]), config.image_size, config.alpha_mode)
                        [..., :config.channels] for i in range(min(config.num_panels, len(y_src)))])

    history_path = os.path.join(workdir, "history.csv")
    if first_epoch == 0 and os.path.exists(history_path):
        os.remove(history_path)
    else:
        truncate_csv_history(history_path, first_epoch + 1)  # rows are 1-based epochs
    writer = tf.summary.create_file_writer(os.path.join(workdir, "logs", "train"))
    train_fn = tf.function(model.train_step, reduce_retracing=True)
    logs, step_times = {}, []
    for epoch in range(first_epoch, config.total_epochs):
        lr = learning_rate(config, epoch)
        model.g_optimizer.learning_rate = lr
        model.d_optimizer.learning_rate = lr
        sums, n = {}, 0
        progress = keras.utils.Progbar(steps, stateful_metrics=None)
        for x, y in aist_data.epoch_dataset(config, x_src, y_src, epoch):
            t0 = time.perf_counter()
            out = train_fn((x, y))
            out = {k: float(v) for k, v in out.items()}
            step_times.append(time.perf_counter() - t0)
            for k, v in out.items():
                sums[k] = sums.get(k, 0.0) + v
            n += 1
            progress.update(n, [("g_total", out["g_total"]), ("d_X", out["d_X"]), ("d_Y", out["d_Y"])])
        logs = {k: v / n for k, v in sums.items()}
        with writer.as_default(step=epoch + 1):
            for k, v in logs.items():
                tf.summary.scalar(f"loss/{k}" if not k.startswith("mask_iou") else f"mask/{k}", v)
            tf.summary.scalar("learning_rate", lr)
            for name, image in panels(model, panel_x, panel_y).items():
                tf.summary.image(name, image, max_outputs=len(image))
        writer.flush()
        new_file = not os.path.exists(history_path)
        with open(history_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["epoch", "lr", *sorted(logs)])
            if new_file:
                w.writeheader()
            w.writerow({"epoch": epoch + 1, "lr": lr, **logs})
        epoch_var.assign(epoch + 1)
        manager.save(checkpoint_number=epoch + 1)
        print(f"epoch {epoch + 1}/{config.total_epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(logs.items())))

    for name, net in (("G", model.G), ("F", model.F)):
        ckpt_lib.atomic_save_model(net, os.path.join(workdir, f"{name}.keras"))
    # The first step of a process includes tracing; report the steady state.
    steady = step_times[1:] or step_times
    results = {
        "config": config.to_dict(),
        "epochs_done": config.total_epochs,
        "final_epoch_losses": logs,
        "seconds_per_step": float(np.median(steady)) if steady else None,
        "images_x": len(x_src), "images_y": len(y_src), "steps_per_epoch": steps,
        "wall_time_s_this_run": time.time() - start,
        "tensorboard": f"tensorboard --logdir {os.path.join(os.path.abspath(workdir), 'logs')}",
    }
    ckpt_lib.atomic_write_text(os.path.join(workdir, "results.json"), json.dumps(results, indent=2))
    return results
