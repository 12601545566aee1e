"""Accelerator benchmark suite: one script, about 8 minutes on one GPU; `--quick` is a CPU smoke run (a test).

    python -m benchmarks.gpu_suite --out gpu_suite.json                    # on the GPU machine
    python -m benchmarks.gpu_suite --out gpu_suite.json --data fractal_db/100 --data_dir D   # stored 362 px records
    python -m benchmarks.gpu_suite --quick --out /tmp/gpu_suite_quick.json  # CPU, seconds per part

Each number comes with a baseline measured in the same run:
1. ResNet-50 training images/s (224 px, batch 256; quick: 32 px, batch 4), float32 and mixed precision
   (mixed_float16), each without and with XLA (`jit_compile`): this project's ResNet-50 classifier
   (`tfsynth.models.classifier.build_classifier`) and `keras.applications.ResNet50` on the same batches, same
   optimizer (SGD, momentum 0.9) and loss; the ratio ours / Keras is the number to watch.
2. Input pipeline images/s: the pre-training stream (`tfsynth.input.pipeline.train_dataset`: read, shuffle, decode,
   random 224 crop, batch) from stored `--data` records when that dataset is built in `--data_dir`; otherwise the
   same decode + crop map over 362 px FractalDB-style PNGs held in memory (the JSON says which). With the CPU count
   and the training rate of part 1 it gives the cores needed per accelerator.
3. Training steps of the other seed models: FCN-ResNet-50 (seed 001), DPC (seed 002, shape and pose), AIST
   (seed 002, constrained) against plain CycleGAN on the same batch.
Writes one JSON file; prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def _device() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus]
    return {"accelerators": names or ["CPU only"], "cpu_count": os.cpu_count(), "tensorflow": tf.__version__,
            "platform": platform.platform()}


def _resnet50_images_per_s(which: str, size: int, batch: int, steps: int, mixed: bool, jit: bool) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from tfsynth.models.classifier import build_classifier

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
    try:
        keras.utils.set_random_seed(0)
        if which == "tfsynth":
            model = build_classifier(1000, arch="resnet50")
        else:  # the same architecture as Keras ships it; float32 logits as ours
            net = keras.applications.ResNet50(weights=None, classes=1000, classifier_activation=None,
                                              input_shape=(size, size, 3))
            model = keras.Model(net.input, keras.layers.Activation("linear", dtype="float32")(net.output))
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch, size, size, 3)).astype(np.float32)
        y = rng.integers(0, 1000, (batch,)).astype(np.int32)
        ds = tf.data.Dataset.from_tensors((x, y)).repeat().prefetch(2)
        def fit(n):
            model.fit(ds, steps_per_epoch=n, epochs=1, verbose=0, shuffle=False)

        compile_wall, _ = _timed(lambda: fit(2))  # trace (and XLA compile) + warm-up
        wall, cpu = _timed(lambda: fit(steps))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return {"images_per_s": round(steps * batch / wall, 2), "s_per_step": round(wall / steps, 4),
            "process_cpu_s_per_step": round(cpu / steps, 3), "warmup_and_compile_s": round(compile_wall, 1)}


def resnet50_training(size: int, batch: int, steps: int, variants) -> dict:
    out = {"image_size": size, "batch": batch, "timed_steps": steps, "optimizer": "SGD momentum 0.9"}
    for mixed, jit in variants:
        name = ("mixed_float16" if mixed else "float32") + ("_xla" if jit else "")
        ours = _resnet50_images_per_s("tfsynth", size, batch, steps, mixed, jit)
        ref = _resnet50_images_per_s("keras", size, batch, steps, mixed, jit)
        out[name] = {"tfsynth": ours, "keras_applications": ref,
                     "ratio_tfsynth_over_keras": round(ours["images_per_s"] / ref["images_per_s"], 3)}
    return out


def input_pipeline(batch: int, batches: int, crop: int, data: str | None, data_dir: str | None) -> dict:
    import tensorflow as tf

    from tfsynth.input import augment

    if data:
        from tfsynth.input import datasets, pipeline

        mixture = datasets.load_mixture(data, "train", data_dir=data_dir)
        ds, _ = pipeline.train_dataset(mixture, batch_size=batch, crop_size=crop, seed=0,
                                       epochs=max(1, -(-(batches + 2) * batch // mixture.num_examples)),
                                       shuffle_buffer=10_000)
        source = f"stored records of {data}"
    else:
        from tfsynth.fractals.dataset import FractalDBConfig, category_params, render_unit  # TF-free, no OpenGL

        config = FractalDBConfig(num_categories=2, weight_indices=(0, 12), patches_per_weight=2, flips=(0, 1),
                                 num_points=100_000)  # FractalDB-1k's 362 px patch_gray images
        params = category_params(config)
        pngs = [ex["image"] for c in range(config.num_categories) for w in config.weight_indices
                for _, ex in render_unit(config, c, params[c], w)]
        ds = (tf.data.Dataset.from_tensor_slices(pngs).repeat().enumerate()
              .map(lambda i, png: augment.random_crop(augment.decode_rgb(png), crop, tf.stack([i, i])),
                   num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE))
        source = "362 px FractalDB PNGs in memory (pass --data/--data_dir for stored records)"
    iterator = iter(ds)
    for _ in range(2):
        next(iterator)
    wall, cpu = _timed(lambda: [next(iterator) for _ in range(batches)])
    images = batches * batch
    return {"source": source, "crop": crop, "batch": batch, "images_per_s": round(images / wall, 1),
            "cpu_s_per_1k_images": round(1000 * cpu / images, 2)}


def _fcn_step(size: int, batch: int, steps: int) -> dict:
    from benchmarks.bench_segmentation import _step_seconds

    wall, cpu = _step_seconds("native", size, batch, steps)
    return {"image_size": size, "batch": batch, "s_per_step": round(wall, 4), "cpu_s_per_step": round(cpu, 3)}


def _dpc_step(steps: int, quick: bool) -> dict:
    import keras
    import numpy as np

    from tfsynth.dpc.configs import get_config
    from tfsynth.dpc.training import DPCTrainer

    config = get_config("tiny" if quick else "procedural")
    keras.utils.set_random_seed(0)
    trainer = DPCTrainer(config)
    n = config.batch_models * config.views_per_model
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, (n, config.image_size, config.image_size, 3)).astype(np.float32)
    masks = (rng.uniform(0, 1, (n, config.vox_size, config.vox_size, 1)) > 0.5).astype(np.float32)
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)  # the views' cameras (used only with known poses)
    trainer.train_step(images, masks, quats)  # trace + warm-up
    wall, cpu = _timed(lambda: [trainer.train_step(images, masks, quats) for _ in range(steps)])
    return {"config": "tiny" if quick else "procedural", "views_per_step": n, "image_size": config.image_size,
            "s_per_step": round(wall / steps, 4), "cpu_s_per_step": round(cpu / steps, 3)}


def _aist_steps(size: int, batch: int, steps: int, widths: dict) -> dict:
    from benchmarks.bench_aist import _step_seconds

    aist_wall, _ = _step_seconds("constrained", size, batch, steps, **widths)
    base_wall, _ = _step_seconds("cyclegan", size, batch, steps, **widths)
    return {"image_size": size, "batch_per_domain": batch, "network_widths": widths or "reference",
            "aist_constrained_s_per_step": round(aist_wall, 4),
            "cyclegan_s_per_step": round(base_wall, 4), "ratio_aist_over_cyclegan": round(aist_wall / base_wall, 3)}


def run(quick: bool = False, data: str | None = None, data_dir: str | None = None) -> dict:
    if quick:  # every code path at toy sizes; XLA compiles ResNet-50 for about a minute on a CPU, so one variant.
        # Tracing the two reference-width generators (9 residual blocks) takes ~40 CPU-s per AIST model on a CPU,
        # so the quick run's AIST and CycleGAN share toy widths (the same code path, one block).
        resnet = dict(size=32, batch=4, steps=2, variants=((False, False), (True, False)))
        pipe = dict(batch=8, batches=4, crop=224)
        fcn, dpc_steps, aist = (32, 2, 2), 2, (32, 1, 1, dict(ngf=8, ndf=8, n_blocks=1))
    else:
        resnet = dict(size=224, batch=256, steps=20, variants=((False, False), (False, True), (True, False),
                                                                (True, True)))
        pipe = dict(batch=256, batches=40, crop=224)
        fcn, dpc_steps, aist = (512, 8, 10), 20, (256, 4, 10, {})
    result = {"benchmark": "gpu_suite", "quick": quick, **_device()}
    wall, _ = _timed(lambda: result.update(resnet50_training=resnet50_training(**resnet)))
    result["resnet50_training"]["wall_s"] = round(wall, 1)
    result["input_pipeline"] = input_pipeline(data=data, data_dir=data_dir, **pipe)
    best = max(v["tfsynth"]["images_per_s"] for k, v in result["resnet50_training"].items() if isinstance(v, dict))
    per_core = 1000 / max(result["input_pipeline"]["cpu_s_per_1k_images"], 1e-9)
    result["input_pipeline"]["cores_to_feed_best_resnet50_rate"] = round(best / per_core, 4)
    result["fcn_resnet50_step"] = _fcn_step(*fcn)
    result["dpc_step"] = _dpc_step(dpc_steps, quick)
    result["aist_step"] = _aist_steps(*aist)
    return result


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="toy sizes (CPU smoke run)")
    parser.add_argument("--data", help="a built TFDS dataset for the input pipeline, e.g. fractal_db/100")
    parser.add_argument("--data_dir", help="TFDS data_dir holding --data")
    args = parser.parse_args(argv)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.access(out_dir, os.W_OK):
        parser.error(f"--out {args.out}: folder {out_dir} is not writable")
    result = run(args.quick, args.data, args.data_dir)
    from tfsynth.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
