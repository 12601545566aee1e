"""Tables (Markdown + CSV), JSON and predictivity-vs-depth plots for eval.neural. TF-free.

Files written into the workdir:
    neural_predictivity.{md,csv}   one row per (model, region): selected layer, raw r +- err, ceiling, ceiled
    tables/<region>.{md,csv}        the same per region, one row per model (the paper's per-region tables)
    rsa.{md,csv}                    RSA per (model, region): the best RSA layer and its held-out Spearman rho
    layer_scores.csv                every (model, region, layer) score on the selection split (PLS and RSA)
    plots/<model>_depth.png         selection-split predictivity against layer depth, one line per region
    results.json                    everything above plus per-split values and the run's settings
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from typing import Iterable, Sequence

from tfsynth import markdown
from tfsynth.workdir import RESULTS_NAME

__all__ = ["markdown_table", "write_csv", "write_reports", "format_rows", "plot_depth"]

COLUMNS = [("model", "model"), ("region", "region"), ("layer", "layer"), ("depth", "depth"),
           ("selection_r", "sel. r"), ("r", "r"), ("r_err", "± err"), ("ceiling", "ceiling"),
           ("ceiled_r2_over_c", "r²/c"), ("ceiled_r_over_c_sq", "(r/c)²"), ("n_neuroids", "neuroids")]
RSA_COLUMNS = [("model", "model"), ("region", "region"), ("rsa_layer", "RSA layer"), ("rsa_depth", "depth"),
               ("rsa", "RSA"), ("rsa_err", "± err")]


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(rows: Sequence[dict], columns=COLUMNS) -> str:
    return markdown.table([title for _, title in columns],
                          [[_fmt(row.get(key, "")) for key, _ in columns] for row in rows])


def write_csv(path: str, rows: Sequence[dict], columns=COLUMNS) -> None:
    keys = [key for key, _ in columns]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in keys})


def format_rows(rows: Sequence[dict], title: str) -> str:
    return f"{title}\n\n{markdown_table(rows)}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_depth(path: str, model: str, layer_scores: dict, title_note: str = "") -> bool:
    """layer_scores: {region: [(depth, layer, score, err), ...]}. Returns False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    points: list = []
    for region, points in layer_scores.items():
        depth = [p[0] for p in points]
        ax.errorbar(depth, [p[2] for p in points], yerr=[p[3] for p in points], marker="o", ms=3, capsize=2,
                    label=region)
    if points:
        ax.set_xticks([p[0] for p in points], [p[1] for p in points], rotation=60, ha="right", fontsize=6)
    ax.set_xlabel("layer (depth order)")
    ax.set_ylabel("neural predictivity r (selection split)")
    ax.set_title(f"{model}{title_note}", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_reports(workdir: str, rows: Sequence[dict], layer_rows: Sequence[dict], results: dict,
                  title: str, regions: Iterable[str], rsa_title: str = "RSA") -> dict:
    """Write every table/plot/JSON; returns {kind: path}."""
    os.makedirs(os.path.join(workdir, "tables"), exist_ok=True)
    paths = {}
    md = os.path.join(workdir, "neural_predictivity.md")
    with open(md, "w") as f:
        f.write(format_rows(rows, f"# {title}") + "\n")
    write_csv(os.path.join(workdir, "neural_predictivity.csv"), rows)
    paths["table"] = md
    for region in regions:
        region_rows = [r for r in rows if r["region"] == region]
        base = os.path.join(workdir, "tables", _safe(region))
        with open(base + ".md", "w") as f:
            f.write(format_rows(region_rows, f"# {region} — {title}") + "\n")
        write_csv(base + ".csv", region_rows)
    rsa_rows = [r for r in rows if "rsa" in r]
    if rsa_rows:
        with open(os.path.join(workdir, "rsa.md"), "w") as f:
            f.write(f"# {rsa_title}\n\n{markdown_table(rsa_rows, RSA_COLUMNS)}\n")
        write_csv(os.path.join(workdir, "rsa.csv"), rsa_rows, RSA_COLUMNS)
        paths["rsa"] = os.path.join(workdir, "rsa.md")
    layer_cols = [(k, k) for k in ("model", "region", "layer", "depth", "metric", "score", "error")]
    write_csv(os.path.join(workdir, "layer_scores.csv"), layer_rows, layer_cols)
    plots = []
    os.makedirs(os.path.join(workdir, "plots"), exist_ok=True)
    for model in dict.fromkeys(r["model"] for r in layer_rows):
        per_region: dict = {}
        for r in layer_rows:
            if r["model"] == model and r["metric"] == "pls":
                per_region.setdefault(r["region"], []).append((r["depth"], r["layer"], r["score"], r["error"]))
        path = os.path.join(workdir, "plots", f"{_safe(model)}_depth.png")
        if plot_depth(path, model, per_region, title_note=" (SIMULATED brain data)" if "SIMULATED" in title else ""):
            plots.append(path)
    paths["plots"] = plots
    with open(os.path.join(workdir, RESULTS_NAME), "w") as f:
        json.dump(results, f, indent=2, default=_json_default)
    paths["json"] = os.path.join(workdir, RESULTS_NAME)
    return paths


def _json_default(value):
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    return str(value)
