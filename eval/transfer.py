"""Transfer tables from fine-tuning runs: top-1 mean ± 95 % confidence interval over seeds (Student t), rows =
pre-training sources (scratch and reference networks included), columns = (downstream dataset, images per class);
the paired difference to scratch (same dataset, images per class and seed) with its interval; Markdown + CSV +
grouped bar chart + accuracy against images per class.

    python -m eval.transfer --runs runs/demo/X/finetune --out runs/demo/X/transfer
    python -m eval.transfer --runs runs/ft --runs runs/ft-imagenet --out results/transfer

Every results.json under --runs written by `python -m train.finetune` counts once (its test top-1); CV trials,
pre-training runs and unfinished runs are skipped and counted. Writes transfer.md (both tables), transfer.csv,
transfer.png, accuracy_vs_images.png, summary.json (per-cell statistics and paired differences, in percent) and
runs.json (the runs used and the skipped files) into --out and prints the Markdown tables. TF-free; the
statistics are described in tfsynth/transfer/table.py.
"""
from __future__ import annotations

import argparse
import os

from tfsynth.cli import run_cli
from tfsynth.config_flags import new_parser
from tfsynth.transfer import table


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.transfer", __doc__)
    parser.add_argument("--runs", action="append", required=True, metavar="DIR",
                        help="directory searched recursively for train.finetune results.json (repeatable)")
    parser.add_argument("--out", default=None, help="output directory (default: <first --runs>/../transfer)")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    out = args.out or os.path.join(os.path.dirname(os.path.abspath(args.runs[0])), "transfer")
    report = table.write_report(args.runs, out)
    print(report["markdown"])
    skipped = ", ".join(f"{n} {reason}" for reason, n in report["skipped"].items())
    print(f"{len(report['records'])} fine-tuning runs" + (f" (skipped: {skipped})" if skipped else ""))
    for name in ("transfer.md", "transfer.csv", "transfer.png", "accuracy_vs_images.png", "summary.json"):
        print(f"Wrote {report['paths'][name]}")
    return report


if __name__ == "__main__":
    run_cli(main, user_errors=(ValueError, FileNotFoundError))
