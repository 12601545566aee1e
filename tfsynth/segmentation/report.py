"""Tables and curves of a `python -m train.segment` run, in the layout of Holm (2022) (NumPy + matplotlib, no TF).

    Table 2   validation scores of the pre-training stages (synthetic data) after their last epoch
    Table 3   validation scores of the fine-tuning stages (COCO: baseline and one row per pre-training dataset)
    Figure 4  validation macro F1 (left) and micro F1 (right) per epoch of the pre-training stages
    Figure 5  the same for the fine-tuning stages
    (Appendix B: all six scores per epoch, `*_all_metrics.png`; per-class IoU tables as an extra)

Scores are recomputed from the stored confusion matrices (`metrics.scores_with_ci`), so the confidence level and
the label set can be chosen at report time. Cells are "percent ± half-width of the 1 - alpha interval", rounded
to integers as in the seed; the CSV files hold the unrounded values.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from typing import Iterable, Optional, Sequence

from tfsynth import markdown
from tfsynth.segmentation import metrics
from tfsynth.workdir import RESULTS_NAME

STAGE_FILE = "stage.json"  # per stage: name, method, kind, data, class names (written when the stage starts)
HISTORY_FILE = "history.json"  # per stage: one entry per evaluation (epochs_completed 0 = before training)


def _read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_run(workdir: str) -> dict:
    """{'workdir', 'config', 'stages': [{'name', 'method', 'kind', 'data', 'class_names', 'history',
    'finished'}]} of a train.segment workdir, stages in execution order (unstarted stages left out)."""
    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{workdir} is not a train.segment workdir (no config.json)")
    run = _read_json(config_path)
    stages = []
    for name in run["stages"]:
        stage_dir = os.path.join(workdir, name)
        if not os.path.exists(os.path.join(stage_dir, STAGE_FILE)):
            continue
        stage = _read_json(os.path.join(stage_dir, STAGE_FILE))
        history_path = os.path.join(stage_dir, HISTORY_FILE)
        stage["history"] = _read_json(history_path) if os.path.exists(history_path) else []
        stage["finished"] = os.path.exists(os.path.join(stage_dir, RESULTS_NAME))
        stages.append(stage)
    return {"workdir": workdir, "config": run["config"], "stages": stages}


def entry_scores(entry: dict, alpha: float = 0.05, **kwargs) -> dict:
    """Scores with confidence intervals of one history entry (from its confusion matrix)."""
    return metrics.scores_with_ci(entry["confusion_matrix"], entry["num_images"], alpha=alpha, **kwargs)


def markdown_table(rows: Sequence[tuple[str, dict]], caption: Optional[str] = None) -> str:
    """| Method | Micro Accuracy | Macro Accuracy | Micro IoU | Macro IoU | Micro F1 | Macro F1 |
    with 'p ± ci' cells."""
    header = ["Method", *(metrics.METRIC_TITLES[m] for m in metrics.METRICS)]
    text = markdown.table(header, [[method, *(metrics.format_percent(s[m], s["ci"][m]) for m in metrics.METRICS)]
                                   for method, s in rows]) + "\n"
    return (caption + "\n\n" + text) if caption else text


def csv_table(rows: Sequence[tuple[str, dict]]) -> str:
    """method, metric values and CI half-widths (fractions, unrounded), n images, alpha."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", *metrics.METRICS, *(f"{m}_ci" for m in metrics.METRICS), "num_images", "alpha"])
    for method, s in rows:
        writer.writerow([method, *(repr(s[m]) for m in metrics.METRICS), *(repr(s["ci"][m]) for m in metrics.METRICS),
                         s["num_images"], s["alpha"]])
    return out.getvalue()


def per_class_table(rows: Sequence[tuple[str, dict]], class_names: Sequence[str], key: str = "iou") -> str:
    """Markdown: one row per class, one column per method, per-class IoU (or 'f1', 'recall') in percent."""
    table = []
    for c, name in enumerate(class_names):
        cells = [name]
        for _, s in rows:
            v = s["per_class"][key][c]
            cells.append("n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}")
        table.append(cells)
    return markdown.table(["Class", *(m for m, _ in rows)], table) + "\n"


