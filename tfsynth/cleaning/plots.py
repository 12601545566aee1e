"""Car-to-frame ratio histograms, real vs synthetic (the seed's Figures 3.10 and 3.14). Matplotlib, Agg, TF-free."""
from __future__ import annotations

import math
from typing import Mapping, Optional, Sequence

import numpy as np


def plot_ratio_distributions(series: Mapping[str, Sequence[float]], path: str, title: str,
                             normal: Optional[tuple[float, float]] = None, bins: int = 60,
                             clip_percentile: float = 99.0) -> str:
    """Density histograms of each named series of ratios in one figure, written to `path` (PNG).

    normal: (mean, std) of the target (synthetic) Normal, drawn as a curve. The x axis ends at the
    `clip_percentile` of the pooled ratios (the real ratios have a long tail); ratios beyond it are counted
    in the legend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clean = {name: np.asarray([r for r in values if math.isfinite(r)], dtype=np.float64)
             for name, values in series.items()}
    pooled = np.concatenate([v for v in clean.values() if v.size] or [np.zeros(1)])
    upper = float(np.percentile(pooled, clip_percentile)) if pooled.size else 1.0
    if normal is not None:
        upper = max(upper, normal[0] + 4 * normal[1])
    upper = upper if upper > 0 else 1.0
    edges = np.linspace(0.0, upper, bins + 1)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in clean.items():
        if not values.size:
            continue
        beyond = int(np.sum(values > upper))
        label = f"{name} (n={values.size}" + (f", {beyond} > {upper:.2f}" if beyond else "") + ")"
        ax.hist(np.clip(values, 0, upper), bins=edges, density=True, alpha=0.5, label=label)
    if normal is not None and normal[1] > 0:
        x = np.linspace(0.0, upper, 400)
        pdf = np.exp(-0.5 * ((x - normal[0]) / normal[1]) ** 2) / (normal[1] * math.sqrt(2 * math.pi))
        ax.plot(x, pdf, "k--", label=f"target Normal ({normal[0]:.3f}, {normal[1]:.3f})")
    ax.set_xlabel("car-to-frame ratio (alpha > 0 pixels / alpha = 0 pixels)")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
