"""tfsynth's DPC projection, quaternions and camera conventions against the reference implementation's own code.

Fixtures: tests/data/conformance/dpc_projection.npz, written by tools/conformance/dpc_reference.py, which runs
eldar/differentiable-point-clouds' dpc/util/{quaternion,camera,euler,point_cloud,gauss_kernel,drc}.py unchanged under
tf.compat.v1 graph mode (commit in dpc_projection.json) on inputs both sides draw with the script's NumPy-only
`draw_inputs`. The reference is not needed here.

Conventions, as established by these tests:

* quaternions are [w, x, y, z] on both sides (tfsynth's tensorflow-graphics calls convert to [x, y, z, w] inside),
  Hamilton product, rotation q p q* after normalising q, the same 3 x 3 matrix; no sign or order mapping is needed;
* the reference's camera for a Blender-frame (z up) camera position c, ``quaternion_from_campos(c)``, is
  ``tfsynth.dpc.geometry.quaternion_from_view(azimuth=atan2(c_y, c_x) - 180 deg, elevation=asin(c_z / |c|))`` up to
  the sign of q (the same rotation), and ``camera_position(q) = camera_distance * (c_x, c_z, -c_y) / |c|``: tfsynth's
  object frame is the reference's y-up frame, the Blender frame's (x, y, z) -> (x, z, -y);
* the reference's camera-matrix path with extrinsic [R(q) | (d, 0, 0)] and its intrinsic diag(1, f, f, 1) gives
  the quaternion path's (depth, v, u) grid coordinates;
* one difference, in the reference's log-space DRC (``drc_logsum``): its log-space "one" is ``clip_val`` (1e-5), not
  0, so its first-slice ray-termination probability and its background probability are exp(1e-5) times tfsynth's
  (exact) ones. `_with_reference_logsum_unity` applies that factor to tfsynth's probabilities; after it the
  silhouettes and depths agree to float32 rounding. Without it they differ by at most 1e-5 of the silhouette and
  1e-5 of max_depth in depth, which the plain comparison also allows.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.tolerance import assert_close_scaled
from tools.conformance.dpc_reference import draw_inputs

FIXTURES = Path(__file__).parent / "data" / "conformance"
META = json.loads((FIXTURES / "dpc_projection.json").read_text())
K = 4  # cameras per cloud: batch b = cloud * K + camera
# Of the largest reference magnitude; measured values in tools/conformance/README.md (largest: 1.9e-6 of it, the
# sigma-1 silhouette). Tight enough that the depth without the log-space unity mapping (1e-5 of it) fails it.
REL = 4e-6
REL_LOGSUM_QUIRK = 3e-5  # silhouette / depth without the reference's exp(clip_val) factor (see the module docstring)
# The reference's from_rotation_matrix divides by 4 w in float32 (w = sqrt(1 + trace) / 2): for the seeded rotation
# with w = 0.058 it is 1.4e-5 off the exact quaternion, where tfsynth's (Shepperd's method, float64) is 4e-8 off.
REL_FROM_MATRIX = 3e-5


def _reference():
    with np.load(FIXTURES / "dpc_projection.npz") as data:
        return {k: data[k] for k in data.files}


REF = _reference()


def _projection_config():
    from tfsynth.models.dpc import ProjectionConfig

    c = META["config"]
    assert c["vox_size_z"] == -1 and c["pose_quaternion"] and c["pc_fast"] and c["pc_separable_gauss_filter"]
    assert c["drc_logsum"] and c["drc_tf_cumulative"] and not c["ptn_max_projection"]
    cfg = ProjectionConfig()
    # tfsynth's defaults are the reference's chair configuration
    assert (cfg.vox_size, cfg.focal_length, cfg.camera_distance, cfg.kernel_size, cfg.max_depth, cfg.clip_val) == (
        c["vox_size"], c["focal_length"], c["camera_distance"], c["pc_gauss_kernel_size"], c["max_depth"],
        c["drc_logsum_clip_val"])
    return cfg


def _batch():
    """(points (8, N, 3), quaternions (8, 4)): each cloud with each of the four cameras."""
    return np.repeat(REF["clouds"], K, axis=0), np.tile(REF["quats"], (2, 1))


def test_fixture_inputs_are_the_seeded_draws():
    drawn = draw_inputs()
    for name, value in drawn.items():
        np.testing.assert_array_equal(REF[name], value, err_msg=name)
    np.testing.assert_array_equal(REF["quats"][0], [1, 0, 0, 0])
    np.testing.assert_array_equal(REF["quats"][1], REF["q_campos"][0].astype(np.float32))
    np.testing.assert_array_equal(REF["quats"][2:], REF["q_random"])
    assert META["num_points"] == REF["clouds"].shape[1]


def quaternion_pairs():
    """{name: (ours, reference)}: the quaternion algebra, TF (tfsynth.models.dpc) and NumPy (tfsynth.dpc.geometry)."""
    from tfsynth.dpc import geometry as g
    from tfsynth.models import dpc

    qa, qb, pts = REF["qa"], REF["qb"], REF["rot_points"]
    qa_pos = qa * np.where(qa[:, :1] < 0, -1.0, 1.0).astype(np.float32)
    return {
        "q_mul": (np.asarray(dpc.q_multiply(qa, qb)), REF["q_mul"]),
        "q_mul (NumPy)": (g.q_multiply(qa, qb), REF["q_mul"]),
        "q_conj": (np.asarray(dpc.q_conjugate(qa)), REF["q_conj"]),
        "q_conj (NumPy)": (g.q_conjugate(qa), REF["q_conj"]),
        "q_norm": (np.asarray(dpc.q_normalize(qa)), REF["q_norm"]),
        "q_norm (NumPy)": (g.q_normalize(qa), REF["q_norm"]),
        "q_matrix (NumPy)": (g.q_to_matrix(qa), REF["q_matrix"]),
        # the reference's input: its own float32 as_rotation_matrix(qa_pos), bit-equal to REF["q_matrix"] (R(q) = R(-q))
        "q_from_matrix (NumPy)": (np.stack([g.matrix_to_q(m) for m in REF["q_matrix"]]), REF["q_from_matrix"]),
        "q_from_matrix (NumPy) vs exact": (np.stack([g.matrix_to_q(m) for m in REF["q_matrix"]]),
                                           g.q_normalize(qa_pos)),
        "rotate": (np.asarray(dpc.q_rotate(pts, qa)), REF["rot_out"]),
        "rotate (NumPy)": (np.stack([g.q_rotate(p, q) for p, q in zip(pts, qa)]), REF["rot_out"]),
        "rotate inverse": (np.asarray(dpc.q_rotate(pts, dpc.q_conjugate(qa))), REF["rot_inv_out"]),
    }


def test_quaternion_algebra_equals_the_reference():
    for name, (ours, theirs) in quaternion_pairs().items():
        assert ours.shape == theirs.shape, name
        rel = REL_FROM_MATRIX if name == "q_from_matrix (NumPy)" else REL
        assert_close_scaled(ours, theirs, rel=rel, err_msg=name)


def test_blender_camera_positions_map_to_tfsynth_views():
    """The reference's data-path quaternion (quaternion_from_campos) is tfsynth's quaternion_from_view."""
    from tfsynth.dpc import geometry as g

    d = META["config"]["camera_distance"]
    for c, q_ref in zip(REF["cam_pos"].astype(np.float64), REF["q_campos"]):
        az = np.degrees(np.arctan2(c[1], c[0])) - 180.0
        el = np.degrees(np.arcsin(c[2] / np.linalg.norm(c)))
        q = g.quaternion_from_view(az, el)
        q = q * np.sign(np.dot(q, q_ref))  # q and -q: the same rotation
        np.testing.assert_allclose(q, q_ref, atol=1e-12)
        blender_to_object = np.array([c[0], c[2], -c[1]]) / np.linalg.norm(c)
        np.testing.assert_allclose(g.camera_position(q_ref, d), d * blender_to_object, atol=1e-12)


def camera_pairs():
    from tfsynth.dpc import geometry as g
    from tfsynth.models import dpc

    cfg = _projection_config()
    points, quats = _batch()
    head = META["head_points"]
    ours = np.asarray(dpc.perspective_transform(points, quats, cfg.focal_length, cfg.camera_distance))[:, :head]
    numpy_ours = np.stack([g.project_points(p[:head], q, cfg.focal_length, cfg.camera_distance)
                           for p, q in zip(points, quats)])
    extrinsic = np.zeros((len(quats), 4, 4))
    extrinsic[:, :3, :3] = g.q_to_matrix(quats)
    extrinsic[:, 0, 3] = cfg.camera_distance
    extrinsic[:, 3, 3] = 1.0
    return {
        "tr_pc": (ours, REF["tr_pc"]),
        "tr_pc (NumPy)": (numpy_ours, REF["tr_pc"]),
        "tr_pc vs the camera-matrix path": (ours, REF["tr_pc_matrix"]),
        "extrinsic [R(q) | (d, 0, 0)]": (extrinsic, REF["extrinsic"]),
        "intrinsic": (np.diag([1.0, cfg.focal_length, cfg.focal_length, 1.0]), REF["intrinsic"]),
    }


def test_perspective_transform_and_camera_matrices_equal_the_reference():
    for name, (ours, theirs) in camera_pairs().items():
        assert ours.shape == theirs.shape, name
        assert_close_scaled(ours, theirs, rel=REL, err_msg=name)


def splat_pair():
    from tfsynth.models import dpc

    cfg = _projection_config()
    theirs = np.zeros((2 * K,) + (cfg.vox_size,) * 3, np.float32)
    theirs[tuple(REF["splat_index"].astype(np.int64).T)] = REF["splat_value"]
    ours = np.asarray(dpc.splat_trilinear(REF["tr_pc"], cfg.vox_size))  # the reference's own transformed points
    return ours, theirs


def test_trilinear_splat_equals_the_reference():
    ours, theirs = splat_pair()
    assert META["splat_nonzeros"] == len(REF["splat_value"])
    assert_close_scaled(ours, theirs, rel=REL, err_msg="splat")
    np.testing.assert_array_equal(ours != 0, theirs != 0)


def _with_reference_logsum_unity(out, cfg):
    """tfsynth's silhouette and depth with the reference's log-space unity exp(clip_val) on the first-slice and
    background probabilities (module docstring)."""
    import tensorflow as tf
    from tfsynth.models import dpc

    _, _, probs = dpc.drc(out["occupancy"], cfg.camera_distance, cfg.max_depth, cfg.clip_val)
    extra = np.expm1(np.float32(cfg.clip_val))
    p0, pbg = probs[:, 0], probs[:, -1]
    sil = out["silhouette"][..., 0] + tf.reverse(extra * p0, [1])
    near = cfg.camera_distance - 0.5  # depth of slice 0 in the reference's grid, i / D - 0.5 + d
    depth = out["depth"][..., 0] + tf.reverse(extra * (p0 * near + pbg * cfg.max_depth), [1])
    return np.asarray(sil), np.asarray(depth)


def projection_pairs(run):
    """{name: (ours, reference)} for one of the fixture's projection runs ('s3', 's1')."""
    from tfsynth.models import dpc

    cfg = _projection_config()
    spec = META["runs"][run]
    points, quats = _batch()
    scale = REF["scaling"] if spec["occupancy_scaling"] else None
    out = dpc.project(points, quats, cfg, sigma_rel=spec["sigma_rel"], scale=scale)
    sil_q, depth_q = _with_reference_logsum_unity(out, cfg)
    sl = META["occupancy_slice"]
    occ = np.asarray(out["occupancy"])[sl["batch"], sl["depth_index"]]
    return {
        "kernel_1d": (np.asarray(dpc.gauss_kernel_1d(cfg.kernel_size, spec["sigma_rel"])), REF[f"{run}_kernel_1d"]),
        "occupancy slice": (occ, REF[f"{run}_occupancy_slice"]),
        "silhouette": (np.asarray(out["silhouette"])[..., 0], REF[f"{run}_silhouette"]),
        "depth": (np.asarray(out["depth"])[..., 0], REF[f"{run}_depth"]),
        "silhouette, exp(clip_val) unity": (sil_q, REF[f"{run}_silhouette"]),
        "depth, exp(clip_val) unity": (depth_q, REF[f"{run}_depth"]),
    }


@pytest.mark.parametrize("run", ["s3", "s1"])
def test_projection_equals_the_reference(run):
    """pointcloud_project_fast (splat, clip, separable 21-tap blur, occupancy scaling, log-space DRC, depth)."""
    pairs = projection_pairs(run)
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        rel = REL_LOGSUM_QUIRK if name in ("silhouette", "depth") else REL
        assert_close_scaled(ours, theirs, rel=rel, err_msg=f"{run} {name}")
    # The mapping is needed: without it, empty rays (background probability up to (1 - clip)^64 = 0.9994) are
    # expm1(clip_val) * max_depth = 1e-4 off in depth, far above float32 rounding (1.2e-5 after the mapping).
    ours, theirs = pairs["depth"]
    quirk = np.expm1(META["config"]["drc_logsum_clip_val"]) * META["config"]["max_depth"]
    assert 0.9 * quirk < np.abs(ours - theirs).max() < 1.1 * quirk