def _curves(stages: Iterable[dict], alpha: float) -> dict[str, tuple[list[int], dict[str, list[float]]]]:
    curves = {}
    for stage in stages:
        epochs = [e["epochs_completed"] for e in stage["history"]]
        scored = [entry_scores(e, alpha) for e in stage["history"]]
        curves[stage["method"]] = (epochs, {m: [100 * s[m] for s in scored] for m in metrics.METRICS})
    return curves


def plot_curves(stages: Sequence[dict], path: str, metric_names: Sequence[str], title: str,
                alpha: float = 0.05) -> str:
    """One panel per metric (validation score in % vs. training epochs), one line per stage; PNG at `path`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    curves = _curves(stages, alpha)
    cols = min(3, len(metric_names))
    rows = math.ceil(len(metric_names) / cols)
    fig = Figure(figsize=(4 * cols, 3.6 * rows))
    FigureCanvasAgg(fig)
    for i, metric in enumerate(metric_names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for method, (epochs, values) in curves.items():
            ax.plot(epochs, values[metric], marker="o", markersize=3, label=method)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("Training epochs")
        ax.set_ylabel(f"{metrics.METRIC_TITLES[metric]} [%]")
        ax.set_ylim(0, 100)
        ax.set_title(metrics.METRIC_TITLES[metric])
        ax.grid(True, alpha=0.4)
        ax.legend(loc="lower right", fontsize="small")
    fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def final_rows(stages: Sequence[dict], alpha: float = 0.05) -> list[tuple[str, dict]]:
    """(method, scores after the last completed epoch) of each stage that has evaluations."""
    return [(s["method"], entry_scores(s["history"][-1], alpha)) for s in stages if s["history"]]


def write_report(workdir: str, out_dir: Optional[str] = None, alpha: float = 0.05) -> dict:
    """Writes Tables 2-3 (.md, .csv), Figures 4-5 and the all-metrics curves (.png), per-class IoU tables and
    report.json into `out_dir` (default <workdir>/report); returns {'tables': {...}, 'files': [...], ...}."""
    run = load_run(workdir)
    out_dir = out_dir or os.path.join(workdir, "report")
    os.makedirs(out_dir, exist_ok=True)
    groups = {
        "table2": ("pretrain", "Table 2: validation scores after the final epoch of training on the synthetic "
                               "datasets", "figure4", "Validation F1 during training on the synthetic datasets"),
        "table3": ("finetune", "Table 3: final validation scores on the fine-tuning dataset for each "
                               "initialisation", "figure5", "Validation F1 during fine-tuning"),
    }
    files, tables, summary = [], {}, {}
    for table, (kind, caption, figure, fig_title) in groups.items():
        stages = [s for s in run["stages"] if s["kind"] == kind and s["history"]]
        if not stages:
            continue
        rows = final_rows(stages, alpha)
        n = sorted({s["num_images"] for _, s in rows})
        data = sorted({s["data"] for s in stages})
        caption_full = (f"{caption} ({', '.join(data)}; {int(round(100 * (1 - alpha)))} % intervals, normal "
                        f"approximation with n = {', '.join(map(str, n))} validation images).")
        tables[table] = markdown_table(rows, caption_full)
        for suffix, text in ((".md", tables[table]), (".csv", csv_table(rows))):
            path = os.path.join(out_dir, table + suffix)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            files.append(path)
        classes = stages[0]["class_names"]
        path = os.path.join(out_dir, f"{table}_per_class_iou.md")
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"Per-class validation IoU (%) after the final epoch ({', '.join(data)}).\n\n"
                    + per_class_table(rows, classes, "iou"))
        files.append(path)
        files.append(plot_curves(stages, os.path.join(out_dir, f"{figure}_f1.png"), ("macro_f1", "micro_f1"),
                                 fig_title, alpha))
        files.append(plot_curves(stages, os.path.join(out_dir, f"{figure}_all_metrics.png"), metrics.METRICS,
                                 fig_title.replace("F1", "scores"), alpha))
        summary[table] = {method: {m: s[m] for m in (*metrics.METRICS, "ci", "num_images")} for method, s in rows}
    path = os.path.join(out_dir, "report.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"workdir": workdir, "alpha": alpha, "scores": summary,
                   "unfinished_stages": [s["name"] for s in run["stages"] if not s["finished"]]}, f, indent=2)
    files.append(path)
    return {"tables": tables, "files": files, "scores": summary, "out_dir": out_dir}
