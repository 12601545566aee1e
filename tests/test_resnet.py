"""Conformance of tfsynth.models.resnet with torchvision's ResNets (no torch needed)."""
import numpy as np
import pytest
import keras

from tests.tolerance import assert_close_scaled

from tfsynth.models.resnet import (load_torchvision_state_dict, resnet, resnet18, resnet50,
                                   to_torchvision_state_dict)

# torchvision sum(p.numel() for p in model.parameters()), 1000 classes
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032,
                      101: 44_549_160, 152: 60_192_808}
R50_BN_STATS = 53_120  # moving mean + variance: buffers in torch, non-trainable weights here


def _count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def _images(n=2, size=64, seed=0):
    return np.random.default_rng(seed).standard_normal((n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def r50():
    return resnet50()


@pytest.mark.parametrize("depth", sorted(TORCHVISION_PARAMS))
def test_param_count_matches_torchvision(depth):
    assert _count(resnet(depth).trainable_weights) == TORCHVISION_PARAMS[depth]


def test_resnet50_trainable_vs_non_trainable(r50):
    assert _count(r50.trainable_weights) == 25_557_032
    assert _count(r50.non_trainable_weights) == R50_BN_STATS
    assert r50.count_params() == 25_557_032 + R50_BN_STATS


@pytest.mark.parametrize("dilation, side", [
    ((False, False, False), 2),  # output stride 32
    ((False, True, True), 8),    # output stride 8 (FCN / DeepLab backbone)
    ((False, False, True), 4),   # output stride 16
    ((True, False, False), 4),   # stride-2 conv with dilation 2 after a dilated stage
])
def test_headless_and_dilated(dilation, side):
    m = resnet50(include_top=False, replace_stride_with_dilation=dilation)
    assert _count(m.trainable_weights) == 23_508_032
    assert m(_images(), training=False).shape == (2, side, side, 2048)


def test_dilation_rejected_for_basic_blocks_and_bad_args():
    with pytest.raises(ValueError, match="bottleneck"):
        resnet18(replace_stride_with_dilation=(False, True, True))
    with pytest.raises(ValueError):
        resnet(42)
    with pytest.raises(ValueError):
        resnet50(replace_stride_with_dilation=(False, True))


def test_layer_names(r50):
    names = {layer.name for layer in r50.layers}
    for n in ["conv1", "bn1", "relu", "maxpool", "layer1.0.conv1", "layer1.0.bn1",
              "layer1.0.conv3", "layer1.0.bn3", "layer1.0.downsample.0",
              "layer1.0.downsample.1", "layer1.0.out", "layer1.1.out", "layer3.5.out",
              "layer4.2.out", "avgpool", "fc"]:
        assert n in names, n
    assert "layer1.1.downsample.0" not in names
    assert sum(n.endswith(".out") for n in names) == 16
    # resnet18: stage 1 keeps 64 channels so it has no projection shortcut.
    names18 = {layer.name for layer in resnet18().layers}
    assert "layer1.0.downsample.0" not in names18 and "layer2.0.downsample.0" in names18
    assert "layer1.0.bn2" in names18 and "layer1.0.conv3" not in names18


def test_per_block_features(r50):
    feats = keras.Model(r50.input, [r50.get_layer(f"layer{s}.{b}.out").output
                                    for s, b in [(1, 2), (2, 3), (3, 5), (4, 2)]])
    shapes = [tuple(f.shape) for f in feats(_images(), training=False)]
    assert shapes == [(2, 16, 16, 256), (2, 8, 8, 512), (2, 4, 4, 1024), (2, 2, 2, 2048)]


def test_forward_batch_of_two(r50):
    y = np.asarray(r50(_images(), training=False))
    assert y.shape == (2, 1000) and np.isfinite(y).all()


def test_layer_config_and_init(r50):
    for layer in r50.layers:
        if isinstance(layer, keras.layers.Conv2D):
            assert not layer.use_bias
        if isinstance(layer, keras.layers.BatchNormalization):
            assert layer.epsilon == 1e-5 and layer.momentum == 0.9
            np.testing.assert_array_equal(layer.gamma.numpy(), 1.0)
            np.testing.assert_array_equal(layer.beta.numpy(), 0.0)
    # kaiming normal, fan_out: std = sqrt(2 / (k*k*out_channels))
    w = r50.get_layer("layer4.0.conv2").kernel.numpy()
    assert abs(w.std() / np.sqrt(2 / (9 * 512)) - 1) < 0.02
    assert abs(w.mean()) < 1e-3
    # nn.Linear default: weight and bias in U(-1/sqrt(2048), 1/sqrt(2048))
    bound = 1 / np.sqrt(2048)
    for v in r50.get_layer("fc").weights:
        a = np.abs(v.numpy())
        assert a.max() <= bound and a.max() > 0.9 * bound


@pytest.mark.parametrize("build, last_bn", [(resnet50, "bn3"), (resnet18, "bn2")])
def test_zero_init_residual(build, last_bn):
    m = build(zero_init_residual=True)
    bns = [l for l in m.layers if isinstance(l, keras.layers.BatchNormalization)]
    last = [l for l in bns if l.name.endswith("." + last_bn)]
    assert len(last) == (16 if build is resnet50 else 8)
    for layer in bns:
        np.testing.assert_array_equal(layer.gamma.numpy(), 0.0 if layer in last else 1.0)


def _torch_conv(x, k, stride, pad, dilation=1):
    """NHWC x HWIO conv with PyTorch semantics (symmetric zero padding)."""
    x = np.pad(np.asarray(x, np.float64), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = np.asarray(k, np.float64)
    kh, kw = k.shape[:2]
    ho = (x.shape[1] - dilation * (kh - 1) - 1) // stride + 1
    wo = (x.shape[2] - dilation * (kw - 1) - 1) // stride + 1
    out = 0
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * dilation::stride, j * dilation::stride][:, :ho, :wo]
            out = out + patch @ k[i, j]
    return out


@pytest.mark.parametrize("dilation, conv, pad, stride, dil", [
    ((False, False, False), "layer2.0.conv2", 1, 2, 1),
    ((False, False, False), "layer2.0.downsample.0", 0, 2, 1),
    ((False, True, True), "layer4.0.conv2", 2, 1, 2),
    ((True, False, False), "layer3.0.conv2", 2, 2, 2),
])
def test_padding_matches_pytorch(dilation, conv, pad, stride, dil):
    # Keras 'same' pads stride-2 convs asymmetrically; PyTorch does not. Checked on
    # even and odd sizes, for the stem, the max-pool and one strided/dilated conv.
    m = resnet50(include_top=False, replace_stride_with_dilation=dilation)
    src = m.get_layer(conv).input  # conv input (after any padding layer)
    while src._keras_history.operation.name.endswith("_pad"):
        src = src._keras_history.operation.input
    # stride 2 + dilation 2 is a stride-1 conv followed by a "<conv>_subsample" layer
    names = {layer.name for layer in m.layers}
    out = conv + "_subsample" if conv + "_subsample" in names else conv
    probe = keras.Model(m.input, [m.get_layer("conv1").output, m.get_layer("relu").output,
                                  m.get_layer("maxpool").output, src, m.get_layer(out).output])
    for size in (64, 63):
        x = _images(1, size)
        c1, r, mp, cin, cout = [np.asarray(t) for t in probe(x, training=False)]
        assert_close_scaled(c1, _torch_conv(x, m.get_layer("conv1").kernel.numpy(), 2, 3))
        rp = np.pad(r, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-np.inf)
        h = (rp.shape[1] - 3) // 2 + 1
        ref = np.max([rp[:, i::2, j::2][:, :h, :h] for i in range(3) for j in range(3)], axis=0)
        np.testing.assert_array_equal(mp, ref)
        want = _torch_conv(cin, m.get_layer(conv).kernel.numpy(), stride, pad, dil)
        # outputs reach ~100 here: float32 rounding is relative, so is the tolerance (1e-5 of the max)
        assert_close_scaled(cout, want)


def _randomize_bn(model, seed=1):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                               rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])


