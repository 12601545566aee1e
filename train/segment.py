"""Segmentation with synthetic pre-training (Holm 2022): FCN-ResNet-50 pre-trained on noise-textured scenes
(4 classes), transferred to COCO's 20 VOC classes (21 with background), against a from-scratch baseline.

    python -m train.segment --config holm2022 --workdir runs/segment/holm2022         # the seed's experiment
    python -m train.segment --config holm2022 --workdir runs/segment/holm2022 --resume
    python -m train.segment --config tiny --auto_build --coco_dir DIR --data_dir /tmp/tfds   # ~1 min smoke run
    python -m eval.segmentation --workdir runs/segment/holm2022                        # Tables 2-3, Figures 4-5

Every field of the selected config (tfsynth/segmentation/configs.py) is a flag that overrides it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from tfsynth.config_flags import add_config_flags, config_from_args as config_from_args_
from tfsynth.segmentation import configs
from tfsynth.segmentation.configs import ConfigError, SegmentConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.segment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--config", default="holm2022", choices=sorted(configs.CONFIGS),
                     help="named experiment config (default: holm2022, the seed's experiment)")
    run.add_argument("--workdir", default=None,
                     help="stages, checkpoints, TensorBoard logs, report/ and results.json "
                          "(default: runs/segment/<config>-<timestamp>)")
    run.add_argument("--resume", action="store_true", help="skip finished stages, continue the current one")
    run.add_argument("--data_dir", default=None, help="TFDS data directory (default: TFDS default)")

    add_config_flags(parser, SegmentConfig)
    return parser


def config_from_args(args: argparse.Namespace) -> SegmentConfig:
    return config_from_args_(args, configs.CONFIGS, SegmentConfig)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.resume and not args.workdir:
        raise SystemExit("--resume needs the --workdir of the run to continue")
    workdir = args.workdir or os.path.join("runs", "segment", f"{args.config}-{time.strftime('%Y%m%d-%H%M%S')}")

    from tfsynth.segmentation.training import run  # TensorFlow import after the flags parse (fast --help)

    results = run(config, workdir, resume=args.resume, data_dir=args.data_dir)
    print()
    for table in results["tables"].values():
        print(table)
    print(f"Report (tables, F1 curves): {results['report']}")
    print(f"Results: {os.path.join(os.path.abspath(workdir), 'results.json')}")
    print(f"Time this run: {results['wall_time_s_this_run']:.0f} s")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # bad config / data / workdir: a clear message without a traceback
        if not isinstance(e, (ConfigError, FileExistsError, FileNotFoundError)):
            from tfsynth.input.datasets import DataSpecError  # imports TensorFlow: only when needed

            if not isinstance(e, DataSpecError):
                raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
