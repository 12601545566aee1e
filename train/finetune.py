"""Fine-tune a pre-trained network (or a random one) on a downstream TFDS dataset: the transfer protocol of
Kataoka et al. 2020 ("Beyond Flatland" §3.3, §4.2).

    python -m train.finetune --config digits_demo --backbone runs/demo/X/backbone.keras --workdir runs/ft/fdb-tiny
    python -m train.finetune --config digits_demo --init scratch --workdir runs/ft/scratch
    python -m train.finetune --config cifar10 --backbone runs/fdb1k/backbone.keras --workdir runs/ft/fdb1k-c10 --seed 2
    python -m train.finetune --config cifar10 --reference resnet50 --weights resnet50_imagenet.npz --workdir ...
    python -m train.finetune --config cifar10 --backbone B.keras --cv_folds 5 --grid_lr 0.003,0.01,0.03 \\
        --grid_wd 1e-5,1e-4,1e-3 --workdir runs/ft/fdb1k-c10-cv          # CV search, then the final run
    python -m train.finetune ... --workdir runs/ft/fdb1k-c10 --resume   # after an interruption

Exactly one source: --backbone (a .keras from train.pretrain / train.finetune), --init scratch, or
--reference alexnet|vgg16|resnet50 with --weights (.keras, or torchvision-named arrays in .npz / .h5; a
torchvision state dict: numpy.savez(path, **{k: v.numpy() for k, v in sd.items()})). Nothing is downloaded.
Every field of the selected config (tfsynth/transfer/configs.py) is a flag that overrides it. The score tables:
`python -m eval.transfer --runs DIR`.
"""
from __future__ import annotations

import argparse
import os

from tfsynth.cli import print_fit_summary, run_cli
from tfsynth.config_flags import add_job_flags, config_from_args as config_from_args_, job_workdir, new_parser
from tfsynth.transfer import configs
from tfsynth.training.config import STRATEGIES
from tfsynth.transfer.configs import ConfigError, FinetuneConfig
from tfsynth.workdir import RESULTS_NAME

REFERENCES = ("alexnet", "vgg16", "resnet50")
ARCH_CHOICES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "alexnet", "vgg16")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m train.finetune", __doc__)
    src = parser.add_argument_group("pre-trained source (exactly one)")
    src.add_argument("--backbone", default=None, metavar="PATH.keras",
                     help="backbone.keras / model.keras of a train.pretrain or train.finetune run")
    src.add_argument("--init", default=None, choices=("scratch",), help="random initialisation (baseline)")
    src.add_argument("--reference", default=None, choices=REFERENCES,
                     help="a reference network built by the project, weights from --weights")
    src.add_argument("--weights", default=None, metavar="PATH", help="weights of --reference (.keras, .npz, .h5)")
    src.add_argument("--source_name", default=None,
                     help="row label in transfer tables (default: the pre-training --data of a backbone's run, "
                          "'scratch', or '<arch>:<weights file stem>')")
    add_job_flags(parser, configs.CONFIGS, FinetuneConfig, "default", "the official recipe on CIFAR-10", "finetune",
                  writes="checkpoints, TensorBoard logs, model.keras, results.json, cv/", workdir_tag="<source>",
                  resume_help="continue the workdir's run (and CV search)", strategies=STRATEGIES)
    return parser


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    config = config_from_args_(args, configs.CONFIGS, FinetuneConfig).validate()
    if config.arch not in ARCH_CHOICES:
        raise ConfigError(f"unknown --arch {config.arch!r}; valid: {', '.join(ARCH_CHOICES)}")
    return config


def source_from_args(args: argparse.Namespace, config: FinetuneConfig):
    given = [name for name, value in (("--backbone", args.backbone), ("--init scratch", args.init),
                                      ("--reference", args.reference)) if value]
    if len(given) != 1:
        raise ConfigError("give exactly one pre-trained source: --backbone PATH.keras, --init scratch, or "
                          f"--reference {{{','.join(REFERENCES)}}} --weights PATH (got {', '.join(given) or 'none'})")
    if args.weights and not args.reference:
        raise ConfigError("--weights belongs to --reference")
    if args.reference:
        if not args.weights:
            raise ConfigError(f"--reference {args.reference} needs --weights PATH (nothing is downloaded; for a "
                              f"random {args.reference} use --init scratch --arch {args.reference})")
        from tfsynth.transfer.heads import Source  # Keras import after the flags are checked (fast errors)

        return Source("reference", path=args.weights, arch=args.reference, name=args.source_name)
    from tfsynth.transfer.heads import Source

    if args.backbone:
        return Source("backbone", path=args.backbone, name=args.source_name)
    return Source("scratch", arch=config.arch, name=args.source_name)


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    source = source_from_args(args, config)
    workdir = job_workdir(args, tag=source.label.replace("/", "_").replace(":", "_"), config=config)

    from tfsynth.transfer.finetune import run  # TensorFlow import after the flags parse

    results = run(config, workdir, source, resume=args.resume, strategy=args.strategy, tpu=args.tpu,
                  data_dir=args.data_dir)
    entry = results["transfer"]
    print()
    if entry.get("cv"):
        best = entry["cv"]["best"]
        print(f"CV ({entry['cv']['folds']} folds): best lr {best['lr']:g}, weight decay {best['weight_decay']:g}, "
              f"mean CV top-1 {best['mean_top1']:.4f}; every trial: {entry['cv']['results']}")
    if entry["top1"] is not None:
        print(f"Fine-tuned {source.label} ({entry['arch']}) on {config.data}: top-1 {entry['top1']:.4f}, "
              f"top-5 {entry['top5']:.4f} on {config.eval_split} (centre crop {config.crop_size}), seed {config.seed}")
    print_fit_summary(results, config.epochs)
    print(f"Model: {results['model']}\nResults: {os.path.join(os.path.abspath(workdir), RESULTS_NAME)}")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    # Bad config / data spec / source / workdir: a clear message without a traceback.
    run_cli(main, user_errors=(ConfigError, FileExistsError, "tfsynth.input.datasets.DataSpecError",
                               "tfsynth.transfer.heads.SourceError"), onednn=True)
