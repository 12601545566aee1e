"""Transfer tables from fine-tuning runs (TF-free): rows = pre-training sources, columns = (downstream dataset,
images per class); top-1 mean ± 95 % confidence interval over seeds, the paired difference to the scratch runs,
Markdown, CSV, a grouped bar chart and accuracy against images per class.

A run is a `results.json` whose 'transfer' entry has role 'final' (written by train.finetune); CV trials, pre-
training runs and unfinished runs are skipped and counted. Its images per class (low-data fine-tuning,
`--images_per_class`) come from the entry, else from the run's config, else 0 = the whole training split.

Cells: top-1 in percent, "mean ± h (n seeds)", h the half-width of the 95 % confidence interval of the mean,
Student t with n - 1 degrees of freedom: h = t(0.975, n-1) * s / sqrt(n), s the sample standard deviation
(ddof 1); a single seed prints "mean (1 seed)". Paired differences: for every non-scratch row, top-1 minus the
scratch run of the same dataset, images per class and seed (low-data draws depend only on the seed, so both saw
the same images), in percentage points, "mean ± h (n pairs)" with the same interval over the pairs; seeds
without both runs are left out. The scratch baseline of a row is the scratch row of its architecture, else the
only scratch row (e.g. an AlexNet reference against a ResNet scratch run); without one the row has no
differences. Rows: scratch first, then the pre-training sources in name order, then the reference networks;
when the runs use more than one architecture, row labels carry it ("fractal_db/1k [resnet50]"). Columns:
datasets in name order, each with its regimes by images per class, the whole split last
("digits/32px (10/class)", "digits/32px (full)"). Two runs of the same source, dataset, images per class and
seed are a mistake the table refuses to average: the later path is skipped and reported.
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

from tfsynth.atomic import atomic_write, atomic_write_text
from tfsynth.markdown import table_lines
from tfsynth.stats import CONFIDENCE, mean_ci  # CONFIDENCE re-exported
from tfsynth.workdir import RESULTS_NAME

KIND_ORDER = {"scratch": 0, "backbone": 1, "reference": 2}


@dataclasses.dataclass(frozen=True)
class RunRecord:
    source: str
    source_kind: str
    arch: str
    downstream: str
    seed: int
    top1: float  # in [0, 1]
    path: str
    images_per_class: int = 0  # 0 = the whole training split
    train_examples: Optional[int] = None  # examples fine-tuned on (results.json data.train_examples), if known
    num_classes: Optional[int] = None


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
            if RESULTS_NAME in files:
                found.add(os.path.abspath(os.path.join(directory, RESULTS_NAME)))
    return sorted(found)


def _optional_int(value) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


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
        config = results.get("config") if isinstance(results.get("config"), dict) else {}
        data = results.get("data") if isinstance(results.get("data"), dict) else {}
        try:
            images_per_class = entry.get("images_per_class", config.get("images_per_class", 0))
            record = RunRecord(source=str(entry["source"]), source_kind=str(entry.get("source_kind", "backbone")),
                               arch=str(entry.get("arch", "")), downstream=str(entry["downstream"]),
                               seed=int(entry["seed"]), top1=float(top1), path=path,
                               images_per_class=int(images_per_class or 0),
                               train_examples=_optional_int(data.get("train_examples")),
                               num_classes=_optional_int(data.get("num_classes")))
            if record.images_per_class < 0:
                raise ValueError(f"images_per_class {record.images_per_class} < 0")
        except (KeyError, TypeError, ValueError) as e:
            skip(f"malformed transfer entry ({type(e).__name__}: {e})", path)
            continue
        key = (record.source, record.arch, record.downstream, record.images_per_class, record.seed)
        if key in seen:
            skip(f"duplicate seed (same source, arch, dataset, images per class and seed as {seen[key]})", path)
            continue
        seen[key] = path
        records.append(record)
    return Collected(records, skipped)


# --- statistics ---------------------------------------------------------------------------------------------------

def regime_label(images_per_class: int) -> str:
    return "full" if images_per_class == 0 else f"{images_per_class}/class"


def column_label(downstream: str, images_per_class: int) -> str:
    """'digits/32px (10/class)', 'digits/32px (full)'."""
    return f"{downstream} ({regime_label(images_per_class)})"


def _signed(value: float) -> str:
    return f"{value:+.1f}"


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
        return mean_ci(self.values)[1]

    @property
    def ci95(self) -> float:
        """Half-width of the 95 % confidence interval of the mean (NaN for one seed), in [0, 1] units."""
        return mean_ci(self.values)[2]

    def text(self) -> str:
        if self.n == 1:
            return f"{100 * self.mean:.1f} (1 seed)"
        return f"{100 * self.mean:.1f} ± {100 * self.ci95:.1f} ({self.n} seeds)"


@dataclasses.dataclass
class PairedCell:
    """Differences (source - scratch) of top-1 in [0, 1] for the seeds both ran, in seed order."""

    diffs: list[float]
    seeds: list[int]
    baseline: str  # the scratch row compared with

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return float(np.mean(self.diffs))

    @property
    def ci95(self) -> float:
        return mean_ci(self.diffs)[2]

    def text(self) -> str:
        if self.n == 1:
            return f"{_signed(100 * self.mean)} (1 pair)"
        return f"{_signed(100 * self.mean)} ± {100 * self.ci95:.1f} ({self.n} pairs)"


@dataclasses.dataclass
class TransferTable:
    rows: list[str]  # row labels
    columns: list[str]  # column labels, column_label(downstream, images_per_class)
    cells: dict[tuple[str, str], Cell]  # (row, column) -> cell
    column_keys: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)  # label -> (dataset, ipc)
    paired: dict[tuple[str, str], PairedCell] = dataclasses.field(default_factory=dict)  # non-scratch rows
    baselines: dict[str, str] = dataclasses.field(default_factory=dict)  # row -> its scratch row
    row_info: dict[str, dict] = dataclasses.field(default_factory=dict)  # row -> {source, source_kind, arch}
    full_per_class: dict[str, float] = dataclasses.field(default_factory=dict)  # dataset -> train images/class

    def cell(self, row: str, column: str) -> Optional[Cell]:
        return self.cells.get((row, column))

    def paired_cell(self, row: str, column: str) -> Optional[PairedCell]:
        return self.paired.get((row, column))


def build_table(records: Sequence[RunRecord]) -> TransferTable:
    archs = {r.arch for r in records}

    def label(r: RunRecord) -> str:
        return f"{r.source} [{r.arch}]" if len(archs) > 1 else r.source

    kinds: dict[str, tuple] = {}
    info: dict[str, dict] = {}
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    column_keys: dict[str, tuple[str, int]] = {}
    for r in records:
        row = label(r)
        column = column_label(r.downstream, r.images_per_class)
        column_keys[column] = (r.downstream, r.images_per_class)
        kinds.setdefault(row, (KIND_ORDER.get(r.source_kind, 1), row))
        info.setdefault(row, {"source": r.source, "source_kind": r.source_kind, "arch": r.arch})
        grouped.setdefault((row, column), []).append(r)
    rows = sorted(kinds, key=lambda row: kinds[row])
    columns = sorted(column_keys, key=lambda c: (column_keys[c][0], column_keys[c][1] == 0, column_keys[c][1]))
    cells, by_seed = {}, {}
    for key, members in grouped.items():
        members = sorted(members, key=lambda r: r.seed)
        cells[key] = Cell([m.top1 for m in members], [m.seed for m in members])
        by_seed[key] = {m.seed: m.top1 for m in members}

    scratch_rows = [row for row in rows if info[row]["source_kind"] == "scratch"]
    baselines = {}
    for row in rows:
        if info[row]["source_kind"] == "scratch":
            continue
        same_arch = [s for s in scratch_rows if info[s]["arch"] == info[row]["arch"]]
        if len(same_arch) == 1:
            baselines[row] = same_arch[0]
        elif not same_arch and len(scratch_rows) == 1:
            baselines[row] = scratch_rows[0]
    paired = {}
    for row, base in baselines.items():
        for column in columns:
            mine, theirs = by_seed.get((row, column), {}), by_seed.get((base, column), {})
            seeds = sorted(set(mine) & set(theirs))
            if seeds:
                paired[(row, column)] = PairedCell([mine[s] - theirs[s] for s in seeds], seeds, base)

    full_per_class = {}
    for downstream in sorted({r.downstream for r in records}):
        counts = [r.train_examples / r.num_classes for r in records if r.downstream == downstream
                  and r.images_per_class == 0 and r.train_examples and r.num_classes]
        if counts:
            full_per_class[downstream] = float(np.median(counts))
    return TransferTable(rows, columns, cells, column_keys, paired, baselines, info, full_per_class)


# --- outputs ------------------------------------------------------------------------------------------------------

def _markdown_grid(table: TransferTable, rows: Sequence[str], text, row_header: str) -> list[str]:
    return table_lines([row_header, *table.columns], ([row, *(text(row, c) for c in table.columns)] for row in rows))


def markdown(table: TransferTable, caption: str = "", paired_caption: str = "",
             row_header: str = "pre-training") -> str:
    """The top-1 table, then (when any row has a scratch baseline) the paired differences to scratch, introduced
    by `paired_caption` (default: a sentence saying what is subtracted)."""
    lines = ([caption, ""] if caption else []) + _markdown_grid(
        table, table.rows, lambda r, c: table.cell(r, c).text() if table.cell(r, c) else "–", row_header)
    paired_rows = [row for row in table.rows if row in table.baselines]
    if any(key[0] in paired_rows for key in table.paired):
        bases = sorted(set(table.baselines[r] for r in paired_rows))
        lines += ["", paired_caption or (
            f"Paired difference to {' / '.join(bases)} (percentage points): top-1 minus the scratch run of the same "
            "dataset, images per class and seed, mean ± 95 % CI (Student t) over the pairs."), ""]
        lines += _markdown_grid(table, paired_rows, lambda r, c: table.paired_cell(r, c).text()
                                if table.paired_cell(r, c) else "–", row_header)
    return "\n".join(lines) + "\n"


def _pct(value: float) -> str:
    return "" if value is None or math.isnan(value) else f"{100 * value:.4f}"


def csv_text(table: TransferTable) -> str:
    """One line per (row, column) cell: mean, std and 95 % CI half-width in percent, n, the seeds and their top-1
    values, and the paired difference to scratch (percentage points; empty for scratch rows and missing pairs)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["pretraining", "downstream", "images_per_class", "top1_mean", "top1_std", "top1_ci95",
                     "n_seeds", "seeds", "top1_per_seed", "diff_vs_scratch", "diff_ci95", "n_pairs"])
    for row in table.rows:
        for column in table.columns:
            cell = table.cell(row, column)
            if cell is None:
                continue
            pair = table.paired_cell(row, column)
            downstream, images_per_class = table.column_keys[column]
            writer.writerow([row, downstream, images_per_class, _pct(cell.mean), _pct(cell.std), _pct(cell.ci95),
                             cell.n, " ".join(str(s) for s in cell.seeds),
                             " ".join(f"{100 * v:.4f}" for v in cell.values),
                             _pct(pair.mean) if pair else "", _pct(pair.ci95) if pair else "",
                             pair.n if pair else ""])
    return out.getvalue()


