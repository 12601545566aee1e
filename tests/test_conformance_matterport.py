"""tfsynth.models.mask_rcnn against matterport/Mask_RCNN's own model code (Keras 2).

Fixtures: tests/data/conformance/matterport_mrcnn.json and .npz, written by tools/conformance/matterport_weights.py,
which ran matterport's mrcnn/model.py under Keras 2 (version, commit and file hashes in the JSON): the complete
layout of the weight files its `save_weights` writes (every layer name, weight name and shape, in file order, and
the file's root attributes), for the COCO configuration (the layout of matterport's mask_rcnn_coco.h5) and for a
small ResNet-50 model, and that small model's detections on one image with weights drawn by the seeded rule
`seeded_keras_weights`. The tests rebuild those files from the fixture's names and shapes in that layout (the COCO
one with a constant per weight, the small one with the seeded weights), load them by name into tfsynth with every
layer matched, and compare tfsynth's detections. No Keras 2 or matterport code is needed here.
"""
import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.tolerance import assert_close_scaled
from tools.conformance.matterport_weights import layout_checksum, seeded_image, seeded_keras_weights

FIXTURES = Path(__file__).parent / "data" / "conformance"
META = json.loads((FIXTURES / "matterport_mrcnn.json").read_text())
# of the largest reference magnitude; measured (tools/conformance/README.md): molded image 3.6e-8, RPN scores and
# deltas up to 1.6e-6, proposals 1.2e-7, detections and scores 1e-6, 28 x 28 mask probabilities 5.4e-6
REL = 1e-5
REL_MASKS = 3e-5
# Weightless layers matterport leaves unnamed get Keras's counter names ("activation_70", "lambda_2"), which depend
# on the Keras version and on what the process built before; no weight file refers to them. tfsynth names one of
# them itself: matterport's unnamed `KL.Lambda(lambda x: x[..., :4])` on the detections.
AUTO_NAME = re.compile(r"(activation|add|lambda)(_\d+)?")
NAMED_BY_TFSYNTH = {"detection_boxes"}


def _named(layer_names):
    return ["<auto>" if AUTO_NAME.fullmatch(n) or n in NAMED_BY_TFSYNTH else n for n in layer_names]


def _reference():
    with np.load(FIXTURES / "matterport_mrcnn.npz") as data:
        return {k: data[k] for k in data.files}


def _model(spec, model_dir):
    from tfsynth.models.mask_rcnn import Config, MaskRCNN, make_config

    return MaskRCNN("inference", make_config(Config, **spec["config"]), model_dir=str(model_dir))


def _layout(spec):
    """[(layer, [(weight name, shape), ...]), ...] of every layer, in the reference file's order."""
    shapes = {layer: [(name, tuple(shape)) for name, shape in weights] for layer, weights in spec["weights"]}
    return [(layer, shapes.get(layer, [])) for layer in spec["layer_names"]]


def _write_keras2_file(path, spec, layers):
    """A weight file in the layout the reference's `save_weights` wrote: root attributes `layer_names` (the
    recorded dtype), `backend`, `keras_version`; per layer a group with `weight_names` and one dataset per weight
    name (its '/' making subgroups). `layers`: [(layer, [(weight name, array or (shape, fill)), ...])]."""
    attrs = spec["root_attrs"]
    as_bytes = attrs["layer_names dtype"].startswith("|S")
    def text(values):
        return np.array([v.encode("utf8") for v in values]) if as_bytes else np.array(values, dtype=h5py.string_dtype())
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = text([layer for layer, _ in layers])
        for key in ("backend", "keras_version"):
            f.attrs[key] = attrs[key].encode("utf8") if as_bytes else attrs[key]
        for layer, weights in layers:
            group = f.create_group(layer)
            group.attrs["weight_names"] = text([name for name, _ in weights])
            for name, value in weights:
                if isinstance(value, tuple):  # (shape, fill): storage left unallocated, reads give the fill
                    group.create_dataset(name, shape=value[0], dtype="float32", fillvalue=value[1])
                else:
                    group.create_dataset(name, data=value)


def _assert_every_layer_matched(model, report, spec):
    from tfsynth.models.mask_rcnn.model import _weight_entries

    ours = [[layer.name, [[name, list(v.shape)] for name, v in _weight_entries(layer)]]
            for layer in model.keras_model.layers if layer.weights]
    assert ours == spec["weights"]  # same layers with weights, weight names and shapes, in the same order
    assert report["loaded"] == [layer for layer, _ in ours]
    assert report["missing_in_file"] == report["unused_in_file"] == report["mismatched"] == []


@pytest.fixture(scope="module")
def coco_model(tmp_path_factory):
    return _model(META["coco"], tmp_path_factory.mktemp("matterport_coco"))


