"""CycleGAN / AIST networks, losses and image pool against the reference numbers and direct NumPy computations."""
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models import aist, cyclegan
from tests.tolerance import assert_close_scaled


def _trainable(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_weights))


# ------------------------------------------------------------------------------------------------- reference numbers

def test_generator_parameter_count_matches_reference():
    g = cyclegan.resnet_generator((256, 256, 3))
    assert _trainable(g) == cyclegan.GENERATOR_PARAMS == 11_378_179
    assert g.count_params() == 11_378_179  # non-affine instance norm: no hidden statistics


def test_discriminator_parameter_count_and_patch_grid():
    d = cyclegan.patch_discriminator((256, 256, 3))
    assert _trainable(d) == cyclegan.DISCRIMINATOR_PARAMS == 2_764_737
    assert d.output_shape == (None, 30, 30, 1)
    out = d(np.zeros((1, 256, 256, 3), np.float32))
    assert out.shape == (1, 30, 30, 1)


# --------------------------------------------------------------------------- NumPy transcription of the PyTorch modules

def _np_conv(x, w, b, stride, pad, reflect=False):
    """nn.Conv2d on NHWC with a Keras (kh, kw, in, out) kernel."""
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect" if reflect else "constant")
    kh, kw = w.shape[:2]
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride + 1, (wd - kw) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
            out += patch @ w[i, j]
    return out + b


def _np_conv_transpose(x, w, b, stride=2, pad=1, out_pad=1):
    """nn.ConvTranspose2d by scattering; `w` in Keras (kh, kw, out, in) layout."""
    n, h, wd, _ = x.shape
    kh, kw = w.shape[:2]
    full = np.zeros((n, (h - 1) * stride + kh, (wd - 1) * stride + kw, w.shape[2]))
    for i in range(h):
        for j in range(wd):
            full[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :] += np.einsum(
                "nc,kloc->nklo", x[:, i, j, :], w)
    oh = (h - 1) * stride - 2 * pad + kh + out_pad
    ow = (wd - 1) * stride - 2 * pad + kw + out_pad
    return full[:, pad:pad + oh, pad:pad + ow, :] + b


def _np_in(x, eps=1e-5):
    m = x.mean(axis=(1, 2), keepdims=True)
    v = x.var(axis=(1, 2), keepdims=True)
    return (x - m) / np.sqrt(v + eps)


def _np_generator(model, x, n_blocks, slope):
    def act(t):
        return np.where(t > 0, t, slope * t)
    W = {layer.name: [np.asarray(v, np.float64) for v in layer.get_weights()] for layer in model.layers}
    h = act(_np_in(_np_conv(x, *W["model.1"], 1, 3, reflect=True)))
    h = act(_np_in(_np_conv(h, *W["model.4"], 2, 1)))
    h = act(_np_in(_np_conv(h, *W["model.7"], 2, 1)))
    idx = 10
    for _ in range(n_blocks):
        p = f"model.{idx}.conv_block"
        y = act(_np_in(_np_conv(h, *W[f"{p}.1"], 1, 1, reflect=True)))
        y = _np_in(_np_conv(y, *W[f"{p}.5"], 1, 1, reflect=True))
        h = h + y
        idx += 1
    h = act(_np_in(_np_conv_transpose(h, *W[f"model.{idx}"])))
    h = act(_np_in(_np_conv_transpose(h, *W[f"model.{idx + 3}"])))
    return np.tanh(_np_conv(h, *W[f"model.{idx + 7}"], 1, 3, reflect=True))


@pytest.mark.parametrize("activation,slope", [("leaky_relu", 0.01), ("relu", 0.0)])
def test_generator_forward_equals_numpy_transcription_of_reference(activation, slope):
    n_blocks = 2
    g = cyclegan.resnet_generator((12, 12, 3), ngf=4, n_blocks=n_blocks, activation=activation,
                                  negative_slope=slope)
    rng = np.random.default_rng(0)
    for v in g.trainable_weights:  # non-zero biases so bias handling is checked too
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    x = rng.uniform(-1, 1, (2, 12, 12, 3))
    got = np.asarray(g(x.astype(np.float32)))
    want = _np_generator(g, x, n_blocks, slope)
    assert got.shape == (2, 12, 12, 3)
    np.testing.assert_allclose(got, want, atol=2e-5)


