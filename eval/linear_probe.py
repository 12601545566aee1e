"""Frozen-feature linear probe: logistic regression on each network's pooled features, per data regime and seed,
beside full fine-tuning (what the representation holds, before fine-tuning can wash it out).

    python -m eval.linear_probe --model fractal_db=runs/fdb/backbone.keras --model scratch \
        --data digits/32px --images_per_class 10,50,0 --seeds 1,2,3,4,5 --crop_size 28 --out runs/probe
    python -m eval.linear_probe --model a=runs/a/backbone.keras --model rand50=random:resnet50 --data cifar10 \
        --resize 256 --crop_size 224 --out results/probe

--model: NAME=PATH.keras (backbone.keras / model.keras of train.pretrain or train.finetune), NAME=random:ARCH (a
random ResNet drawn with each probe seed: the random-features baseline) or `scratch` (= scratch=random:resnet18);
repeatable. --images_per_class 0 = the whole training split; other counts use train.finetune's per-seed draw
(tfsynth.transfer.cv.per_class_sample), so probe and fine-tuning runs of one seed see the same images.
Writes probe.json ({'runs': [{model, target, images_per_class, seed, top1 (percent), train_examples, ...}],
'models', 'settings', 'summary'}) and probe.md (mean ± 95 % CI per model x regime and paired differences to the
random network) into --out and prints the Markdown. The method: tfsynth/transfer/probe.py.
"""
from __future__ import annotations

import argparse

from tfsynth.cli import run_cli
from tfsynth.config_flags import new_parser
from tfsynth.transfer import probe


def _ints(flag: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} takes comma-separated integers, got {text!r}") from None
    return parse


def _floats(text: str) -> tuple:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 3 comma-separated numbers, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 comma-separated numbers (one per channel), got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.linear_probe", __doc__)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH.keras|NAME=random:ARCH",
                        help="a network to probe (repeatable); 'scratch' = scratch=random:resnet18")
    parser.add_argument("--data", required=True, help="downstream TFDS dataset[/config], e.g. digits/32px")
    parser.add_argument("--images_per_class", type=_ints("--images_per_class"), default=(10, 50, 0),
                        help="training images per class of the probes, comma-separated; 0 = the whole split")
    parser.add_argument("--seeds", type=_ints("--seeds"), default=(1, 2, 3, 4, 5),
                        help="probe seeds (the per-class draw and random networks' weights)")
    parser.add_argument("--train_split", default="train", help="TFDS split the probes are fitted on")
    parser.add_argument("--eval_split", default="test", help="TFDS split scored (top-1)")
    parser.add_argument("--crop_size", type=int, default=28, help="centre-crop size of every image")
    parser.add_argument("--resize", type=int, default=0, help="shorter side resized to this before cropping; 0 = keep")
    parser.add_argument("--batch_size", type=int, default=256, help="images per forward pass")
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--max_iter", type=int, default=probe.DEFAULT_MAX_ITER, help="lbfgs iteration limit")
    parser.add_argument("--mean", type=_floats, default=probe.IMAGENET_MEAN,
                        help="per-channel mean on [0, 1] pixels for random networks and models without a "
                             "'normalize' layer (default ImageNet's, as train.finetune)")
    parser.add_argument("--std", type=_floats, default=probe.IMAGENET_STD, help="per-channel std (see --mean)")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory")
    parser.add_argument("--auto_build", action="store_true", help="build --data if it is missing")
    parser.add_argument("--out", required=True, help="output directory (probe.json, probe.md)")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    report = probe.run(args.model, args.data, args.out, images_per_class=args.images_per_class, seeds=args.seeds,
                       train_split=args.train_split, eval_split=args.eval_split, crop_size=args.crop_size,
                       resize=args.resize, batch_size=args.batch_size, C=args.C, max_iter=args.max_iter,
                       mean=args.mean, std=args.std, data_dir=args.data_dir, auto_build=args.auto_build)
    print(report["markdown"])
    for path in report["paths"].values():
        print(f"Wrote {path}")
    return report


if __name__ == "__main__":
    run_cli(main, user_errors=(ValueError, FileNotFoundError))
