"""Transfer tables from fine-tuning runs: top-1 mean ± std over seeds, rows = pre-training sources, columns =
downstream datasets; Markdown, CSV and a grouped bar chart (TF-free).

A run is a `results.json` whose 'transfer' entry has role 'final' (written by train.finetune); CV trials, pre-
training runs and unfinished runs are skipped and counted. Cells: top-1 in percent, "mean ± std (n seeds)" with
the sample standard deviation (ddof 1); a single seed prints "mean (1 seed)". Rows: scratch first, then the
pre-training sources in name order, then the reference networks (e.g. the ImageNet baselines); when the runs use
more than one architecture, row labels carry it ("fractal_db/1k [resnet50]"). Two runs of the same source,
dataset and seed are a mistake the table refuses to average: the later path is skipped and reported.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

KIND_ORDER = {"scratch": 0, "backbone": 1, "reference": 2}


@dataclasses.dataclass(frozen=True)
class RunRecord:
    source: str
    source_kind: str
    arch: str
    downstream: str
    seed: int
    top1: float
    path: str


@dataclasses.dataclass
class Collected:
    records: list[RunRecord]
    skipped: dict[str, list[str]]  # reason -> paths

    def skipped_counts(self) -> dict[str, int]:
        return {reason: len(paths) for reason, paths in self.skipped.items()}


def find_results(roots: Sequence[str]) -> list[str]:
    """Every results.json under the given directories (or the files themselves), sorted."""
    found = set()
    for root in roots:
        if os.path.isfile(root):
            found.add(os.path.abspath(root))
            continue
        if not os.path.isdir(root):
            raise FileNotFoundError(f"--runs {root} is neither a directory nor a results.json")
        for directory, _, files in os.walk(root):
            if "results.json" in files:
                found.add(os.path.abspath(os.path.join(directory, "results.json")))
    return sorted(found)


def collect(roots: Sequence[str]) -> Collected:
    """The final fine-tuning runs under `roots`, with the skipped files grouped by reason."""
    records: list[RunRecord] = []
    skipped: dict[str, list[str]] = {}
    seen: dict[tuple, str] = {}

    def skip(reason, path):
        skipped.setdefault(reason, []).append(path)

    for path in find_results(roots):
        try:
            with open(path, encoding="utf-8") as f:
                results = json.load(f)
        except (OSError, ValueError) as e:
            skip(f"unreadable ({type(e).__name__})", path)
            continue
        entry = results.get("transfer") if isinstance(results, dict) else None
        if not isinstance(entry, dict):
            skip("not a fine-tuning run", path)
            continue
        if entry.get("role") != "final":
            skip("CV trial", path)
            continue
        top1 = entry.get("top1")
        if top1 is None or not isinstance(top1, (int, float)) or math.isnan(top1):
            skip("no test top-1 (eval_split '')", path)
            continue
        try:
            record = RunRecord(source=str(entry["source"]), source_kind=str(entry.get("source_kind", "backbone")),
                               arch=str(entry.get("arch", "")), downstream=str(entry["downstream"]),
                               seed=int(entry["seed"]), top1=float(top1), path=path)
        except (KeyError, TypeError, ValueError) as e:
            skip(f"malformed transfer entry ({type(e).__name__}: {e})", path)
            continue
        key = (record.source, record.arch, record.downstream, record.seed)
        if key in seen:
            skip(f"duplicate seed (same source, arch, dataset and seed as {seen[key]})", path)
            continue
        seen[key] = path
        records.append(record)
    return Collected(records, skipped)


@dataclasses.dataclass
class Cell:
    values: list[float]  # top-1 in [0, 1], in seed order
    seeds: list[int]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def std(self) -> float:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else math.nan

    def text(self) -> str:
        if self.n == 1:
            return f"{100 * self.mean:.1f} (1 seed)"
        return f"{100 * self.mean:.1f} ± {100 * self.std:.1f} ({self.n} seeds)"


@dataclasses.dataclass
class TransferTable:
    rows: list[str]  # row labels
    columns: list[str]  # downstream datasets
    cells: dict[tuple[str, str], Cell]  # (row, column) -> cell

    def cell(self, row: str, column: str) -> Optional[Cell]:
        return self.cells.get((row, column))


def build_table(records: Sequence[RunRecord]) -> TransferTable:
    archs = {r.arch for r in records}

    def label(r: RunRecord) -> str:
        return f"{r.source} [{r.arch}]" if len(archs) > 1 else r.source

    kinds: dict[str, tuple] = {}
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        row = label(r)
        kinds.setdefault(row, (KIND_ORDER.get(r.source_kind, 1), row))
        grouped.setdefault((row, r.downstream), []).append(r)
    rows = sorted(kinds, key=lambda row: kinds[row])
    columns = sorted({r.downstream for r in records})
    cells = {}
    for key, members in grouped.items():
        members = sorted(members, key=lambda r: r.seed)
        cells[key] = Cell([m.top1 for m in members], [m.seed for m in members])
    return TransferTable(rows, columns, cells)


def markdown(table: TransferTable, caption: str = "") -> str:
    header = "| pre-training | " + " | ".join(table.columns) + " |"
    lines = ([caption, ""] if caption else []) + [header, "|" + "---|" * (len(table.columns) + 1)]
    for row in table.rows:
        texts = [table.cell(row, c).text() if table.cell(row, c) else "–" for c in table.columns]
        lines.append(f"| {row} | " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def csv_text(table: TransferTable) -> str:
    """One line per (row, column) cell: mean/std in percent, n, the seeds and their top-1 values."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pretraining", "downstream", "top1_mean", "top1_std", "n_seeds", "seeds", "top1_per_seed"])
    for row in table.rows:
        for column in table.columns:
            cell = table.cell(row, column)
            if cell is None:
                continue
            writer.writerow([row, column, f"{100 * cell.mean:.4f}",
                             "" if math.isnan(cell.std) else f"{100 * cell.std:.4f}", cell.n,
                             " ".join(str(s) for s in cell.seeds),
                             " ".join(f"{100 * v:.4f}" for v in cell.values)])
    return out.getvalue()


