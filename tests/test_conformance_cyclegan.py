"""tfsynth's CycleGAN generator, PatchGAN and loss functions against the reference repository's own modules.

Fixtures: tests/data/conformance/cyclegan.npz, written by tools/conformance/cyclegan_reference.py from
junyanz/pytorch-CycleGAN-and-pix2pix's models/networks.py (commit and torch version in cyclegan.json) on weights
both sides draw with tools/conformance/seeded.py. No torch needed here.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.tolerance import assert_close_scaled
from tools.conformance._common import weights_checksum
from tools.conformance.seeded import seeded_inputs, seeded_state_dict

FIXTURES = Path(__file__).parent / "data" / "conformance"
META = json.loads((FIXTURES / "cyclegan.json").read_text())
# of the largest reference magnitude; measured: generator 1.4e-5 (60 layers, 23 instance norms, in float32),
# discriminator 3.3e-6, losses 8e-8 (tools/conformance/README.md)
REL = {"g_output": 5e-5}
REL_DEFAULT = 1e-5


def _reference():
    with np.load(FIXTURES / "cyclegan.npz") as data:
        return {k: data[k] for k in data.files}


def _load_seeded(model, spec):
    from keras import layers
    from tfsynth.models import cyclegan

    shapes = {}
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.Conv2DTranspose)):  # torch (out|in, in|out, kh, kw)
            k = tuple(layer.kernel.shape)
            shapes[f"{layer.name}.weight"] = (k[3], k[2], k[0], k[1])
            shapes[f"{layer.name}.bias"] = tuple(layer.bias.shape)
    assert {k: "x".join(map(str, v)) for k, v in shapes.items()} == spec["state_dict_shapes"]
    sd = seeded_state_dict(shapes, spec["weight_seed"])
    assert weights_checksum(sd) == pytest.approx(spec["weights_checksum"], rel=1e-12)
    cyclegan.load_torch_state_dict(model, sd)


def outputs_vs_reference():
    """{name: (ours, reference)} channels-last; shared by the test and the README numbers."""
    from tfsynth.models import aist, cyclegan

    ref = _reference()
    g_spec, d_spec = META["generator"], META["discriminator"]
    np.testing.assert_array_equal(ref["g_input"], seeded_inputs(g_spec["input_shape"], g_spec["input_seed"]))
    np.testing.assert_array_equal(ref["d_input"], seeded_inputs(d_spec["input_shape"], d_spec["input_seed"]))
    G = cyclegan.resnet_generator(activation="relu")  # the reference's ReLU (the seed's leaky ReLU is an option)
    D = cyclegan.patch_discriminator()
    _load_seeded(G, g_spec)
    _load_seeded(D, d_spec)
    x = ref["g_input"].transpose(0, 2, 3, 1)
    g_out = G(x, training=True)
    d_out = D(ref["d_input"].transpose(0, 2, 3, 1), training=True)
    return {
        "g_output": (np.asarray(g_out), ref["g_output"].transpose(0, 2, 3, 1)),
        "d_output": (np.asarray(d_out), ref["d_output"].transpose(0, 2, 3, 1)),
        # the loss modules on the reference's own network outputs
        "loss_gan_real": (np.asarray(aist.lsgan_loss(ref["d_output"], 1.0)), ref["loss_gan_real"].reshape(())),
        "loss_gan_fake": (np.asarray(aist.lsgan_loss(ref["d_output"], 0.0)), ref["loss_gan_fake"].reshape(())),
        "loss_l1": (np.asarray(aist.l1_loss(ref["g_output"], ref["g_input"])), ref["loss_l1"].reshape(())),
    }


def test_generator_discriminator_and_losses_equal_the_reference_modules():
    pairs = outputs_vs_reference()
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        assert_close_scaled(ours, theirs, rel=REL.get(name, REL_DEFAULT), err_msg=name)
