"""Noise-scene generation speed in CPU-seconds, against a per-pixel Python baseline measured in the same run.

Ours: `tfsynth.scenes.dataset.encoded_example` at 512 x 512 (sampling, exact ray-ellipsoid visibility, Phong
shading with per-pixel Perlin / sparse convolution noise, label and instance maps, three PNG encodings) for the
first scenes of the `perlin` and `sc` configs. Target: >= 5 image + label pairs per CPU-second (the WebGL
original needed ~5 hours for 2 x 10,000 pairs including the label-map renders).

Baseline: the same scenes rendered the straightforward way -- a Python loop over pixels, each testing every
object and evaluating the noise with scalar Python code (Perlin's reference transcribed, the same sparse
convolution hash) -- on a 32 x 32 crop that samples the 512 x 512 image every 16th pixel (a contiguous crop's
cost depends on what it happens to show), extrapolated to the full image, plus the same PNG encoding. The
baseline's pixels are checked against ours.

    python -m benchmarks.bench_noise_scenes [--quick]
"""
from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np

from tfsynth.noise import sparse_convolution as sc
from tfsynth.scenes import dataset, render
from tfsynth.scenes.config import SceneConfig
from tfsynth.scenes.sampling import sample_scene

_M64 = (1 << 64) - 1


def _cpu(fn):
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


# --------------------------------------------------------------------------------- straightforward scalar noise

def _fade(t):
    return t * t * t * (t * (t * 6 - 15) + 10)


def _lerp(t, a, b):
    return a + t * (b - a)


def _grad(h, x, y, z):
    h &= 15
    u = x if h < 8 else y
    v = y if h < 4 else (x if h in (12, 14) else z)
    return (u if h & 1 == 0 else -u) + (v if h & 2 == 0 else -v)


def _perlin(p, x, y, z):
    X, Y, Z = math.floor(x) & 255, math.floor(y) & 255, math.floor(z) & 255
    x, y, z = x - math.floor(x), y - math.floor(y), z - math.floor(z)
    u, v, w = _fade(x), _fade(y), _fade(z)
    A, B = p[X] + Y, p[X + 1] + Y
    AA, AB, BA, BB = p[A] + Z, p[A + 1] + Z, p[B] + Z, p[B + 1] + Z
    return _lerp(w, _lerp(v, _lerp(u, _grad(p[AA], x, y, z), _grad(p[BA], x - 1, y, z)),
                          _lerp(u, _grad(p[AB], x, y - 1, z), _grad(p[BB], x - 1, y - 1, z))),
                 _lerp(v, _lerp(u, _grad(p[AA + 1], x, y, z - 1), _grad(p[BA + 1], x - 1, y, z - 1)),
                       _lerp(u, _grad(p[AB + 1], x, y - 1, z - 1), _grad(p[BB + 1], x - 1, y - 1, z - 1))))


def _mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _sparse_convolution(seed, q, cdf, radius):
    """One octave at point q (2 or 3 coordinates): the cells around q, their impulses, the cubic kernel."""
    q = [c / radius for c in q]
    cell = [math.floor(c) for c in q]
    total = 0.0
    for offset in np.ndindex(*([3] * len(q))):
        neighbour = [c + o - 1 for c, o in zip(cell, offset)]
        coords = neighbour + [0] * (3 - len(q))
        key = (coords[0] * 0x8CB92BA72F3D8DD7 + coords[1] * 0xAB0E9789CE16B82F + coords[2] * 0xD6E8FEB86659FD93) & _M64
        state = _mix(key ^ seed)
        u = (_mix(state) >> 11) * 2.0 ** -53
        count = 0
        while count < len(cdf) and u >= cdf[count]:
            count += 1
        for k in range(count):
            bits = _mix((state + (k + 1) * 0x9E3779B97F4A7C15) & _M64)
            fields = [(((bits >> shift) & 0xFFFF) + 0.5) / 65536.0 for shift in (48, 32, 16, 0)]
            d2 = sum((n + f - c) ** 2 for n, f, c in zip(neighbour, fields, q))
            if d2 < 1.0:
                total += (2.0 * fields[3] - 1.0) * (1.0 - d2) ** 3
    return total


# ------------------------------------------------------------------------------------ straightforward renderer

