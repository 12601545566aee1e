"""Segmentation costs, each against a baseline measured in the same run:

1. FCN-ResNet-50 training step (forward + backward + TorchSGD update) with the backbone's dilated 3x3 convs run as
   im2col + matmul (`dilated_conv='im2col'`, the CPU default) vs TensorFlow's own dilated convolution
   (`'native'`: SpaceToBatch -> conv -> BatchToSpace on CPU); same weights, same batch.
2. Scoring: the six segmentation scores from a streamed confusion matrix (tfsynth.segmentation.metrics) vs the
   six scikit-learn calls on the flattened labels, for the same pixels.

    python -m benchmarks.bench_segmentation [--quick]
"""
from __future__ import annotations

import argparse
import json
import time
import warnings


def _step_seconds(impl: str, size: int, batch: int, steps: int) -> tuple[float, float]:
    import keras
    import numpy as np
    import tensorflow as tf

    from tfsynth.models.fcn import SegmentationCrossEntropy, fcn_resnet50
    from tfsynth.training.optim import TorchSGD

    keras.utils.set_random_seed(0)
    model = fcn_resnet50(num_classes=21, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), dilated_conv=impl)
    model.compile(optimizer=TorchSGD(0.01, torch_weight_decay=1e-4), loss={"out": SegmentationCrossEntropy()},
                  jit_compile=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (batch, size, size, 3)).astype(np.uint8)
    y = rng.integers(0, 21, (batch, size, size, 1)).astype(np.uint8)
    ds = tf.data.Dataset.from_tensors((x, {"out": y})).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace + warm-up
    wall, cpu = time.perf_counter(), time.process_time()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps


def _scoring_seconds(pixels: int) -> dict:
    import numpy as np
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, jaccard_score

    from tfsynth.segmentation import metrics

    rng = np.random.default_rng(0)
    y = rng.integers(0, 21, pixels)
    p = np.where(rng.random(pixels) < 0.7, y, rng.integers(0, 21, pixels))
    start = time.process_time()
    ours = metrics.scores(metrics.confusion_matrix(y, p, 21))
    ours_cpu = time.process_time() - start
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sk = [accuracy_score(y, p), balanced_accuracy_score(y, p), jaccard_score(y, p, average="micro"),
              jaccard_score(y, p, average="macro"), f1_score(y, p, average="micro"), f1_score(y, p, average="macro")]
    sk_cpu = time.process_time() - start
    max_diff = max(abs(ours[m] - v) for m, v in zip(metrics.METRICS, sk))
    return {"pixels": pixels, "confusion_matrix_cpu_s": round(ours_cpu, 3), "sklearn_cpu_s": round(sk_cpu, 3),
            "speedup": round(sk_cpu / ours_cpu, 1), "max_abs_difference": max_diff}


def run(quick: bool = False) -> dict:
    sizes = (32,) if quick else (32, 64, 128)
    steps = 2 if quick else 4
    batch = 4
    training = {}
    for size in sizes:
        native_wall, native_cpu = _step_seconds("native", size, batch, steps)
        im2col_wall, im2col_cpu = _step_seconds("im2col", size, batch, steps)
        training[f"{size}px"] = {"batch": batch, "native_step_s": round(native_wall, 3),
                                 "im2col_step_s": round(im2col_wall, 3),
                                 "speedup_wall": round(native_wall / im2col_wall, 2),
                                 "native_cpu_s_per_step": round(native_cpu, 2),
                                 "im2col_cpu_s_per_step": round(im2col_cpu, 2)}
    return {"benchmark": "segmentation", "quick": quick, "fcn_resnet50_train_step": training,
            "scoring": _scoring_seconds(2_000_000 if quick else 20_000_000)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(quick=parser.parse_args().quick), indent=2))
