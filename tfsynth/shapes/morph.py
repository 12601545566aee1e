"""Gaussian-process morphable-model deformations of a mesh (Lüthi et al. 2017; Sutherland et al. 2021). TF-free.

A deformation model over the vertices x_i of a reference mesh is a zero-mean GP u(x) with a matrix kernel
k(x, y) I_3 (coordinates independent), k a sum of Gaussian terms  s * exp(-|x - y|^2 / sigma^2)  (scalismo's
`GaussianKernel(sigma) * s`). Sutherland et al.'s single-scan 3DMM uses, in millimetres for a face:

    shape            7 G(100) + 5 G(50) + 3 G(10)                      (s in mm^2, sigma in mm)
    albedo, colour   0.015 G(0.15)   over the reference albedo (RGB in [0, 1])
    albedo, space    0.02 G(500) + 0.01 G(20) + 0.01 G(2)              (sigma in mm)

and a sample's albedo change is the average of a colour-space and a physical-space sample. Meshes here have
bounding radius 1, so lengths are rescaled by 1 / `reference_radius_mm` (a face is ~100 mm in radius) and shape
variances by its square. `shape_strength` multiplies the shape deformation's standard deviation ("Beyond
Flatland" §3.2 uses a stronger shape variation than the reference; the default is 2.5x).

Low rank: each term is approximated by Nyström (Williams & Seeger 2001) on m landmark vertices chosen by farthest
point sampling: K ~ K_nm K_mm^-1 K_mn = Phi Phi^T with Phi = K_nm U L^-1/2; m doubles until Phi captures at least
`variance_target` of the term's variance (trace(Phi Phi^T) / trace(K)). A term whose length scale is below the
mesh resolution (neighbouring vertices correlate less than `nugget_correlation`) is sampled as independent
per-vertex noise of the same variance (its exact marginal; the neglected correlations are below that bound).
A term so short-scale that its kernel matrix, with entries below `sparse_tolerance` of its variance dropped, has
at most `sparse_neighbors` non-zeros per row on average is instead factored exactly: the sparse matrix (plus a
jitter of `sparse_tolerance` times the variance on the diagonal) is LDL^T-factored by SuperLU with a fill-reducing
symmetric ordering, and a sample is the sparse product P^T L D^1/2 e, e ~ N(0, I_n) (captured variance 1).
`MorphModel.captured` reports the variance captured per group and term. Sampling is precomputed: the Nyström bases
of a group are one float32 matrix (one GEMM per sample) plus one sparse float32 product per sparse term.
"""
from __future__ import annotations

import dataclasses

import numpy as np

SHAPE_TERMS = ((7.0, 100.0), (5.0, 50.0), (3.0, 10.0))
ALBEDO_COLOR_TERMS = ((0.015, 0.15),)
ALBEDO_SPACE_TERMS = ((0.02, 500.0), (0.01, 20.0), (0.01, 2.0))


@dataclasses.dataclass(frozen=True)
class MorphConfig:
    shape_terms: tuple = SHAPE_TERMS  # (variance mm^2, sigma mm) of each Gaussian term of the shape kernel
    albedo_color_terms: tuple = ALBEDO_COLOR_TERMS  # (variance, sigma) in RGB space
    albedo_space_terms: tuple = ALBEDO_SPACE_TERMS  # (variance, sigma mm) in physical space
    reference_radius_mm: float = 100.0  # mesh radius 1 corresponds to this many mm of the reference kernels
    shape_strength: float = 2.5  # multiplies the shape deformation's standard deviation (1 = reference)
    albedo_strength: float = 1.0  # multiplies the albedo change's standard deviation (1 = reference)
    variance_target: float = 0.9  # Nyström: minimum fraction of each term's variance captured
    initial_landmarks: int = 32
    max_landmarks: int = 4096
    nugget_correlation: float = 0.05  # below this neighbour correlation a term is sampled as per-vertex noise
    sparse_neighbors: int = 48  # at most this many kernel entries per row: exact sparse LDL^T instead of Nyström
    sparse_tolerance: float = 1e-9  # relative size of the kernel entries dropped by the sparse factorization
    target_vertices: int = 2000  # base meshes are decimated (quadric) to about this many vertices first


