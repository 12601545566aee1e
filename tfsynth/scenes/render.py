"""Analytic ray-ellipsoid renderer for noise scenes: exact nearest surface per pixel, TF-free.

One ray per pixel centre (no anti-aliasing), so the image, the class label map and the instance map agree
pixel for pixel and the label map holds exact class values (the WebGL original blended object borders).

Camera: eye (0, 0, d), looking down -z, y up, vertical field of view `fov_y`; pixel (row i, column j) of an
S x S image has normalised device coordinates x = (2j + 1)/S - 1, y = 1 - (2i + 1)/S and ray direction
(x tan(fov_y/2), y tan(fov_y/2), -1).

Objects: ellipsoids |(p - c) / a| = 1 (a = scale * elongation axes). The nearest hit over all objects wins
(ties: the lower instance id). Shading of a hit p with unit normal n (the original fragment shader, Listing 1):
    I = 0.5 * noise(r * n) + 0.5
    colour = Le * (kd * max(n . w_i, 0) * I + ka + ks * max(n . w_h, 0)^s)
with Le = HSL(h, 1, 0.5), w_i = unit(light - p), w_o = unit(eye - p), w_h = unit(w_i + w_o).
Background: grey 0.5 * noise2d(b * (x, y)) + 0.5 at the pixel's device coordinates (b: background scale).
Colours are clipped to [0, 1] and quantised as floor(255 c + 0.5).

Speed without approximation: each object only tests the pixels of its projected bounding box; sparse
convolution noise reads the background's cells from a table decoded once per image and each object's
cells through a cache, both bit-identical to evaluating `tfsynth.noise` point by point.
"""
from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

from tfsynth.noise import perlin, sparse_convolution
from tfsynth.scenes.config import SceneConfig
from tfsynth.scenes.sampling import Scene

NOISE_PERLIN = 0
NOISE_SC = 1
_MIN_AXIS = 1e-9  # rho clamped to 0 or 1 flattens an ellipsoid to a disc; keep the algebra finite


@dataclasses.dataclass(frozen=True)
class Rendering:
    radiance: np.ndarray  # (S, S, 3) float64, before clipping
    label: np.ndarray  # (S, S) uint8: class of the visible object, 0 background
    instance: np.ndarray  # (S, S) uint8: 1 + index of the visible object, 0 background
    depth: np.ndarray  # (S, S) float64: ray parameter t of the visible hit (inf on background)

    @property
    def image(self) -> np.ndarray:
        return to_uint8(self.radiance)