def _none_if_nan(value: float) -> Optional[float]:
    return None if value is None or math.isnan(value) else float(value)


def summary(records: Sequence[RunRecord]) -> dict:
    """JSON-able statistics, every number in percent (differences in percentage points; undefined ones None):

        {'confidence': 0.95, 'unit': 'percent',
         'cells':  [{row, source, source_kind, arch, target, images_per_class, n, seeds, top1, mean, std, ci95,
                     ci_low, ci_high}],            # per (source, target, images_per_class); top1 per seed
         'paired': [{row, source, source_kind, arch, baseline, target, images_per_class, n_pairs, seeds, diffs,
                     mean, std, ci95, ci_low, ci_high}],   # source - scratch, same target, regime and seed
         'full_images_per_class': {target: median training images per class of the full-data runs}}"""
    table = build_table(records)
    cells, paired = [], []
    for row in table.rows:
        for column in table.columns:
            downstream, images_per_class = table.column_keys[column]
            base = {"row": row, **table.row_info[row], "target": downstream, "images_per_class": images_per_class}
            cell = table.cell(row, column)
            if cell is not None:
                mean, std, half = mean_ci([100 * v for v in cell.values])
                cells.append({**base, "n": cell.n, "seeds": list(cell.seeds),
                              "top1": [100 * v for v in cell.values], "mean": mean, "std": _none_if_nan(std),
                              "ci95": _none_if_nan(half), "ci_low": _none_if_nan(mean - half),
                              "ci_high": _none_if_nan(mean + half)})
            pair = table.paired_cell(row, column)
            if pair is not None:
                mean, std, half = mean_ci([100 * v for v in pair.diffs])
                paired.append({**base, "baseline": pair.baseline, "n_pairs": pair.n, "seeds": list(pair.seeds),
                               "diffs": [100 * v for v in pair.diffs], "mean": mean, "std": _none_if_nan(std),
                               "ci95": _none_if_nan(half), "ci_low": _none_if_nan(mean - half),
                               "ci_high": _none_if_nan(mean + half)})
    return {"confidence": CONFIDENCE, "unit": "percent", "cells": cells, "paired": paired,
            "full_images_per_class": dict(table.full_per_class)}


