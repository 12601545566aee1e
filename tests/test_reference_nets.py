"""AlexNet / VGG-16 in torchvision layout: parameter counts, PyTorch pooling/flatten/padding semantics, and weight
files (.npz, .h5, .keras) in torchvision's state-dict layout."""
import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models import reference_nets as rn


def test_parameter_counts_equal_torchvision():
    # torchvision: sum(p.numel() for p in alexnet().parameters()) == 61_100_840, vgg16: 138_357_544.
    assert rn.count_params(rn.alexnet()) == 61_100_840
    vgg = rn.vgg16()
    assert rn.count_params(vgg) == 138_357_544
    convs = [layer.name for layer in vgg.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs == [f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)]
    assert rn.count_params(rn.alexnet(num_classes=10)) == 61_100_840 - 4096 * 990 - 990


def _torch_adaptive_avg_pool(x, size):
    n, h, w, c = x.shape
    out = np.zeros((n, size, size, c))
    for i in range(size):
        h0, h1 = (i * h) // size, -(-((i + 1) * h) // size)
        for j in range(size):
            w0, w1 = (j * w) // size, -(-((j + 1) * w) // size)
            out[:, i, j] = x[:, h0:h1, w0:w1].mean(axis=(1, 2))
    return out


def test_adaptive_pool_matches_pytorch_bins_for_unknown_sizes():
    layer = rn.AdaptiveAvgPool2D(6)
    fn = tf.function(layer, input_signature=[tf.TensorSpec([None, None, None, 3])])  # spatial sizes unknown
    rng = np.random.default_rng(0)
    for h, w in [(13, 13), (6, 6), (1, 1), (3, 5), (7, 9), (15, 11), (20, 7)]:
        x = rng.random((2, h, w, 3)).astype(np.float32)
        np.testing.assert_allclose(fn(x).numpy(), _torch_adaptive_avg_pool(x, 6), rtol=1e-5, atol=1e-6)


def _conv_reference(x, w_oihw, b, stride, pad):
    """PyTorch Conv2d in numpy (NHWC input, OIHW weight)."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    o, _, kh, kw = w_oihw.shape
    oh = (x.shape[1] - kh) // stride + 1
    ow = (x.shape[2] - kw) // stride + 1
    out = np.zeros((x.shape[0], oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]  # (n, kh, kw, c)
            out[:, i, j] = np.einsum("nhwc,ochw->no", patch, w_oihw) + b
    return out


def test_alexnet_conv_padding_and_chw_flatten_follow_pytorch(tmp_path):
    keras.utils.set_random_seed(0)
    model = rn.alexnet(num_classes=5)
    sd = rn.to_torchvision_state_dict(model)
    assert sd["features.0.weight"].shape == (64, 3, 11, 11) and sd["classifier.1.weight"].shape == (4096, 9216)
    x = np.random.default_rng(1).random((2, 67, 67, 3)).astype(np.float32)

    conv1 = keras.Model(model.input, model.get_layer("features.0").output)
    np.testing.assert_allclose(conv1(x).numpy(), _conv_reference(x, sd["features.0.weight"], sd["features.0.bias"],
                                                                 4, 2), rtol=1e-4, atol=1e-4)
    # classifier.1 sees the pooled (N, 6, 6, 256) map flattened in PyTorch's (C, H, W) order.
    pooled = keras.Model(model.input, model.get_layer("avgpool").output)(x).numpy()
    fc1 = keras.Model(model.input, model.get_layer("classifier.1").output)(x, training=False).numpy()
    flat_chw = pooled.transpose(0, 3, 1, 2).reshape(2, -1)
    np.testing.assert_allclose(fc1, flat_chw @ sd["classifier.1.weight"].T + sd["classifier.1.bias"],
                               rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def alexnet7():
    keras.utils.set_random_seed(1)
    model = rn.alexnet(num_classes=7)
    return model, rn.to_torchvision_state_dict(model)


def test_weights_round_trip_through_files(tmp_path, alexnet7):
    source, sd = alexnet7
    paths = {"npz": str(tmp_path / "w.npz"), "h5": str(tmp_path / "w.h5"), "h5-nested": str(tmp_path / "n.hdf5"),
             "keras": str(tmp_path / "w.keras")}
    np.savez(paths["npz"], **sd)
    for fmt in ("h5", "h5-nested"):
        with h5py.File(paths[fmt], "w") as f:
            for key, value in sd.items():
                f.create_dataset(key.replace(".", "/") if fmt == "h5-nested" else key, data=value)
    source.save(paths["keras"])
    target = rn.alexnet(num_classes=7)
    x = np.random.default_rng(0).random((1, 70, 70, 3)).astype(np.float32)
    expected = source.predict(x, verbose=0)
    for fmt, path in paths.items():
        for w in target.weights:
            w.assign(np.zeros(w.shape, np.float32))
        rn.load_weights(target, path)
        for a, b in zip(source.weights, target.weights, strict=True):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=fmt)
        np.testing.assert_allclose(target.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5, err_msg=fmt)


def test_bad_weight_files_are_named_in_errors(tmp_path, alexnet7):
    model, sd = alexnet7
    missing = str(tmp_path / "missing.npz")
    np.savez(missing, **{k: v for k, v in sd.items() if not k.startswith("features.3.")})
    with pytest.raises(ValueError, match=r"missing\.npz.*missing keys \(2\).*features\.3\.bias"):
        rn.load_weights(model, missing)
    wrong = str(tmp_path / "wrong.npz")
    np.savez(wrong, **{**sd, "classifier.6.weight": np.zeros((1000, 4096), np.float32)})
    with pytest.raises(ValueError, match=r"wrong\.npz.*classifier\.6\.weight: got \(1000, 4096\), "
                                         r"expected \(7, 4096\)"):
        rn.load_weights(model, wrong)
    rn.load_weights(model, wrong, skip=("classifier.6",))  # the head being replaced is neither loaded nor required
    (tmp_path / "x.weights.h5").write_bytes(b"")
    with pytest.raises(ValueError, match=r"x\.weights\.h5 is a Keras weights file"):
        rn.read_state_dict(str(tmp_path / "x.weights.h5"))
    (tmp_path / "w.pth").write_bytes(b"")
    with pytest.raises(ValueError, match=r"unsupported weights file .*w\.pth"):
        rn.read_state_dict(str(tmp_path / "w.pth"))
    with pytest.raises(FileNotFoundError, match="nope.npz does not exist"):
        rn.read_state_dict(str(tmp_path / "nope.npz"))
