"""Sparse convolution noise (Lewis 1989, in the form of Lagae et al. 2009), 2D and 3D, TF-free.

    n(x) = sum_i a_i h(|x - x_i|)

is a Poisson process of impulses x_i with random amplitudes a_i, convolved with a compact kernel h:
* Space is cut into cubic cells of side R, the kernel radius. A cell's impulses are a pure function of
  (seed, octave, cell): a 64-bit hash of those keys starts a counter-based splitmix64 stream whose first
  draw is the number of impulses (Poisson with mean m, by inversion of a CDF table) and whose k-th draw
  is impulse k: position uniform in the cell and amplitude uniform in [-1, 1] (zero mean, E[a^2] = 1/3),
  16 bits each (bin midpoints). Nothing depends on where the noise is queried, in which order, or by
  which process, so any subset of points evaluates to the same bits.
* h is the cubic kernel of Frisvad & Wyvill (GRAPHITE 2007): h(d) = (1 - d^2/R^2)^3 for d < R, else 0
  (R = 1/2 is their (1 - 4|v|^2)^3); it is C2 at the edge of its support.
* A query sums the 3^d cells around it, skipping those farther than R.
Poisson counts in independent cells make the impulses a homogeneous Poisson process of density
lambda = impulses_per_kernel / vol(B_R): the noise is stationary and isotropic with mean 0, variance
lambda E[a^2] int h^2 (Campbell's theorem, `theoretical_variance`) and power spectrum lambda E[a^2] |H(f)|^2,
with nothing at the cell frequencies (no lattice artefacts, unlike a fixed number of impulses per cell).

`impulses_per_kernel` (Lagae et al.'s parameter: the mean number of impulses within R of a point) sets
how Gaussian the noise looks: 16 is about the 15.7 of the reference GLSL shader (Frisvad's `scnoise`:
30 impulses per unit cell, kernel radius 1/2). Fractal sums: octave o is an independent process (o is
hashed in) at frequency lacunarity^o with weight gain^o.
"""
from __future__ import annotations

import dataclasses
import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_PRIME_X = np.uint64(0x8CB92BA72F3D8DD7)
_PRIME_Y = np.uint64(0xAB0E9789CE16B82F)
_PRIME_Z = np.uint64(0xD6E8FEB86659FD93)
_PRIME_OCTAVE = np.uint64(0xC2B2AE3D27D4EB4F)
_S11 = np.uint64(11)
_S27 = np.uint64(27)
_S30 = np.uint64(30)
_S31 = np.uint64(31)
_LOW16 = np.uint64(0xFFFF)
_INV2_16 = 1.0 / 65536.0
_INV2_53 = 1.0 / 9007199254740992.0
MAX_IMPULSES_PER_CELL = 64  # Poisson tail cut: P(count > 64) < 1e-24 for impulses_per_kernel <= 40
MAX_IMPULSES_PER_KERNEL = 40.0
_COUNT_UNROLL = 16


@numba.njit(cache=True, nogil=True)
def _mix64(z):
    # splitmix64 finaliser: a bijection of uint64 with full avalanche.
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True, nogil=True)
def _cell_state(seed, octave, ix, iy, iz):
    # Two's-complement views of the signed cell coordinates times odd 64-bit constants, xor the seed
    # (64 random bits), finalised: neighbouring cells get unrelated states.
    key = (np.uint64(ix) * _PRIME_X + np.uint64(iy) * _PRIME_Y + np.uint64(iz) * _PRIME_Z
           + np.uint64(octave) * _PRIME_OCTAVE)
    return _mix64(key ^ seed)


@numba.njit(cache=True, nogil=True)
def _cell_count(state, cdf):
    # Poisson count: inversion of the CDF table `poisson_cdf(m)` with the cell's first draw (53 bits).
    u = np.float64(_mix64(state) >> _S11) * _INV2_53
    k = 0
    for j in range(_COUNT_UNROLL):  # branch-free for the common counts
        k += u >= cdf[j]
    if k == _COUNT_UNROLL:
        while k < MAX_IMPULSES_PER_CELL and u >= cdf[k]:
            k += 1
    return k


