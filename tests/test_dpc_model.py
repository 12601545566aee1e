"""DPC network (reference parameter count), quaternions, the differentiable projection and the losses."""
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.dpc import geometry as geo
from tfsynth.models import dpc


def test_reference_parameter_count():
    """33,292,309 trainable parameters at the reference sizes (128 px RGB, 8,000 points, 4 candidates + student).

    Every slim layer of the reference has a bias and no normaliser:
      encoder convs 5x5x3x16, then [3x3 s2, 3x3 s1] with 32, 64, 128, 256 channels   1,177,216
      fc1 4096->1024, fc2 1024->1024, shape code 1024->1024, pose code 1024->1024    7,344,128
      point decoder 1024->24,000                                                     24,600,000
      occupancy scaling 1024->1                                                      1,025
      5 pose heads (4 candidates + student) of 1024->32, 32->32, 32->4               5 x 33,988 = 169,940
    """
    model = dpc.build_dpc()
    assert dpc.num_params(model) == 33_292_309
    convs = sum(l.count_params() for l in model.layers if l.name == "conv0" or l.name.startswith("block"))
    assert convs == 1_177_216
    heads = sum(l.count_params() for l in model.layers if l.name.startswith("pose_candidate") or
                l.name.startswith("pose_student"))
    assert heads == 5 * 33_988
    out = model(np.zeros((2, 128, 128, 3), np.float32))
    assert out["points"].shape == (2, 8000, 3) and out["poses"].shape == (2, 4, 4)
    assert out["pose_student"].shape == (2, 4) and out["scale"].shape == (2, 1)
    assert float(tf.reduce_max(tf.abs(out["points"]))) <= 0.5


def test_quaternion_wrappers_match_numpy_and_wxyz_order():
    rng = np.random.default_rng(0)
    a, b = geo.random_quaternions(rng, 5), geo.random_quaternions(rng, 5)
    np.testing.assert_allclose(dpc.q_multiply(tf.constant(a), tf.constant(b)).numpy(), geo.q_multiply(a, b),
                               atol=1e-6)
    pts = rng.normal(size=(5, 7, 3))
    got = dpc.q_rotate(tf.constant(pts, tf.float32), tf.constant(a * 3.0, tf.float32)).numpy()  # unnormalised q
    want = np.stack([geo.q_rotate(pts[i], a[i]) for i in range(5)])
    np.testing.assert_allclose(got, want, atol=1e-5)
    # 90 degrees about +z ([w, x, y, z] = [c, 0, 0, s]) takes +x to +y.
    q = np.array([[np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]], np.float32)
    np.testing.assert_allclose(dpc.q_rotate(tf.constant([[[1.0, 0, 0]]]), q).numpy(), [[[0, 1, 0]]], atol=1e-6)


def test_splatting_conserves_mass_and_drops_outliers():
    rng = np.random.default_rng(1)
    c = rng.uniform(-0.5, 0.5, (2, 50, 3)).astype(np.float32)
    c[0, :5] = [0.5, 0.5, 0.5]  # far corner: absorbed by the padding slice, kept in the grid
    c[1, :3] = [0.7, 0.0, 0.0]  # outside: dropped
    vox = dpc.splat_trilinear(tf.constant(c), 8).numpy()
    np.testing.assert_allclose(vox.sum(axis=(1, 2, 3)), [50, 47], rtol=2e-6)  # float32 sums: relative error
    assert vox[0, 7, 7, 7] >= 5 - 1e-5
    # A point on a grid node lands on that voxel only.
    one = dpc.splat_trilinear(tf.constant([[[-0.5, -0.5 + 2 / 7, 0.5]]], tf.float32), 8).numpy()
    assert one[0, 0, 2, 7] == pytest.approx(1.0) and one.sum() == pytest.approx(1.0)


def test_blur_equals_separable_conv3d_and_drc_formula():
    vox = tf.random.stateless_uniform([2, 12, 12, 12], seed=[0, 1])
    k = dpc.gauss_kernel_1d(21, 3.0)
    assert k.shape == (21,) and float(tf.reduce_sum(k)) == pytest.approx(1.0)
    v = vox[..., None]
    for shape in ([1, 1, 21, 1, 1], [1, 21, 1, 1, 1], [21, 1, 1, 1, 1]):
        v = tf.nn.conv3d(v, tf.reshape(k, shape), [1, 1, 1, 1, 1], padding="SAME")
    np.testing.assert_allclose(dpc.blur3d(vox, 3.0, 21).numpy(), v[..., 0].numpy(), atol=1e-6)

    occ = tf.random.stateless_uniform([1, 6, 3, 3], seed=[2, 3])
    sil, depth, probs = dpc.drc(occ, 2.0, 10.0, clip_val=1e-5)
    o = np.clip(occ.numpy(), 1e-5, 1 - 1e-5)
    np.testing.assert_allclose(sil.numpy(), 1 - np.prod(1 - o, axis=1), atol=1e-5)
    np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, atol=1e-5)
    d = np.concatenate([np.arange(6) / 6 - 0.5 + 2.0, [10.0]])
    np.testing.assert_allclose(depth.numpy(), np.einsum("bkhw,k->bhw", probs.numpy(), d), rtol=1e-5)


