"""Differentiable point clouds (DPC): unsupervised shape and pose from silhouettes (Insafutdinov & Dosovitskiy 2018).

Seed 002 §2.5.1 / ch. 5. The network, the differentiable projection and the losses, as in the public reference code
(`dpc/nets/*.py`, `dpc/util/point_cloud.py`, `dpc/util/drc.py`, `dpc/models/model_pc.py`, chair/car configs):

    model = build_dpc(DPCNetConfig())                 # 33,292,309 parameters at the reference sizes
    out = model(images)                               # images (B, 128, 128, 3) in [0, 1]
    out["points"] (B, 8000, 3) in [-0.5, 0.5]^3, out["scale"] (B, 1), out["poses"] (B, 4 candidates, 4),
    out["pose_student"] (B, 4)                        # quaternions [w, x, y, z], not normalised
    proj = project(points, quats, ProjectionConfig(), sigma_rel=3.0, scale=...)   # proj["silhouette"] (B, 64, 64, 1)

Camera convention (the reference's): a point p is rotated by the quaternion q (q p q*), then the camera looks along
+x from x = -camera_distance; image column u = f * z / (x + d), row v = f * y / (x + d) (rows flipped so that +y is
up), depth = x. The 64^3 splatting grid spans [-0.5, 0.5] in (depth, v, u).
"""
from __future__ import annotations

import dataclasses
import math

import keras
import numpy as np
import tensorflow as tf
from tensorflow_graphics.geometry.transformation import quaternion as tfg_quaternion


@dataclasses.dataclass(frozen=True)
class DPCNetConfig:
    """Network sizes; the defaults are the reference chair/car configuration."""

    image_size: int = 128  # input images, square
    channels: int = 3  # RGB input (the reference); 1 for mask-only inputs
    f_dim: int = 16  # first conv width; doubled in each of the log2(image_size / 4) - 1 blocks
    fc_dim: int = 1024  # the three fully connected layers
    z_dim: int = 1024  # shape code and pose code width
    num_points: int = 8000  # predicted points
    num_candidates: int = 4  # pose ensemble size (1: a single FC pose head, no student)
    pose_hidden: int = 32  # hidden width of each pose head (FC 32, FC 32, FC 4)
    student: bool = True  # student pose head distilled from the best candidate
    scaling_max: float = 1.0  # learned occupancy scaling: sigmoid(FC(z)) * scaling_max
    decoder_init_stddev: float = 0.025  # truncated normal init of the point decoder
    negative_slope: float = 0.2  # leaky ReLU (tf.nn.leaky_relu default)

    @property
    def num_blocks(self) -> int:
        return int(round(math.log2(self.image_size / 4))) - 1


def _conv(filters, kernel, stride, name, slope):
    return keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", name=name,
                               kernel_initializer=keras.initializers.HeNormal(),
                               activation=lambda x: tf.nn.leaky_relu(x, slope))


def _dense(units, name, act=None, init=None):
    return keras.layers.Dense(units, name=name, activation=act,
                              kernel_initializer=init or keras.initializers.HeNormal())


