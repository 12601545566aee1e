"""AIST training-step cost at the reference network widths, against the plain CycleGAN step measured in the same run.

One step = G and F forward/backward on the generator objective + Adam, then D_X, D_Y on pooled fakes + Adam.
Baseline: the same networks and batch with the reference CycleGAN objective (no alpha, no ResNet-18 feature
distance); the ratio is the cost of the seed's two extra loss families.

    python -m benchmarks.bench_aist [--quick]      # full: 256 px, batch 4 (the seed's setting); quick: 64 px, batch 1
"""
from __future__ import annotations

import argparse
import json
import time


def _step_seconds(weights_name: str, size: int, batch: int, steps: int, **widths) -> tuple[float, float]:
    """Seconds (wall, CPU) per step after a traced warm-up step; `widths` (ngf, ndf, n_blocks) default to the
    reference networks'."""
    import keras
    import numpy as np
    import tensorflow as tf

    from tfsynth.models import aist

    keras.utils.set_random_seed(0)
    weights = aist.PRESETS[weights_name]
    model = aist.AISTCycleGAN(image_size=size, channels=4, alpha_mode="channel", weights=weights,
                              pool_size=50, batch_size=batch, **widths)
    model.compile(g_optimizer=aist.adam(), d_optimizer=aist.adam())
    # Slots built before tracing (as tfsynth.aist.training does): built on the first apply inside the tf.function,
    # they would make it trace train_step twice.
    model.g_optimizer.build(model.G.trainable_variables + model.F.trainable_variables)
    model.d_optimizer.build(model.D_X.trainable_variables + model.D_Y.trainable_variables)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, size, size, 4)).astype(np.float32)
    y = rng.uniform(-1, 1, (batch, size, size, 4)).astype(np.float32)
    step = tf.function(model.train_step)
    step((x, y))  # trace + warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        out = step((x, y))
    float(out["g_total"])
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def run(quick: bool = False) -> dict:
    size, batch, steps = (64, 1, 2) if quick else (256, 4, 1)
    aist_wall, aist_cpu = _step_seconds("constrained", size, batch, steps)
    base_wall, base_cpu = _step_seconds("cyclegan", size, batch, steps)
    return {
        "benchmark": "aist_train_step",
        "image_size": size, "batch_per_domain": batch,
        "aist_constrained_s_per_step": round(aist_wall, 3), "aist_constrained_cpu_s_per_step": round(aist_cpu, 3),
        "cyclegan_s_per_step": round(base_wall, 3), "cyclegan_cpu_s_per_step": round(base_cpu, 3),
        "aist_over_cyclegan_cpu_ratio": round(aist_cpu / base_cpu, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
