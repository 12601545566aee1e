"""First-layer filters of one or more models as image grids, side by side (as Kataoka et al. 2020 compare
FractalDB and ImageNet conv1 filters), plus optional activation maximisation of a few units of a deeper layer.

    python -m eval.filters --model fractal_db=runs/demo/X/backbone.keras \
        --model scratch=runs/demo/X/finetune/scratch/model.keras --out runs/demo/X/filters
    python -m eval.filters --model fdb1k=runs/fdb1k/backbone.keras --reference imagenet=resnet50:resnet50.npz \
        --actmax_layer layer4.2.out --units 0,1,2,3 --out results/filters

--model takes any .keras file (train.pretrain / train.finetune outputs, or other Keras models with a 3-channel
first convolution); --reference builds alexnet / vgg16 / resnet50 with weights from a local .keras / .npz / .h5.
Writes filters_<name>.png, filters.png (side by side), actmax_<name>.png with --actmax_layer, and TensorBoard
images under <out>/logs (tensorboard --logdir <out>/logs).
"""
from __future__ import annotations

import argparse
import os
import re

from tfsynth.cli import run_cli
from tfsynth.config_flags import new_parser


def _named(item: str, flag: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep:
        value = name
        name = os.path.basename(os.path.dirname(os.path.abspath(value))) or value
    if not name or not value:
        raise ValueError(f"{flag} {item!r}: expected NAME=VALUE")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.filters", __doc__)
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH.keras",
                        help="a saved Keras model (repeatable); NAME defaults to its directory's name")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=ARCH:WEIGHTS",
                        help="alexnet|vgg16|resnet50 with local weights (repeatable)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--scale", choices=("each", "all"), default="each",
                        help="min-max scale each filter on its own, or all filters of a model together")
    parser.add_argument("--actmax_layer", default=None,
                        help="layer (torchvision name, e.g. layer4.2.out, features.10) for activation maximisation")
    parser.add_argument("--units", default="0,1,2,3", help="channels of --actmax_layer to visualise")
    parser.add_argument("--actmax_size", type=int, default=64, help="side of the optimised images")
    parser.add_argument("--actmax_steps", type=int, default=128, help="gradient-ascent steps")
    parser.add_argument("--seed", type=int, default=0, help="seed of the activation-maximisation start images")
    return parser


def load_models(args) -> dict:
    import tfsynth.models.reference_nets  # noqa: F401 - registers AdaptiveAvgPool2D for saved AlexNet/VGG models
    import tfsynth.training.optim  # noqa: F401 - registers TorchSGD for model.keras files
    from tfsynth.models.files import load_keras_model
    from tfsynth.transfer.heads import Source, build_finetune_model

    models = {}
    for item in args.model:
        name, path = _named(item, "--model")
        models[name] = load_keras_model(path, f"--model {name}")  # says what a corrupt / foreign file is
    for item in args.reference:
        name, spec = _named(item, "--reference")
        match = re.match(r"^(alexnet|vgg16|resnet50):(.+)$", spec)
        if not match:
            raise ValueError(f"--reference {item!r}: expected NAME=alexnet|vgg16|resnet50:WEIGHTS")
        # The head is irrelevant here: the network is built with a 1-class head, every other weight loaded.
        models[name], _ = build_finetune_model(Source("reference", path=match[2], arch=match[1]), 1)
    if not models:
        raise ValueError("give at least one --model or --reference")
    return models


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    from tfsynth.visualize import filters as viz

    models = load_models(args)
    os.makedirs(args.out, exist_ok=True)
    grids = {name: viz.model_filter_grid(model, scale=args.scale) for name, model in models.items()}
    written = []
    for name, grid in grids.items():
        layer = viz.first_conv(models[name])
        path = os.path.join(args.out, f"filters_{name}.png")
        viz.save_png(grid, path)
        written.append(path)
        print(f"{name}: first convolution '{layer.name}' {tuple(layer.kernel.shape)} -> {path}")
    side = os.path.join(args.out, "filters.png")
    viz.side_by_side(grids, side, title="First-layer filters")
    written.append(side)
    viz.write_tensorboard(os.path.join(args.out, "logs"), grids)
    actmax = {}
    if args.actmax_layer:
        units = [int(u) for u in args.units.split(",") if u.strip()]
        for name, model in models.items():
            images = viz.activation_maximization(model, args.actmax_layer, units, size=args.actmax_size,
                                                 steps=args.actmax_steps, seed=args.seed)
            row = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1, 3)
            actmax[name] = row
            path = os.path.join(args.out, f"actmax_{name}.png")
            viz.save_png(row, path)
            written.append(path)
        viz.write_tensorboard(os.path.join(args.out, "logs"), actmax, prefix=f"actmax/{args.actmax_layer}")
    print(f"Side by side: {side}\nTensorBoard: tensorboard --logdir {os.path.join(args.out, 'logs')}")
    return {"grids": grids, "actmax": actmax, "written": written}


if __name__ == "__main__":
    run_cli(main, user_errors=(ValueError, FileNotFoundError))
