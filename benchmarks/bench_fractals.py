"""FractalDB generation speed in CPU-seconds, against a plain-Python baseline measured in the same run.

The baseline is the official algorithm written the straightforward way (a Python loop per chaos-game
point, a PIL paste per patch) -- the cost profile of the official code (0.85 images/s, 7.9 search
candidates/s on this machine class). Targets: >= 60 images per CPU-second per core at 362 px /
200k points / patch_gray including PNG encoding; search >= 10x the official 7.9 candidates/s.

    python -m benchmarks.bench_fractals [--quick]
"""
from __future__ import annotations

import argparse
import json
import random
import time

import numpy as np
from PIL import Image

from tfsynth.fractals import dataset, ifs
from tfsynth.fractals.search import SearchConfig, candidate_filling_rate, draw_candidate
from tfsynth.png import encode_png


def _cpu(fn):
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def _python_chaos(params, uniforms):
    cumulative = np.cumsum(params[:, 6]).tolist()
    rows = params.tolist()
    x = y = 0.0
    xs, ys = [x], [y]
    for r in uniforms[:-1].tolist():
        for j, bound in enumerate(cumulative):
            if r <= bound:
                a, b, c, d, e, f, _ = rows[j]
                x, y = x * a + y * b + e, x * c + y * d + f
                break
        xs.append(x)
        ys.append(y)
    return np.array(xs), np.array(ys)


def _python_patch_image(params, n_points, size):
    xs, ys = _python_chaos(params, np.random.RandomState(100).random_sample(n_points))
    px, py = ifs.fit_to_image(xs, ys, size, 6)
    image = Image.new("L", (size, size))
    rng = random.Random(0)
    for x, y in zip(px.tolist(), py.tolist()):
        bits = "{:09b}".format(rng.randrange(1, 512))
        patch = Image.fromarray(np.array([127 * int(b) for b in bits], np.uint8).reshape(3, 3))
        image.paste(patch, (x + 1, y + 1))
    return encode_png(np.array(image)[::-1, :, None])


def run(quick: bool = False) -> dict:
    config = dataset.FractalDBConfig(num_categories=2, weight_indices=(2, 12), patches_per_weight=10)
    categories = dataset.category_params(dataset.FractalDBConfig(num_categories=2, image_size=64, num_points=1000))
    list(dataset.render_unit(config, 0, categories[0], 2))  # JIT compile / load cache outside the timing

    units = [(0, 2)] if quick else [(0, 2), (1, 12)]
    n_images, seconds = _cpu(lambda: sum(1 for c, w in units for _ in dataset.render_unit(config, c, categories[c], w)))
    ours_render = n_images / seconds

    baseline_points = 20_000 if quick else 200_000
    _, base_seconds = _cpu(lambda: _python_patch_image(categories[0], baseline_points, 362))
    base_render = 1.0 / (base_seconds * 200_000 / baseline_points)  # per full 200k-point image

    search = SearchConfig()
    rs = np.random.RandomState(1)
    n_candidates = 100 if quick else 600
    drawn = [(draw_candidate(rs, search), rs.random_sample(search.n_points)) for _ in range(n_candidates)]
    candidate_filling_rate(*drawn[0], search)
    _, search_seconds = _cpu(lambda: [candidate_filling_rate(p, u, search) for p, u in drawn])
    # the draws are part of the search too: time them separately on a fresh stream
    _, draw_seconds = _cpu(lambda: [(draw_candidate(rs, search), rs.random_sample(search.n_points))
                                    for _ in range(n_candidates)])
    ours_search = n_candidates / (search_seconds + draw_seconds)
    _, base_candidate_seconds = _cpu(lambda: _python_chaos(*drawn[1]))
    base_search = 1.0 / base_candidate_seconds

    return {
        "benchmark": "fractals",
        "render_images_per_cpu_s": round(ours_render, 1),
        "render_baseline_python_images_per_cpu_s": round(base_render, 3),
        "render_speedup": round(ours_render / base_render, 1),
        "render_target_images_per_cpu_s": 60,
        "search_candidates_per_cpu_s": round(ours_search, 1),
        "search_baseline_python_candidates_per_cpu_s": round(base_search, 2),
        "search_speedup": round(ours_search / base_search, 1),
        "search_target_candidates_per_cpu_s": 79,
        "setting": "362 px, 200k points, patch_gray, PNG level 1; search 512 px, 100k points",
        "quick": quick,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