def build_dpc(config: DPCNetConfig = DPCNetConfig(), seed: int | None = None) -> keras.Model:
    """Encoder -> shape code -> points + occupancy scale; pose code -> candidate heads + student (reference layout).

    Returns a functional model with outputs {'points', 'scale', 'poses', 'pose_student' (if student)}.
    """
    c = config
    if c.image_size < 8 or c.image_size & (c.image_size - 1):
        raise ValueError(f"image_size must be a power of two >= 8, got {c.image_size}")
    slope = c.negative_slope
    leaky = lambda x: tf.nn.leaky_relu(x, slope)  # noqa: E731
    trunc = lambda s: keras.initializers.TruncatedNormal(stddev=s, seed=seed)  # noqa: E731
    images = keras.Input((c.image_size, c.image_size, c.channels), name="images")
    h = keras.layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(images)  # the reference's images * 2 - 1
    f = c.f_dim
    h = _conv(f, 5, 2, "conv0", slope)(h)
    for k in range(c.num_blocks):
        f *= 2
        h = _conv(f, 3, 2, f"block{k + 1}_a", slope)(h)
        h = _conv(f, 3, 1, f"block{k + 1}_b", slope)(h)
    h = keras.layers.Flatten(name="flatten")(h)
    fc1 = _dense(c.fc_dim, "fc1", leaky)(h)
    fc2 = _dense(c.fc_dim, "fc2", leaky)(fc1)
    shape_code = _dense(c.z_dim, "shape_code", leaky)(fc2)
    pose_code = _dense(c.z_dim, "pose_code")(fc2)  # no activation (reference: 'poses' FC from fc2)

    raw = _dense(c.num_points * 3, "point_decoder", init=trunc(c.decoder_init_stddev))(shape_code)
    points = keras.layers.Lambda(lambda r: tf.tanh(tf.reshape(r, [-1, c.num_points, 3])) / 2.0, name="points")(raw)
    scale_raw = _dense(1, "occupancy_scaling", init=trunc(0.025))(shape_code)
    scale = keras.layers.Lambda(lambda s: tf.sigmoid(s) * c.scaling_max, name="scale")(scale_raw)

    def pose_head(prefix):
        t = _dense(c.pose_hidden, f"{prefix}_fc1", leaky)(pose_code)
        t = _dense(c.pose_hidden, f"{prefix}_fc2", leaky)(t)
        return _dense(4, f"{prefix}_out")(t)

    outputs = {"points": points, "scale": scale}
    if c.num_candidates > 1:
        heads = [pose_head(f"pose_candidate{k}") for k in range(c.num_candidates)]
        outputs["poses"] = keras.layers.Lambda(lambda hs: tf.stack(hs, axis=1), name="poses")(heads)
        if c.student:
            outputs["pose_student"] = keras.layers.Identity(name="pose_student")(pose_head("pose_student"))
    else:
        q = _dense(4, "pose_out")(pose_code)
        outputs["poses"] = keras.layers.Reshape((1, 4), name="poses")(q)
    return keras.Model(images, outputs, name="dpc")


# ----------------------------------------------------------------------------------------------------------------
# Quaternions [w, x, y, z] (tensorflow-graphics uses [x, y, z, w]; these wrappers convert).

def wxyz_to_xyzw(q):
    return tf.concat([q[..., 1:], q[..., :1]], axis=-1)


def xyzw_to_wxyz(q):
    return tf.concat([q[..., 3:], q[..., :3]], axis=-1)


def q_normalize(q):
    return q / tf.norm(q, axis=-1, keepdims=True)


def q_multiply(a, b):
    """Hamilton product of [w, x, y, z] quaternions."""
    return xyzw_to_wxyz(tfg_quaternion.multiply(wxyz_to_xyzw(a), wxyz_to_xyzw(b)))


def q_conjugate(q):
    return q * tf.constant([1.0, -1.0, -1.0, -1.0], q.dtype)


def q_rotate(points, q):
    """Rotates points (B, N, 3) by quaternions (B, 4) [w, x, y, z] (normalised here): q p q*."""
    q = q_normalize(q)
    q = tf.broadcast_to(wxyz_to_xyzw(q)[:, None, :], tf.concat([tf.shape(points)[:2], [4]], 0))
    return tfg_quaternion.rotate(points, q)


# ----------------------------------------------------------------------------------------------------------------
# Differentiable projection (reference `pointcloud_project_fast` with the chair/car settings).

@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
    vox_size: int = 64  # splatting grid resolution (and silhouette size)
    focal_length: float = 1.875  # perspective focal length (image plane spans [-0.5, 0.5])
    camera_distance: float = 2.0  # camera to object centre
    kernel_size: int = 21  # separable Gaussian blur taps
    max_depth: float = 10.0  # depth of the background event
    clip_val: float = 1e-5  # occupancies clipped to [clip_val, 1 - clip_val] before the log-space products


def perspective_transform(points, quats, focal_length: float, camera_distance: float):
    """(B, N, 3) points, (B, 4) quaternions -> (B, N, 3) grid coordinates (depth, v, u), each ~[-0.5, 0.5]."""
    p = q_rotate(points, quats)
    z = p[..., 0:1] + camera_distance
    v = p[..., 1:2] * focal_length / z
    u = p[..., 2:3] * focal_length / z
    return tf.concat([z - camera_distance, v, u], axis=-1)


_CORNERS = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], np.int32)  # (8, 3)