def test_state_dict_layout(r50):
    sd = to_torchvision_state_dict(r50)
    assert len(sd) == 320  # len(torchvision.models.resnet50().state_dict())
    assert sd["conv1.weight"].shape == (64, 3, 7, 7)
    assert sd["layer1.0.conv1.weight"].shape == (64, 64, 1, 1)
    assert sd["layer2.0.conv2.weight"].shape == (128, 128, 3, 3)
    assert sd["layer2.0.downsample.0.weight"].shape == (512, 256, 1, 1)
    assert sd["layer4.2.bn3.running_var"].shape == (2048,)
    assert sd["fc.weight"].shape == (1000, 2048) and sd["fc.bias"].shape == (1000,)
    assert sd["bn1.num_batches_tracked"].dtype == np.int64
    # OIHW <-> HWIO, not a reshape
    k = r50.get_layer("layer2.0.conv2").kernel.numpy()
    np.testing.assert_array_equal(sd["layer2.0.conv2.weight"][5, 7], k[:, :, 7, 5])


def test_state_dict_round_trip():
    src = resnet50()
    _randomize_bn(src)
    dst = resnet50()
    load_torchvision_state_dict(dst, to_torchvision_state_dict(src))
    x = _images()
    # logits reach ~460 here: a fixed atol 1e-6 would hold only while both runs are bit-identical
    assert_close_scaled(np.asarray(dst(x, training=False)), np.asarray(src(x, training=False)), rel=1e-6)
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_state_dict_errors():
    m = resnet18()
    good = to_torchvision_state_dict(m)
    before = [w.numpy().copy() for w in m.weights]

    bad = dict(good)
    del bad["layer1.0.bn1.running_mean"]
    bad["layer9.0.conv1.weight"] = np.zeros((1,))
    bad["fc.weight"] = np.zeros((10, 512), "float32")
    bad["conv1.weight"] = good["conv1.weight"].transpose(2, 3, 1, 0)  # HWIO by mistake
    with pytest.raises(ValueError) as e:
        load_torchvision_state_dict(m, bad)
    msg = str(e.value)
    for key in ["missing", "layer1.0.bn1.running_mean", "unexpected", "layer9.0.conv1.weight",
                "fc.weight", "(10, 512)", "(1000, 512)", "conv1.weight", "(64, 3, 7, 7)"]:
        assert key in msg, key
    # All-or-nothing: a failed load leaves the model untouched.
    for a, b in zip(before, m.weights):
        np.testing.assert_array_equal(a, b.numpy())

    # num_batches_tracked is optional.
    load_torchvision_state_dict(m, {k: v for k, v in good.items()
                                    if not k.endswith("num_batches_tracked")})


def test_headless_backbone_loads_full_checkpoint_non_strict(r50):
    full = to_torchvision_state_dict(r50)
    backbone = resnet50(include_top=False)
    with pytest.raises(ValueError, match="fc.weight"):
        load_torchvision_state_dict(backbone, full)
    load_torchvision_state_dict(backbone, full, strict=False)
    np.testing.assert_array_equal(backbone.get_layer("layer4.2.conv3").kernel.numpy(),
                                  r50.get_layer("layer4.2.conv3").kernel.numpy())