def test_discriminator_forward_equals_numpy_transcription():
    d = cyclegan.patch_discriminator((40, 40, 3), ndf=4)
    rng = np.random.default_rng(1)
    for v in d.trainable_weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype(np.float32))
    x = rng.uniform(-1, 1, (2, 40, 40, 3))
    W = {layer.name: [np.asarray(v, np.float64) for v in layer.get_weights()] for layer in d.layers}
    lrelu = lambda t: np.where(t > 0, t, 0.2 * t)  # noqa: E731
    h = lrelu(_np_conv(x, *W["model.0"], 2, 1))
    h = lrelu(_np_in(_np_conv(h, *W["model.2"], 2, 1)))
    h = lrelu(_np_in(_np_conv(h, *W["model.5"], 2, 1)))
    h = lrelu(_np_in(_np_conv(h, *W["model.8"], 1, 1)))
    want = _np_conv(h, *W["model.11"], 1, 1)
    assert_close_scaled(np.asarray(d(x.astype(np.float32))), want, rel=1e-5)  # unbounded scores (max ~7 here)


def test_torch_state_dict_round_trip_and_errors():
    g = cyclegan.resnet_generator((16, 16, 3), ngf=4, n_blocks=1)
    sd = {}
    for layer in g.layers:
        if hasattr(layer, "kernel"):
            sd[f"{layer.name}.weight"] = np.transpose(np.asarray(layer.kernel), (3, 2, 0, 1))
            sd[f"{layer.name}.bias"] = np.asarray(layer.bias)
    assert sd["model.11.weight"].shape == (16, 8, 3, 3)  # ConvTranspose2d(16 -> 8): (in, out, kh, kw)
    h = cyclegan.resnet_generator((16, 16, 3), ngf=4, n_blocks=1)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)
    assert not np.allclose(g(x), h(x))
    cyclegan.load_torch_state_dict(h, sd)
    np.testing.assert_array_equal(np.asarray(g(x)), np.asarray(h(x)))
    bad = dict(sd)
    del bad["model.1.bias"]
    bad["model.4.weight"] = bad["model.4.weight"][:, :2]
    with pytest.raises(ValueError, match=r"missing keys.*model\.1\.bias") as err:
        cyclegan.load_torch_state_dict(h, bad)
    assert "model.4.weight" in str(err.value)


def test_init_is_normal_002_with_zero_bias():
    g = cyclegan.resnet_generator((None, None, 3))
    k = np.asarray(g.get_layer("model.10.conv_block.1").kernel).ravel()
    assert abs(k.std() - 0.02) < 0.001 and abs(k.mean()) < 0.001
    assert not np.asarray(g.get_layer("model.10.conv_block.1").bias).any()


# ------------------------------------------------------------------------------------------------------------- losses

def test_loss_functions_equal_numpy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(3, 5, 5, 2)), rng.normal(size=(3, 5, 5, 2))
    np.testing.assert_allclose(aist.lsgan_loss(a, 1.0), np.mean((a - 1) ** 2), rtol=1e-6)
    np.testing.assert_allclose(aist.lsgan_loss(a, 0.0), np.mean(a ** 2), rtol=1e-6)
    np.testing.assert_allclose(aist.l1_loss(a, b), np.mean(np.abs(a - b)), rtol=1e-6)
    per_image = np.abs(a - b).reshape(3, -1).mean(1)
    np.testing.assert_allclose(aist.squared_l1_loss(a, b), np.mean(per_image ** 2), rtol=1e-6)


