"""Pre-train a ResNet from scratch on one or a mixture of TFDS datasets (FractalDB recipe).

    python -m train.pretrain                      # laptop demo: builds fractal_db/tiny if missing (~3 min, 2 cores)
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k [--strategy mirrored] [--mixed_precision]
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k --resume        # after an interruption
    python -m train.pretrain --data fractal_db/1k:500,proc_synth_db/1k:500 --workdir runs/mix

Every field of the selected config (tfsynth/training/pretrain_configs.py) is a flag that overrides it.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import sys
import time
import typing

from tfsynth.training import pretrain_configs
from tfsynth.training.pretrain_configs import STRATEGIES, ConfigError, PretrainConfig


def _field_help() -> dict[str, str]:
    """The trailing comment of each PretrainConfig field, used as its flag's help."""
    source = inspect.getsource(PretrainConfig)
    return {m[1]: m[2].strip() for m in re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]+#(.*)$", source, re.M)}


def _tuple_parser(item_type):
    def parse(text: str):
        return tuple(item_type(x) for x in text.split(",") if x.strip())
    return parse


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

    fields = parser.add_argument_group("config fields (override the selected --config)")
    helps = _field_help()
    hints = typing.get_type_hints(PretrainConfig)
    for field in dataclasses.fields(PretrainConfig):
        hint = hints[field.name]
        kwargs = {"default": None, "help": helps.get(field.name, "").replace("%", "%%")}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            kwargs["type"] = _tuple_parser(typing.get_args(hint)[0])
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["type"] = hint
        fields.add_argument(f"--{field.name}", **kwargs)
    return parser


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainConfig)
                 if getattr(args, f.name) is not None}
    return pretrain_configs.get_config(args.config, overrides)


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