def _python_render(scene, config, rows, cols):
    """Radiance at the given pixels of the full-size image, one pixel at a time."""
    size, eye_z = config.image_size, config.camera_distance
    tan_half = math.tan(math.radians(config.fov_y_degrees) / 2)
    tables, seeds = render.noise_inputs(scene, config)
    tables = tables.tolist()
    seeds = [int(s) for s in seeds]
    gain3, gain2 = render.sc_gains(config)
    cdf3 = sc.cell_cdf(3, config.sc_impulses_per_kernel).tolist()
    cdf2 = sc.cell_cdf(2, config.sc_impulses_per_kernel).tolist()
    objects = list(zip(scene.centers.tolist(), np.maximum(scene.semi_axes, 1e-9).tolist(), scene.colors.tolist(),
                       scene.kd.tolist(), scene.ks.tolist(), scene.shininess.tolist(), scene.noise_scales.tolist()))
    light = config.light_position
    out = np.empty((len(rows), 3))
    for n, (i, j) in enumerate(zip(rows, cols)):
        x, y = (2 * j + 1) / size - 1, 1 - (2 * i + 1) / size
        ray = (x * tan_half, y * tan_half, -1.0)
        best, best_t = -1, math.inf
        for k, (center, axes, *_) in enumerate(objects):
            o = [(e - c) / a for e, c, a in zip((0.0, 0.0, eye_z), center, axes)]
            d = [r / a for r, a in zip(ray, axes)]
            qa, qb, qc = sum(v * v for v in d), sum(u * v for u, v in zip(o, d)), sum(v * v for v in o) - 1
            disc = qb * qb - qa * qc
            if qc > 0 and qb < 0 and disc >= 0:
                t = qc / (-qb + math.sqrt(disc))
                if t < best_t:
                    best, best_t = k, t
        if best < 0:
            b = scene.background_scale
            value = (_perlin(tables[0], b * x, b * y, 0.0) if config.noise == "perlin"
                     else gain2 * _sparse_convolution(seeds[0], (b * x, b * y), cdf2, config.sc_radius))
            out[n] = 0.5 * value + 0.5
            continue
        center, axes, color, kd, ks, shininess, r = objects[best]
        p = [best_t * ray[0], best_t * ray[1], eye_z - best_t]
        normal = [(pc - c) / (a * a) for pc, c, a in zip(p, center, axes)]
        length = math.sqrt(sum(v * v for v in normal))
        normal = [v / length for v in normal]
        q = [r * v for v in normal]
        value = (_perlin(tables[best + 1], *q) if config.noise == "perlin"
                 else gain3 * _sparse_convolution(seeds[best + 1], q, cdf3, config.sc_radius))
        unit = lambda v: [c / math.sqrt(sum(w * w for w in v)) for c in v]  # noqa: E731
        w_i = unit([lc - pc for lc, pc in zip(light, p)])
        w_o = unit([-p[0], -p[1], eye_z - p[2]])
        w_h = unit([a + b for a, b in zip(w_i, w_o)])
        diffuse = max(sum(a * b for a, b in zip(normal, w_i)), 0.0)
        specular = max(sum(a * b for a, b in zip(normal, w_h)), 0.0) ** shininess
        factor = kd * diffuse * (0.5 * value + 0.5) + config.ambient + ks * specular
        out[n] = [c * factor for c in color]
    return out


def _bench_config(noise: str, n_scenes: int, n_baseline: int, stride: int) -> dict:
    config = SceneConfig(noise=noise)
    dataset.encoded_example(config, 0)  # JIT compile / load the numba cache outside the timing
    _, seconds = _cpu(lambda: [dataset.encoded_example(config, i) for i in range(n_scenes)])
    examples, render_seconds = _cpu(lambda: [dataset.example(config, i) for i in range(n_scenes)])
    _, encode_seconds = _cpu(lambda: [dataset.encode_png(ex[k])
                                      for ex in examples for k in ("image", "label", "instance")])
    foreground = float(np.mean([np.count_nonzero(ex["instance"]) / ex["instance"].size for ex in examples]))

    size = config.image_size
    grid = np.arange(stride // 2, size, stride)
    rows, cols = [a.ravel() for a in np.meshgrid(grid, grid, indexing="ij")]
    pixel_seconds, worst = 0.0, 0.0
    for index in range(n_baseline):
        scene = sample_scene(config, index)
        radiance, took = _cpu(lambda: _python_render(scene, config, rows, cols))
        pixel_seconds += took
        ours = render.render_scene(scene, config).radiance[rows, cols]
        worst = max(worst, float(np.abs(radiance - ours).max()))
    per_pixel = pixel_seconds / (n_baseline * rows.size)
    baseline_pair_seconds = per_pixel * size * size + encode_seconds / n_scenes
    ours_rate = n_scenes / seconds
    return {
        f"{noise}_pairs_per_cpu_s": round(ours_rate, 2),
        f"{noise}_render_ms": round(1000 * (render_seconds) / n_scenes, 1),
        f"{noise}_png_encode_ms": round(1000 * encode_seconds / n_scenes, 1),
        f"{noise}_foreground_fraction": round(foreground, 3),
        f"{noise}_baseline_python_pairs_per_cpu_s": round(1.0 / baseline_pair_seconds, 4),
        f"{noise}_baseline_python_us_per_pixel": round(1e6 * per_pixel, 1),
        f"{noise}_speedup": round(ours_rate * baseline_pair_seconds, 1),
        f"{noise}_baseline_max_abs_difference": worst,
    }


def run(quick: bool = False) -> dict:
    n_scenes, n_baseline, stride = (6, 1, 32) if quick else (40, 4, 16)
    result = {"benchmark": "noise_scenes", "image_size": 512, "target_pairs_per_cpu_s": 5}
    for noise in ("perlin", "sc"):
        result.update(_bench_config(noise, n_scenes, n_baseline, stride))
    result["baseline_matches_renderer"] = max(result["perlin_baseline_max_abs_difference"],
                                              result["sc_baseline_max_abs_difference"]) < 1e-9
    result["setting"] = (f"first {n_scenes} scenes of the perlin / sc configs at 512 px incl. 3 PNGs (level 1); "
                         f"baseline: {512 // stride}x{512 // stride} pixels (every {stride}th) "
                         f"of {n_baseline} scene(s), per-pixel Python")
    result["quick"] = quick
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args().quick), indent=2))
