"""tfsynth's ResNet-18/-50, AlexNet, VGG-16 and FCN-ResNet-50 against torchvision itself (no torch needed).

Fixtures: tests/data/conformance/torchvision_<net>.npz, written by tools/conformance/torchvision_nets.py from
torchvision's own models (versions in torchvision.json) on weights that both sides draw with
tools/conformance/seeded.py (random batch-norm statistics included) and the stored inputs. Outputs are compared
with a tolerance scaled by the reference's largest magnitude (float32 rounding is relative).
"""
import json
from pathlib import Path

import numpy as np
import pytest

from tests.tolerance import assert_close_scaled
from tools.conformance._common import weights_checksum
from tools.conformance.seeded import seeded_inputs, seeded_state_dict

FIXTURES = Path(__file__).parent / "data" / "conformance"
META = json.loads((FIXTURES / "torchvision.json").read_text())

# max |ours - torchvision| / max |torchvision| per output; measured values are in tools/conformance/README.md.
REL = 1e-5


def _nhwc(a):
    return np.transpose(a, (0, 2, 3, 1)) if a.ndim == 4 else a


def _reference(net):
    with np.load(FIXTURES / f"torchvision_{net}.npz") as data:
        return {k: data[k] for k in data.files}


def _torch_shapes(layout, prefix=""):
    """{torchvision key: shape} of a tfsynth model from its (layer, [(key, to_keras, to_torch)]) layout, without
    copying any weight (VGG-16 has 138M)."""
    shapes = {}
    for layer, entries in layout:
        for (key, _, to_torch), var in zip(entries, layer.weights):
            shapes[prefix + key] = to_torch(np.empty(tuple(var.shape), np.uint8)).shape
        if type(layer).__name__ == "BatchNormalization":
            shapes[f"{prefix}{layer.name}.num_batches_tracked"] = ()
    return shapes


def _load_seeded(net, model, shapes, load):
    """Checks that tfsynth's state-dict keys and shapes are torchvision's, then loads the seeded weights."""
    spec = META["nets"][net]
    assert {k: "x".join(map(str, v)) for k, v in shapes.items()} == spec["state_dict_shapes"]
    sd = seeded_state_dict(shapes, spec["weight_seed"])
    # Same rule, same NumPy stream: the weights are the ones the reference ran with.
    assert weights_checksum(sd) == pytest.approx(spec["weights_checksum"], rel=1e-12)
    load(model, sd)
    ref = _reference(net)
    np.testing.assert_array_equal(ref["input"], seeded_inputs(spec["input_shape"], spec["input_seed"]))
    return ref


def outputs_vs_reference(net):
    """{output name: (ours, torchvision's)}, channels-last; shared by the tests and the README numbers."""
    if net.startswith("resnet"):
        from eval.neural.features import default_layers, feature_model
        from tfsynth.models import resnet

        model = resnet.resnet(int(net[len("resnet"):]))
        ref = _load_seeded(net, model, _torch_shapes(resnet.torch_layout(model)), resnet.load_torchvision_state_dict)
        layers = default_layers(model)  # the block outputs eval.neural reads by default
        assert layers == sorted((k[len("features/"):] for k in ref if k.startswith("features/")),
                                key=lambda n: tuple(int(p) for p in n[len("layer"):-len(".out")].split(".")))
        x = _nhwc(ref["input"])
        pairs = {"logits": (np.asarray(model(x, training=False)), ref["logits"])}
        taps = feature_model(model, layers)
        for name, value in zip(layers, taps(x[:1], training=False)):
            pairs[name] = (np.asarray(value), _nhwc(ref[f"features/{name}"]))
        return pairs
    if net in ("alexnet", "vgg16"):
        from tfsynth.models import reference_nets

        model = reference_nets.REFERENCE_NETS[net]()
        ref = _load_seeded(net, model, _torch_shapes(reference_nets.torch_layout(model)),
                           reference_nets.load_torchvision_state_dict)
        return {"logits": (np.asarray(model(_nhwc(ref["input"]), training=False)), ref["logits"])}
    if net == "fcn_resnet50":
        from tfsynth.models import fcn

        model = fcn.fcn_resnet50(num_classes=21, aux_loss=True)
        from tfsynth.models import resnet

        shapes = {**_torch_shapes(fcn._head_entries(model)),
                  **_torch_shapes(resnet.torch_layout(fcn.backbone_of(model)), prefix="backbone.")}
        ref = _load_seeded(net, model, shapes, fcn.load_torchvision_fcn_state_dict)
        out = model(_nhwc(ref["input"]), training=False)
        return {k: (np.asarray(out[k]), _nhwc(ref[k])) for k in ("out", "aux")}
    raise ValueError(net)


def _check(net):
    pairs = outputs_vs_reference(net)
    assert pairs
    for name, (ours, theirs) in pairs.items():
        assert ours.shape == theirs.shape, name
        assert_close_scaled(ours, theirs, rel=REL, err_msg=f"{net} {name}")


@pytest.mark.parametrize("net", ["resnet18", "resnet50"])
def test_resnet_logits_and_block_features_equal_torchvision(net):
    _check(net)


@pytest.mark.parametrize("net", ["alexnet", "vgg16"])
def test_reference_net_logits_equal_torchvision(net):
    _check(net)


def test_fcn_resnet50_out_and_aux_equal_torchvision():
    _check("fcn_resnet50")
