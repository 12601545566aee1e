"""Mask R-CNN inference cost per 1024 x 1024 image on this CPU (COCO config of the seed's Appendix C: ResNet-101,
81 classes, random weights), against a baseline measured in the same run: a plain ResNet-101 forward pass
(keras.applications, no top) on the same 1024 x 1024 input.

* `detect_s`: `MaskRCNN.detect([image])` end to end (molding, network, unmolding full-image masks);
* `network_s`: the Keras model alone (`predict_on_batch` on molded inputs);
* `resnet101_s`: the baseline; `detect_over_resnet101` = detect_s / resnet101_s.

Wall and CPU seconds per image (median of `repeats` after one warm-up call). Random weights give arbitrary
detections; `detections` says how many `detect` returned (mask unmolding grows with it).

    python -m benchmarks.bench_mask_rcnn [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up: tracing, graph optimisation
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    walls.sort()
    cpus.sort()
    return walls[len(walls) // 2], cpus[len(cpus) // 2]


def run(quick: bool = False) -> dict:
    import keras
    import numpy as np

    from tfsynth.models.mask_rcnn import CocoInferenceConfig
    from tfsynth.models.mask_rcnn.model import MaskRCNN

    repeats = 1 if quick else 3
    keras.utils.set_random_seed(0)
    config = CocoInferenceConfig()
    model = MaskRCNN("inference", config, model_dir="/tmp")
    image = np.random.default_rng(0).integers(0, 256, (768, 1024, 3)).astype(np.uint8)  # molded to 1024 x 1024
    molded, metas, _ = model.mold_inputs([image])
    results = {}
    detect_wall, detect_cpu = _timed(lambda: model.detect([image]), repeats)
    detections = len(model.detect([image])[0]["class_ids"])
    network_wall, network_cpu = _timed(lambda: model._run(molded, metas), repeats)
    resnet = keras.applications.ResNet101(weights=None, include_top=False, input_shape=(1024, 1024, 3))
    batch = molded.astype("float32")
    resnet_wall, resnet_cpu = _timed(lambda: resnet.predict_on_batch(batch), repeats)
    results.update({
        "config": "CocoInferenceConfig (ResNet-101, 81 classes, 1024 x 1024, random weights)",
        "image_shape": list(image.shape), "molded_shape": list(molded.shape[1:]), "repeats": repeats,
        "parameters": int(model.keras_model.count_params()), "detections": detections,
        "detect_s": round(detect_wall, 3), "detect_cpu_s": round(detect_cpu, 3),
        "network_s": round(network_wall, 3), "network_cpu_s": round(network_cpu, 3),
        "resnet101_s": round(resnet_wall, 3), "resnet101_cpu_s": round(resnet_cpu, 3),
        "detect_over_resnet101": round(detect_wall / resnet_wall, 2),
        "cpu_count": os.cpu_count(),
    })
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one timed repetition instead of three")
    args = parser.parse_args(argv)
    print(json.dumps(run(quick=args.quick), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
