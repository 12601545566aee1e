"""eval.shape_pose metrics (TF-free): Chamfer vs brute force, ICP global alignment, pose error, mask disagreement."""

import numpy as np
import pytest

from tfsynth.dpc import geometry as geo
from tfsynth.dpc import metrics, synthetic


def test_chamfer_equals_brute_force_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 3)), rng.uniform(-1, 1, (450, 3))
    d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))  # non-squared distances
    want_p, want_c = d.min(1).mean(), d.min(0).mean()
    got = metrics.chamfer(a, b)
    assert got["precision"] == pytest.approx(want_p, rel=1e-12)
    assert got["coverage"] == pytest.approx(want_c, rel=1e-12)
    assert got["chamfer"] == pytest.approx(want_p + want_c, rel=1e-12)
    table = metrics.chamfer_table(np.array([[[want_p, want_c], [0.0, 0.0]]]))
    assert table["precision"] == pytest.approx(want_p * 50)
    assert table["chamfer"] == pytest.approx((want_p + want_c) * 50)
    with pytest.raises(ValueError, match="empty"):
        metrics.chamfer(np.zeros((0, 3)), b)


def test_voxel_downsample_one_point_per_voxel():
    pts = np.array([[0.001, 0.001, 0.001], [0.003, 0.002, 0.004], [0.5, 0.5, 0.5]])
    out = metrics.voxel_downsample(pts, 0.01)
    assert len(out) == 2
    np.testing.assert_allclose(sorted(out[:, 0]), [0.002, 0.5], atol=1e-6)


def test_quaternion_matrix_roundtrip_and_angle():
    rng = np.random.default_rng(1)
    qs = geo.random_quaternions(rng, 20)
    for q in qs:
        np.testing.assert_allclose(geo.matrix_to_q(geo.q_to_matrix(q)), q, atol=1e-9)
    q90 = geo.quaternion_from_view(90.0, 0.0)
    assert np.rad2deg(metrics.angular_error(q90, np.array([1.0, 0, 0, 0]))) == pytest.approx(90.0)
    assert metrics.angular_error(-qs[0], qs[0]) == pytest.approx(0.0, abs=1e-6)  # q and -q: same rotation
    t = metrics.pose_table(np.deg2rad([10, 20, 40, 50, 5]))
    assert t["accuracy"] == pytest.approx(0.6) and t["median_error_deg"] == pytest.approx(20.0)


def test_global_alignment_recovers_a_canonical_frame_rotation():
    """A 'model' predicting perfect shapes and poses in a frame rotated by A: the alignment recovers A, and after
    alignment Chamfer and pose errors vanish."""
    rng = np.random.default_rng(2)
    a = geo.q_normalize(np.array([0.9, 0.2, -0.3, 0.25]))
    preds, qpred, gts, qgt = [], [], [], []
    for i in range(4):
        gt = synthetic.sample_object(rng, 1500).astype(np.float64)
        q_views = geo.random_quaternions(rng, 3)
        # Prediction frame: p_pred = conj(A) p_gt, camera q_pred = q_gt A (so q_pred p_pred = q_gt p_gt).
        preds.append(np.stack([geo.q_rotate(gt, geo.q_conjugate(a))] * 3))
        qpred.append(geo.q_multiply(q_views, a))
        gts.append(gt)
        qgt.append(q_views)
    # Noisy initial guesses for one model's views: ICP refines them.
    qpred[0] = geo.q_normalize(qpred[0] + rng.normal(0, 0.05, qpred[0].shape))
    q_align, info = metrics.global_alignment(preds, qpred, gts, qgt, views_per_model=2, num_models=3)
    assert np.rad2deg(metrics.angular_error(q_align, a)) < 1.0
    aligned = metrics.align_points(preds[1][0], q_align)
    assert metrics.chamfer(aligned, gts[1])["chamfer"] < 0.01
    assert np.rad2deg(metrics.angular_error(metrics.align_pose(qpred[1][0], q_align), qgt[1][0])) < 1.0
    assert info["rmse"].shape == (4, 3)


def test_mask_disagreement_and_kde(tmp_path):
    a = np.zeros((10, 10))
    a[2:8, 2:8] = 1  # 36 px
    b = np.zeros((10, 10))
    b[2:8, 2:6] = 1  # 24 px inside a, 12 missing
    b[0, 0] = 1  # one extra
    assert metrics.mask_disagreement(a, b) == pytest.approx(13 / 36)
    with pytest.raises(ValueError, match="empty"):
        metrics.mask_disagreement(np.zeros((4, 4)), np.zeros((4, 4)))
    grid = np.linspace(0, 2, 50)
    cdf = metrics.kde_cdf(np.random.default_rng(3).uniform(0.2, 0.8, 40), grid)
    assert np.all(np.diff(cdf) >= -1e-12) and cdf[0] < 0.05 and cdf[-1] > 0.95
    path = tmp_path / "kde.png"
    metrics.plot_kde_cdfs({"baseline": [0.3, 0.5, 0.4], "exp2": [0.1, 0.2, 0.25]}, str(path))
    assert path.stat().st_size > 1000


def test_numpy_silhouette_camera_conventions():
    # Camera above the object (positive elevation) sees a point at +y higher in the image (smaller row).
    pts = np.array([[0.0, 0.3, 0.0]])
    m = geo.silhouette_from_points(pts, geo.quaternion_from_view(0.0, 0.0), 33, radius=0.0)
    r, c = np.argwhere(m)[0]
    assert r < 16 and c == 16
    pose = geo.camera_to_world(geo.quaternion_from_view(0.0, 30.0))
    assert pose[1, 3] == pytest.approx(1.0) and np.allclose(np.linalg.det(pose[:3, :3]), 1.0)
    # The camera looks at the origin: its -z axis points from its centre to the origin.
    np.testing.assert_allclose(-pose[:3, 2], -pose[:3, 3] / np.linalg.norm(pose[:3, 3]), atol=1e-9)
