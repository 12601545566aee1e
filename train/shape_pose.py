"""DPC: unsupervised shape and pose from multi-view silhouettes (seed 002 §2.5.1, ch. 5; Insafutdinov & Dosovitskiy).

    python -m train.shape_pose --config cars --workdir runs/dpc/cars       # tfds:multiview_shapes/shapenet_cars
    python -m train.shape_pose --config cars --data runs/aist/stylized_npz --workdir runs/dpc/exp2   # AIST data
    python -m train.shape_pose --config tiny --workdir runs/dpc/tiny       # CPU smoke run (procedural objects)
    python -m train.shape_pose --config cars --workdir runs/dpc/cars --resume

Sources: 'tfds:name/config:split', a folder of per-model .npz files (images, masks, quaternions, points) or
'procedural:N'. Every field of the selected config (tfsynth/dpc/configs.py) is a flag that overrides it. Writes
checkpoints, TensorBoard logs, dpc.weights.h5 and results.json under --workdir; score it with eval.shape_pose.
"""
from __future__ import annotations

import argparse
import os

from tfsynth.cli import exit_on, run_cli
from tfsynth.config_flags import job_parser, resolve_job
from tfsynth.dpc import configs
from tfsynth.dpc.configs import DPCConfig


def build_parser() -> argparse.ArgumentParser:
    return job_parser("python -m train.shape_pose", __doc__, configs.CONFIGS, DPCConfig, "cars",
                      "cars, the seed's baseline", "dpc")


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    config, workdir = resolve_job(args, configs.CONFIGS, DPCConfig)

    from tfsynth.dpc import data, training  # TensorFlow import after the flags parse (fast --help)

    with exit_on(data.SourceError, FileExistsError):
        results = training.run(config, workdir, resume=args.resume, data_dir=args.data_dir)
    last = results["last_logged"] or {}
    print(f"Weights: {os.path.join(os.path.abspath(workdir), 'dpc.weights.h5')}")
    if last:
        print(f"Step {last['step']}: projection loss {last['proj_loss']:.3f}, silhouette MSE "
              f"{last['silhouette_mse']:.4f}")
    print(f"Seconds per step: {results['seconds_per_step']}")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    run_cli(main)  # user errors leave main() as SystemExit("error: ...")