def splat_trilinear(coords, vox_size: int):
    """Trilinear splatting of (B, N, 3) coordinates in [-0.5, 0.5]^3 onto (B, G, G, G) grids (all 8 corners at once).

    Points outside the cube contribute nothing (the reference drops them). Gradients flow to the coordinates through
    the interpolation weights.
    """
    g = vox_size
    b = tf.shape(coords)[0]
    n = tf.shape(coords)[1]
    valid = tf.reduce_all((coords >= -0.5) & (coords <= 0.5), axis=-1)  # (B, N)
    grid = (coords + 0.5) * (g - 1)
    floor = tf.floor(grid)
    frac = grid - floor  # (B, N, 3)
    base = tf.clip_by_value(tf.cast(floor, tf.int32), 0, g - 1)
    corners = tf.constant(_CORNERS)  # (8, 3)
    idx = base[:, :, None, :] + corners[None, None]  # (B, N, 8, 3), in [0, g]
    cf = tf.cast(corners, coords.dtype)
    w = tf.reduce_prod(cf * frac[:, :, None, :] + (1.0 - cf) * (1.0 - frac[:, :, None, :]), axis=-1)  # (B, N, 8)
    w = w * tf.cast(valid, w.dtype)[:, :, None]
    batch = tf.broadcast_to(tf.range(b)[:, None, None, None], tf.stack([b, n, 8, 1]))
    full = tf.concat([batch, idx], axis=-1)  # (B, N, 8, 4)
    # One extra slice per axis absorbs the '+1' corners of points on the far faces, then is cropped away.
    vox = tf.scatter_nd(tf.reshape(full, [-1, 4]), tf.reshape(w, [-1]), tf.stack([b, g + 1, g + 1, g + 1]))
    return vox[:, :g, :g, :g]