@numba.njit(cache=True, nogil=True)
def _impulse_bits(state, k):
    # Draw k + 1 of the cell's counter-based stream: four 16-bit fields (x, y, z, amplitude).
    return _mix64(state + (np.uint64(k) + np.uint64(1)) * _GOLDEN)


@numba.njit(cache=True, nogil=True)
def _field(bits, shift):
    # A 16-bit field -> the midpoint of one of 65536 equal bins of [0, 1) (symmetric: E[2u - 1] = 0).
    return (np.float64((bits >> np.uint64(shift)) & _LOW16) + 0.5) * _INV2_16


@numba.njit(cache=True, nogil=True)
def _cell_impulses(seed, octave, ix, iy, iz, cdf, out):
    """Writes the cell's impulses to out[k] = (x, y, z, amplitude), positions in cell units; returns k."""
    state = _cell_state(seed, octave, ix, iy, iz)
    count = _cell_count(state, cdf)
    for k in range(count):
        bits = _impulse_bits(state, k)
        out[k, 0] = ix + _field(bits, 48)
        out[k, 1] = iy + _field(bits, 32)
        out[k, 2] = iz + _field(bits, 16)
        out[k, 3] = 2.0 * _field(bits, 0) - 1.0
    return count


@numba.njit(cache=True, nogil=True)
def _sc3_cells(seed, octave, qx, qy, qz, cdf):
    # q in cell units (cell side = kernel radius = 1 here).
    cx = math.floor(qx)
    cy = math.floor(qy)
    cz = math.floor(qz)
    fx = qx - cx
    fy = qy - cy
    fz = qz - cz
    icx = np.int64(cx)
    icy = np.int64(cy)
    icz = np.int64(cz)
    total = 0.0
    for dx in range(-1, 2):
        gx = -fx if dx < 0 else (fx - 1.0 if dx > 0 else 0.0)  # distance from q to the neighbour cell, per axis
        for dy in range(-1, 2):
            gy = -fy if dy < 0 else (fy - 1.0 if dy > 0 else 0.0)
            for dz in range(-1, 2):
                gz = -fz if dz < 0 else (fz - 1.0 if dz > 0 else 0.0)
                if gx * gx + gy * gy + gz * gz >= 1.0:
                    continue
                state = _cell_state(seed, octave, icx + dx, icy + dy, icz + dz)
                count = _cell_count(state, cdf)
                ox = dx - fx  # the cell's origin relative to q
                oy = dy - fy
                oz = dz - fz
                for k in range(count):
                    bits = _impulse_bits(state, k)
                    ex = ox + _field(bits, 48)
                    ey = oy + _field(bits, 32)
                    ez = oz + _field(bits, 16)
                    s = max(1.0 - (ex * ex + ey * ey + ez * ez), 0.0)
                    total += (2.0 * _field(bits, 0) - 1.0) * s * s * s
    return total


@numba.njit(cache=True, nogil=True)
def _sc2_cells(seed, octave, qx, qy, cdf):
    # The 2D process: cells (ix, iy, 0) of the same hash; the z fields are unused.
    cx = math.floor(qx)
    cy = math.floor(qy)
    fx = qx - cx
    fy = qy - cy
    icx = np.int64(cx)
    icy = np.int64(cy)
    total = 0.0
    for dx in range(-1, 2):
        gx = -fx if dx < 0 else (fx - 1.0 if dx > 0 else 0.0)
        for dy in range(-1, 2):
            gy = -fy if dy < 0 else (fy - 1.0 if dy > 0 else 0.0)
            if gx * gx + gy * gy >= 1.0:
                continue
            state = _cell_state(seed, octave, icx + dx, icy + dy, 0)
            count = _cell_count(state, cdf)
            ox = dx - fx
            oy = dy - fy
            for k in range(count):
                bits = _impulse_bits(state, k)
                ex = ox + _field(bits, 48)
                ey = oy + _field(bits, 32)
                s = max(1.0 - (ex * ex + ey * ey), 0.0)
                total += (2.0 * _field(bits, 0) - 1.0) * s * s * s
    return total


