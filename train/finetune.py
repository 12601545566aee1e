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
import sys
import time

from tfsynth.config_flags import add_config_flags, config_from_args as config_from_args_
from tfsynth.transfer import configs
from tfsynth.transfer.configs import ConfigError, FinetuneConfig

REFERENCES = ("alexnet", "vgg16", "resnet50")
ARCH_CHOICES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "alexnet", "vgg16")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m train.finetune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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
    run = parser.add_argument_group("run")
    run.add_argument("--config", default="default", choices=sorted(configs.CONFIGS),
                     help="named experiment config (default: the official recipe on CIFAR-10)")
    run.add_argument("--workdir", default=None,
                     help="checkpoints, TensorBoard logs, model.keras, results.json, cv/ "
                          "(default: runs/finetune/<config>-<source>-<timestamp>)")
    run.add_argument("--resume", action="store_true", help="continue the workdir's run (and CV search)")
    run.add_argument("--strategy", default="default",
                     choices=("default", "mirrored", "multi_worker_mirrored", "tpu"), help="tf.distribute strategy")
    run.add_argument("--tpu", default=None, help="TPU name/address for --strategy tpu")
    run.add_argument("--data_dir", default=None, help="TFDS data directory (default: TFDS default)")
    add_config_flags(parser, FinetuneConfig)
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
    if args.resume and not args.workdir:
        raise SystemExit("--resume needs the --workdir of the run to continue")
    tag = source.label.replace("/", "_").replace(":", "_")
    workdir = args.workdir or os.path.join("runs", "finetune",
                                           f"{args.config}-{tag}-{time.strftime('%Y%m%d-%H%M%S')}")

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
    if results["final_train"]:
        tr = results["final_train"]
        print(f"Final training accuracy (last epoch, random crops): top-1 {tr['top1']:.4f}, loss {tr['loss']:.4f}")
    print(f"Epochs completed: {results['epochs_completed']}/{config.epochs}; "
          f"time this run: {results['wall_time_s_this_run']:.0f} s")
    print(f"Model: {results['model']}\nResults: {os.path.join(os.path.abspath(workdir), 'results.json')}")
    print(f"TensorBoard: {results['tensorboard']}")
    return results


if __name__ == "__main__":
    # oneDNN kernels train ResNets about 4x faster on CPU than TensorFlow's default ones (this TF build leaves them
    # off); runs stay bitwise repeatable with --deterministic. Takes effect only before TensorFlow is imported;
    # TF_ENABLE_ONEDNN_OPTS=0 in the environment keeps them off.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    try:
        main()
    except Exception as e:  # bad config / data spec / source / workdir: a clear message without a traceback
        expected = (ConfigError, FileExistsError)
        # DataSpecError / SourceError can only come from modules already imported (no TensorFlow import here).
        for module, name in (("tfsynth.input.datasets", "DataSpecError"), ("tfsynth.transfer.heads", "SourceError")):
            if module in sys.modules:
                expected += (getattr(sys.modules[module], name),)
        if not isinstance(e, expected):
            raise
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
