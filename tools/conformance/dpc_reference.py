"""The DPC reference's own projection, quaternion and camera code (eldar/differentiable-point-clouds) on seeded inputs.

The reference is TF1 code; its modules run unchanged under TF 2.x's ``tf.compat.v1`` in graph mode. A snapshot of the
repository lives OUTSIDE this repository (its code is never committed), e.g. extracted from the fetched bare git dir:

    git --git-dir=<snapshot git dir> archive HEAD dpc experiments/chair_unsupervised/config.yaml \
        | tar x -C /work/scratch/dpc_ref
    PYTHONPATH=. python tools/conformance/dpc_reference.py --repo /work/scratch/dpc_ref --commit <commit>

The only adaptation: while the reference's modules are imported, ``sys.modules['tensorflow']`` is TF's own
``tf.compat.v1`` (so their ``import tensorflow as tf`` gets ``tf.log``, ``tf.py_func``, ... of the TF1 API); nothing
is edited. Imported and run: ``util/quaternion.py`` (multiply, conjugate, normalise, rotate, as_rotation_matrix,
from_rotation_matrix), ``util/camera.py`` (intrinsic_matrix, quaternion_from_campos with ``util/euler.py``),
``util/point_cloud.py`` (pc_perspective_transform on both its quaternion and its camera-matrix paths,
pointcloud2voxels3d_fast, pointcloud_project_fast), ``util/gauss_kernel.py`` (gauss_kernel_1d, smoothing_kernel) and
``util/drc.py`` (drc_projection, drc_depth_projection, through pointcloud_project_fast), with the configuration the
reference's own config loader would produce: resources/default_config.yaml overlaid with
experiments/chair_unsupervised/config.yaml (vox_size 64, pc_gauss_kernel_size 21, focal_length 1.875, camera_distance
2.0, drc_logsum with clip 1e-5, pc_fast, separable filter). Point dropout is off (the projection is called directly).

Writes tests/data/conformance/dpc_projection.npz and dpc_projection.json; test: tests/test_conformance_dpc.py.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tools.conformance._common import write_json, write_npz  # noqa: E402

NUM_POINTS = 1000
HEAD = 100  # transformed points and the raw splat are stored for the first HEAD points of each cloud
CLOUD_SPREAD = (0.35, 1.2)  # points = tanh(spread * N(0, 1)) / 2: the decoder's range; the wider cloud has outliers
RUNS = {"s3": dict(sigma=3.0, scaling=True), "s1": dict(sigma=1.0, scaling=False)}
SLICE, SLICE_BATCH = 32, (0, 4)  # the blurred, scaled grids: this depth slice of these two (the full grids: 2M floats)
SOURCE_FILES = ("dpc/util/quaternion.py", "dpc/util/camera.py", "dpc/util/euler.py", "dpc/util/point_cloud.py",
                "dpc/util/gauss_kernel.py", "dpc/util/drc.py", "dpc/resources/default_config.yaml",
                "experiments/chair_unsupervised/config.yaml")


def _rng(tag: int) -> np.random.Generator:
    return np.random.default_rng([2018, 0xD9C, tag])


def draw_inputs() -> dict:
    """The seeded inputs (NumPy only; the test redraws them and checks the fixture's copies)."""
    clouds = np.stack([np.tanh(s * _rng(c).standard_normal((NUM_POINTS, 3))) / 2.0
                       for c, s in enumerate(CLOUD_SPREAD)]).astype(np.float32)           # (2, N, 3)
    # Blender-frame camera positions (z up), as the reference's data store them: radius 1.5 - 2.5, elevation < 60 deg
    r = _rng(10)
    az = r.uniform(-np.pi, np.pi, 6)
    el = r.uniform(-np.pi / 3, np.pi / 3, 6)
    rad = r.uniform(1.5, 2.5, 6)
    cam_pos = np.stack([rad * np.cos(el) * np.cos(az), rad * np.cos(el) * np.sin(az), rad * np.sin(el)], -1)
    q_rand = _rng(11).standard_normal((2, 4))
    q_rand[0] *= -np.sign(q_rand[0, 0]) / np.linalg.norm(q_rand[0])  # normalised, w < 0 (the same rotation as -q)
    q_rand[1] *= 1.7 / np.linalg.norm(q_rand[1])                       # not normalised: |q| = 1.7
    scaling = 1.0 / (1.0 + np.exp(-_rng(12).standard_normal((8, 1))))  # occupancy scaling in (0, 1)
    ops = _rng(13)
    return {"clouds": clouds, "cam_pos": cam_pos.astype(np.float32), "q_random": q_rand.astype(np.float32),
            "scaling": scaling.astype(np.float32),
            "qa": ops.standard_normal((16, 4)).astype(np.float32),
            "qb": ops.standard_normal((16, 4)).astype(np.float32),
            "rot_points": ops.uniform(-0.5, 0.5, (16, 50, 3)).astype(np.float32)}


def _config(repo: Path) -> types.SimpleNamespace:
    """default_config.yaml overlaid with the chair config, with the reference loader's type check."""
    import yaml

    cfg = yaml.safe_load((repo / "dpc/resources/default_config.yaml").read_text())
    for k, v in yaml.safe_load((repo / "experiments/chair_unsupervised/config.yaml").read_text()).items():
        if k not in cfg or type(v) is not type(cfg[k]):
            raise KeyError(f"config key {k!r}: {v!r} does not fit the default {cfg.get(k)!r}")
        cfg[k] = v
    return types.SimpleNamespace(**cfg)


def _import_reference(repo: Path):
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_eager_execution()
    sys.path.insert(0, str(repo / "dpc"))
    saved = sys.modules["tensorflow"]
    sys.modules["tensorflow"] = v1  # the reference's `import tensorflow as tf` -> the TF1 API; restored below
    try:
        import util.camera as camera
        import util.drc as drc
        import util.euler as euler
        import util.gauss_kernel as gauss_kernel
        import util.point_cloud as point_cloud
        import util.quaternion as quaternion
    finally:
        sys.modules["tensorflow"] = saved
    mods = types.SimpleNamespace(camera=camera, drc=drc, euler=euler, gauss_kernel=gauss_kernel,
                                 point_cloud=point_cloud, quaternion=quaternion)
    for name, m in vars(mods).items():
        assert m.__file__.startswith(str(repo)), (name, m.__file__)
        assert getattr(m, "tf", v1) is v1, name
    return v1, mods


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True, help="extracted snapshot of eldar/differentiable-point-clouds (outside)")
    p.add_argument("--commit", required=True, help="the snapshot's commit (recorded)")
    args = p.parse_args(argv)
    repo = Path(args.repo).resolve()
    missing = [f for f in SOURCE_FILES if not (repo / f).is_file()]
    if missing:
        p.error(f"--repo {repo} lacks {missing}")
    cfg = _config(repo)
    v1, ref = _import_reference(repo)
    import tensorflow as tf

    inp = draw_inputs()
    K = 4  # cameras per cloud
    B = 2 * K
    q_campos = np.stack([ref.camera.quaternion_from_campos(c.astype(np.float64)) for c in inp["cam_pos"]])
    # The four projection cameras: identity, the data path's quaternion of cam_pos[0], two seeded ones.
    quats = np.concatenate([[[1.0, 0.0, 0.0, 0.0]], q_campos[:1], inp["q_random"]]).astype(np.float32)   # (4, 4)
    points = np.repeat(inp["clouds"], K, axis=0)                  # (8, N, 3): cloud c with camera k at c * 4 + k
    quats_b = np.tile(quats, (2, 1))                              # (8, 4)
    c = tf.constant
    q = ref.quaternion
    t = {}
    # quaternion algebra
    qa, qb = c(inp["qa"]), c(inp["qb"])
    qa_pos = inp["qa"] * np.where(inp["qa"][:, :1] < 0, -1.0, 1.0).astype(np.float32)
    t["q_mul"] = q.quaternion_multiply(qa, qb)
    t["q_conj"] = q.quaternion_conjugate(qa)
    t["q_norm"] = q.quaternion_normalise(qa)
    t["q_matrix"] = q.as_rotation_matrix(qa)
    t["q_from_matrix"] = q.from_rotation_matrix(q.as_rotation_matrix(c(qa_pos)))
    t["rot_out"] = q.quaternion_rotate(c(inp["rot_points"]), qa)
    t["rot_inv_out"] = q.quaternion_rotate(c(inp["rot_points"]), qa, inverse=True)
    # camera: the quaternion path and the camera-matrix path with extrinsic [R(q) | (d, 0, 0)]
    pts, qs = c(points), c(quats_b)
    t["tr_pc"] = ref.point_cloud.pc_perspective_transform(cfg, pts, qs)
    rot = q.as_rotation_matrix(qs)
    extr = tf.concat([tf.concat([rot, tf.reshape(c([cfg.camera_distance, 0.0, 0.0] * B), [B, 3, 1])], 2),
                      tf.tile(c([[[0.0, 0.0, 0.0, 1.0]]]), [B, 1, 1])], 1)
    t["extrinsic"] = extr
    cfg_matrix = types.SimpleNamespace(**{**vars(cfg), "pose_quaternion": False})
    t["tr_pc_matrix"] = ref.point_cloud.pc_perspective_transform(cfg_matrix, pts, extr)
    # raw trilinear splat of the reference's own transformed points
    t["splat"], _ = ref.point_cloud.pointcloud2voxels3d_fast(cfg, t["tr_pc"][:, :HEAD], None)
    t["tr_pc"], t["tr_pc_matrix"] = t["tr_pc"][:, :HEAD], t["tr_pc_matrix"][:, :HEAD]
    for run, spec in RUNS.items():
        sigma = c(spec["sigma"], tf.float32)
        kernel = ref.gauss_kernel.smoothing_kernel(cfg, sigma)
        t[f"{run}_kernel_1d"] = tf.reshape(kernel[0], [-1])
        out = ref.point_cloud.pointcloud_project_fast(
            cfg, pts, qs, None, None, kernel, scaling_factor=c(inp["scaling"]) if spec["scaling"] else None)
        t[f"{run}_silhouette"] = out["proj"][..., 0]
        t[f"{run}_depth"] = out["proj_depth"][..., 0]
        vox = out["voxels"][..., 0]
        t[f"{run}_occupancy_slice"] = tf.gather(vox[:, SLICE], list(SLICE_BATCH))
    with v1.Session() as sess:
        res = sess.run(t)
        intrinsic = ref.camera.intrinsic_matrix(cfg, dims=4)
    splat = res.pop("splat")
    nz = np.argwhere(splat != 0)
    arrays = {**inp, "q_campos": q_campos, "quats": quats, "intrinsic": intrinsic,
              "splat_index": nz.astype(np.int16), "splat_value": splat[tuple(nz.T)], **res}
    arrays = {k: (np.asarray(v, np.float32) if np.asarray(v).dtype.kind == "f" else np.asarray(v))
              for k, v in arrays.items()}
    arrays["q_campos"] = np.asarray(q_campos, np.float64)  # NumPy float64 on the reference's side
    write_npz("dpc_projection", arrays)
    keys = ("vox_size", "vox_size_z", "focal_length", "camera_distance", "pose_quaternion", "pc_fast",
            "pc_gauss_kernel_size", "pc_separable_gauss_filter", "pc_relative_sigma", "drc_logsum",
            "drc_logsum_clip_val", "drc_tf_cumulative", "max_depth", "ptn_max_projection", "pc_point_dropout")
    write_json("dpc_projection", {
        "reference": "eldar/differentiable-point-clouds dpc/util/{quaternion,camera,euler,point_cloud,gauss_kernel,"
                     "drc}.py run unchanged under tf.compat.v1 graph mode (CPU, float32)",
        "commit": args.commit, "tensorflow": tf.__version__,
        "source_sha256": {f: hashlib.sha256((repo / f).read_bytes()).hexdigest()[:16] for f in SOURCE_FILES},
        "config": {k: getattr(cfg, k) for k in keys},
        "point_dropout": "off: pointcloud_project_fast is called directly (the model applies pc_point_dropout before)",
        "runs": {k: {"sigma_rel": v["sigma"], "occupancy_scaling": v["scaling"]} for k, v in RUNS.items()},
        "layout": "batch b = cloud * 4 + camera; cameras: identity, quaternion_from_campos(cam_pos[0]), q_random",
        "occupancy_slice": {"depth_index": SLICE, "batch": list(SLICE_BATCH)},
        "num_points": NUM_POINTS, "head_points": HEAD, "cloud_spread": list(CLOUD_SPREAD),
        "max_abs": {k: float(np.abs(v).max()) for k, v in sorted(res.items())},
        "splat_nonzeros": int(len(nz)),
    })


if __name__ == "__main__":
    main()
