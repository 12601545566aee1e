"""python -m eval.neural: neural predictivity and RSA of Keras models against a brain dataset.

    python -m eval.neural --demo [--model runs/demo/backbone.keras]
        SIMULATED V1/V4/IT data (tfsynth.neural.simulated) at 64 px, PCA on separate simulated images (< 1 min);
        without --model: the newest runs/**/backbone.keras
    python -m eval.neural --brain majaj_hong_2015 --model fdb=runs/fdb1k/backbone.keras \
        --model proc=runs/proc1k/backbone.keras --pca_images /data/imagenet_val_1000 --workdir runs/neural_mh
        monkey V4 / IT (Brain-Score split: public images select layers, private are reported)
    python -m eval.neural --brain nsd/subj01 --model 'runs/*/backbone.keras' --regions V1,V2,V3,V4,LO,PfS

Brain datasets are TFDS builders built from the original files (`tfds build majaj_hong_2015 --imports
tfds_builders.majaj_hong_2015 --manual_dir DIR`; see tfds_builders/*/README.md). --model takes
'[name=]path' (globs allowed), repeatable; names default to the model file's directory.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import sys

from eval.neural.job import NeuralConfig, demo_config, parse_models, run


def _csv(text: str) -> tuple:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m eval.neural", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = NeuralConfig(models=[])
    p.add_argument("--model", action="append", default=[], help="[name=]path of a .keras model (globs allowed); repeat")
    p.add_argument("--demo", action="store_true", help="small SIMULATED brain dataset, 64 px, PCA on simulated images")
    p.add_argument("--brain", default=None,
                   help="'simulated' | 'majaj_hong_2015' | 'nsd/subj01' ... (default simulated)")
    p.add_argument("--data_dir", default=None, help="TFDS data_dir of the brain (and --pca_images) builders")
    p.add_argument("--regions", type=_csv, default=None, help="comma list (default: all of the dataset)")
    p.add_argument("--layers", type=_csv, default=None, help="comma list (default: every residual block output)")
    p.add_argument("--image_size", type=int, default=None, help=f"model input size in px (default {d.image_size})")
    p.add_argument("--model_degrees", type=float, default=None,
                   help=f"visual angle spanned by the model input (default {d.model_degrees})")
    p.add_argument("--batch_size", type=int, default=None)
    p.add_argument("--preprocess", choices=["none", "torch", "caffe"], default=None,
                   help="input scaling: none = [0, 255] pixels (project models normalise inside; default)")
    p.add_argument("--pca_images", default=None,
                   help="separate images for the per-layer PCA used in layer selection: 'simulated', an image "
                        "directory, a .npy/.npz (N,H,W,3) uint8 array or a TFDS 'name[/config][:split]'; '' = no PCA")
    p.add_argument("--pca_components", type=int, default=None, help=f"default {d.pca_components}")
    p.add_argument("--pca_num_images", type=int, default=None, help=f"default {d.pca_num_images}")
    p.add_argument("--selection_fraction", type=float, default=None,
                   help="share of images for layer selection when the dataset defines no split (default 0.5)")
    p.add_argument("--n_splits", type=int, default=None, help=f"default {d.n_splits}")
    p.add_argument("--n_components", type=int, default=None, help=f"PLS components (default {d.n_components})")
    p.add_argument("--kfold", action=argparse.BooleanOptionalAction, default=None,
                   help="10-fold stratified CV instead of 10 x 90/10 shuffle splits")
    p.add_argument("--seed", type=int, default=None, help=f"split seed (default {d.seed})")
    p.add_argument("--rsa", action=argparse.BooleanOptionalAction, default=None, help="RSA table too (default on)")
    p.add_argument("--rsa_method", choices=["spearman", "kendall_tau_a"], default=None)
    p.add_argument("--max_feature_gb", type=float, default=None, help="activation memory budget (default 4)")
    p.add_argument("--workdir", default=None, help="tables/plots/JSON (default runs/neural, demo: runs/neural_demo)")
    return p


def config_from_args(args) -> NeuralConfig:
    models = parse_models(args.model)
    config = demo_config(models) if args.demo else NeuralConfig(models=models)
    overrides = {k: v for k, v in vars(args).items()
                 if v is not None and k not in ("model", "demo")
                 and k in {f.name for f in dataclasses.fields(NeuralConfig)}}
    if args.demo and overrides.get("brain", "simulated") != "simulated":
        raise SystemExit("--demo uses the simulated brain data; drop --brain or --demo")
    return dataclasses.replace(config, **overrides)


def _newest_backbone(root: str = "runs") -> str:
    found = sorted(glob.glob(os.path.join(root, "**", "backbone.keras"), recursive=True), key=os.path.getmtime)
    if not found:
        raise SystemExit(f"--demo without --model: no {root}/**/backbone.keras; train one first "
                         "(`python -m train.pretrain`) or pass --model PATH")
    print(f"--demo: using the newest backbone, {found[-1]}", flush=True)
    return found[-1]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not args.model and args.demo:
        args.model = [_newest_backbone()]
    if not args.model:
        raise SystemExit("give at least one --model PATH "
                         "(e.g. runs/demo/backbone.keras from `python -m train.pretrain`)")
    config = config_from_args(args)
    from tfsynth.workdir import claim_workdir

    claim_workdir(config.workdir, "eval.neural")  # writable, not in use, not another job's: before any data work
    run(config)
    return 0


if __name__ == "__main__":
    from tfsynth.cli import run_cli

    sys.exit(run_cli(main))  # unusable --workdir, unloadable --model file: one line, exit status 2