def bar_chart(table: TransferTable, path: str, title: str = "Transfer: top-1 accuracy (%)") -> None:
    """Grouped bars: one group per downstream dataset, one bar per pre-training source, std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_rows, n_cols = len(table.rows), len(table.columns)
    width = 0.8 / max(1, n_rows)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 + n_cols * (0.5 + 0.35 * n_rows)), 3.6), dpi=120)
    x = np.arange(n_cols)
    for i, row in enumerate(table.rows):
        cells = [table.cell(row, c) for c in table.columns]
        means = [100 * c.mean if c else np.nan for c in cells]
        errors = [100 * c.std if c and not math.isnan(c.std) else 0.0 for c in cells]
        bars = ax.bar(x + (i - (n_rows - 1) / 2) * width, means, width, yerr=errors if any(errors) else None,
                      capsize=3, label=row)
        for bar, mean in zip(bars, means):
            if not np.isnan(mean):
                ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, mean), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, table.columns)
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{os.path.basename(path)}")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)


def write_report(roots: Sequence[str], out_dir: str) -> dict:
    """Collects the runs, writes transfer.md, transfer.csv, transfer.png and runs.json into `out_dir`."""
    collected = collect(roots)
    if not collected.records:
        reasons = "; ".join(f"{n} {r}" for r, n in collected.skipped_counts().items()) or "no results.json at all"
        raise ValueError(f"no finished fine-tuning runs under {', '.join(roots)} ({reasons})")
    table = build_table(collected.records)
    seeds = sorted({r.seed for r in collected.records})
    caption = (f"Top-1 accuracy (%) on each downstream dataset's test split after fine-tuning, mean ± std over "
               f"seeds ({len(collected.records)} runs; seeds {', '.join(map(str, seeds))}).")
    md = markdown(table, caption)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in ("transfer.md", "transfer.csv", "transfer.png",
                                                             "runs.json")}
    for name, text in (("transfer.md", md), ("transfer.csv", csv_text(table)),
                       ("runs.json", json.dumps({"runs": [dataclasses.asdict(r) for r in collected.records],
                                                 "skipped": collected.skipped}, indent=2))):
        tmp = paths[name] + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, paths[name])
    bar_chart(table, paths["transfer.png"])
    return {"markdown": md, "table": table, "records": collected.records, "skipped": collected.skipped_counts(),
            "paths": paths}
