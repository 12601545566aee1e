"""Conformance of tfsynth.models.fcn with torchvision's fcn_resnet50 (no torch needed): parameter counts,
state_dict layout, bilinear upsampling semantics, the CPU dilated-conv path, weight transfer, the loss."""
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models import fcn
from tfsynth.models.resnet import to_torchvision_state_dict
from tests.tolerance import assert_close_scaled

# torchvision: sum(p.numel() for p in fcn_resnet50(weights=None, weights_backbone=None, num_classes=21,
# aux_loss=...).parameters())
PARAMS_21 = 32_957_013
PARAMS_21_AUX = 35_322_218
BACKBONE = 23_508_032  # resnet50 without fc


def _images(n=2, h=45, w=38, seed=0):
    return np.random.default_rng(seed).standard_normal((n, h, w, 3)).astype("float32")


@pytest.fixture(scope="module")
def fcn21_aux():
    keras.utils.set_random_seed(0)
    return fcn.fcn_resnet50(num_classes=21, aux_loss=True)


@pytest.fixture(scope="module")
def fcn4():
    keras.utils.set_random_seed(1)
    return fcn.fcn_resnet50(num_classes=4)


def test_parameter_counts_match_torchvision(fcn21_aux):
    assert fcn.count_trainable(fcn21_aux) == PARAMS_21_AUX
    assert fcn.count_trainable(fcn.backbone_of(fcn21_aux)) == BACKBONE
    keras.utils.set_random_seed(0)
    assert fcn.count_trainable(fcn.fcn_resnet50(num_classes=21)) == PARAMS_21
    # count_params() would add BN moving statistics (buffers in torch): 53,120 backbone + 512 + 1,024 heads.
    assert fcn21_aux.count_params() == PARAMS_21_AUX + 53_120 + 2 * 512 + 2 * 256


def test_outputs_are_input_sized_logits_for_any_size(fcn21_aux):
    out = fcn21_aux(_images(h=45, w=38), training=False)
    assert set(out) == {"out", "aux"}
    assert out["out"].shape == (2, 45, 38, 21) and out["aux"].shape == (2, 45, 38, 21)
    assert out["out"].dtype == "float32"
    feats = fcn.backbone_of(fcn21_aux)(_images(h=64, w=64), training=False)
    assert feats["out"].shape == (2, 8, 8, 2048) and feats["aux"].shape == (2, 8, 8, 1024)  # output stride 8