@numba.njit(cache=True, nogil=True)
def sc3_at(seed, x, y, z, cdf, radius, octaves, lacunarity, gain):
    """3D sparse convolution noise at one point: seed uint64, cdf = poisson_cdf(mean impulses per cell)."""
    total = 0.0
    scale = 1.0 / radius
    amplitude = 1.0
    for o in range(octaves):
        total += amplitude * _sc3_cells(seed, o, x * scale, y * scale, z * scale, cdf)
        scale *= lacunarity
        amplitude *= gain
    return total


@numba.njit(cache=True, nogil=True)
def sc2_at(seed, x, y, cdf, radius, octaves, lacunarity, gain):
    """2D sparse convolution noise at one point (impulses in the plane; not a slice of the 3D noise)."""
    total = 0.0
    scale = 1.0 / radius
    amplitude = 1.0
    for o in range(octaves):
        total += amplitude * _sc2_cells(seed, o, x * scale, y * scale, cdf)
        scale *= lacunarity
        amplitude *= gain
    return total


@numba.njit(cache=True, nogil=True)
def _sc3_many(seed, xs, ys, zs, cdf, radius, octaves, lacunarity, gain, out):
    for i in range(out.shape[0]):
        out[i] = sc3_at(seed, xs[i], ys[i], zs[i], cdf, radius, octaves, lacunarity, gain)


@numba.njit(cache=True, nogil=True)
def _sc2_many(seed, xs, ys, cdf, radius, octaves, lacunarity, gain, out):
    for i in range(out.shape[0]):
        out[i] = sc2_at(seed, xs[i], ys[i], cdf, radius, octaves, lacunarity, gain)


# ------------------------------------------------------------------------------------ 3D cell cache
# A renderer shading one surface pixel after the other queries neighbouring points that share most cells.
# A direct-mapped cache of decoded cells (for ONE seed: clear it with `clear_cell_cache` when the seed
# changes) skips the hashing and decoding on a hit. The values are the ones the direct path computes,
# added in the same order: bit-identical to `sc3_at`.

CACHE_SLOTS = 4096  # a power of two
CACHE_IMPULSES = 16  # a cell with more (P ~ 1e-6 at 16 impulses per kernel) is evaluated without the cache


def new_cell_cache(slots: int = CACHE_SLOTS):
    """(keys (slots, 3) int64, counts (slots,) int64, -1 = empty, data (slots, CACHE_IMPULSES, 4) float64)."""
    if slots < 1 or slots & (slots - 1):
        raise ValueError(f"cache slots must be a power of two, got {slots}")
    return np.zeros((slots, 3), np.int64), np.full(slots, -1, np.int64), np.zeros((slots, CACHE_IMPULSES, 4))


@numba.njit(cache=True, nogil=True)
def clear_cell_cache(counts):
    for i in range(counts.shape[0]):
        counts[i] = -1


