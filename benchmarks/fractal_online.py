"""Can FractalDB be rendered while training? `--data fractal_db_online/1k` images/s with 1, 2, ... all cores, against
ResNet-50 training on this CPU (same run) and against a stated GPU rate; CPU-seconds per image; cores per GPU.

    python -m benchmarks.fractal_online [--quick] [--categories 4] [--units 12] [--gpu_images_per_s 2375]

Rendering uses the FractalDB-1k recipe (362 px, 200k points, patch_gray, 25 weights x 10 patches x 4 flips) on the
first `--categories` official categories (the per-image cost does not depend on how many there are; the 1,000-category
search alone takes ~4 CPU-minutes, once, cached). Measured:
  1. the TF-free stream (`tfsynth.fractals.online.UnitStream`: workers render units, PNG bytes come back in order)
     with 1, 2 and all workers: images/s (wall) and CPU-seconds per image (this process + the workers, from /proc);
  2. the whole training input with all workers (`tfsynth.input.pipeline.train_dataset` on the online source: shuffle,
     PNG decode, RandomCrop 224, batches of 32): images/s and CPU-seconds per image;
  3. ResNet-50 training steps (FractalDB recipe, 1,000 classes, 224 px) on this CPU at a small batch.
The machine may be shared: CPU-seconds per image and their ratios are the reliable numbers, wall rates are not.
Cores per GPU = the assumed GPU rate x CPU-seconds per image of the whole input: rendering (1 worker, the least
contended measurement) + the training process's share (receive, shuffle, decode, crop, batch).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

# ResNet-50 v1.5 training, 1x A100 40GB, batch 256, mixed precision + XLA, TensorFlow (NGC 20.06):
# NVIDIA DeepLearningExamples, TensorFlow/Classification/ConvNets/resnet50v1.5/README.md, "Training performance:
# NVIDIA DGX A100 (8x A100 40GB)". The same table gives 1,270 images/s on one V100 16GB (mixed precision + XLA).
GPU_IMAGES_PER_S = 2375
GPU_SOURCE = ("NVIDIA DeepLearningExamples, TensorFlow ResNet-50 v1.5 README: 1x A100 40GB, batch 256, "
              "mixed precision + XLA = 2,375 images/s (1x V100 16GB: 1,270)")

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU-seconds (user + system) used so far by process `pid` (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _worker_cpu(workers: int) -> float:
    from tfsynth.fractals import online

    pool = online.get_pool(workers)
    return sum(_proc_cpu(w.proc.pid) for w in pool._workers)  # noqa: SLF001 - benchmark introspection


def _timed(fn, workers: int):
    """(wall s, CPU s of this process, CPU s of this process + the workers) spent in fn()."""
    wall, cpu, wcpu = time.perf_counter(), time.process_time(), _worker_cpu(workers)
    fn()
    cpu = time.process_time() - cpu
    return time.perf_counter() - wall, cpu, cpu + _worker_cpu(workers) - wcpu


def _fractal_config(categories: int):
    from tfds_builders.fractal_db.fractal_db_dataset_builder import BUILDER_CONFIGS

    full = {c.name: c.fractal for c in BUILDER_CONFIGS}["1k"]
    return dataclasses.replace(full, num_categories=categories)


def stream_rate(config, categories_params, workers: int, n_units: int) -> dict:
    """Images/s and CPU-s/image of the TF-free stream with `workers` workers (after each worker's warm-up unit)."""
    import numpy as np

    from tfsynth.fractals import online

    units = online.split_units(config, np.ones(config.num_categories * config.instances_per_category, bool))
    order = online.epoch_order(len(units), 0, 0)
    stream = online.UnitStream(config, categories_params, workers)
    for _ in stream.iterate(units, order[:workers]):  # starts every worker (imports, JIT cache)
        pass
    timed = order[workers:workers + n_units]
    count = []
    wall, _, cpu = _timed(lambda: count.extend(len(images) for images, _ in stream.iterate(units, timed)), workers)
    online.close_pools()
    n = sum(count)
    return {"workers": workers, "images": n, "images_per_s": round(n / wall, 1),
            "cpu_s_per_image": round(cpu / n, 5)}


def pipeline_rate(config, workers: int, n_batches: int, batch_size: int = 32) -> dict:
    """The training input on the online source: shuffle, decode, RandomCrop 224, batch (all workers)."""
    from tfsynth.fractals import online
    from tfsynth.input import datasets, pipeline
    from tfsynth.input.online import OnlineBuilder

    builder = OnlineBuilder("fractal_db_online", "1k", workers=workers, verbose=False, fractal=config)
    n_examples = builder.count("train", config.num_categories)
    source = datasets.MixtureSource(datasets.DataSource("fractal_db_online", "1k"), builder,
                                    config.num_categories, 0, n_examples)
    mixture = datasets.Mixture("fractal_db_online/1k", "train", [source])
    ds, _ = pipeline.train_dataset(mixture, batch_size=batch_size, crop_size=224, seed=1, epochs=1,
                                   shuffle_buffer=2 * batch_size)
    iterator = iter(ds)
    # Warm-up: start the workers, trace, and consume what was rendered ahead while waiting (units in flight, the
    # shuffle buffer, prefetched batches), so that the timed batches are rendered while they are timed.
    stock = 2 * workers * config.patches_per_weight * len(config.flips) + 2 * batch_size
    for _ in range(-(-stock // batch_size) + 3):
        next(iterator)
    wall, parent_cpu, total_cpu = _timed(lambda: [next(iterator) for _ in range(n_batches)], workers)
    online.close_pools()
    n = n_batches * batch_size
    return {"workers": workers, "images": n, "batch_size": batch_size, "images_per_s": round(n / wall, 1),
            "cpu_s_per_image": round(total_cpu / n, 5),
            # the training process alone: unpickling, shuffle, PNG decode, RandomCrop 224, batching
            "training_process_cpu_s_per_image": round(parent_cpu / n, 5)}


def resnet50_rate(batch_size: int, steps: int, num_classes: int = 1000) -> dict:
    """ResNet-50 training steps (FractalDB recipe) on this CPU, batches held in memory, after one warm-up step."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfsynth.training.pretrain import compile_model, lr_schedule
    from tfsynth.training.pretrain_configs import get_config

    config = get_config("fractaldb_1k").replace(batch_size=batch_size)
    keras.utils.set_random_seed(1)
    model = compile_model(config, num_classes, lr_schedule(config, 1000))
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, (batch_size, 224, 224, 3), dtype=np.uint8))
    labels = tf.constant(rng.integers(0, num_classes, batch_size), tf.int64)
    model.train_on_batch(images, labels)  # tracing
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        model.train_on_batch(images, labels)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    n = steps * batch_size
    return {"batch_size": batch_size, "steps": steps, "images_per_s": round(n / wall, 2),
            "cpu_s_per_image": round(cpu / n, 4)}


def run(quick: bool = False, categories: int = 4, units: int = 12, gpu_images_per_s: float = GPU_IMAGES_PER_S,
        resnet_batch: int = 8, resnet_steps: int = 3) -> dict:
    from tfsynth.fractals import online

    if quick:
        units, resnet_batch, resnet_steps = 2, 2, 1
    config = _fractal_config(categories)
    params = online.cached_category_params(config)
    cores = os.cpu_count() or 1
    streams = [stream_rate(config, params, w, units) for w in sorted({1, 2, cores})]
    full = pipeline_rate(config, cores, n_batches=max(2, units * config.patches_per_weight * len(config.flips) // 32))
    resnet = resnet50_rate(resnet_batch, resnet_steps)
    render_cpu = streams[0]["cpu_s_per_image"]  # 1 worker: the least contended measurement
    tf_side_cpu = full["training_process_cpu_s_per_image"]
    input_cpu = round(render_cpu + tf_side_cpu, 5)
    best = max(s["images_per_s"] for s in streams)
    return {
        "benchmark": "fractal_online",
        "recipe": "FractalDB-1k: 362 px, 200k points, patch_gray, 25 weights x 10 patches x 4 flips, PNG level 1",
        "categories_rendered": categories,
        "cpu_count": cores,
        "quick": quick,
        "stream": streams,
        "training_input_all_workers": full,
        "resnet50_cpu_training": resnet,
        "render_cpu_s_per_image": render_cpu,
        "training_process_cpu_s_per_image": tf_side_cpu,
        "input_cpu_s_per_image": input_cpu,
        "online_all_cores_over_resnet50_cpu_training": round(best / resnet["images_per_s"], 1),
        # the noise-robust comparison: CPU-seconds of one ResNet-50 training image per CPU-second of its input
        "resnet50_cpu_s_over_input_cpu_s": round(resnet["cpu_s_per_image"] / input_cpu, 1),
        "online_rate_per_core_images_per_s": round(1 / input_cpu, 1),
        "gpu_images_per_s_assumed": gpu_images_per_s,
        "gpu_rate_source": GPU_SOURCE,
        "cores_per_gpu_render_only": round(gpu_images_per_s * render_cpu, 1),
        "cores_per_gpu": round(gpu_images_per_s * input_cpu, 1),
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="toy sizes (smoke test)")
    parser.add_argument("--categories", type=int, default=4, help="official categories to render (1k recipe)")
    parser.add_argument("--units", type=int, default=12, help="units (40 images each) timed per worker count")
    parser.add_argument("--gpu_images_per_s", type=float, default=GPU_IMAGES_PER_S,
                        help=f"assumed ResNet-50 training rate of one GPU ({GPU_SOURCE})")
    parser.add_argument("--resnet_batch", type=int, default=8)
    parser.add_argument("--resnet_steps", type=int, default=3)
    args = parser.parse_args(argv)
    result = run(quick=args.quick, categories=args.categories, units=args.units,
                 gpu_images_per_s=args.gpu_images_per_s, resnet_batch=args.resnet_batch,
                 resnet_steps=args.resnet_steps)
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
