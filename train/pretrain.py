"""Pre-train a ResNet from scratch on one or a mixture of TFDS datasets (FractalDB recipe).

    python -m train.pretrain                      # laptop demo: builds fractal_db/tiny if missing (~3 min, 2 cores)
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k [--strategy mirrored] [--mixed_precision]
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k --resume        # after an interruption
    python -m train.pretrain --data fractal_db/1k:500,proc_synth_db/1k:500 --workdir runs/mix
    python -m train.pretrain --config fractaldb_1k --data fractal_db_online/1k --workdir runs/fdb1k_online
                                                    # FractalDB rendered while training (TFSYNTH_ONLINE_WORKERS)
    python -m train.pretrain --combo all3 --workdir runs/all3        # Table 2 sets: fractal, procsynth, morphsynth,
                                                                     # procsynth+fractal, procsynth+morphsynth, all3

Every field of the selected config (tfsynth/training/pretrain_configs.py) is a flag that overrides it.
"""
from __future__ import annotations

import argparse
import os

from tfsynth.cli import print_fit_summary, run_cli
from tfsynth.config_flags import config_from_args as config_from_args_, job_parser, job_workdir
from tfsynth.training import pretrain_configs
from tfsynth.training.pretrain_configs import STRATEGIES, ConfigError, PretrainConfig
from tfsynth.workdir import RESULTS_NAME


def _add_combo_flags(run: argparse._ArgumentGroup) -> None:
    run.add_argument("--combo", default=None, choices=list(pretrain_configs.COMBOS),
                     help="a Table 2 pre-training set of Beyond Flatland (sets --data; see --combo_scale)")
    run.add_argument("--combo_scale", default="1k", choices=list(pretrain_configs.COMBO_SCALES),
                     help="dataset config used by --combo: 1k (1000 / 500+500 / 333 each), small or tiny")


def build_parser() -> argparse.ArgumentParser:
    return job_parser("python -m train.pretrain", __doc__, pretrain_configs.CONFIGS, PretrainConfig, "default",
                      "the laptop demo", "pretrain",
                      writes="checkpoints, TensorBoard logs, model.keras, backbone.keras, results.json",
                      resume_help="continue from the workdir's last checkpoint", strategies=STRATEGIES,
                      add_run_flags=_add_combo_flags)


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
    workdir = job_workdir(args, config=config)

    from tfsynth.training.pretrain import run  # TensorFlow import after the flags parse (fast --help)

    results = run(config, workdir, resume=args.resume, strategy=args.strategy, tpu=args.tpu,
                  data_dir=args.data_dir)
    print()
    if results["final_eval"]:
        ev = results["final_eval"]
        print(f"Final held-out accuracy ({config.eval_split}, centre crop {config.crop_size}): "
              f"top-1 {ev['top1']:.4f}, top-5 {ev['top5']:.4f}, loss {ev['loss']:.4f}")
    print_fit_summary(results, config.epochs)
    print(f"Model: {results['model']}\nBackbone: {results['backbone']}\n"
          f"Results: {os.path.join(os.path.dirname(results['model']), RESULTS_NAME)}")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    run_cli(main, user_errors=(ConfigError, FileExistsError, "tfsynth.input.datasets.DataSpecError"), onednn=True)