@numba.njit(cache=True, nogil=True)
def sc3_at_cached(keys, counts, data, seed, x, y, z, cdf, radius):
    """`sc3_at(seed, x, y, z, cdf, radius, 1, ., .)` bit for bit through a cell cache holding cells of `seed` only."""
    scale = 1.0 / radius
    qx = x * scale
    qy = y * scale
    qz = z * scale
    cx = math.floor(qx)
    cy = math.floor(qy)
    cz = math.floor(qz)
    fx = qx - cx
    fy = qy - cy
    fz = qz - cz
    icx = np.int64(cx)
    icy = np.int64(cy)
    icz = np.int64(cz)
    mask = counts.shape[0] - 1
    total = 0.0
    for dx in range(-1, 2):
        gx = -fx if dx < 0 else (fx - 1.0 if dx > 0 else 0.0)
        for dy in range(-1, 2):
            gy = -fy if dy < 0 else (fy - 1.0 if dy > 0 else 0.0)
            for dz in range(-1, 2):
                gz = -fz if dz < 0 else (fz - 1.0 if dz > 0 else 0.0)
                if gx * gx + gy * gy + gz * gz >= 1.0:
                    continue
                ix = icx + dx
                iy = icy + dy
                iz = icz + dz
                ox = dx - fx
                oy = dy - fy
                oz = dz - fz
                slot = ((ix * 73856093) ^ (iy * 19349663) ^ (iz * 83492791)) & mask
                if counts[slot] < 0 or keys[slot, 0] != ix or keys[slot, 1] != iy or keys[slot, 2] != iz:
                    state = _cell_state(seed, 0, ix, iy, iz)
                    count = _cell_count(state, cdf)
                    if count > data.shape[1]:  # too many to cache: the direct path
                        for k in range(count):
                            bits = _impulse_bits(state, k)
                            ex = ox + _field(bits, 48)
                            ey = oy + _field(bits, 32)
                            ez = oz + _field(bits, 16)
                            s = max(1.0 - (ex * ex + ey * ey + ez * ez), 0.0)
                            total += (2.0 * _field(bits, 0) - 1.0) * s * s * s
                        continue
                    for k in range(count):
                        bits = _impulse_bits(state, k)
                        data[slot, k, 0] = _field(bits, 48)
                        data[slot, k, 1] = _field(bits, 32)
                        data[slot, k, 2] = _field(bits, 16)
                        data[slot, k, 3] = 2.0 * _field(bits, 0) - 1.0
                    keys[slot, 0] = ix
                    keys[slot, 1] = iy
                    keys[slot, 2] = iz
                    counts[slot] = count
                for k in range(counts[slot]):
                    ex = ox + data[slot, k, 0]
                    ey = oy + data[slot, k, 1]
                    ez = oz + data[slot, k, 2]
                    s = max(1.0 - (ex * ex + ey * ey + ez * ez), 0.0)
                    total += data[slot, k, 3] * s * s * s
    return 0.0 + total


# ------------------------------------------------------------------------------ 2D cell table
# A renderer evaluating 2D noise over a bounded region (an image background) decodes every cell of the
# region once instead of once per pixel and neighbour. Same floats, same order: bit-identical to `sc2_at`.

@numba.njit(cache=True, nogil=True)
def cell_table2(seed, cx0, cy0, ncx, ncy, cdf):
    """Decoded impulses of cells [cx0, cx0 + ncx) x [cy0, cy0 + ncy) (octave 0): (offsets, (n, 3) x/y/amplitude)."""
    cells = ncx * ncy
    offsets = np.zeros(cells + 1, np.int64)
    for a in range(ncx):
        for b in range(ncy):
            c = a * ncy + b
            offsets[c + 1] = offsets[c] + _cell_count(_cell_state(seed, 0, cx0 + a, cy0 + b, 0), cdf)
    data = np.empty((offsets[cells], 3), np.float64)
    for a in range(ncx):
        for b in range(ncy):
            c = a * ncy + b
            state = _cell_state(seed, 0, cx0 + a, cy0 + b, 0)
            for k in range(offsets[c + 1] - offsets[c]):
                bits = _impulse_bits(state, k)
                data[offsets[c] + k, 0] = _field(bits, 48)
                data[offsets[c] + k, 1] = _field(bits, 32)
                data[offsets[c] + k, 2] = 2.0 * _field(bits, 0) - 1.0
    return offsets, data


@numba.njit(cache=True, nogil=True)
def sc2_at_table(offsets, data, cx0, cy0, ncx, ncy, seed, x, y, cdf, radius):
    """`sc2_at(seed, x, y, cdf, radius, 1, ., .)` bit for bit, reading cells from a `cell_table2` when inside it."""
    scale = 1.0 / radius
    qx = x * scale
    qy = y * scale
    cx = math.floor(qx)
    cy = math.floor(qy)
    fx = qx - cx
    fy = qy - cy
    icx = np.int64(cx)
    icy = np.int64(cy)
    total = 0.0
    for dx in range(-1, 2):
        gx = -fx if dx < 0 else (fx - 1.0 if dx > 0 else 0.0)
        for dy in range(-1, 2):
            gy = -fy if dy < 0 else (fy - 1.0 if dy > 0 else 0.0)
            if gx * gx + gy * gy >= 1.0:
                continue
            ox = dx - fx
            oy = dy - fy
            a = icx + dx - cx0
            b = icy + dy - cy0
            if 0 <= a < ncx and 0 <= b < ncy:
                c = a * ncy + b
                for i in range(offsets[c], offsets[c + 1]):
                    ex = ox + data[i, 0]
                    ey = oy + data[i, 1]
                    s = max(1.0 - (ex * ex + ey * ey), 0.0)
                    total += data[i, 2] * s * s * s
            else:
                state = _cell_state(seed, 0, icx + dx, icy + dy, 0)
                for k in range(_cell_count(state, cdf)):
                    bits = _impulse_bits(state, k)
                    ex = ox + _field(bits, 48)
                    ey = oy + _field(bits, 32)
                    s = max(1.0 - (ex * ex + ey * ey), 0.0)
                    total += (2.0 * _field(bits, 0) - 1.0) * s * s * s
    return 0.0 + total


