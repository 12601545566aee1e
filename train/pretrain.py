"""Pre-train a ResNet from scratch on one or a mixture of TFDS datasets (FractalDB recipe).

    python -m train.pretrain                      # laptop demo: builds fractal_db/tiny if missing (~3 min, 2 cores)
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k [--strategy mirrored] [--mixed_precision]
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k --resume        # after an interruption
    python -m train.pretrain --data fractal_db/1k:500,proc_synth_db/1k:500 --workdir runs/mix
    python -m train.pretrain --combo all3 --workdir runs/all3        # Table 2 sets: fractal, procsynth, morphsynth,
                                                                     # procsynth+fractal, procsynth+morphsynth, all3

Every field of the selected config (tfsynth/training/pretrain_configs.py) is a flag that overrides it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from tfsynth.config_flags import add_config_flags, config_from_args as config_from_args_
from tfsynth.training import pretrain_configs
from tfsynth.training.pretrain_configs import STRATEGIES, ConfigError, PretrainConfig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--config", default="default", choices=sorted(pretrain_configs.CONFIGS),
                     help="named experiment config (default: the laptop demo)")
    run.add_argument("--workdir", default=None,
                     help="checkpoints, TensorBoard logs, model.keras, backbone.keras, results.json "
                          "(default: runs/pretrain/<config>-<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue from the workdir's last checkpoint")
    run.add_argument("--strategy", default="default", choices=STRATEGIES, help="tf.distribute strategy")
    run.add_argument("--tpu", default=None, help="TPU name/address for --strategy tpu")
    run.add_argument("--data_dir", default=None, help="TFDS data directory (default: TFDS default)")
    run.add_argument("--combo", default=None, choices=list(pretrain_configs.COMBOS),
                     help="a Table 2 pre-training set of Beyond Flatland (sets --data; see --combo_scale)")
    run.add_argument("--combo_scale", default="1k", choices=list(pretrain_configs.COMBO_SCALES),
                     help="dataset config used by --combo: 1k (1000 / 500+500 / 333 each), small or tiny")

    add_config_flags(parser, PretrainConfig)
    return parser


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    config = config_from_args_(args, pretrain_configs.CONFIGS, PretrainConfig)
    if getattr(args, "combo", None):
        if args.data is not None:
            raise ConfigError("give either --combo or --data, not both")
        config = config.replace(data=pretrain_configs.combo_data_spec(args.combo, args.combo_scale))
    return config


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    if args.resume and not args.workdir:
        raise SystemExit("--resume needs the --workdir of the run to continue")
    workdir = args.workdir or os.path.join("runs", "pretrain", f"{args.config}-{time.strftime('%Y%m%d-%H%M%S')}")

    from tfsynth.training.pretrain import run  # TensorFlow import after the flags parse (fast --help)

    results = run(config, workdir, resume=args.resume, strategy=args.strategy, tpu=args.tpu,
                  data_dir=args.data_dir)
    print()
    if results["final_eval"]:
        ev = results["final_eval"]
        print(f"Final held-out accuracy ({config.eval_split}, centre crop {config.crop_size}): "
              f"top-1 {ev['top1']:.4f}, top-5 {ev['top5']:.4f}, loss {ev['loss']:.4f}")
    if results["final_train"]:
        tr = results["final_train"]
        print(f"Final training accuracy (last epoch, random crops): top-1 {tr['top1']:.4f}, loss {tr['loss']:.4f}")
    print(f"Epochs completed: {results['epochs_completed']}/{config.epochs}; "
          f"time this run: {results['wall_time_s_this_run']:.0f} s")
    print(f"Model: {results['model']}\nBackbone: {results['backbone']}\n"
          f"Results: {os.path.join(os.path.dirname(results['model']), 'results.json')}")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # bad config / data spec / workdir: a clear message without a traceback
        from tfsynth.input.datasets import DataSpecError

        if not isinstance(e, (ConfigError, DataSpecError, FileExistsError)):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
