"""Trains Mask R-CNN on the toy shapes from scratch and reports held-out mask mAP and the CPU time spent:
a learning check of the port (`tfsynth/models/mask_rcnn/shapes_configs.py`).

    python -m train.mask_rcnn_shapes --config small --workdir runs/mask_rcnn_shapes/small [--epochs 12]

Trains `layers="all"` on scenes of seed 0, validates on seed 500, and evaluates the last checkpoint on
`--eval-images` scenes of seed 1000 (matterport's VOC-style mask mAP@0.5 and COCO box / mask mAP); writes
`results.json` (with the process CPU seconds of training) in the workdir.
"""
from __future__ import annotations

import argparse
import json
import os
import time


def main(argv=None) -> dict:
    from tfsynth.models.mask_rcnn.shapes_configs import CONFIGS

    parser = argparse.ArgumentParser(prog="python -m train.mask_rcnn_shapes", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", choices=sorted(CONFIGS))
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--eval-images", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.train_images < 1 or args.eval_images < 1:
        parser.error("--epochs, --train-images and --eval-images must be >= 1")

    import keras

    from eval.mask_rcnn import evaluate
    from tfsynth.models.mask_rcnn.config import make_config
    from tfsynth.models.mask_rcnn.model import MaskRCNN
    from tfsynth.models.mask_rcnn.shapes import ShapesDataset

    config = CONFIGS[args.config]()
    side = int(config.IMAGE_SHAPE[0])

    def shapes(count, seed):
        ds = ShapesDataset()
        ds.load_shapes(count, height=side, width=side, seed=seed)
        ds.prepare()
        return ds

    os.makedirs(args.workdir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    model = MaskRCNN("training", config, model_dir=args.workdir)
    cpu, wall = time.process_time(), time.perf_counter()
    history = model.train(shapes(args.train_images, 0), shapes(20, 500), learning_rate=config.LEARNING_RATE,
                          epochs=args.epochs, layers="all", seed=args.seed, verbose=2).history
    train_cpu_s, train_wall_s = time.process_time() - cpu, time.perf_counter() - wall

    inference = MaskRCNN("inference", make_config(CONFIGS[args.config], IMAGES_PER_GPU=1), model_dir=args.workdir)
    weights = inference.find_last()
    inference.load_weights(weights, by_name=True)
    result = {"config": args.config, "epochs": args.epochs, "steps_per_epoch": config.STEPS_PER_EPOCH,
              "images_per_batch": config.BATCH_SIZE, "train_cpu_s": round(train_cpu_s, 1),
              "train_wall_s": round(train_wall_s, 1), "weights": weights,
              "loss_per_epoch": [round(v, 4) for v in history["loss"]],
              "eval_images": args.eval_images, **evaluate(inference, shapes(args.eval_images, 1000))}
    with open(os.path.join(args.workdir, "results.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: result[k] for k in ("train_cpu_s", "voc_mask_map50")} | {
        "coco_segm_AP50": result["coco"]["segm"]["AP50"], "coco_bbox_AP": result["coco"]["bbox"]["AP"]}))
    return result


if __name__ == "__main__":
    main()