def cell_range(low: float, high: float, radius: float) -> tuple[int, int]:
    """(first cell, number of cells) whose neighbourhoods cover noise coordinates [low, high] on one axis."""
    first = math.floor(low / radius) - 1
    return first, math.floor(high / radius) + 2 - first


# ------------------------------------------------------------------------------------------------ theory

def unit_ball_volume(dim: int) -> float:
    return math.pi ** (dim / 2) / math.gamma(dim / 2 + 1)


def mean_impulses_per_cell(dim: int, impulses_per_kernel: float) -> float:
    """Poisson mean per cell of side R giving `impulses_per_kernel` impulses within R of a point on average."""
    return impulses_per_kernel / unit_ball_volume(dim)


def impulse_density(dim: int, impulses_per_kernel: float, radius: float) -> float:
    """lambda, impulses per unit volume (area in 2D)."""
    return impulses_per_kernel / (unit_ball_volume(dim) * radius ** dim)


def kernel(d, radius: float = 0.5) -> np.ndarray:
    """h(d) = (1 - d^2/R^2)^3 for d < R, else 0."""
    s = 1.0 - (np.asarray(d, dtype=np.float64) / radius) ** 2
    return np.where(s > 0.0, s, 0.0) ** 3


def kernel_energy(dim: int, radius: float = 0.5) -> float:
    """int h^2 over R^dim = |S^(dim-1)| R^dim int_0^1 u^(dim-1) (1 - u^2)^6 du = |S^(dim-1)| R^dim B(dim/2, 7) / 2."""
    sphere_area = 2.0 * math.pi ** (dim / 2) / math.gamma(dim / 2)
    beta = math.gamma(dim / 2) * math.gamma(7) / math.gamma(dim / 2 + 7)
    return sphere_area * radius ** dim * beta / 2.0


AMPLITUDE_SECOND_MOMENT = 1.0 / 3.0  # E[a^2], a ~ U[-1, 1] (the 16-bit bins change it by 1e-10)


def theoretical_variance(dim: int, impulses_per_kernel: float = 16.0, radius: float = 0.5) -> float:
    """Var n(x) = lambda E[a^2] int h^2 for one octave (the same for every radius)."""
    return impulse_density(dim, impulses_per_kernel, radius) * AMPLITUDE_SECOND_MOMENT * kernel_energy(dim, radius)


def poisson_cdf(mean: float) -> np.ndarray:
    """(MAX_IMPULSES_PER_CELL,) float64: P(count <= k), the table the kernels invert."""
    terms = np.empty(MAX_IMPULSES_PER_CELL, np.float64)
    term = math.exp(-mean)
    for k in range(MAX_IMPULSES_PER_CELL):
        terms[k] = term
        term *= mean / (k + 1)
    return np.cumsum(terms)


# ---------------------------------------------------------------------------------------------- public API

def seed64(seed) -> np.uint64:
    """Any `numpy.random.SeedSequence` entropy -> 64 random bits (seeds 0, 1, 2 give unrelated streams)."""
    return np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]


def cell_cdf(dim: int, impulses_per_kernel: float) -> np.ndarray:
    if dim not in (2, 3):
        raise ValueError(f"dimension must be 2 or 3, got {dim}")
    if not 0.0 < impulses_per_kernel <= MAX_IMPULSES_PER_KERNEL:
        raise ValueError(f"impulses_per_kernel must be in (0, {MAX_IMPULSES_PER_KERNEL:g}], got {impulses_per_kernel}")
    return poisson_cdf(mean_impulses_per_cell(dim, impulses_per_kernel))