def farthest_point_order(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` points chosen greedily farthest from those already chosen, starting at point 0."""
    count = min(count, len(points))
    order = np.empty(count, np.int64)
    dist = np.full(len(points), np.inf)
    current = 0
    for i in range(count):
        order[i] = current
        dist = np.minimum(dist, np.sum((points - points[current]) ** 2, axis=1))
        current = int(np.argmax(dist))
    return order


def gaussian_kernel(a: np.ndarray, b: np.ndarray, variance: float, sigma: float) -> np.ndarray:
    sq = np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T
    return variance * np.exp(-np.maximum(sq, 0.0) / (sigma * sigma))


def nystrom_basis(points: np.ndarray, variance: float, sigma: float, target: float, initial: int, maximum: int,
                  order: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(Phi (n, r), captured fraction) with Phi Phi^T the Nyström approximation of the term's kernel matrix."""
    n = len(points)
    total = n * variance
    m = min(initial, n)
    order = farthest_point_order(points, min(maximum, n)) if order is None else order
    while True:
        idx = order[:m]
        k_mm = gaussian_kernel(points[idx], points[idx], variance, sigma)
        evals, evecs = np.linalg.eigh(k_mm)
        keep = evals > evals[-1] * 1e-9
        evals, evecs = evals[keep], evecs[:, keep]
        phi = gaussian_kernel(points, points[idx], variance, sigma) @ (evecs / np.sqrt(evals))
        captured = float(np.sum(phi * phi) / total)
        if captured >= target or m >= min(maximum, n, len(order)):
            return phi, min(captured, 1.0)
        m = min(2 * m, n, maximum, len(order))


def _nearest_spacing(points: np.ndarray) -> float:
    from scipy.spatial import cKDTree

    d, _ = cKDTree(points).query(points, k=2)
    return float(np.median(d[:, 1]))


def sparse_factor(points: np.ndarray, variance: float, sigma: float, tolerance: float, max_neighbors: float):
    """CSR float32 G (n, n) with G G^T the term's kernel matrix (entries below `tolerance` * variance dropped, the
    diagonal raised by that much), or None when the matrix is denser than `max_neighbors` entries per row or the
    factorization is not positive (the caller then uses Nyström)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu
    from scipy.spatial import cKDTree

    n = len(points)
    radius = sigma * np.sqrt(np.log(1.0 / tolerance))
    tree = cKDTree(points)
    if (tree.count_neighbors(tree, radius) - n) / max(n, 1) > max_neighbors:  # counted without listing the pairs
        return None
    pairs = tree.query_pairs(radius, output_type="ndarray")
    values = variance * np.exp(-np.sum((points[pairs[:, 0]] - points[pairs[:, 1]]) ** 2, 1) / (sigma * sigma))
    rows = np.concatenate([pairs[:, 0], pairs[:, 1], np.arange(n)])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0], np.arange(n)])
    data = np.concatenate([values, values, np.full(n, variance * (1.0 + tolerance))])
    k = sp.csc_matrix((data, (rows, cols)), shape=(n, n))
    # Symmetric mode without pivoting: Pr K Pc = L U with Pr = Pc^T and U = D L^T, so K = (F F^T)[p][:, p].
    lu = splu(k, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    d = lu.U.diagonal()
    if not np.array_equal(lu.perm_r, lu.perm_c) or not np.all(d > 0):
        return None
    f = (lu.L @ sp.diags(np.sqrt(d))).tocsr()[lu.perm_c]
    return f.astype(np.float32)


@dataclasses.dataclass
class MorphModel:
    """Low-rank shape and albedo models over the vertices of one reference mesh."""

    shape_basis: np.ndarray  # (n, R_s) float32: u = shape_basis @ z, z ~ N(0, I) of shape (R_s, 3)
    shape_nugget: np.ndarray  # (n,) std of independent per-vertex shape noise
    albedo_basis: np.ndarray  # (n, R_a) float32
    albedo_nugget: np.ndarray  # (n,)
    captured: dict  # {'shape': fraction, 'albedo': fraction, 'terms': [...]} of the variance captured
    shape_sparse: tuple = ()  # CSR float32 (n, n) factors of short-scale terms: u[:, c] += G @ e_c, e_c ~ N(0, I_n)
    albedo_sparse: tuple = ()

    @property
    def rank(self) -> tuple[int, int]:
        return (self.shape_basis.shape[1] + sum(g.shape[1] for g in self.shape_sparse),
                self.albedo_basis.shape[1] + sum(g.shape[1] for g in self.albedo_sparse))

    @staticmethod
    def _draw(rng, basis, nugget, sparse) -> np.ndarray:
        n = len(nugget)
        z = rng.standard_normal((basis.shape[1], 3)).astype(np.float32)
        out = (basis @ z).astype(np.float64)
        out += nugget[:, None] * rng.standard_normal((n, 3))
        for g in sparse:
            e = rng.standard_normal((3, n)).astype(np.float32)
            for c in range(3):  # three sparse mat-vecs: faster than one CSR product with a (n, 3) operand
                out[:, c] += g @ e[c]
        return out

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(shape displacement (n, 3), albedo change (n, 3)) of one draw."""
        u = self._draw(rng, self.shape_basis, self.shape_nugget, self.shape_sparse)
        a = self._draw(rng, self.albedo_basis, self.albedo_nugget, self.albedo_sparse)
        return u, a


def build_model(vertices: np.ndarray, albedo: np.ndarray, config: MorphConfig) -> MorphModel:
    """The morph model of a mesh (radius-1 vertices (n, 3)) with reference albedo (n, 3) in [0, 1]."""
    vertices = np.asarray(vertices, np.float64)
    albedo = np.asarray(albedo, np.float64)
    n = len(vertices)
    length = 1.0 / config.reference_radius_mm
    spacing = _nearest_spacing(vertices)
    color_spacing = _nearest_spacing(albedo + 1e-9 * np.arange(n)[:, None]) if n > 1 else 0.0
    order = farthest_point_order(vertices, min(config.max_landmarks, n))
    color_order = farthest_point_order(albedo, min(config.max_landmarks, n))
    terms = []

    def group(specs, strength):
        blocks, sparse, nugget_var, total, captured_total = [], [], np.zeros(n), 0.0, 0.0
        for space, variance, sigma, pts, spc, ordr in specs:
            variance, sigma = variance * strength ** 2, sigma
            total += variance
            if np.exp(-(spc / sigma) ** 2) < config.nugget_correlation:
                nugget_var += variance
                captured_total += variance
                terms.append({"space": space, "variance": variance, "sigma": sigma, "method": "per-vertex",
                              "rank": 0, "captured": 1.0})
                continue
            g = sparse_factor(pts, variance, sigma, config.sparse_tolerance, config.sparse_neighbors)
            if g is not None:
                sparse.append(g)
                captured_total += variance
                terms.append({"space": space, "variance": variance, "sigma": sigma, "method": "sparse-ldl",
                              "rank": n, "captured": 1.0})
                continue
            phi, frac = nystrom_basis(pts, variance, sigma, config.variance_target, config.initial_landmarks,
                                      config.max_landmarks, ordr)
            blocks.append(phi)
            captured_total += frac * variance
            terms.append({"space": space, "variance": variance, "sigma": sigma, "method": "nystrom",
                          "rank": int(phi.shape[1]), "captured": frac})
        basis = np.ascontiguousarray(np.concatenate(blocks, 1) if blocks else np.zeros((n, 0)), np.float32)
        return basis, np.sqrt(nugget_var), (captured_total / total if total > 0 else 1.0), tuple(sparse)

    shape_specs = [("xyz", s * length ** 2, sg * length, vertices, spacing, order) for s, sg in config.shape_terms]
    shape_basis, shape_nugget, shape_frac, shape_sparse = group(shape_specs, config.shape_strength)
    # Albedo change = average of a colour-space and a physical-space sample: each contributes with weight 1/2.
    albedo_specs = ([("rgb", s, sg, albedo, color_spacing, color_order) for s, sg in config.albedo_color_terms]
                    + [("xyz", s, sg * length, vertices, spacing, order) for s, sg in config.albedo_space_terms])
    albedo_basis, albedo_nugget, albedo_frac, albedo_sparse = group(albedo_specs, 0.5 * config.albedo_strength)
    return MorphModel(shape_basis, shape_nugget, albedo_basis, albedo_nugget,
                      {"shape": shape_frac, "albedo": albedo_frac, "terms": terms}, shape_sparse, albedo_sparse)


def resample(vertices: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """About `target_vertices` vertices spread over the surface: coarse meshes (fewer than half the target) are
    refined first (manifold3d, edges split to a uniform length), then quadric decimation brings it down."""
    from tfsynth.shapes.geometry import face_areas
    from tfsynth.shapes.procedural import from_manifold, to_manifold

    vertices, faces = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    if len(vertices) < target_vertices // 2:
        area = float(face_areas(vertices, faces).sum())
        length = np.sqrt(2.0 * area / (np.sqrt(3.0) * target_vertices))
        vertices, faces = from_manifold(to_manifold(vertices, faces).refine_to_length(length))
    return decimate(vertices, faces, target_vertices)


def decimate(vertices: np.ndarray, faces: np.ndarray, target_vertices: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation (fast-simplification) to about `target_vertices` vertices (no-op when already smaller)."""
    if len(vertices) <= target_vertices:
        return np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    import fast_simplification

    ratio = 1.0 - target_vertices / len(vertices)
    v, f = fast_simplification.simplify(np.asarray(vertices, np.float32), np.asarray(faces, np.int32),
                                        target_reduction=ratio)
    used = np.unique(f)
    remap = np.full(len(v), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(v[used], np.float64), remap[f]
