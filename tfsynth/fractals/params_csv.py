"""FractalDB category parameter files in the official format: one CSV per category, rows a,b,c,d,e,f,p.

The official search writes them with `numpy.savetxt(..., delimiter=',')` ('%.18e'), which round-trips
float64 exactly; we write the same format so files are interchangeable.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tfsynth.fractals.ifs import validate_params


PROBABILITY_TOLERANCE = 1e-6  # |sum(p) - 1| accepted in a category file (the official files: ~1e-16)


def read_params_csv(path) -> np.ndarray:
    """Reads one category file; a malformed file raises ValueError naming the file and line. The probabilities p
    must sum to 1 within PROBABILITY_TOLERANCE: other sums are refused, naming the file and its lines."""
    path = Path(path)
    rows, line_numbers = [], []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            text = line.strip()
            if not text:
                continue
            fields = text.split(",")
            if len(fields) != 7:
                raise ValueError(f"{path}:{line_number}: expected 7 comma-separated values (a,b,c,d,e,f,p), "
                                 f"got {len(fields)}")
            try:
                values = [float(field) for field in fields]
            except ValueError as err:
                raise ValueError(f"{path}:{line_number}: not a number ({err})") from None
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{path}:{line_number}: non-finite value")
            if values[6] < 0:
                raise ValueError(f"{path}:{line_number}: negative probability {values[6]}")
            rows.append(values)
            line_numbers.append(line_number)
    if not rows:
        raise ValueError(f"{path}: no parameter rows")
    total = float(np.sum([row[6] for row in rows]))
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        # Refused, not normalised: the chaos game draws a map by comparing a uniform number with the cumulative p,
        # so p summing to 0.15 leaves 85% of the steps without a map (a different fractal from the file's).
        raise ValueError(f"{path}:{line_numbers[0]}-{line_numbers[-1]}: the map probabilities p (7th column) sum to "
                         f"{total:.6g}, not 1 (tolerance {PROBABILITY_TOLERANCE:g}); divide them by their sum")
    return validate_params(rows, source=str(path))


def write_params_csv(path, params: np.ndarray) -> None:
    """Writes atomically (temp file + rename) so a killed search never leaves a half-written category."""
    path = Path(path)
    params = validate_params(params, source=str(path))
    total = float(params[:, 6].sum())
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:  # a file that read_params_csv would refuse
        raise ValueError(f"{path}: the map probabilities p sum to {total:.6g}, not 1; divide them by their sum")
    tmp = path.with_name(path.name + ".tmp")
    np.savetxt(tmp, params, delimiter=",")
    os.replace(tmp, path)


def category_file_name(index: int) -> str:
    return "%05d.csv" % index


def read_params_dir(directory) -> list[np.ndarray]:
    """Reads every *.csv under `directory` (recursively, e.g. the official csv0/, csv1/ ... layout),
    ordered by file name as the official renderer does; returns one array per category."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory}: not a directory of FractalDB parameter CSVs")
    files = sorted(directory.rglob("*.csv"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"{directory}: contains no *.csv parameter files")
    return [read_params_csv(f) for f in files]


def write_params_dir(directory, categories) -> list[Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, params in enumerate(categories):
        path = directory / category_file_name(index)
        write_params_csv(path, params)
        paths.append(path)
    return paths