def test_alpha_modes_and_mask_iou():
    img = -np.ones((1, 2, 3, 4), np.float32)
    img[0, 0, 0, :3] = [-1, -0.99, -1]  # barely non-black -> alpha 1 in 'nonblack'
    img[0, 1, 2, 3] = 1.0  # opaque pixel in 'channel'
    np.testing.assert_array_equal(np.asarray(aist.alpha_of(img, "nonblack"))[0, ..., 0], [[1, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(np.asarray(aist.alpha_of(img, "channel"))[0, ..., 0], [[0, 0, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="RGBA"):
        aist.alpha_of(img[..., :3], "channel")
    a = np.zeros((2, 4, 4, 1), np.float32)
    b = np.zeros((2, 4, 4, 1), np.float32)
    a[0, :2] = 1
    b[0, 1:3] = 1  # inter 4, union 12
    np.testing.assert_allclose(aist.mask_iou(a, b), (4 / 12 + 1.0) / 2)  # image 2: both empty -> 1


def test_colour_correct_only_touches_opaque_black():
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[0, 0] = [0, 0, 0, 255]
    rgba[0, 1] = [0, 0, 0, 0]
    rgba[0, 2] = [0, 5, 0, 255]
    out = aist.colour_correct(rgba)
    np.testing.assert_array_equal(out[0, :, :3], [[1, 1, 1], [0, 0, 0], [0, 5, 0]])
    assert rgba[0, 0, 0] == 0  # input untouched


def _tiny_gan(alpha_mode="channel", channels=4, weights=aist.PRESETS["constrained"], **kw):
    phi = aist.feature_extractor("", 32)
    return aist.AISTCycleGAN(image_size=32, channels=channels, alpha_mode=alpha_mode, weights=weights, phi=phi,
                             ngf=4, ndf=4, n_blocks=1, pool_size=3, batch_size=2, **kw)


def _rgba_batch(seed, n=2, size=32):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, size, size, 4)).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    mask = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 3) ** 2
    x[..., 3] = np.where(mask, 1.0, -1.0)
    return x


def test_generator_loss_terms_equal_numpy_on_the_same_tensors():
    w = aist.LossWeights(10, 9, 0.3, 2, 1.5, 1.75, 1.25)
    gan = _tiny_gan(weights=w)
    x, y = _rgba_batch(4), _rgba_batch(5)
    t, fake_x, fake_y = gan.generator_losses(x, y, training=False)
    G = lambda v: np.asarray(gan.G(v), np.float64)  # noqa: E731
    F = lambda v: np.asarray(gan.F(v), np.float64)  # noqa: E731
    fy, fx = G(x), F(y)
    np.testing.assert_allclose(np.asarray(fake_y), fy, atol=1e-6)
    sq = lambda a, b: np.mean(np.abs(a - b).reshape(len(a), -1).mean(1) ** 2)  # noqa: E731
    phi = lambda v: np.asarray(gan.phi(v[..., :3]), np.float64)  # noqa: E731
    alpha = lambda v: (v[..., 3:4] + 1) / 2  # noqa: E731
    want = {
        "gan_G": np.mean((np.asarray(gan.D_Y(fy.astype(np.float32))) - 1) ** 2),
        "gan_F": np.mean((np.asarray(gan.D_X(fx.astype(np.float32))) - 1) ** 2),
        "cycle_X": 10 * np.mean(np.abs(F(fy.astype(np.float32)) - x)),
        "cycle_Y": 9 * np.mean(np.abs(G(fx.astype(np.float32)) - y)),
        "idt_G": 9 * 0.3 * np.mean(np.abs(G(y) - y)),
        "idt_F": 10 * 0.3 * np.mean(np.abs(F(x) - x)),
        "alpha_G": 2 * sq(alpha(x), alpha(fy)),
        "alpha_F": 1.5 * sq(alpha(y), alpha(fx)),
        "resdist_G": 1.75 * sq(phi(x), phi(fy.astype(np.float32))),
        "resdist_F": 1.25 * sq(phi(y), phi(fx.astype(np.float32))),
    }
    for k, v in want.items():
        np.testing.assert_allclose(float(t[k]), v, rtol=2e-4, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(float(t["g_total"]), sum(want.values()), rtol=2e-4)
    d = gan.discriminator_losses(x, y, fake_x, fake_y, training=False)
    dy = 0.5 * (np.mean((np.asarray(gan.D_Y(y)) - 1) ** 2) + np.mean(np.asarray(gan.D_Y(fake_y)) ** 2))
    np.testing.assert_allclose(float(d["d_Y"]), dy, rtol=1e-5)


def test_alpha_term_has_gradient_in_channel_mode_only():
    x, y = _rgba_batch(6), _rgba_batch(7)
    only_alpha = aist.LossWeights(0, 0, 0, 1, 1, 0, 0)
    for mode, channels in (("channel", 4), ("nonblack", 3)):
        gan = _tiny_gan(mode, channels, weights=only_alpha)
        xx, yy = x[..., :channels], y[..., :channels]
        with tf.GradientTape() as tape:
            t, _, _ = gan.generator_losses(xx, yy)
        grads = tape.gradient(t["alpha_G"], gan.G.trainable_variables)
        norm = sum(float(tf.reduce_sum(g ** 2)) for g in grads if g is not None)
        assert (norm > 0) == (mode == "channel"), (mode, norm)


# --------------------------------------------------------------------------------------------------------- image pool

def test_image_pool_matches_reference_semantics():
    rng = np.random.default_rng(8)
    pool_size, shape = 3, (2, 2, 1)
    batches = [rng.normal(size=(2,) + shape).astype(np.float32) for _ in range(6)]
    draws = [(rng.uniform(size=2), rng.integers(0, pool_size, 2)) for _ in range(6)]
    want = aist.numpy_image_pool(batches, draws, pool_size)
    pool = aist.ImagePool(pool_size, shape)
    query = tf.function(pool.query_with_draws)
    got = [np.asarray(query(b, tf.constant(u, tf.float32), tf.constant(i, tf.int32))) for b, (u, i) in
           zip(batches, draws)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert int(pool.count.value) == pool_size
    # Some returned images came from the pool, not from the current batch (else the test proves little).
    assert any(not np.array_equal(g, b) for g, b in zip(got[2:], batches[2:]))
    # pool_size 0 returns the batch untouched.
    np.testing.assert_array_equal(aist.ImagePool(0, shape)(batches[0]), batches[0])


def test_image_pool_draws_are_deterministic_from_seed():
    batches = [np.full((2, 1, 1, 1), k, np.float32) for k in range(10)]
    outs = []
    for _ in range(2):
        pool = aist.ImagePool(2, (1, 1, 1), seed=5)
        outs.append([np.asarray(pool(b)).ravel().tolist() for b in batches])
    assert outs[0] == outs[1]


# ------------------------------------------------------------------------------------------------ training + schedule

def test_train_step_updates_generators_discriminators_and_pools():
    gan = _tiny_gan()
    gan.compile(g_optimizer=aist.adam(), d_optimizer=aist.adam())
    x, y = _rgba_batch(9), _rgba_batch(10)
    g0 = [np.asarray(v).copy() for v in gan.G.trainable_variables]
    d0 = [np.asarray(v).copy() for v in gan.D_Y.trainable_variables]
    phi0 = [np.asarray(v).copy() for v in gan.phi.weights]
    ds = tf.data.Dataset.from_tensors((x, y)).repeat(3)
    hist = gan.fit(ds, epochs=1, verbose=0)
    for k in ("g_total", "d_X", "d_Y", "alpha_G", "resdist_F", "mask_iou_G"):
        assert np.isfinite(hist.history[k][-1]), k
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(g0, gan.G.trainable_variables))
    assert any(not np.array_equal(a, np.asarray(b)) for a, b in zip(d0, gan.D_Y.trainable_variables))
    assert all(np.array_equal(a, np.asarray(b)) for a, b in zip(phi0, gan.phi.weights))  # Phi stays frozen
    assert int(gan.pool_X.count.value) == 3 and int(gan.pool_Y.count.value) == 3


def test_linear_decay_matches_reference_lambda():
    # Reference: lr_l = 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch from 0.
    lrs = [aist.linear_decay_lr(e, 2e-4, n_epochs=3, n_epochs_decay=3) for e in range(6)]
    np.testing.assert_allclose(lrs, [2e-4, 2e-4, 2e-4, 2e-4 * 0.75, 2e-4 * 0.5, 2e-4 * 0.25], atol=1e-12)
