"""Summary statistics reported over seeds (TF-free): mean with a Student-t confidence half-width."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

CONFIDENCE = 0.95


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, sample std (ddof 1), half-width of the `confidence` interval of the mean: Student t, n-1 dof).

    std and half-width are NaN for fewer than two values."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("no values")
    mean = float(values.mean())
    if values.size < 2:
        return mean, math.nan, math.nan
    from scipy import stats

    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1) * std / math.sqrt(values.size))
    return mean, std, half


def mean_ci95(values: Sequence[float]) -> dict:
    """`mean_ci` at 95 % as a JSON-able dict {'n', 'mean', 'std', 'ci95'}; None where undefined (None values are
    dropped)."""
    values = [float(v) for v in values if v is not None]
    if not values:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean, std, half = mean_ci(values)
    return {"n": len(values), "mean": mean, "std": None if math.isnan(std) else std,
            "ci95": None if math.isnan(half) else half}


def format_ci(stat: Optional[dict], digits: int = 1) -> str:
    """'92.3 ± 1.2' (95 % CI half-width), '92.3 (n=1)' or '–'."""
    if not stat or not stat.get("n"):
        return "–"
    if stat["n"] < 2:
        return f"{stat['mean']:.{digits}f} (n=1)"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"
