"""Annotation-Invariant Style Transfer: a CycleGAN with alpha and ResNet feature-distance losses (seed 002, ch. 4).

    python -m train.aist --config constrained --x_data tfds:multiview_shapes/shapenet_cars:train:images+masks \\
        --y_data tfds:stanford_cars_clean/maskrcnn:train --phi_weights resnet18.npz --workdir runs/aist/constrained
    python -m train.aist --config less_constrained ...          # seed Table 6.1, experiment 3
    python -m train.aist --config tiny --x_data DIR_X --y_data DIR_Y --workdir runs/aist/tiny   # CPU smoke run
    python -m train.aist --workdir runs/aist/constrained --config constrained ... --resume

Sources: 'tfds:name/config:split[:feature]' or a folder/glob of (RGBA) PNG/JPEG images. Every field of the selected
config (tfsynth/aist/configs.py) is a flag that overrides it. Writes G.keras (X -> Y), F.keras, TensorBoard logs
and results.json under --workdir.
"""
from __future__ import annotations

import argparse
import os

from tfsynth.aist import configs
from tfsynth.aist.configs import AISTConfig
from tfsynth.cli import exit_on, run_cli
from tfsynth.config_flags import job_parser, resolve_job


def build_parser() -> argparse.ArgumentParser:
    return job_parser("python -m train.aist", __doc__, configs.CONFIGS, AISTConfig, "constrained",
                      "constrained, seed Table 6.1 experiment 2", "aist")


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    config, workdir = resolve_job(args, configs.CONFIGS, AISTConfig)

    from tfsynth.aist import data, training  # TensorFlow import after the flags parse (fast --help)

    with exit_on(data.SourceError, FileExistsError):
        results = training.run(config, workdir, resume=args.resume, data_dir=args.data_dir)
    print(f"Generators: {os.path.join(os.path.abspath(workdir), 'G.keras')} (X -> Y), F.keras (Y -> X)")
    print(f"Seconds per step (batch {config.batch_size} per domain): {results['seconds_per_step']:.3f}")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    run_cli(main)  # user errors leave main() as SystemExit("error: ...")