def test_projection_matches_numpy_camera_and_has_numeric_gradients():
    # A dense cloud, sharp blur: the soft silhouette agrees with the NumPy rasteriser of the same camera.
    rng = np.random.default_rng(2)
    from tfsynth.dpc import synthetic

    pts = synthetic.sample_object(rng, 6000)
    q = geo.quaternion_from_view(30.0, 20.0)
    proj = dpc.project(tf.constant(pts[None]), tf.constant(q[None], tf.float32),
                       dpc.ProjectionConfig(vox_size=32, kernel_size=5), sigma_rel=0.5)
    soft = proj["silhouette"].numpy()[0, ..., 0] > 0.5
    hard = geo.silhouette_from_points(pts, q, 32, radius=1.0) > 0
    iou = (soft & hard).sum() / (soft | hard).sum()
    assert iou > 0.8, iou

    # Gradients w.r.t. points, quaternion and scale against finite differences on a tiny case.
    cfg = dpc.ProjectionConfig(vox_size=6, kernel_size=3)
    p0 = tf.constant(rng.uniform(-0.2, 0.2, (1, 5, 3)), tf.float64)
    q0 = tf.constant([[0.9, 0.1, -0.3, 0.2]], tf.float64)
    s0 = tf.constant([[0.7]], tf.float64)

    def f(p, qq, s):
        out = dpc.project(tf.cast(p, tf.float32), tf.cast(qq, tf.float32), cfg, 1.0, tf.cast(s, tf.float32))
        w = tf.reshape(tf.range(36, dtype=tf.float32) / 36.0, [1, 6, 6, 1])
        return tf.cast(tf.reduce_sum(out["silhouette"] * w) + 0.1 * tf.reduce_sum(out["depth"]), tf.float64)

    theo, num = tf.test.compute_gradient(f, [p0, q0, s0], delta=1e-3)
    for t, n in zip(theo, num):
        np.testing.assert_allclose(t, n, rtol=0.05, atol=2e-3)
        assert np.abs(t).max() > 1e-4


def test_losses_pick_best_candidate_and_student_target():
    gt = np.zeros((2, 4, 4, 1), np.float32)
    gt[0, :2] = 1
    pred = np.zeros((2 * 3, 4, 4, 1), np.float32)
    pred[1, :2] = 1  # sample 0: candidate 1 is exact
    pred[3:6] = 0.5  # sample 1: all equal -> first (index 0)
    pred[3, 0, 0] = 0.0  # candidate 0 of sample 1 slightly better
    loss, best = dpc.candidate_projection_loss(tf.constant(gt), tf.constant(pred), 3)
    assert best.numpy().tolist() == [1, 0]
    assert float(loss) == pytest.approx(0.5 * (0 + 15 * 0.25) / 2)
    poses = tf.constant(geo.random_quaternions(np.random.default_rng(3), 6).reshape(2, 3, 4), tf.float32)
    exact = tf.gather(poses, best, batch_dims=1)
    assert float(dpc.student_loss(poses, exact * -2.0, best)) == pytest.approx(0.0, abs=1e-6)  # sign/scale-free
    rot90 = tf.constant([[np.cos(np.pi / 4), np.sin(np.pi / 4), 0, 0]] * 2, tf.float32)
    assert float(dpc.student_loss(poses, dpc.q_multiply(exact, rot90), best)) == pytest.approx(0.5, abs=1e-5)


def test_schedules_and_dropout():
    assert float(dpc.sigma_schedule(0, 100)) == pytest.approx(3.0)
    assert float(dpc.sigma_schedule(100, 100)) == pytest.approx(0.2)
    assert float(dpc.keep_prob_schedule(0, 100)) == pytest.approx(0.07)
    assert float(dpc.keep_prob_schedule(50, 100)) == pytest.approx(0.535)
    assert float(dpc.keep_prob_schedule(200, 100)) == pytest.approx(1.0)
    pts = tf.reshape(tf.range(2 * 10 * 3, dtype=tf.float32), [2, 10, 3])
    out = dpc.point_dropout(pts, 0.3, tf.random.stateless_uniform([2, 10], seed=[0, 0]))
    assert out.shape == (2, 3, 3)
    for b in range(2):  # kept points are rows of the same cloud
        rows = {tuple(r) for r in pts[b].numpy().tolist()}
        assert all(tuple(r) in rows for r in out[b].numpy().tolist())