def test_saved_layout_is_matterports_coco_layout(coco_model, tmp_path):
    """Our COCO model's `save_weights` file against matterport's: every layer with weights, each weight name and
    shape, in order; every layer name in order (up to Keras's counter names, see AUTO_NAME); the parameter count."""
    from tfsynth.models.mask_rcnn import hdf5

    spec, model = META["coco"], coco_model
    assert model.keras_model.count_params() == spec["count_params"] == spec["parameters"]
    path = tmp_path / "ours.h5"
    model.save_weights(str(path))
    stored = hdf5.read_weights(str(path))
    ours = [[layer, [[name, list(value.shape)] for name, value in weights]] for layer, weights in stored.items()
            if weights]
    assert ours == spec["weights"]
    assert _named(stored) == _named(spec["layer_names"])


def test_matterports_coco_file_loads_by_name_with_every_layer_matched(coco_model, tmp_path):
    """A file in matterport's exact COCO layout (mask_rcnn_coco.h5's), one constant per weight, loads by name into
    every layer, each weight into the variable matterport's name says."""
    from tfsynth.models.mask_rcnn.model import _weight_entries

    spec = META["coco"]
    layers = _layout(spec)
    fills = {}
    for i, (layer, weights) in enumerate(layers):
        for j, (name, _) in enumerate(weights):
            fills[(layer, name)] = np.float32(0.001 * i + 0.0001 * j + 0.5)
    path = tmp_path / "matterport_layout.h5"
    _write_keras2_file(path, spec, [(layer, [(n, (s, fills[(layer, n)])) for n, s in weights])
                                    for layer, weights in layers])
    model = coco_model
    report = model.load_weights(str(path), by_name=True)
    _assert_every_layer_matched(model, report, spec)
    for layer in model.keras_model.layers:
        for name, variable in _weight_entries(layer):
            value = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
            assert np.all(value == fills[(layer.name, name)]), (layer.name, name)


@pytest.fixture(scope="module")
def small_detection(tmp_path_factory):
    spec, ref = META["small"], _reference()
    np.testing.assert_array_equal(ref["image"], seeded_image(tuple(META["image_shape"]), META["image_seed"]))
    layers = _layout(spec)
    drawn = seeded_keras_weights(layers, META["weight_seed"])
    assert layout_checksum(drawn) == pytest.approx(spec["weights_checksum"], rel=1e-12)
    tmp = tmp_path_factory.mktemp("matterport_small")
    path = tmp / "matterport_seeded.h5"
    _write_keras2_file(path, spec, drawn)
    model = _model(spec, tmp)
    report = model.load_weights(str(path), by_name=True)
    _assert_every_layer_matched(model, report, spec)
    molded, metas, _ = model.mold_inputs([ref["image"]])
    outputs = model._run(molded, metas)
    return model, ref, model.detect([ref["image"]])[0], molded, metas, outputs


def test_small_model_molds_the_image_as_matterport(small_detection):
    _, ref, _, molded, metas, _ = small_detection
    assert_close_scaled(molded[0], ref["molded_image"], rel=1e-6)
    np.testing.assert_allclose(metas[0], ref["image_meta"], rtol=0, atol=1e-6)


def test_small_model_rpn_and_proposals_match_matterport(small_detection):
    _, ref, _, _, _, outputs = small_detection
    _, _, _, _, rois, rpn_class, rpn_bbox = outputs
    assert_close_scaled(rpn_class[0], ref["rpn_class"], rel=REL, err_msg="rpn_class")
    assert_close_scaled(rpn_bbox[0], ref["rpn_bbox"], rel=REL, err_msg="rpn_bbox")
    assert_close_scaled(rois[0], ref["proposals"], rel=REL, err_msg="proposals")


def test_small_model_detections_match_matterport(small_detection):
    _, ref, r, _, _, outputs = small_detection
    detections, _, _, mrcnn_mask, _, _, _ = outputs
    assert_close_scaled(detections[0], ref["detections"], rel=REL, err_msg="raw detections [N, (box, class, score)]")
    n = int(np.sum(ref["detections"][:, 4] > 0))
    assert n > 0 and len(ref["class_ids"]) > 0
    np.testing.assert_array_equal(r["class_ids"], ref["class_ids"])
    np.testing.assert_array_equal(r["rois"], ref["rois"])  # integer pixel boxes
    assert_close_scaled(r["scores"], ref["scores"], rel=REL, err_msg="scores")
    small = np.stack([mrcnn_mask[0, i, :, :, int(ref["detections"][i, 4])] for i in range(n)])
    assert_close_scaled(small, ref["small_masks"], rel=REL_MASKS, err_msg="28 x 28 mask probabilities")
    shape = tuple(ref["masks_shape"])
    masks = np.unpackbits(ref["masks"], count=int(np.prod(shape))).reshape(shape).astype(bool)
    assert r["masks"].shape == shape
    # full-image masks (resized, thresholded at 0.5): identical when measured; a pixel whose probability sits
    # within float noise of 0.5 may flip on another CPU
    assert np.sum(r["masks"] != masks) <= 2
