"""DPC differentiable projection: forward + backward time for 32 views x 8,000 points at 64^3 (the reference sizes).

One call = rotate + perspective, trilinear splatting, clip, 21-tap separable blur (sigma 3 voxels), occupancy
scaling, DRC silhouette and depth; backward = gradients w.r.t. points, quaternions and scales. Baseline measured in
the same run: the blur done with three single-channel `tf.nn.conv3d` passes (the reference's implementation) in
place of this project's banded-matrix products; the ratio is the speed-up on this machine. Runs on the GPU too
when TensorFlow sees one (reported under "device").

    python -m benchmarks.bench_dpc_projection [--quick]    # full: 32 x 8,000 at 64^3; quick: 8 x 2,000 at 32^3
"""
from __future__ import annotations

import argparse
import json
import time


def _time(fn, args, repeats):
    fn(*args)  # trace + warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        out = fn(*args)
    float(out)
    return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def run(quick: bool = False) -> dict:
    import numpy as np
    import tensorflow as tf

    from tfsynth.models import dpc

    views, points, grid, repeats = (8, 2000, 32, 2) if quick else (32, 8000, 64, 3)
    cfg = dpc.ProjectionConfig(vox_size=grid, kernel_size=21)
    rng = np.random.default_rng(0)
    pts = tf.constant(rng.uniform(-0.4, 0.4, (views, points, 3)), tf.float32)
    quats = tf.constant(rng.normal(size=(views, 4)), tf.float32)
    scale = tf.constant(np.full((views, 1), 0.9), tf.float32)
    target = tf.constant(rng.uniform(0, 1, (views, grid, grid, 1)) > 0.5, tf.float32)

    def conv_blur(vox, sigma, size):
        k = dpc.gauss_kernel_1d(size, sigma)
        v = vox[..., None]
        for shape in ([1, 1, size, 1, 1], [1, size, 1, 1, 1], [size, 1, 1, 1, 1]):
            v = tf.nn.conv3d(v, tf.reshape(k, shape), [1, 1, 1, 1, 1], padding="SAME")
        return v[..., 0]

    def make(blur):
        @tf.function
        def step(p, q, s):
            with tf.GradientTape() as tape:
                tape.watch([p, q, s])
                out = dpc.project(p, q, cfg, 3.0, s, blur_fn=blur)
                loss = tf.reduce_sum(tf.square(out["silhouette"] - target)) + 0.01 * tf.reduce_sum(out["depth"])
            grads = tape.gradient(loss, [p, q, s])
            return loss + sum(tf.reduce_sum(g) for g in grads) * 0.0

        return step

    fast_wall, fast_cpu = _time(make(dpc.blur3d), (pts, quats, scale), repeats)
    conv_wall, conv_cpu = _time(make(conv_blur), (pts, quats, scale), max(1, repeats - 1))
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "benchmark": "dpc_projection_fwd_bwd",
        "views": views, "points": points, "grid": grid, "blur_taps": 21,
        "device": gpus[0].name if gpus else "CPU",
        "s_per_fwd_bwd": round(fast_wall, 4), "cpu_s_per_fwd_bwd": round(fast_cpu, 4),
        "conv3d_blur_s_per_fwd_bwd": round(conv_wall, 4), "conv3d_blur_cpu_s": round(conv_cpu, 4),
        "speedup_vs_conv3d_blur": round(conv_wall / fast_wall, 2),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
