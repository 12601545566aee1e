"""DPC evaluation metrics in NumPy/SciPy (TF-free): the reference's Chamfer distance, global alignment, pose error,
and the seed's real-image mask disagreement (§6.3).

- Chamfer (reference `eval_chamfer.py`): non-squared Euclidean nearest-neighbour distances, mean over each cloud;
  precision = prediction -> ground truth, coverage = ground truth -> prediction; reported x 100.
- Global alignment (reference `compute_alignment.py`): an unsupervised model predicts shapes and poses in its own
  canonical frame. For each validation view, the rotation conj(q_gt) q_pred (initial guess) is refined by
  point-to-point ICP (max correspondence 0.2, as the reference's open3d call); per model the 2 views with the
  lowest inlier RMSE are kept, the 15 best models are chosen, and their rotations are averaged (Markley et al.).
- Pose error (reference `eval_camera_pose.py`): angle 2 arccos|w| of conj(q_gt) (q_pred conj(a)), accuracy at
  30 degrees and median error in degrees; chance level: uniformly random rotations (`chance_pose_accuracy`,
  `chance_median_error_deg`).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from tfsynth.dpc import geometry as geo
from tfsynth.shapes.geometry import voxel_downsample  # noqa: F401  (re-exported)


def nearest_distances(source, target) -> np.ndarray:
    """Euclidean distance from every source point to its nearest target point (exact, k-d tree)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if len(source) == 0 or len(target) == 0:
        raise ValueError(f"empty point cloud (source {source.shape}, target {target.shape})")
    return cKDTree(target).query(source, k=1)[0]


def chamfer(pred, gt) -> dict:
    """{'precision', 'coverage', 'chamfer'} for one pair of clouds (not yet x 100)."""
    p = float(np.mean(nearest_distances(pred, gt)))
    c = float(np.mean(nearest_distances(gt, pred)))
    return {"precision": p, "coverage": c, "chamfer": p + c}


def chamfer_table(per_view: np.ndarray) -> dict:
    """(models, views, 2) [precision, coverage] -> means x 100, as the reference prints them."""
    mean = np.mean(np.asarray(per_view, np.float64).reshape(-1, 2), axis=0) * 100.0
    return {"precision": float(mean[0]), "coverage": float(mean[1]), "chamfer": float(mean.sum())}


# ---------------------------------------------------------------------------------------------------------------

