"""FractalDB category search, draw-for-draw compatible with the official `ifs_search.py`.

Per candidate, from ONE legacy `RandomState(seed)` stream (the official code seeds the global
NumPy generator once and its chaos game draws from the same stream):
    n = randint(2, 8); per map: uniform(-1, 1, 6) -> a..f; p = |ad - bc| / sum|det|;
    chaos game from (0, 0) with random_sample(n_points); min-max fit into 512x512 with 6 px padding;
    accept when the filling rate >= threshold.
With seed 1 this reproduces the official FractalDB-1k categories (`csv_rate0.2_category1000`) in order.

Command line (TF-free):  python -m tfsynth.fractals.search --categories 1000 --out DIR
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from tfsynth.fractals.ifs import chaos_game, fitted_filling_rate


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    seed: int = 1
    threshold: float = 0.2
    n_points: int = 100_000
    image_size: int = 512
    pad: int = 6
    min_maps: int = 2
    max_maps_exclusive: int = 8  # randint's exclusive upper bound: 2..7 maps


@dataclasses.dataclass
class SearchStats:
    candidates: int = 0
    accepted: int = 0
    seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / max(self.candidates, 1)


def draw_candidate(rs: np.random.RandomState, config: SearchConfig) -> np.ndarray:
    n_maps = rs.randint(config.min_maps, config.max_maps_exclusive)
    params = np.zeros((n_maps, 7), dtype=np.float64)
    total = 0.0
    for i in range(n_maps):
        a, b, c, d, e, f = rs.uniform(-1.0, 1.0, 6)
        prob = abs(a * d - b * c)
        total += prob
        params[i] = a, b, c, d, e, f, prob
    params[:, 6] /= total
    return params


def candidate_filling_rate(params: np.ndarray, uniforms: np.ndarray, config: SearchConfig, buffers=None) -> float:
    """`buffers`: optional (xs, ys, pixels) scratch arrays from `scratch_buffers`, reused across candidates."""
    xs, ys, pixels = buffers if buffers is not None else (None, None, None)
    xs, ys = chaos_game(params, uniforms, out=None if xs is None else (xs, ys))
    return fitted_filling_rate(xs, ys, config.image_size, config.pad, scratch=pixels)


def scratch_buffers(config: SearchConfig):
    """Point and pixel arrays for `candidate_filling_rate` (fresh ones per candidate cost page faults)."""
    return (np.empty(config.n_points, np.float64), np.empty(config.n_points, np.float64),
            np.empty(config.image_size * config.image_size, np.bool_))


def search_categories(n_categories: int, config: SearchConfig = SearchConfig(), progress=None):
    """Returns (list of (n_maps, 7) arrays, SearchStats). `progress(accepted, candidates)` is optional."""
    rs = np.random.RandomState(config.seed)
    categories = []
    stats = SearchStats()
    start = time.process_time()
    buffers = scratch_buffers(config)
    while len(categories) < n_categories:
        params = draw_candidate(rs, config)
        uniforms = rs.random_sample(config.n_points)
        stats.candidates += 1
        if candidate_filling_rate(params, uniforms, config, buffers) >= config.threshold:
            categories.append(params)
            if progress is not None:
                progress(len(categories), stats.candidates)
    stats.accepted = len(categories)
    stats.seconds = time.process_time() - start
    return categories, stats


def main(argv=None) -> int:
    from tfsynth.fractals.params_csv import write_params_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--categories", type=int, default=1000)
    parser.add_argument("--out", required=True, help="directory for 00000.csv, 00001.csv, ...")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.2, help="minimum filling rate")
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args(argv)
    config = SearchConfig(seed=args.seed, threshold=args.rate, n_points=args.points)

    from tqdm import tqdm

    bar = tqdm(total=args.categories, unit="category")
    categories, stats = search_categories(args.categories, config, progress=lambda a, c: bar.update(1))
    bar.close()
    write_params_dir(args.out, categories)
    print(
        f"{stats.accepted} categories from {stats.candidates} candidates "
        f"({100 * stats.acceptance_rate:.2f}% accepted, "
        f"{stats.candidates / max(stats.seconds, 1e-9):.1f} candidates/CPU-s) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