def gauss_kernel_1d(size: int, sigma):
    """Normalised 1-D Gaussian over integer offsets (-size)//2 + 1 .. size//2 (the reference taps; 21 -> -10..10)."""
    x = tf.range((-size) // 2 + 1.0, size // 2 + 1.0, dtype=tf.float32)
    k = tf.exp(-tf.square(x) / (2.0 * tf.square(tf.cast(sigma, tf.float32))))
    return k / tf.reduce_sum(k)


def blur_matrix(size: int, sigma, grid: int):
    """(grid, grid) banded matrix M with (x M)[j] = sum_i x[i] k[i - j]: a 'SAME' zero-padded 1-D convolution."""
    k = gauss_kernel_1d(size, sigma)
    offsets = np.arange(grid)[:, None] - np.arange(grid)[None, :]  # i - j
    tap = offsets + size // 2 - (1 - size % 2)  # index into k of offset (i - j); k covers (-size)//2+1 .. size//2
    inside = (tap >= 0) & (tap < size)
    return tf.where(inside, tf.gather(k, np.clip(tap, 0, size - 1)), 0.0)


def blur3d(vox, sigma, size: int):
    """Separable 3-D Gaussian blur of (B, D, H, W) grids with `size` taps and 'SAME' zero padding.

    Each 1-D pass is a product with a banded Toeplitz matrix (one einsum per axis): the same numbers as three
    `conv3d` passes with 1-D kernels, but an order of magnitude faster on CPU for single-channel grids.
    """
    m = blur_matrix(size, sigma, vox.shape[-1])
    v = tf.einsum("bdhw,wx->bdhx", vox, m)
    v = tf.einsum("bdhw,hx->bdxw", v, m)
    return tf.einsum("bdhw,dx->bxhw", v, m)


def drc(occupancy, camera_distance: float, max_depth: float, clip_val: float = 1e-5):
    """Ray-termination probabilities along axis 1 of (B, D, H, W) occupancies (near slice first).

    Returns (silhouette (B, H, W) = 1 - prod(1 - o_k), depth (B, H, W), probs (B, D + 1, H, W)) where
    probs[k] = o_k prod_{j<k}(1 - o_j) and probs[D] = prod_j (1 - o_j) is the background (depth max_depth).
    Products are computed as exp of cumulative log sums (the reference's `drc_logsum`). The reference takes
    `clip_val` as the log of one there, so its first-slice and background probabilities are exp(clip_val) times
    these exact ones (1e-4 in depth on empty rays; tests/test_conformance_dpc.py).
    """
    o = tf.clip_by_value(occupancy, clip_val, 1.0 - clip_val)
    log_free = tf.math.log(1.0 - o)
    before = tf.math.cumsum(log_free, axis=1, exclusive=True)
    hit = tf.exp(before + tf.math.log(o))
    background = tf.exp(tf.reduce_sum(log_free, axis=1, keepdims=True))
    probs = tf.concat([hit, background], axis=1)
    d = occupancy.shape[1]
    depths = tf.concat([tf.range(d, dtype=tf.float32) / d - 0.5 + camera_distance, [max_depth]], 0)
    depth = tf.einsum("bkhw,k->bhw", probs, depths)
    silhouette = tf.reduce_sum(hit, axis=1)
    return silhouette, depth, probs


def project(points, quats, config: ProjectionConfig = ProjectionConfig(), sigma_rel=1.0, scale=None, blur_fn=None):
    """Differentiable silhouettes and depth maps of point clouds (B, N, 3) seen from quaternions (B, 4).

    sigma_rel: Gaussian blur sigma in voxels (scalar, may be a tensor); scale: (B, 1) occupancy scaling or None;
    blur_fn(vox, sigma, taps): replaces `blur3d` (benchmarks compare implementations with it).
    Returns {'silhouette': (B, G, G, 1), 'depth': (B, G, G, 1), 'occupancy': (B, G, G, G)}; image row 0 is the top.
    """
    cfg = config
    coords = perspective_transform(points, quats, cfg.focal_length, cfg.camera_distance)
    vox = splat_trilinear(coords, cfg.vox_size)
    vox = tf.clip_by_value(vox, 0.0, 1.0)
    vox = (blur_fn or blur3d)(vox, sigma_rel, cfg.kernel_size)
    if scale is not None:
        vox = tf.clip_by_value(vox * tf.reshape(scale, [-1, 1, 1, 1]), 0.0, 1.0)
    sil, depth, _ = drc(vox, cfg.camera_distance, cfg.max_depth, cfg.clip_val)
    sil = tf.reverse(sil, [1])[..., None]
    depth = tf.reverse(depth, [1])[..., None]
    return {"silhouette": sil, "depth": depth, "occupancy": vox}


# ----------------------------------------------------------------------------------------------------------------
# Schedules and losses (reference `model_pc.py`).

def sigma_schedule(step, total_steps: int, start: float = 3.0, end: float = 0.2):
    """Blur sigma in voxels, linear from `start` at step 0 to `end` at `total_steps`."""
    t = tf.cast(step, tf.float32) / float(max(total_steps, 1))
    return start + t * (end - start)


def keep_prob_schedule(step, total_steps: int, start: float = 0.07, start_frac: float = 0.0, end_frac: float = 1.0):
    """Point-dropout keep probability, linear from `start` to 1 between the two fractions of training (clipped)."""
    x = tf.cast(step, tf.float32) / float(max(total_steps, 1))
    k = (1.0 - start) / (end_frac - start_frac)
    return tf.clip_by_value(k * x + (start - k * start_frac), start, 1.0)


def point_dropout(points, keep_prob, noise):
    """Keeps a random subset of int(N * keep_prob) points of each cloud (independent per cloud, no loop).

    noise: (B, N) uniform random numbers; the points with the smallest values are kept.
    """
    n = points.shape[1]
    keep = tf.maximum(tf.cast(tf.cast(n, tf.float32) * keep_prob, tf.int32), 1)
    order = tf.argsort(noise, axis=1)[:, :keep]
    return tf.gather(points, order, batch_dims=1)


def repeat_rows(x, times: int):
    """[a, b] -> [a, a, ..., b, b, ...] along axis 0 (the reference's tf_repeat_0)."""
    return tf.repeat(x, times, axis=0)


def candidate_projection_loss(gt, pred, num_candidates: int):
    """gt (S, H, W, 1), pred (S * K, H, W, 1) -> (loss, best (S,) int).

    loss = l2_loss(difference of the best candidate) / S = 0.5 * sum of its squared errors / S, as the reference.
    """
    err = tf.reduce_sum(tf.square(repeat_rows(gt, num_candidates) - pred), axis=[1, 2, 3])
    err = tf.reshape(err, [-1, num_candidates])
    best = tf.argmin(err, axis=1, output_type=tf.int32)
    loss = 0.5 * tf.reduce_sum(tf.reduce_min(err, axis=1)) / tf.cast(tf.shape(gt)[0], tf.float32)
    return loss, best


def student_loss(poses, student, best):
    """Mean of 1 - w^2 of normalise(teacher * conj(student)), teacher = best candidate (stop-gradient)."""
    teacher = tf.stop_gradient(tf.gather(poses, best, batch_dims=1))
    diff = q_normalize(q_multiply(teacher, q_conjugate(student)))
    return tf.reduce_mean(1.0 - tf.square(diff[:, 0]))


def num_params(model: keras.Model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))
