"""Score trained DPC models: Chamfer precision / coverage (x 100), pose accuracy at 30 degrees and median error
(seed 002 Table 6.2), and the real-image mask disagreement with its cumulative KDE plot (§6.3, Figure 6.5).

    python -m eval.shape_pose --experiment baseline=runs/dpc/cars --experiment exp2=runs/dpc/exp2 \\
        --data original=tfds:multiview_shapes/shapenet_cars:test --data stylized2=runs/aist/stylized2_test_npz \\
        --val tfds:multiview_shapes/shapenet_cars:validation --real data/real_cars_rgba --out runs/dpc/eval
    python -m eval.shape_pose --experiment tiny=runs/dpc/tiny --data test=procedural:8 --out runs/dpc/tiny/eval

--alignment icp (default, unsupervised models): one global rotation per experiment from the validation set, as the
reference's compute_alignment.py; --alignment none for models trained with ground-truth cameras. Writes
results.json (rows of the table, alignment quaternions, real-image scores), table.md, real_kde.png and, with
--save_predictions, predictions_<experiment>_<dataset>.npz.
"""
from __future__ import annotations

import argparse

from tfsynth.cli import exit_on, run_cli
from tfsynth.config_flags import new_parser


def _pairs(values, flag):
    out = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"error: {flag} expects NAME=VALUE, got {v!r}")
        out[name] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("python -m eval.shape_pose", __doc__)
    p.add_argument("--experiment", action="append", required=True, help="NAME=WORKDIR of a train.shape_pose run")
    p.add_argument("--data", action="append", required=True, help="NAME=SOURCE of a test set (table rows)")
    p.add_argument("--val", default="", help="validation source for the global alignment (default: the run's)")
    p.add_argument("--alignment", choices=("icp", "none"), default="icp")
    p.add_argument("--align_models", type=int, default=50, help="validation models used for the alignment")
    p.add_argument("--real", default="", help="folder of RGBA PNGs (alpha = real segmentation) for §6.3")
    p.add_argument("--max_models", type=int, default=0, help="score at most this many models per set (0: all)")
    p.add_argument("--save_predictions", action="store_true",
                   help="also write predictions_<experiment>_<dataset>.npz (points, poses per view)")
    p.add_argument("--data_dir", default=None, help="TFDS data directory")
    p.add_argument("--out", required=True, help="output folder")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    experiments = _pairs(args.experiment, "--experiment")
    datasets = _pairs(args.data, "--data")
    from tfsynth.dpc import data, evaluation

    with exit_on(data.SourceError, FileNotFoundError):
        return evaluation.run(experiments, datasets, args.out, val_source=args.val, alignment=args.alignment,
                              real=args.real, data_dir=args.data_dir, max_models=args.max_models,
                              align_models=args.align_models, save_predictions=args.save_predictions)


if __name__ == "__main__":
    run_cli(main)  # user errors leave main() as SystemExit("error: ...")