def _check(radius: float, octaves: int):
    if not radius > 0.0:
        raise ValueError(f"kernel radius must be > 0, got {radius}")
    if int(octaves) < 1:
        raise ValueError(f"octaves must be >= 1, got {octaves}")


def _flat(*coords):
    arrays = np.broadcast_arrays(*[np.asarray(c, dtype=np.float64) for c in coords])
    return arrays[0].shape, [np.ascontiguousarray(a).reshape(-1) for a in arrays]


def sparse_convolution3(x, y, z, seed=0, impulses_per_kernel: float = 16.0, radius: float = 0.5, octaves: int = 1,
                        lacunarity: float = 2.0, gain: float = 0.5) -> np.ndarray:
    """3D sparse convolution noise at broadcast arrays x, y, z (raw sum; std: `theoretical_variance`)."""
    _check(radius, octaves)
    cdf = cell_cdf(3, impulses_per_kernel)
    shape, (xs, ys, zs) = _flat(x, y, z)
    out = np.empty(xs.shape[0], np.float64)
    _sc3_many(seed64(seed), xs, ys, zs, cdf, float(radius), int(octaves), float(lacunarity), float(gain), out)
    return out.reshape(shape)


def sparse_convolution2(x, y, seed=0, impulses_per_kernel: float = 16.0, radius: float = 0.5, octaves: int = 1,
                        lacunarity: float = 2.0, gain: float = 0.5) -> np.ndarray:
    """2D sparse convolution noise at broadcast arrays x, y."""
    _check(radius, octaves)
    cdf = cell_cdf(2, impulses_per_kernel)
    shape, (xs, ys) = _flat(x, y)
    out = np.empty(xs.shape[0], np.float64)
    _sc2_many(seed64(seed), xs, ys, cdf, float(radius), int(octaves), float(lacunarity), float(gain), out)
    return out.reshape(shape)


def cell_impulses(cell, seed=0, impulses_per_kernel: float = 16.0, radius: float = 0.5, octave: int = 0):
    """The impulses of one cell, [cell * R, (cell + 1) * R): (positions (k, dim) in noise units, amplitudes (k,))."""
    cell = [int(c) for c in cell]
    dim = len(cell)
    cdf = cell_cdf(dim, impulses_per_kernel)
    _check(radius, 1)
    buffer = np.empty((MAX_IMPULSES_PER_CELL, 4), np.float64)
    iz = cell[2] if dim == 3 else 0
    count = _cell_impulses(seed64(seed), np.int64(octave), np.int64(cell[0]), np.int64(cell[1]), np.int64(iz), cdf,
                           buffer)
    return buffer[:count, :dim] * radius, buffer[:count, 3].copy()


@dataclasses.dataclass(frozen=True)
class SparseConvolutionNoise:
    """Sparse convolution noise as a value: `SparseConvolutionNoise(seed=3)(points)`, points (..., 2) or (..., 3).

    normalized=True divides by the theoretical standard deviation of one octave (unit variance).
    """

    seed: int = 0
    impulses_per_kernel: float = 16.0
    radius: float = 0.5
    octaves: int = 1
    lacunarity: float = 2.0
    gain: float = 0.5
    normalized: bool = False

    def std(self, dim: int) -> float:
        return math.sqrt(theoretical_variance(dim, self.impulses_per_kernel, self.radius))

    def __call__(self, points) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim < 1 or points.shape[-1] not in (2, 3):
            raise ValueError(f"points must have shape (..., 2) or (..., 3), got {points.shape}")
        dim = points.shape[-1]
        args = dict(seed=self.seed, impulses_per_kernel=self.impulses_per_kernel, radius=self.radius,
                    octaves=self.octaves, lacunarity=self.lacunarity, gain=self.gain)
        values = (sparse_convolution2(points[..., 0], points[..., 1], **args) if dim == 2
                  else sparse_convolution3(points[..., 0], points[..., 1], points[..., 2], **args))
        return values / self.std(dim) if self.normalized else values
