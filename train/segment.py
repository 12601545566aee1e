"""Segmentation with synthetic pre-training (Holm 2022): FCN-ResNet-50 pre-trained on noise-textured scenes
(4 classes), transferred to COCO's 20 VOC classes (21 with background), against a from-scratch baseline.

    python -m train.segment --config holm2022 --workdir runs/segment/holm2022         # the seed's experiment
    python -m train.segment --config holm2022 --workdir runs/segment/holm2022 --resume
    python -m train.segment --config tiny --auto_build --coco_dir DIR --data_dir /tmp/tfds   # ~1 min smoke run
    python -m eval.segmentation --run runs/segment/holm2022                            # Tables 2-3, Figures 4-5

Every field of the selected config (tfsynth/segmentation/configs.py) is a flag that overrides it.
"""
from __future__ import annotations

import argparse
import os

from tfsynth.cli import run_cli
from tfsynth.config_flags import config_from_args as config_from_args_, job_parser, job_workdir
from tfsynth.segmentation import configs
from tfsynth.segmentation.configs import ConfigError, SegmentConfig
from tfsynth.workdir import RESULTS_NAME


def build_parser() -> argparse.ArgumentParser:
    return job_parser("python -m train.segment", __doc__, configs.CONFIGS, SegmentConfig, "holm2022",
                      "holm2022, the seed's experiment", "segment",
                      writes="stages, checkpoints, TensorBoard logs, report/ and results.json",
                      resume_help="skip finished stages, continue the current one")


def config_from_args(args: argparse.Namespace) -> SegmentConfig:
    return config_from_args_(args, configs.CONFIGS, SegmentConfig)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    workdir = job_workdir(args, config=config)

    from tfsynth.segmentation.training import run  # TensorFlow import after the flags parse (fast --help)

    results = run(config, workdir, resume=args.resume, data_dir=args.data_dir)
    print()
    for table in results["tables"].values():
        print(table)
    print(f"Report (tables, F1 curves): {results['report']}")
    print(f"Results: {os.path.join(os.path.abspath(workdir), RESULTS_NAME)}")
    print(f"Time this run: {results['wall_time_s_this_run']:.0f} s")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    run_cli(main, user_errors=(ConfigError, FileExistsError, FileNotFoundError,
                               "tfsynth.input.datasets.DataSpecError"), onednn=True)
