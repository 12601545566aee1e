"""Evaluation of the AIST shape & pose experiment (seed 002 ch. 6, Table 6.2, Figures 6.5 / 7.1): trained DPC models
scored on multi-view test sets and on held-out real segmentations. Trains nothing: the chain that trains the models
(source build, AIST generators, stylised sets, DPC models) is `python -m experiments.aist_shape_pose`, whose last
stage calls `evaluate` below.

    python -m eval.aist --model baseline=runs/aist_exp/tiny/dpc/baseline \\
        --model stylized2=runs/aist_exp/tiny/dpc/stylized2 \\
        --test original=tfds:multiview_shapes/procedural_tiny --test stylized2=tfds:aist_stylized/stylized2 \\
        --real runs/aist_exp/tiny/real/test --data_dir runs/aist_exp/tiny/tfds --workdir runs/aist_eval/tiny

--model NAME=DIR: a train.shape_pose (DPC) workdir, one table block per model, in the order given. --test
NAME=tfds:name/config[:split]: a multi-view test set (split `test` unless given); the first one is also the
synthetic reference of Figure 7.1 (as many random views of it as real images). --real: the held-out real
segmentations, a folder of RGBA PNGs (alpha = the mask) or 'tfds:name/config:split' with an RGBA 'image' feature
(stanford_cars_clean) or a multi-view source (its masks). With --alignment icp (default) each model is first
aligned globally by ICP on its own validation set (its config's val_data, else its data; --val overrides).

Writes, in --workdir: table.md, table.csv (Table 6.2 layout: precision, coverage, Chamfer x 100, pose accuracy at 30
degrees, median error), real_table.md, real_table.csv (normalised mask disagreement on the real segmentations and on
synthetic test views), real_kde.png (Figure 6.5), reality_gap_kde.png (Figure 7.1) and results.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import time
from typing import Optional

import numpy as np

from tfsynth.cli import run_cli
from tfsynth.config_flags import new_parser

OUTPUTS = ("table.md", "table.csv", "real_table.md", "real_table.csv", "real_kde.png", "reality_gap_kde.png")
TABLE_FIELDS = ["experiment", "dataset", "precision", "coverage", "chamfer", "accuracy", "median_error_deg", "models",
                "views"]
REAL_FIELDS = ["experiment", "real_mean", "real_median", "synthetic_mean", "synthetic_median", "real_images",
               "synthetic_images"]


def load_real_segmentations(spec: str, data_dir: Optional[str] = None, max_images: int = 0):
    """(images (N, H, W, 3) uint8 on white, masks (N, H, W) uint8 0/1) of real segmentations: a folder of RGBA PNGs
    or 'tfds:name/config:split' with an RGBA 'image' feature (stanford_cars_clean) or a multi-view source."""
    from tfsynth.dpc import data as dpc_data
    from tfsynth.dpc import evaluation

    if spec.startswith("tfds:") and spec.count(":") == 2:
        from tfsynth.aist import data as aist_data

        try:
            src = aist_data.load_source(spec, data_dir, max_images)
        except aist_data.SourceError as err:
            if "no feature 'image'" in str(err):  # a multi-view source: its masks
                return evaluation.load_real(spec, data_dir, max_images)
            raise dpc_data.SourceError(str(err)) from None
        rgba = np.stack([np.asarray(src.decode(item)) for item in src.items])
        if rgba.shape[-1] != 4 or rgba[..., 3].min() == 255:
            raise dpc_data.SourceError(f"{spec}: real segmentations need an alpha channel (the mask)")
        return dpc_data._rgb_on_white(rgba), (rgba[..., 3] > 127).astype(np.uint8)
    return evaluation.load_real(spec, data_dir, max_images)


def with_test_split(spec: str) -> str:
    """'tfds:name/config' -> its test split 'tfds:name/config:test'; a spec with a split is kept."""
    if not spec.startswith("tfds:") or "/" not in spec:
        raise ValueError(f"--test: expected NAME=tfds:name/config[:split], got {spec!r}")
    return spec if spec.count(":") == 2 else f"{spec}:test"


def _write_csv(path: str, rows: list, fields: list) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def real_table(summary: dict) -> str:
    lines = ["| Experiment | Real: mean | Real: median | Synthetic test: mean | Synthetic test: median |",
             "|---|---|---|---|---|"]
    for exp, s in summary.items():
        lines.append(f"| {exp} | {s['real_mean']:.3f} | {s['real_median']:.3f} | {s['synthetic_mean']:.3f} "
                     f"| {s['synthetic_median']:.3f} |")
    return "\n".join(lines)


def evaluate(models: dict, test_sets: dict, real: str, out: str, *, data_dir: Optional[str] = None,
             val: str = "", alignment: str = "icp", align_models: int = 50, max_test_models: int = 0,
             max_real: int = 0, gap_images: int = 0, seed: int = 0, extra: Optional[dict] = None) -> dict:
    """Scores every model of `models` ({name: DPC workdir}) on every set of `test_sets` ({name: 'tfds:...'}, see
    `with_test_split`) and on the real segmentations `real`; writes the tables, plots and results.json (with `extra`'s
    keys added) in `out` and returns results.json's content."""
    from tfsynth.atomic import atomic_write_text
    from tfsynth.dpc import data as dpc_data
    from tfsynth.dpc import evaluation, metrics
    from tfsynth.dpc import training as dpc_training

    if not models or not test_sets:
        raise ValueError("evaluate: at least one model and one test set are needed")
    if alignment not in ("icp", "none"):
        raise ValueError(f"alignment must be 'icp' or 'none', got {alignment!r}")
    start = time.time()
    os.makedirs(out, exist_ok=True)
    tests = {name: with_test_split(spec) for name, spec in test_sets.items()}
    gap_source = next(iter(tests.values()))
    real_images, real_masks = load_real_segmentations(real, data_dir, max_real)
    rows, real_scores, gap_scores, alignments = [], {}, {}, {}
    for exp, model_dir in models.items():
        model, mcfg = dpc_training.load_trained(model_dir)
        q_align = None
        if alignment == "icp":
            val_data = dpc_data.load_source(val or mcfg.val_data or mcfg.data, mcfg.image_size, data_dir,
                                            align_models)
            q_align, _ = evaluation.estimate_alignment(model, mcfg, val_data, align_models, seed=seed)
            alignments[exp] = np.asarray(q_align).tolist()
        for ds_name, source in tests.items():
            test = dpc_data.load_source(source, mcfg.image_size, data_dir, max_test_models)
            rows.append({"experiment": exp, "dataset": ds_name, **evaluation.score_set(model, mcfg, test, q_align)})
        real_scores[exp] = evaluation.real_disagreement(model, mcfg, real_images, real_masks)
        # Figure 7.1: the same metric on random views (with an object) of the first test set.
        test = dpc_data.load_source(gap_source, mcfg.image_size, data_dir, max_test_models)
        m, v = len(test), test.num_views
        imgs = test.images.reshape((m * v,) + test.images.shape[2:])
        msks = test.masks.reshape((m * v,) + test.masks.shape[2:])
        keep = msks.reshape(len(msks), -1).max(1) > 0
        imgs, msks = imgs[keep], msks[keep]
        n = min(gap_images or len(real_images), len(imgs))
        pick = np.sort(np.random.default_rng(np.random.SeedSequence([seed, 71])).choice(len(imgs), n, replace=False))
        gap_scores[exp] = evaluation.real_disagreement(model, mcfg, imgs[pick], msks[pick])

    table = evaluation.markdown_table(rows)
    _write_csv(os.path.join(out, "table.csv"), rows, TABLE_FIELDS)
    summary = {exp: {"real_mean": float(np.mean(real_scores[exp])), "real_median": float(np.median(real_scores[exp])),
                     "synthetic_mean": float(np.mean(gap_scores[exp])),
                     "synthetic_median": float(np.median(gap_scores[exp])),
                     "real_images": len(real_scores[exp]), "synthetic_images": len(gap_scores[exp])}
               for exp in models}
    rtable = real_table(summary)
    _write_csv(os.path.join(out, "real_table.csv"), [{"experiment": k, **v} for k, v in summary.items()],
               REAL_FIELDS)
    for path, text in (("table.md", table), ("real_table.md", rtable)):
        atomic_write_text(os.path.join(out, path), text + "\n")
    metrics.plot_kde_cdfs({k: list(v) for k, v in real_scores.items()}, os.path.join(out, "real_kde.png"),
                          title="Real test segmentations (Fig. 6.5)")
    both = {f"{k} (real)": list(v) for k, v in real_scores.items()}
    both.update({f"{k} (synthetic)": list(v) for k, v in gap_scores.items()})
    metrics.plot_kde_cdfs(both, os.path.join(out, "reality_gap_kde.png"), title="Reality gap (Fig. 7.1)")
    results = {
        "models": dict(models), "test_sets": tests, "real": real,
        "evaluation": {"data_dir": data_dir, "val": val, "alignment": alignment, "align_models": align_models,
                       "max_test_models": max_test_models, "max_real": max_real, "gap_images": gap_images,
                       "seed": seed, "gap_source": gap_source},
        "rows": rows, "real_disagreement": summary,
        "real_scores": {k: np.asarray(v).tolist() for k, v in real_scores.items()},
        "synthetic_scores": {k: np.asarray(v).tolist() for k, v in gap_scores.items()},
        "alignment": alignment, "alignment_quaternions": alignments, "evaluation_wall_s": time.time() - start,
        "outputs": {k: os.path.join(os.path.abspath(out), k) for k in OUTPUTS},
        **(extra or {}),
    }
    atomic_write_text(os.path.join(out, "results.json"), json.dumps(results, indent=2))
    print("Table 6.2 layout (Chamfer terms x 100, accuracy at 30 degrees, median error in degrees):")
    print(table)
    print("Normalised mask disagreement (seed §6.3):")
    print(rtable)
    return results