def test_torchvision_state_dict_layout(fcn21_aux):
    sd = fcn.to_torchvision_fcn_state_dict(fcn21_aux)
    backbone_keys = {f"backbone.{k}" for k in to_torchvision_state_dict(fcn.backbone_of(fcn21_aux))}
    assert len(backbone_keys) == 318  # resnet50's 320 state_dict entries minus fc.weight / fc.bias
    heads = {k for k in sd if not k.startswith("backbone.")}
    assert heads == {f"{h}.{k}" for h in ("classifier", "aux_classifier")
                     for k in ("0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                               "1.num_batches_tracked", "4.weight", "4.bias")}
    assert len(sd) == 334
    assert sd["classifier.0.weight"].shape == (512, 2048, 3, 3) and sd["classifier.4.weight"].shape == (21, 512, 1, 1)
    assert sd["aux_classifier.0.weight"].shape == (256, 1024, 3, 3)
    assert sd["aux_classifier.4.bias"].shape == (21,)
    assert sd["backbone.layer4.2.conv2.weight"].shape == (512, 512, 3, 3)


def test_state_dict_roundtrip_and_strict_errors(fcn21_aux):
    keras.utils.set_random_seed(5)
    other = fcn.fcn_resnet50(num_classes=21, aux_loss=True)
    x = _images(n=1, h=33, w=40)
    assert not np.allclose(other(x, training=False)["out"], fcn21_aux(x, training=False)["out"])
    sd = fcn.to_torchvision_fcn_state_dict(fcn21_aux)
    fcn.load_torchvision_fcn_state_dict(other, sd)
    for key in ("out", "aux"):
        assert_close_scaled(other(x, training=False)[key], fcn21_aux(x, training=False)[key], rel=1e-6)
    bad = dict(sd, **{"classifier.4.weight": np.zeros((4, 512, 1, 1), np.float32)})
    with pytest.raises(ValueError, match=r"classifier.4.weight: got \(4, 512, 1, 1\)"):
        fcn.load_torchvision_fcn_state_dict(other, bad)
    missing = {k: v for k, v in sd.items() if not k.startswith("aux_classifier.")}
    with pytest.raises(ValueError, match="missing head keys.*aux_classifier.0.weight"):
        fcn.load_torchvision_fcn_state_dict(other, missing)


def _torch_bilinear(x, out_h, out_w):
    """NumPy transcription of PyTorch's upsample_bilinear2d(align_corners=False) (area_pixel_compute_source_index)."""
    def axis(out, size):
        src = np.maximum((np.arange(out) + 0.5) * (size / out) - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.where(i0 < size - 1, i0 + 1, i0)
        return i0, i1, src - i0

    h0, h1, lh = axis(out_h, x.shape[1])
    w0, w1, lw = axis(out_w, x.shape[2])
    top = x[:, h0][:, :, w0] * (1 - lw)[None, None, :, None] + x[:, h0][:, :, w1] * lw[None, None, :, None]
    bottom = x[:, h1][:, :, w0] * (1 - lw)[None, None, :, None] + x[:, h1][:, :, w1] * lw[None, None, :, None]
    return top * (1 - lh)[None, :, None, None] + bottom * lh[None, :, None, None]


@pytest.mark.parametrize("out_size", [(56, 72), (45, 38), (23, 31)])
def test_upsampling_is_pytorch_bilinear_align_corners_false(out_size):
    x = np.random.default_rng(2).standard_normal((2, 7, 9, 5)).astype("float32")
    reference = np.zeros((2, *out_size, 1), np.float32)
    got = fcn.BilinearResizeLike()([x, reference]).numpy()
    np.testing.assert_allclose(got, _torch_bilinear(x.astype(np.float64), *out_size), atol=1e-5)


def test_im2col_dilated_conv_equals_native(fcn4):
    """'auto' runs the dilated 3x3 convs as im2col on CPU; 'native' uses tf.nn.convolution: same function."""
    native = fcn.fcn_resnet50(num_classes=4, dilated_conv="native")
    native.set_weights(fcn4.get_weights())
    dilated = [layer for layer in fcn.backbone_of(fcn4).layers if isinstance(layer, fcn.DilatedConv2D)]
    assert len(dilated) == 8 and all(max(layer.dilation_rate) > 1 for layer in dilated)  # layer3.1-5, layer4.0-2
    assert not any(isinstance(layer, fcn.DilatedConv2D) for layer in fcn.backbone_of(native).layers)
    x = _images(n=2, h=40, w=36)
    assert_close_scaled(fcn4(x, training=False)["out"], native(x, training=False)["out"], rel=1e-4)
    with tf.GradientTape(persistent=True) as tape:  # backbone only: the heads' dropout masks differ
        a = tf.reduce_sum(fcn.backbone_of(fcn4)(x, training=True)["out"] ** 2)
        b = tf.reduce_sum(fcn.backbone_of(native)(x, training=True)["out"] ** 2)
    ga = tape.gradient(a, fcn.backbone_of(fcn4).get_layer("layer4.1.conv2").kernel)
    gb = tape.gradient(b, fcn.backbone_of(native).get_layer("layer4.1.conv2").kernel)
    np.testing.assert_allclose(ga, gb, rtol=2e-3, atol=1e-3 * float(tf.reduce_max(tf.abs(gb))))
    with pytest.raises(ValueError, match="dilated_conv"):
        fcn.fcn_resnet50(num_classes=4, dilated_conv="fast")


def test_head_initialisation_is_pytorch_default(fcn21_aux):
    for name, fan_in in (("classifier.0", 2048 * 9), ("classifier.4", 512), ("aux_classifier.4", 256)):
        layer = fcn21_aux.get_layer(name)
        bound = 1 / math.sqrt(fan_in)
        kernel = layer.kernel.numpy()
        assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.9 * bound, name
        if layer.use_bias:
            assert np.abs(layer.bias.numpy()).max() <= bound and np.abs(layer.bias.numpy()).max() > 0.5 * bound
    assert not fcn21_aux.get_layer("classifier.0").use_bias
    assert fcn21_aux.get_layer("classifier.3").rate == pytest.approx(0.1)


def test_transfer_backbone_and_matching(fcn21_aux, fcn4):
    keras.utils.set_random_seed(7)
    target = fcn.fcn_resnet50(num_classes=21, aux_loss=True)
    fresh = fcn.to_torchvision_fcn_state_dict(target)
    info = fcn.transfer_weights(fcn4, target, "backbone")
    assert len(info["transferred"]) == 106  # 53 convs + 53 batch norms
    assert sorted(info["kept"]) == sorted(f"{h}.{i}" for h in ("classifier", "aux_classifier") for i in (0, 1, 4))
    after = fcn.to_torchvision_fcn_state_dict(target)
    source = fcn.to_torchvision_fcn_state_dict(fcn4)
    for key, value in after.items():
        expected = source[key] if key.startswith("backbone.") else fresh[key]
        np.testing.assert_array_equal(value, expected, err_msg=key)

    info = fcn.transfer_weights(fcn4, target, "matching")  # 4 -> 21 classes: all but classifier.4 (no aux in source)
    assert sorted(info["kept"]) == ["aux_classifier.0", "aux_classifier.1", "aux_classifier.4", "classifier.4"]
    after = fcn.to_torchvision_fcn_state_dict(target)
    np.testing.assert_array_equal(after["classifier.0.weight"], source["classifier.0.weight"])
    np.testing.assert_array_equal(after["classifier.1.running_var"], source["classifier.1.running_var"])
    np.testing.assert_array_equal(after["classifier.4.weight"], fresh["classifier.4.weight"])

    with pytest.raises(ValueError, match="transfer mode"):
        fcn.transfer_weights(fcn4, target, "all")
    broken = {k: v for k, v in source.items() if k != "backbone.layer2.0.conv1.weight"}
    with pytest.raises(ValueError, match="backbone.layer2.0.conv1.weight is missing"):
        fcn.transfer_state_dict(broken, target)


def test_npz_roundtrip(fcn4, tmp_path):
    path = str(tmp_path / "w.npz")
    fcn.save_torchvision_npz(fcn4, path)
    loaded = fcn.load_npz(path)
    expected = fcn.to_torchvision_fcn_state_dict(fcn4)
    assert loaded.keys() == expected.keys()
    np.testing.assert_array_equal(loaded["classifier.4.weight"], expected["classifier.4.weight"])


def test_segmentation_cross_entropy_is_pytorch_ignore_index_mean():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((2, 5, 6, 4)).astype("float32")
    labels = rng.integers(0, 4, (2, 5, 6, 1)).astype("uint8")
    labels[0, :2] = 255
    flat_logits, flat_labels = logits.reshape(-1, 4), labels.reshape(-1)
    keep = flat_labels != 255
    log_p = flat_logits - np.log(np.exp(flat_logits).sum(1, keepdims=True))
    expected = -log_p[keep, flat_labels[keep]].mean()  # mean over the batch's labelled pixels
    loss = fcn.SegmentationCrossEntropy()
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(labels[..., 0], logits)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(np.full_like(labels, 255), logits)) == 0.0
