"""Summary statistics reported over seeds (TF-free): mean with a Student-t 95 % confidence half-width."""
from __future__ import annotations

import math
from typing import Optional, Sequence

from scipy import stats as _stats


def mean_ci95(values: Sequence[float]) -> dict:
    """{'n', 'mean', 'std' (ddof 1), 'ci95'}: the half-width t(0.975, n-1) * std / sqrt(n) of the 95 % confidence
    interval of the mean; std and ci95 are None for fewer than two values, every field but n for none."""
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "ci95": None}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "ci95": None}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return {"n": n, "mean": mean, "std": std, "ci95": float(_stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)}


def format_ci(stat: Optional[dict], digits: int = 1) -> str:
    """'92.3 ± 1.2' (95 % CI half-width), '92.3 (n=1)' or '–'."""
    if not stat or not stat.get("n"):
        return "–"
    if stat["n"] < 2:
        return f"{stat['mean']:.{digits}f} (n=1)"
    return f"{stat['mean']:.{digits}f} ± {stat['ci95']:.{digits}f}"
