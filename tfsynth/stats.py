"""Summary statistics reported over seeds (TF-free): mean with a Student-t confidence half-width."""
from __future__ import annotations

import math
from typing import Sequence

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