def to_uint8(radiance: np.ndarray) -> np.ndarray:
    return np.floor(np.clip(radiance, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@numba.njit(cache=True, nogil=True)
def ray_ellipsoid(ex, ey, ez, dx, dy, dz, cx, cy, cz, ax, ay, az):
    """Nearest t > 0 with eye + t d on the ellipsoid, or inf (also when the eye is inside it)."""
    ox = (ex - cx) / ax
    oy = (ey - cy) / ay
    oz = (ez - cz) / az
    sx = dx / ax
    sy = dy / ay
    sz = dz / az
    a = sx * sx + sy * sy + sz * sz
    b = ox * sx + oy * sy + oz * sz
    c = ox * ox + oy * oy + oz * oz - 1.0
    if c <= 0.0 or b >= 0.0:  # eye inside, or the ellipsoid is behind the eye
        return np.inf
    disc = b * b - a * c
    if disc < 0.0:
        return np.inf
    return c / (-b + math.sqrt(disc))  # = (-b - sqrt(disc)) / a without cancellation


@numba.njit(cache=True, nogil=True)
def _pixel_range(lo, hi, size):
    # Pixel centres (2k + 1)/size - 1 inside [lo, hi] (device coordinates), widened by one pixel.
    first = int(math.floor(((lo + 1.0) * size - 1.0) * 0.5)) - 1
    last = int(math.ceil(((hi + 1.0) * size - 1.0) * 0.5)) + 1
    return max(first, 0), min(last, size - 1)


@numba.njit(cache=True, nogil=True)
def _visibility(size, tan_half, eye_z, centers, axes, depth, index, boxes):
    """Z-buffer of exact ray-ellipsoid hits; each object only visits pixels of its conservative screen box,
    which is written to boxes[k] = (first row, last row, first column, last column)."""
    inv = 1.0 / size
    for k in range(centers.shape[0]):
        cx, cy, cz = centers[k, 0], centers[k, 1], centers[k, 2]
        ax, ay, az = axes[k, 0], axes[k, 1], axes[k, 2]
        reach = max(ax, max(ay, az))
        near = eye_z - (cz + reach)
        if near > 0.0:  # project the bounding cube: its image contains the object's
            far = eye_z - (cz - reach)
            x_lo = min((cx - reach) / near, (cx - reach) / far) / tan_half
            x_hi = max((cx + reach) / near, (cx + reach) / far) / tan_half
            y_lo = min((cy - reach) / near, (cy - reach) / far) / tan_half
            y_hi = max((cy + reach) / near, (cy + reach) / far) / tan_half
            j0, j1 = _pixel_range(x_lo, x_hi, size)
            i0, i1 = _pixel_range(-y_hi, -y_lo, size)  # rows run along -y
        else:
            j0, j1, i0, i1 = 0, size - 1, 0, size - 1
        boxes[k, 0] = i0
        boxes[k, 1] = i1
        boxes[k, 2] = j0
        boxes[k, 3] = j1
        for i in range(i0, i1 + 1):
            dy = (1.0 - (2 * i + 1) * inv) * tan_half
            for j in range(j0, j1 + 1):
                dx = ((2 * j + 1) * inv - 1.0) * tan_half
                t = ray_ellipsoid(0.0, 0.0, eye_z, dx, dy, -1.0, cx, cy, cz, ax, ay, az)
                if t < depth[i, j]:
                    depth[i, j] = t
                    index[i, j] = k


@numba.njit(cache=True, nogil=True)
def _normalize(x, y, z):
    norm = math.sqrt(x * x + y * y + z * z)
    return x / norm, y / norm, z / norm


@numba.njit(cache=True, nogil=True)
def phong(px, py, pz, nx, ny, nz, eye_z, lx, ly, lz, noise_intensity, kd, ks, shininess, ambient):
    """Scalar factor of Le at hit p with unit normal n: kd max(n.w_i, 0) I + ka + ks max(n.w_h, 0)^s."""
    wix, wiy, wiz = _normalize(lx - px, ly - py, lz - pz)
    wox, woy, woz = _normalize(-px, -py, eye_z - pz)
    whx, why, whz = _normalize(wix + wox, wiy + woy, wiz + woz)
    diffuse = max(nx * wix + ny * wiy + nz * wiz, 0.0)
    specular = max(nx * whx + ny * why + nz * whz, 0.0) ** shininess
    return kd * diffuse * noise_intensity + ambient + ks * specular


@numba.njit(cache=True, nogil=True)
def _shade_background(size, index, noise_kind, table, seed, cdf2, sc_radius, sc_gain2, background_scale,
                      bg_offsets, bg_data, bg_cells, out):
    inv = 1.0 / size
    for i in range(size):
        y = 1.0 - (2 * i + 1) * inv
        for j in range(size):
            if index[i, j] >= 0:
                continue
            x = (2 * j + 1) * inv - 1.0
            u = background_scale * x
            v = background_scale * y
            if noise_kind == NOISE_PERLIN:
                value = perlin.perlin2_at(table, u, v)
            else:
                value = sc_gain2 * sparse_convolution.sc2_at_table(
                    bg_offsets, bg_data, bg_cells[0], bg_cells[1], bg_cells[2], bg_cells[3], seed, u, v, cdf2,
                    sc_radius)
            grey = 0.5 * value + 0.5
            out[i, j, 0] = grey
            out[i, j, 1] = grey
            out[i, j, 2] = grey


@numba.njit(cache=True, nogil=True)
def _shade_objects(size, tan_half, eye_z, light, ambient, centers, axes, colors, kd, ks, shininess, noise_scales,
                   depth, index, boxes, noise_kind, tables, seeds, cdf3, sc_radius, sc_gain3, cache_keys,
                   cache_counts, cache_data, out):
    # Object by object, in raster order inside its screen box: neighbouring pixels share noise cells, and the
    # SC cell cache holds one object's (one seed's) cells at a time.
    inv = 1.0 / size
    lx, ly, lz = light[0], light[1], light[2]
    for k in range(centers.shape[0]):
        if noise_kind != NOISE_PERLIN:
            sparse_convolution.clear_cell_cache(cache_counts)
        cx, cy, cz = centers[k, 0], centers[k, 1], centers[k, 2]
        ax, ay, az = axes[k, 0], axes[k, 1], axes[k, 2]
        r = noise_scales[k]
        for i in range(boxes[k, 0], boxes[k, 1] + 1):
            y = 1.0 - (2 * i + 1) * inv
            for j in range(boxes[k, 2], boxes[k, 3] + 1):
                if index[i, j] != k:
                    continue
                x = (2 * j + 1) * inv - 1.0
                t = depth[i, j]
                px = t * x * tan_half
                py = t * y * tan_half
                pz = eye_z - t
                nx, ny, nz = _normalize((px - cx) / (ax * ax), (py - cy) / (ay * ay), (pz - cz) / (az * az))
                if noise_kind == NOISE_PERLIN:
                    value = perlin.perlin3_at(tables[k + 1], r * nx, r * ny, r * nz)
                else:
                    value = sc_gain3 * sparse_convolution.sc3_at_cached(
                        cache_keys, cache_counts, cache_data, seeds[k + 1], r * nx, r * ny, r * nz, cdf3, sc_radius)
                factor = phong(px, py, pz, nx, ny, nz, eye_z, lx, ly, lz, 0.5 * value + 0.5, kd[k], ks[k],
                               shininess[k], ambient)
                out[i, j, 0] = colors[k, 0] * factor
                out[i, j, 1] = colors[k, 1] * factor
                out[i, j, 2] = colors[k, 2] * factor


def noise_inputs(scene: Scene, config: SceneConfig):
    """(tables (N+1, 512) int64, seeds (N+1,) uint64): the noise of the background (row 0) and object i (row i+1).

    Perlin: `permutation_table(noise_seed)`; SC: `seed64(noise_seed)` -- i.e. object i is textured with
    `PerlinNoise(seed=s)` / `SparseConvolutionNoise(seed=s)`, s = int(scene.noise_seeds[i + 1]).
    reference_noise: Perlin's reference table / SC seed 0 for all.
    """
    count = scene.num_objects + 1
    if config.noise == "perlin":
        if config.reference_noise:
            tables = np.tile(perlin.REFERENCE_TABLE, (count, 1))
        else:
            tables = np.stack([perlin.permutation_table(int(s)) for s in scene.noise_seeds])
        return tables, np.zeros(count, np.uint64)
    if config.reference_noise:
        seeds = np.full(count, sparse_convolution.seed64(0), np.uint64)
    else:
        seeds = np.array([sparse_convolution.seed64(int(s)) for s in scene.noise_seeds], np.uint64)
    return np.zeros((count, 512), np.int64), seeds


def sc_gains(config: SceneConfig) -> tuple[float, float]:
    """Factors that give the 3D (objects) and 2D (background) SC noise the standard deviation config.sc_std."""
    gain3 = config.sc_std / math.sqrt(sparse_convolution.theoretical_variance(3, config.sc_impulses_per_kernel,
                                                                             config.sc_radius))
    gain2 = config.sc_std / math.sqrt(sparse_convolution.theoretical_variance(2, config.sc_impulses_per_kernel,
                                                                             config.sc_radius))
    return gain3, gain2


def render_scene(scene: Scene, config: SceneConfig) -> Rendering:
    size = config.image_size
    tan_half = math.tan(math.radians(config.fov_y_degrees) / 2.0)
    eye_z = float(config.camera_distance)
    axes = np.maximum(scene.semi_axes, _MIN_AXIS)
    centers = np.ascontiguousarray(scene.centers, dtype=np.float64)
    depth = np.full((size, size), np.inf)
    index = np.full((size, size), -1, np.int64)
    boxes = np.zeros((scene.num_objects, 4), np.int64)
    _visibility(size, tan_half, eye_z, centers, axes, depth, index, boxes)

    tables, seeds = noise_inputs(scene, config)
    gain3, gain2 = sc_gains(config)
    cdf3 = sparse_convolution.cell_cdf(3, config.sc_impulses_per_kernel)
    cdf2 = sparse_convolution.cell_cdf(2, config.sc_impulses_per_kernel)
    kind = NOISE_PERLIN if config.noise == "perlin" else NOISE_SC
    if kind == NOISE_SC:  # decode the background's cells once (bit-identical to per-pixel evaluation)
        reach = float(scene.background_scale) * (1.0 - 1.0 / size)
        cx0, ncx = sparse_convolution.cell_range(-reach, reach, config.sc_radius)
        bg_cells = np.array([cx0, cx0, ncx, ncx], np.int64)
        bg_offsets, bg_data = sparse_convolution.cell_table2(seeds[0], cx0, cx0, ncx, ncx, cdf2)
        cache = sparse_convolution.new_cell_cache()
    else:
        bg_cells, bg_offsets, bg_data = np.zeros(4, np.int64), np.zeros(1, np.int64), np.zeros((0, 3))
        cache = sparse_convolution.new_cell_cache(1)
    radiance = np.empty((size, size, 3), np.float64)
    _shade_background(size, index, kind, tables[0], seeds[0], cdf2, float(config.sc_radius), gain2,
                      float(scene.background_scale), bg_offsets, bg_data, bg_cells, radiance)
    _shade_objects(size, tan_half, eye_z, np.asarray(config.light_position, np.float64), float(config.ambient),
                   centers, axes, np.ascontiguousarray(scene.colors), scene.kd, scene.ks, scene.shininess,
                   scene.noise_scales, depth, index, boxes, kind, tables, seeds, cdf3, float(config.sc_radius), gain3,
                   *cache, radiance)

    label_of = np.concatenate([[0], scene.labels]).astype(np.uint8)
    label = label_of[index + 1]
    instance = (index + 1).astype(np.uint8)
    return Rendering(radiance, label, instance, depth)