def icp(source, target, init_rotation=np.eye(3), threshold: float = 0.2, max_iterations: int = 30,
        tolerance: float = 1e-6):
    """Point-to-point rigid ICP (rotation + translation) of `source` onto `target`.

    Correspondences are nearest neighbours closer than `threshold`. Returns (4x4 transform, inlier RMSE, fitness).
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    tree = cKDTree(target)
    t = np.eye(4)
    t[:3, :3] = init_rotation
    prev_rmse = np.inf
    rmse, fitness = 0.0, 0.0
    for _ in range(max_iterations):
        moved = source @ t[:3, :3].T + t[:3, 3]
        dist, idx = tree.query(moved, k=1, distance_upper_bound=threshold)
        ok = np.isfinite(dist)
        fitness = float(np.mean(ok))
        if ok.sum() < 3:
            return t, float("inf"), fitness
        rmse = float(np.sqrt(np.mean(dist[ok] ** 2)))
        a, b = moved[ok], target[idx[ok]]
        ca, cb = a.mean(0), b.mean(0)
        u, _, vt = np.linalg.svd((a - ca).T @ (b - cb))
        d = np.sign(np.linalg.det(vt.T @ u.T))
        r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
        step = np.eye(4)
        step[:3, :3], step[:3, 3] = r, cb - r @ ca
        t = step @ t
        if abs(prev_rmse - rmse) < tolerance:
            break
        prev_rmse = rmse
    moved = source @ t[:3, :3].T + t[:3, 3]
    dist, _ = tree.query(moved, k=1, distance_upper_bound=threshold)
    ok = np.isfinite(dist)
    rmse = float(np.sqrt(np.mean(dist[ok] ** 2))) if ok.any() else float("inf")
    return t, rmse, float(np.mean(ok))


def alignment_to_ground_truth(pred_points, q_pred, gt_points, q_gt, threshold: float = 0.2):
    """Rotation [w, x, y, z] taking one predicted cloud into the ground-truth frame, and the ICP inlier RMSE.

    q_pred p_pred = q_gt p_gt gives p_gt = conj(q_gt) q_pred p_pred: the initial guess that ICP refines.
    """
    init = geo.q_multiply(geo.q_conjugate(geo.q_normalize(q_gt)), geo.q_normalize(q_pred))
    t, rmse, _ = icp(pred_points, gt_points, geo.q_to_matrix(init), threshold)
    return geo.matrix_to_q(t[:3, :3]), rmse


def average_quaternions(qs, weights=None) -> np.ndarray:
    """Markley et al. (2007) average: the principal eigenvector of sum w q q^T (sign-invariant), w >= 0."""
    qs = geo.q_normalize(np.asarray(qs, np.float64))
    w = np.ones(len(qs)) if weights is None else np.asarray(weights, np.float64)
    acc = np.einsum("n,ni,nj->ij", w, qs, qs)
    vals, vecs = np.linalg.eigh(acc)
    q = vecs[:, np.argmax(vals)]
    return q if q[0] >= 0 else -q


def global_alignment(pred_points, q_pred, gt_points, q_gt, views_per_model: int = 2, num_models: int = 15):
    """The reference's global rotation from validation predictions.

    pred_points: per model, (V, N, 3) predicted clouds; q_pred: per model (V, 4); gt_points: per model (M, 3);
    q_gt: per model (V, 4). Returns (alignment quaternion, {'rmse': (models, V), 'rotations': (models, V, 4)}).
    """
    n = len(pred_points)
    if n == 0:
        raise ValueError("global_alignment needs at least one validation model")
    v = len(q_pred[0])
    rmse = np.full((n, v), np.inf)
    rots = np.zeros((n, v, 4))
    for m in range(n):
        for k in range(v):
            rots[m, k], rmse[m, k] = alignment_to_ground_truth(pred_points[m][k], q_pred[m][k], gt_points[m],
                                                               q_gt[m][k])
    keep = np.argsort(rmse, axis=1)[:, :views_per_model]
    rmse_f = np.take_along_axis(rmse, keep, 1)
    rots_f = np.take_along_axis(rots, keep[..., None], 1)
    best = np.argsort(rmse_f.mean(1))[:num_models]
    chosen = rots_f[best].reshape(-1, 4)
    chosen = chosen[np.all(np.isfinite(chosen), axis=1)]
    return average_quaternions(chosen), {"rmse": rmse, "rotations": rots}


def align_points(points, alignment):
    """(N, 3) predicted cloud into the ground-truth frame: rotate by the alignment quaternion."""
    return geo.q_rotate(points, alignment)


def align_pose(q_pred, alignment):
    """Predicted camera quaternion(s) into the ground-truth frame: q_pred conj(a)."""
    return geo.q_multiply(geo.q_normalize(q_pred), geo.q_conjugate(alignment))


def angular_error(q_pred, q_gt) -> np.ndarray:
    """Rotation angle (radians, in [0, pi]) of conj(q_gt) q_pred: 2 arccos |w|."""
    d = geo.q_multiply(geo.q_conjugate(geo.q_normalize(q_gt)), geo.q_normalize(q_pred))
    return 2.0 * np.arccos(np.clip(np.abs(d[..., 0]), 0.0, 1.0))


def pose_table(errors_rad, threshold_deg: float = 30.0) -> dict:
    """Accuracy at `threshold_deg` and the median error in degrees (the reference's sorted[n // 2])."""
    e = np.sort(np.asarray(errors_rad, np.float64).reshape(-1))
    if e.size == 0:
        raise ValueError("no pose errors to summarise")
    return {"accuracy": float(np.mean(e < np.deg2rad(threshold_deg))),
            "median_error_deg": float(np.rad2deg(e[len(e) // 2]))}


def random_rotation_angle_cdf(theta_rad):
    """P(angle < theta) for a uniformly random rotation (Haar measure on SO(3)): the angle has density
    (1 - cos t) / pi on [0, pi], so the CDF is (theta - sin theta) / pi. The chance level of `pose_table`."""
    t = np.clip(np.asarray(theta_rad, np.float64), 0.0, np.pi)
    return (t - np.sin(t)) / np.pi


def chance_pose_accuracy(threshold_deg: float = 30.0) -> float:
    """Pose accuracy at `threshold_deg` of uniformly random rotations: (pi/6 - sin(pi/6)) / pi = 0.0075 at 30."""
    return float(random_rotation_angle_cdf(np.deg2rad(threshold_deg)))


def chance_median_error_deg() -> float:
    """Median angle of a uniformly random rotation in degrees, 132.35: the root of (t - sin t) / pi = 1/2. (Its mean
    is pi/2 + 2/pi radians, 126.48 degrees, which is sometimes quoted as the median.)"""
    from scipy.optimize import brentq

    return float(np.rad2deg(brentq(lambda t: random_rotation_angle_cdf(t) - 0.5, 0.0, np.pi, xtol=1e-12)))


# ---------------------------------------------------------------------------------------------------------------

def mask_disagreement(real_mask, predicted_mask) -> float:
    """|A xor B| / |A| for the real segmentation A and the projected prediction B (both binary, same shape)."""
    a, b = np.asarray(real_mask) > 0.5, np.asarray(predicted_mask) > 0.5
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: real {a.shape} vs predicted {b.shape}")
    area = a.sum()
    if area == 0:
        raise ValueError("the real mask is empty")
    return float(np.logical_xor(a, b).sum() / area)


def kde_cdf(values, grid) -> np.ndarray:
    """Cumulative distribution of a Gaussian KDE (Scott's bandwidth) of `values`, evaluated on `grid`."""
    from scipy.stats import gaussian_kde

    values = np.asarray(values, np.float64)
    if values.size < 2 or np.ptp(values) == 0:
        return (np.asarray(grid) >= values.mean()).astype(np.float64)
    kde = gaussian_kde(values)
    return np.array([kde.integrate_box_1d(-np.inf, g) for g in grid])


def plot_kde_cdfs(scores: dict, path: str, title: str = "Normalised pixels in disagreement") -> None:
    """Figures 6.5 / 7.1: one cumulative KDE curve per experiment, saved to `path` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hi = max(max(np.max(v) for v in scores.values()) * 1.1, 1e-3)
    grid = np.linspace(0.0, hi, 200)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, vals in scores.items():
        ax.plot(grid, kde_cdf(vals, grid), label=f"{name} (n={len(vals)})")
    ax.set_xlabel("normalised number of pixels in disagreement")
    ax.set_ylabel("cumulative density")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
