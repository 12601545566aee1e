"""Is the pre-training input pipeline the bottleneck? Pipeline images/s (tf.data alone) vs training images/s
(model.fit steps fed by that same pipeline), same config, same process, plus CPU-seconds per 1k images of each.

A ratio pipeline/training well above 1 means the accelerator (here: the CPU) waits on the model, not on data.
For the FractalDB-1k scale it also reports the CPU cost of the per-image map (decode a 362 px PNG + RandomCrop 224)
and how many cores that takes to feed 3,000 images/s (about one fast GPU on ResNet-50 with mixed precision).

    python -m benchmarks.bench_pretrain_input [--quick] [--config default] [--data_dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import time
from typing import Optional


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _recipe_decode_crop_cpu_per_1k(n: int) -> float:
    """CPU-seconds per 1k images of the training map (decode_rgb + random_crop 224) on 362 px gray PNGs."""
    import numpy as np
    import tensorflow as tf

    from tfsynth.input import augment

    rng = np.random.default_rng(0)
    pngs = [tf.io.encode_png((rng.random((362, 362, 1)) < 0.3).astype(np.uint8) * 127).numpy() for _ in range(32)]
    ds = tf.data.Dataset.from_tensor_slices(pngs).repeat().take(n).enumerate().map(
        lambda i, png: augment.random_crop(augment.decode_rgb(png), 224, tf.stack([i, i])),
        num_parallel_calls=tf.data.AUTOTUNE).batch(32)
    for _ in ds.take(1):  # warm-up
        pass
    _, cpu = _timed(lambda: [None for _ in ds])
    return 1000 * cpu / n


def run(quick: bool = False, config_name: str = "default", data_dir: Optional[str] = None) -> dict:
    import keras

    from tfsynth.input import datasets, pipeline
    from tfsynth.training.pretrain import compile_model, lr_schedule
    from tfsynth.training.pretrain_configs import get_config

    class BatchTimer(keras.callbacks.Callback):
        """(wall, CPU) seconds from the end of batch `start_after - 1` to the end of the last batch."""

        def __init__(self, start_after: int):
            super().__init__()
            self.start_after, self.start, self.end = start_after, None, None

        def on_train_batch_end(self, batch, logs=None):
            now = (time.perf_counter(), time.process_time())
            if batch == self.start_after - 1:
                self.start = now
            self.end = now

    config = get_config(config_name)
    keras.utils.set_random_seed(config.seed)
    mixture = datasets.load_mixture(config.data, config.train_split, data_dir=data_dir, auto_build=config.auto_build)
    pipe_batches = 30 if quick else 200
    train_steps = 3 if quick else 15
    warmup = 2
    steps = pipeline.steps_per_epoch(mixture.num_examples, config.batch_size)

    def stream(batches: int):
        """The job's training stream, long enough for `batches` batches."""
        ds, _ = pipeline.train_dataset(mixture, batch_size=config.batch_size, crop_size=config.crop_size,
                                       seed=config.seed, epochs=-(-batches // steps),
                                       shuffle_buffer=config.shuffle_buffer)
        return ds

    # 1. The tf.data pipeline alone (read + shuffle + decode + crop + batch), after a short warm-up.
    iterator = iter(stream(warmup + pipe_batches))
    for _ in range(warmup):
        next(iterator)
    pipe_wall, pipe_cpu = _timed(lambda: [next(iterator) for _ in range(pipe_batches)])
    pipe_images = pipe_batches * config.batch_size

    # 2. Training steps fed by the same pipeline, timed from the end of the warm-up steps (tracing excluded).
    model = compile_model(config, mixture.num_classes, lr_schedule(config, steps))
    timer = BatchTimer(start_after=warmup)
    model.fit(stream(warmup + train_steps), steps_per_epoch=warmup + train_steps, epochs=1, shuffle=False,
              verbose=0, callbacks=[timer])
    train_wall, train_cpu = (b - a for a, b in zip(timer.start, timer.end))
    train_images = train_steps * config.batch_size

    recipe_cpu_per_1k = _recipe_decode_crop_cpu_per_1k(64 if quick else 512)
    pipe_ips, train_ips = pipe_images / pipe_wall, train_images / train_wall
    return {
        "benchmark": "pretrain_input",
        "config": config_name,
        "data": config.data,
        "arch": config.arch,
        "batch_size": config.batch_size,
        "crop_size": config.crop_size,
        "cpu_count": os.cpu_count(),
        "quick": quick,
        "pipeline_batches": pipe_batches,
        "training_steps": train_steps,
        "pipeline_images_per_s": round(pipe_ips, 1),
        "training_images_per_s": round(train_ips, 2),
        "ratio_pipeline_over_training": round(pipe_ips / train_ips, 1),
        "pipeline_cpu_s_per_1k_images": round(1000 * pipe_cpu / pipe_images, 2),
        "training_cpu_s_per_1k_images": round(1000 * train_cpu / train_images, 1),
        "pipeline_is_bottleneck": pipe_ips < train_ips,
        # FractalDB-1k scale: decode a 362 px gray PNG + RandomCrop 224 (synthetic 30%-filled images).
        "recipe_362px_decode_crop_cpu_s_per_1k_images": round(recipe_cpu_per_1k, 2),
        "recipe_cores_to_feed_3000_images_per_s": round(3.0 * recipe_cpu_per_1k, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and steps (smoke test)")
    parser.add_argument("--config", default="default", help="a tfsynth.training.pretrain_configs name")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory (default: TFDS default)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, config_name=args.config, data_dir=args.data_dir)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