def _pairs(values, flag: str) -> dict:
    out = {}
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{flag} expects NAME=VALUE, got {item!r}")
        if name in out:
            raise ValueError(f"{flag}: name {name!r} is repeated")
        out[name] = value
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.aist", __doc__)
    parser.add_argument("--model", action="append", required=True, metavar="NAME=DIR",
                        help="a trained DPC model: its train.shape_pose workdir (repeatable; table order)")
    parser.add_argument("--test", action="append", required=True, metavar="NAME=tfds:name/config[:split]",
                        help="a multi-view test set (repeatable; the first is Figure 7.1's synthetic reference)")
    parser.add_argument("--real", required=True,
                        help="real segmentations: a folder of RGBA PNGs or 'tfds:name/config:split'")
    parser.add_argument("--workdir", required=True, help="output folder: tables, plots, results.json")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory")
    parser.add_argument("--val", default="", help="alignment set for every model (default: each model's val_data)")
    parser.add_argument("--alignment", choices=("icp", "none"), default="icp",
                        help="global ICP alignment on validation models (default) or none")
    parser.add_argument("--align_models", type=int, default=50, help="validation models for the alignment")
    parser.add_argument("--max_test_models", type=int, default=0, help="score at most this many test models (0: all)")
    parser.add_argument("--max_real", type=int, default=0, help="use at most this many real images (0: all)")
    parser.add_argument("--gap_images", type=int, default=0,
                        help="synthetic test views for Figure 7.1 (0: as many as real images)")
    parser.add_argument("--seed", type=int, default=0, help="alignment and Figure 7.1 view draw")
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    models, tests = _pairs(args.model, "--model"), _pairs(args.test, "--test")
    for spec in tests.values():
        with_test_split(spec)
    for flag in ("align_models", "max_test_models", "max_real", "gap_images"):
        if getattr(args, flag) < (1 if flag == "align_models" else 0):
            raise ValueError(f"--{flag} {getattr(args, flag)}: must be >= {1 if flag == 'align_models' else 0}")
    from tfsynth.workdir import claim_workdir

    claim_workdir(args.workdir, "eval.aist", resume=True)  # a rerun rewrites the tables; before any data work
    results = evaluate(models, tests, args.real, args.workdir, data_dir=args.data_dir, val=args.val,
                       alignment=args.alignment, align_models=args.align_models,
                       max_test_models=args.max_test_models, max_real=args.max_real, gap_images=args.gap_images,
                       seed=args.seed)
    print(f"Tables and plots: {os.path.abspath(args.workdir)}")
    return results


if __name__ == "__main__":
    run_cli(main, user_errors=(ValueError, FileNotFoundError))  # SourceError, DataSpecError: ValueErrors