def _save_figure(fig, path: str) -> None:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


def _error(value: float) -> float:
    return 0.0 if value is None or math.isnan(value) else 100 * value


def bar_chart(table: TransferTable, path: str, title: str = "Transfer: top-1 accuracy (%)") -> None:
    """Grouped bars: one group per column (dataset, regime), one bar per pre-training source, 95 % CI as error
    bars."""
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
        errors = [_error(c.ci95) if c else 0.0 for c in cells]
        bars = ax.bar(x + (i - (n_rows - 1) / 2) * width, means, width, yerr=errors if any(errors) else None,
                      capsize=3, label=row)
        for bar, mean in zip(bars, means):
            if not np.isnan(mean):
                ax.annotate(f"{mean:.1f}", (bar.get_x() + bar.get_width() / 2, mean), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x, table.columns, fontsize=8)
    ax.set_ylabel("top-1 (%), 95 % CI")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)


def full_data_x(table: TransferTable, downstream: str) -> tuple[float, str]:
    """Where the whole-split regime sits on the images-per-class axis: the training split's images per class
    (from the runs' results.json), else twice the largest low-data count, labelled 'full'."""
    if downstream in table.full_per_class:
        per_class = table.full_per_class[downstream]
        return per_class, f"full ({per_class:.0f})"
    counts = [k for d, k in table.column_keys.values() if d == downstream and k > 0]
    return (2.0 * max(counts) if counts else 1.0), "full"


