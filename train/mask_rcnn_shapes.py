"""Trains Mask R-CNN on the toy shapes from scratch and reports held-out mask mAP and the CPU time spent:
a learning check of the port (`tfsynth/models/mask_rcnn/shapes_configs.py`).

    python -m train.mask_rcnn_shapes --config small --workdir runs/mask_rcnn_shapes/small [--epochs 12]

Trains `layers="all"` on scenes of seed 0, validates on seed 500, recalibrates the BatchNorm statistics of the
last checkpoint (`--precise-bn-batches` training batches, PreciseBN: see `MaskRCNN.recalibrate_batchnorm`; written
beside it as `precise_bn_<epoch>.h5`) and evaluates it on `--eval-images` scenes of seed 1000 (matterport's
VOC-style mask mAP@0.5 and COCO box / mask mAP); writes `results.json` (with the process CPU seconds of training)
in the workdir. `--weights W.h5` skips training and recalibrates + evaluates that checkpoint (e.g. of a run that
was stopped early).
"""
from __future__ import annotations

import argparse
import json
import os
import time

from tfsynth.workdir import RESULTS_NAME


def main(argv=None) -> dict:
    from tfsynth.models.mask_rcnn.shapes_configs import CONFIGS

    parser = argparse.ArgumentParser(prog="python -m train.mask_rcnn_shapes", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="small", choices=sorted(CONFIGS))
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--eval-images", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--precise-bn-batches", type=int, default=50,
                        help="training batches for the BatchNorm statistics before evaluation (0: keep the EMA)")
    parser.add_argument("--weights", help="evaluate this checkpoint instead of training")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.train_images < 1 or args.eval_images < 1 or args.precise_bn_batches < 0:
        parser.error("--epochs, --train-images and --eval-images must be >= 1, --precise-bn-batches >= 0")
    if args.weights and not os.path.isfile(args.weights):
        parser.error(f"--weights {args.weights}: no such file")

    import keras

    from eval.mask_rcnn import evaluate
    from tfsynth.atomic import atomic_write_text
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
    history, train_cpu_s, train_wall_s = {"loss": []}, None, None
    if args.weights:
        weights = args.weights
        model.load_weights(weights, by_name=True)
    else:
        cpu, wall = time.process_time(), time.perf_counter()
        history = model.train(shapes(args.train_images, 0), shapes(20, 500), learning_rate=config.LEARNING_RATE,
                              epochs=args.epochs, layers="all", seed=args.seed, verbose=2).history
        train_cpu_s, train_wall_s = time.process_time() - cpu, time.perf_counter() - wall
        weights = MaskRCNN("inference", make_config(CONFIGS[args.config], IMAGES_PER_GPU=1),
                           model_dir=args.workdir).find_last()
    cpu = time.process_time()
    recalibrated = 0
    if args.precise_bn_batches:
        recalibrated = model.recalibrate_batchnorm(shapes(args.train_images, 0), args.precise_bn_batches,
                                                   seed=args.seed + 7)
    if recalibrated:
        epoch = os.path.basename(weights).rsplit("_", 1)[-1].split(".")[0]
        weights = os.path.join(os.path.dirname(os.path.abspath(weights)), f"precise_bn_{epoch}.h5")
        model.save_weights(weights)  # matterport's HDF5 layout, as the epoch checkpoints
    precise_bn_cpu_s = time.process_time() - cpu

    inference = MaskRCNN("inference", make_config(CONFIGS[args.config], IMAGES_PER_GPU=1), model_dir=args.workdir)
    inference.load_weights(weights, by_name=True)
    trained_epochs = len(history["loss"]) or int(os.path.basename(weights).rsplit("_", 1)[-1].split(".")[0])
    result = {"config": args.config, "epochs": trained_epochs, "steps_per_epoch": config.STEPS_PER_EPOCH,
              "images_per_batch": config.BATCH_SIZE,
              "train_cpu_s": None if train_cpu_s is None else round(train_cpu_s, 1),
              "train_wall_s": None if train_wall_s is None else round(train_wall_s, 1), "weights": weights,
              "precise_bn_batches": args.precise_bn_batches if recalibrated else 0,
              "precise_bn_layers": recalibrated, "precise_bn_cpu_s": round(precise_bn_cpu_s, 1),
              "loss_per_epoch": [round(v, 4) for v in history["loss"]],
              "eval_images": args.eval_images, **evaluate(inference, shapes(args.eval_images, 1000))}
    atomic_write_text(os.path.join(args.workdir, RESULTS_NAME), json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("train_cpu_s", "voc_mask_map50")} | {
        "coco_segm_AP50": result["coco"]["segm"]["AP50"], "coco_bbox_AP": result["coco"]["bbox"]["AP"]}))
    return result


if __name__ == "__main__":
    main()
