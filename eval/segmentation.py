"""Segmentation scores of Holm (2022): micro/macro accuracy, IoU and F1 (= scikit-learn on the flattened labels,
streamed through confusion matrices), 95 % normal-approximation intervals, Tables 2-3 and F1 curves (Figures 4-5).

    python -m eval.segmentation --run runs/segment/holm2022                # tables + figures of a train.segment run
    python -m eval.segmentation --run runs/segment/holm2022 --alpha 0.01 --workdir results/seg
    python -m eval.segmentation --data coco_seg20/1k --model runs/segment/holm2022/baseline/model.keras
        --model perlin=runs/segment/holm2022/transfer-perlin/model.keras       (one line: re-evaluate saved models)

--workdir is the output folder, as in every job (default: <run>/report with --run, eval-segmentation/ with
--model); the train.segment run to report is --run. (Before, --workdir named that run and --out the output: both
old forms now stop with a one-line error saying what to use.)

Labels: pixels labelled 255 are ignored; IoU/F1 average over the classes present in the labels or predictions
(scikit-learn's default), or over every class with `--labels all` (scikit-learn `labels=range(K)`,
zero_division=0). The metric code is TF-free: `tfsynth.segmentation.metrics`.
"""
from __future__ import annotations

import argparse
import json
import os

from tfsynth.cli import run_cli
from tfsynth.config_flags import new_parser
from tfsynth.segmentation import metrics, report


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.segmentation", __doc__)
    parser.add_argument("--run", default=None, help="a train.segment workdir: write its tables and curves")
    parser.add_argument("--model", action="append", default=[], metavar="[NAME=]PATH",
                        help="a saved .keras segmentation model to evaluate on --data (repeatable)")
    parser.add_argument("--data", default="coco_seg20/1k", help="dataset name/config for --model (default %(default)s)")
    parser.add_argument("--split", default="validation", help="split for --model (default %(default)s)")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory")
    parser.add_argument("--eval_size", type=int, default=520,
                        help="shorter side of the evaluated images (0: as stored)")
    parser.add_argument("--batch_size", type=int, default=8, help="evaluation batch (padded; 1 = per image)")
    parser.add_argument("--alpha", type=float, default=0.05, help="1 - confidence level of the intervals")
    parser.add_argument("--labels", choices=("present", "all"), default="present",
                        help="classes IoU/F1 average over: present in labels or predictions, or all")
    parser.add_argument("--workdir", default=None,
                        help="output directory (default <run>/report with --run, eval-segmentation/ with --model)")
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)  # the old name of --workdir: an error
    return parser


def check_usage(args) -> None:
    """The old usage (`--workdir RUN [--out OUT]`) stops with one line naming the new flags (ValueError)."""
    old_run = args.workdir if args.workdir and not args.run and not args.model else None
    if args.out is not None:
        raise ValueError("--out is gone; the output folder is --workdir, as in every job: use "
                         + (f"--run {old_run} --workdir {args.out}" if old_run else f"--workdir {args.out}"))
    if old_run:
        raise ValueError(f"--workdir is the output folder now, as in every job: give the train.segment run as --run "
                         f"{old_run}")
    if bool(args.run) == bool(args.model):
        raise ValueError("give either --run (a train.segment run) or one or more --model")
    if args.run and args.labels != "present":
        raise ValueError("--labels all applies to --model evaluations; run reports use the stored defaults")


def _evaluate_models(args) -> dict:
    from tfsynth.segmentation.evaluation import evaluate_saved_model  # TensorFlow only when models are evaluated

    rows, raw = [], {}
    for item in args.model:
        name, _, path = item.rpartition("=")
        name = name or os.path.basename(os.path.dirname(os.path.abspath(path))) or path
        result, data = evaluate_saved_model(path, args.data, args.split, data_dir=args.data_dir,
                                            eval_size=args.eval_size, batch_size=args.batch_size)
        labels = range(data.num_classes) if args.labels == "all" else None
        scores = result.scores(args.alpha, labels=labels)
        rows.append((name, scores))
        raw[name] = {"model": path, "data": data.spec, "split": args.split, "loss": result.loss,
                     "num_images": result.num_images, "num_pixels": result.num_pixels,
                     **{m: scores[m] for m in metrics.METRICS}, "ci": scores["ci"], "per_class": scores["per_class"],
                     "class_names": data.class_names, "confusion_matrix": result.confusion_matrix.tolist()}
    out = args.workdir or "eval-segmentation"
    os.makedirs(out, exist_ok=True)
    caption = (f"Validation scores on {args.data} ({args.split}; {round(100 * (1 - args.alpha))} % intervals, "
               f"n = {rows[0][1]['num_images']} images).")
    table = report.markdown_table(rows, caption)
    for name, text in (("table.md", table), ("table.csv", report.csv_table(rows)),
                       ("scores.json", json.dumps(raw, indent=2))):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            f.write(text)
    return {"tables": {"models": table}, "out_dir": out, "scores": raw}


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    check_usage(args)
    if args.run:
        result = report.write_report(args.run, args.workdir, alpha=args.alpha)
    else:
        result = _evaluate_models(args)
    for table in result["tables"].values():
        print(table)
    print(f"Written to {result['out_dir']}")
    return result


if __name__ == "__main__":
    run_cli(main, user_errors=(FileNotFoundError, ValueError))