def accuracy_vs_images(table: TransferTable, path: str) -> None:
    """Top-1 against images per class (log axis), one line per source with 95 % CI error bars, one panel per
    dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({d for d, _ in table.column_keys.values()})
    many = len(table.rows) > 4  # legend beside the last panel, not over the lines
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.0 * len(datasets) + (2.5 if many else 0.0), 3.8),
                             dpi=120, squeeze=False)
    for ax, downstream in zip(axes[0], datasets):
        columns = [c for c in table.columns if table.column_keys[c][0] == downstream]
        full_x, full_label = full_data_x(table, downstream)
        xs = {c: (full_x if table.column_keys[c][1] == 0 else float(table.column_keys[c][1])) for c in columns}
        for i, row in enumerate(table.rows):
            present = [c for c in columns if table.cell(row, c)]
            if not present:
                continue
            present.sort(key=lambda c: xs[c])
            # small horizontal offsets (log axis) keep overlapping error bars apart
            shift = 1.0 + 0.02 * (i - (len(table.rows) - 1) / 2)
            ax.errorbar([xs[c] * shift for c in present], [100 * table.cell(row, c).mean for c in present],
                        yerr=[_error(table.cell(row, c).ci95) for c in present], marker="o", markersize=4,
                        capsize=3, label=row)
        ax.set_xscale("log")
        ticks = sorted(set(xs.values()))
        ax.set_xticks(ticks, [full_label if t == full_x and any(table.column_keys[c][1] == 0 for c in columns)
                              else f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training images per class (log)")
        ax.set_ylabel("top-1 (%), mean ± 95 % CI")
        ax.set_title(downstream)
        ax.grid(alpha=0.3)
    if many:
        axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    else:
        axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    _save_figure(fig, path)


def write_report(roots: Sequence[str], out_dir: str) -> dict:
    """Collects the runs, writes transfer.md, transfer.csv, transfer.png, accuracy_vs_images.png, summary.json
    (`summary`) and runs.json into `out_dir`."""
    collected = collect(roots)
    if not collected.records:
        reasons = "; ".join(f"{n} {r}" for r, n in collected.skipped_counts().items()) or "no results.json at all"
        raise ValueError(f"no finished fine-tuning runs under {', '.join(roots)} ({reasons})")
    table = build_table(collected.records)
    seeds = sorted({r.seed for r in collected.records})
    caption = (f"Top-1 accuracy (%) on each downstream dataset's test split after fine-tuning (on the whole "
               f"training split, or on N images per class drawn per seed), mean ± 95 % confidence interval over "
               f"seeds (Student t, n-1 dof) ({len(collected.records)} runs; seeds {', '.join(map(str, seeds))}).")
    md = markdown(table, caption)
    stats = summary(collected.records)
    os.makedirs(out_dir, exist_ok=True)
    paths = {name: os.path.join(out_dir, name) for name in ("transfer.md", "transfer.csv", "transfer.png",
                                                             "accuracy_vs_images.png", "summary.json",
                                                             "runs.json")}
    for name, text in (("transfer.md", md), ("transfer.csv", csv_text(table)),
                       ("summary.json", json.dumps(stats, indent=2)),
                       ("runs.json", json.dumps({"runs": [dataclasses.asdict(r) for r in collected.records],
                                                 "skipped": collected.skipped}, indent=2))):
        atomic_write_text(paths[name], text)
    bar_chart(table, paths["transfer.png"])
    accuracy_vs_images(table, paths["accuracy_vs_images.png"])
    return {"markdown": md, "table": table, "records": collected.records, "skipped": collected.skipped_counts(),
            "summary": stats, "paths": paths}
