"""matterport's Mask R-CNN (mrcnn/model.py) builds its Keras 2 model, writes its weights with `save_weights`, and,
on seeded weights, detects on a seeded image: the fixture `tests/test_conformance_matterport.py` checks
`tfsynth.models.mask_rcnn` against.

Runs in a scratch environment outside this repository with Keras 2 (TensorFlow 2.15 + its Keras 2.15; see
tools/conformance/README.md), on a copy of matterport's `mrcnn` package (the directory holding `mrcnn/`). None of
matterport's files are edited: its TF 1 names are mapped when the modules are loaded here, as source text handed
to `exec` (`import tensorflow as tf` -> `tensorflow.compat.v1`, run in graph mode as TF 1 did; `keras.engine` ->
a stand-in module whose `Layer` is Keras 2's, see `_engine_module`; NumPy's removed alias `np.bool` = bool). Those
are names only; no layer, weight or op is changed.

Two models, both in inference mode:

* "coco": the COCO configuration (ResNet-101, NUM_CLASSES 81, every size at matterport's default): the layout of
  matterport's released `mask_rcnn_coco.h5`. Only its HDF5 layout is recorded (layer names, weight names, shapes,
  ~64 M weights: too big to commit).
* "small": ResNet-50, 128 x 128 images, 4 classes. Its weights are drawn by `seeded_keras_weights` (below, NumPy
  only, shared with the test) from the names and shapes of matterport's own file, written back in that file's
  layout, loaded by matterport's Keras model with Keras 2's `load_weights(by_name=True)` (what matterport's
  `MaskRCNN.load_weights` calls), saved again with `save_weights`
  (the file the test rebuilds), and matterport's `detect` runs on one seeded image.

Writes tests/data/conformance/matterport_mrcnn.json (versions, the package's file hashes, both layouts, checksums)
and matterport_mrcnn.npz (the image and the detections).

    /work/scratch/mrcnnenv/bin/python tools/conformance/matterport_weights.py --mrcnn <dir holding mrcnn/> \
        --commit <matterport commit the package corresponds to> --source "<where the package came from>"
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import types
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tools.conformance._common import write_json, write_npz  # noqa: E402

FIXTURE = "matterport_mrcnn"
WEIGHT_SEED = 1601
IMAGE_SEED = 1602
IMAGE_SHAPE = (112, 112, 3)  # molded to 128 x 128 ("square": scaled by 8/7; no padding, where RPN scores peak)
# kernel std multipliers of the seeded rule: the first conv sees mean-subtracted pixels (|x| up to ~130); the RPN's
# and heads' output layers give logits and box deltas; the mask logits are spread away from the 0.5 threshold
KERNEL_GAIN = {"conv1": 0.01, "rpn_class_raw": 0.03, "rpn_bbox_pred": 0.02,
               "mrcnn_bbox_fc": 0.1, "mrcnn_mask": 8.0}

# Config overrides of the two models (everything else: matterport's Config defaults). tfsynth's Config has the
# same fields; the test builds its model from these.
COCO = {"NAME": "coco", "NUM_CLASSES": 81, "GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "BACKBONE": "resnet101"}
SMALL = {"NAME": "small", "NUM_CLASSES": 4, "GPU_COUNT": 1, "IMAGES_PER_GPU": 1, "BACKBONE": "resnet50",
         "IMAGE_MIN_DIM": 128, "IMAGE_MAX_DIM": 128, "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128],
         "POST_NMS_ROIS_INFERENCE": 200, "DETECTION_MAX_INSTANCES": 20, "DETECTION_MIN_CONFIDENCE": 0.5}


############################################################
#  The seeded rule (NumPy only: the test imports it)
############################################################

def _key_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def seeded_keras_weights(layers, seed: int) -> list:
    """[(layer, [(weight name, array), ...]), ...] for [(layer, [(weight name, shape), ...]), ...].

    Each array is drawn from its own generator seeded by (seed, CRC-32 of "<layer>/<weight name>"). By the weight's
    last name part: `kernel` N(0, std^2) with std = sqrt(2 / fan_in), fan_in = prod(shape[:-1]) (Keras HWIO / (in,
    out)), times KERNEL_GAIN[owner] where given (owner: the weight name's first part, the layer that made it; the
    gains keep pixel inputs, logits and box deltas in a range where detections are boxes inside the image and mask
    probabilities are not all near the 0.5 threshold); `bias` N(0, 0.1); batch norm `gamma` U(0.5, 1.0), `beta`
    N(0, 0.2), `moving_mean` N(0, 0.5), `moving_variance` U(1.0, 2.0) (a ResNet's activations stay O(1)).
    """
    out = []
    for layer, weights in layers:
        drawn = []
        for name, shape in weights:
            shape = tuple(int(s) for s in shape)
            rng = _key_rng(seed, f"{layer}/{name}")
            leaf = name.rsplit("/", 1)[-1].split(":")[0]
            if leaf == "kernel":
                owner = name.split("/")[0]  # the layer that made the weight (inside rpn_model: rpn_class_raw...)
                std = np.sqrt(2.0 / int(np.prod(shape[:-1]))) * KERNEL_GAIN.get(owner, 1.0)
                value = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
            elif leaf == "bias":
                value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.1)
            elif leaf == "gamma":
                value = rng.random(shape, dtype=np.float32) * np.float32(0.5) + np.float32(0.5)
            elif leaf == "beta":
                value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.2)
            elif leaf == "moving_mean":
                value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.5)
            elif leaf == "moving_variance":
                value = rng.random(shape, dtype=np.float32) + np.float32(1.0)
            else:
                raise ValueError(f"no seeded rule for weight {layer}/{name} {shape}")
            drawn.append((name, value))
        out.append((layer, drawn))
    return out


def seeded_image(shape=IMAGE_SHAPE, seed: int = IMAGE_SEED) -> np.ndarray:
    """uint8 RGB: a smooth gradient with three filled rectangles and noise."""
    rng = np.random.default_rng([seed, 0x1A9C7])
    h, w, _ = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([60 + 80 * yy / h, 90 + 60 * xx / w, 120 + 40 * (yy + xx) / (h + w)], axis=-1)
    for _ in range(3):
        y1, x1 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        y2, x2 = y1 + rng.integers(h // 6, h // 2), x1 + rng.integers(w // 6, w // 2)
        image[y1:y2, x1:x2] = rng.integers(0, 256, 3)
    image += rng.normal(0, 6, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def layout_checksum(layers) -> float:
    """float64 sum over every weight (the test checks its regenerated weights with it)."""
    return float(sum(float(np.asarray(v, np.float64).sum()) for _, weights in layers for _, v in weights))


############################################################
#  The reference (Keras 2 environment only)
############################################################

# (old, new) source substitutions made when loading.
PATCHES = (("import tensorflow as tf\n", "import tensorflow.compat.v1 as tf\n"),)


def _engine_module():
    """A stand-in for Keras 2.2's `keras.engine`: its `Layer` is Keras 2's, except that, as Keras 2.2 did (it kept
    `compute_output_shape`'s result as the output's `_keras_shape`, which `K.int_shape` read), the static shape of
    each output is completed from the layer's `compute_output_shape`. matterport's graph relies on that: the ROI
    count that ProposalLayer and PyramidROIAlign declare is read back as a static dimension downstream."""
    import keras
    import tensorflow as tf

    class Layer(keras.layers.Layer):
        def __call__(self, inputs, *args, **kwargs):
            outputs = super().__call__(inputs, *args, **kwargs)
            as_list = isinstance(inputs, (list, tuple))
            shapes = [tuple(tf.TensorShape(t.shape).as_list()) for t in (inputs if as_list else [inputs])]
            declared = self.compute_output_shape(shapes if as_list else shapes[0])
            many = isinstance(outputs, (list, tuple))
            for tensor, shape in zip(outputs if many else [outputs], declared if many else [declared]):
                tensor.set_shape(tf.TensorShape(tensor.shape).merge_with(tf.TensorShape(shape)))
            return outputs

    engine = types.ModuleType("keras.engine")
    engine.Layer = Layer
    return engine


def _load_matterport(root: str):
    """matterport's mrcnn.config / utils / model as modules, TF 1 names mapped at load time (see the docstring)."""
    import tensorflow

    tensorflow.compat.v1.disable_v2_behavior()
    if "bool" not in np.__dict__:  # NumPy 1.24 removed the alias `np.bool` (= bool) that utils.unmold_mask uses
        np.bool = bool
    sys.modules["keras.engine"] = _engine_module()
    package = types.ModuleType("mrcnn")
    package.__path__ = [os.path.join(root, "mrcnn")]
    sys.modules["mrcnn"] = package
    modules = {}
    for name in ("config", "utils", "model"):
        path = os.path.join(root, "mrcnn", f"{name}.py")
        with open(path, encoding="utf-8") as f:
            source = f.read()
        patched = source
        for old, new in PATCHES:
            if old in patched:
                patched = patched.replace(old, new)
        module = types.ModuleType(f"mrcnn.{name}")
        module.__file__ = path
        sys.modules[f"mrcnn.{name}"] = module
        setattr(package, name, module)
        exec(compile(patched, path, "exec"), module.__dict__)
        modules[name] = module
    return modules


def _config(mconfig, overrides):
    cls = type("ConformanceConfig", (mconfig.Config,), dict(overrides))
    return cls()


def _text(value) -> str:
    return value.decode("utf8") if isinstance(value, bytes) else str(value)


def _read_layout(path: str):
    """(root attrs, [(layer, [(weight name, shape, array)])]) of a Keras 2 HDF5 weight file, in file order."""
    import h5py

    with h5py.File(path, "r") as f:
        attrs = {k: _text(v) for k, v in f.attrs.items() if k != "layer_names"}
        attrs["layer_names dtype"] = str(f.attrs["layer_names"].dtype)
        layer_names = [_text(n) for n in f.attrs["layer_names"]]
        layers = []
        for layer in layer_names:
            group = f[layer]
            names = [_text(n) for n in group.attrs["weight_names"]]
            layers.append((layer, [(n, tuple(group[n].shape), np.asarray(group[n])) for n in names]))
    return attrs, layers


def _layout_record(attrs, layers):
    return {"root_attrs": {k: str(v) for k, v in sorted(attrs.items())},
            "layer_names": [layer for layer, _ in layers],
            "weights": [[layer, [[n, list(s)] for n, s, _ in weights]] for layer, weights in layers if weights],
            "parameters": int(sum(int(np.prod(s)) for _, weights in layers for _, s, _ in weights))}


def _write_seeded(path: str, layers, seed: int):
    """Overwrites every dataset of a Keras 2 weight file in place with the seeded rule's values."""
    import h5py

    drawn = seeded_keras_weights([(layer, [(n, s) for n, s, _ in weights]) for layer, weights in layers], seed)
    with h5py.File(path, "r+") as f:
        for layer, weights in drawn:
            for name, value in weights:
                f[layer][name][...] = value
    return drawn


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mrcnn", required=True, help="directory holding matterport's mrcnn/ package")
    parser.add_argument("--commit", required=True, help="matterport commit the package corresponds to")
    parser.add_argument("--source", required=True, help="where the package came from (recorded)")
    args = parser.parse_args(argv)

    m = _load_matterport(args.mrcnn)
    import keras
    import tensorflow as tf

    files = {}
    for name in ("config", "utils", "model"):
        with open(os.path.join(args.mrcnn, "mrcnn", f"{name}.py"), "rb") as f:
            files[f"mrcnn/{name}.py"] = hashlib.sha256(f.read()).hexdigest()
    record = {"reference": "matterport/Mask_RCNN", "commit": args.commit, "source": args.source,
              "files_sha256": files, "tensorflow": tf.__version__, "keras": keras.__version__,
              "weight_seed": WEIGHT_SEED, "image_seed": IMAGE_SEED, "image_shape": list(IMAGE_SHAPE),
              "generated_by": "tools/conformance/matterport_weights.py"}
    tmp = tempfile.mkdtemp(prefix="matterport_mrcnn_")

    # COCO layout
    model = m["model"].MaskRCNN("inference", _config(m["config"], COCO), model_dir=tmp)
    path = os.path.join(tmp, "coco.h5")
    model.keras_model.save_weights(path)
    attrs, layers = _read_layout(path)
    record["coco"] = dict(_layout_record(attrs, layers), config=COCO,
                          count_params=int(model.keras_model.count_params()))
    print(f"coco: {len(layers)} layers, {record['coco']['parameters']:,} weights")

    # small model: seeded weights, detection. A fresh Keras session first: in the same graph Keras would rename
    # its layers (conv1_1, ...), and the layer names are the weight file's keys.
    keras.backend.clear_session()
    config = _config(m["config"], SMALL)
    model = m["model"].MaskRCNN("inference", config, model_dir=tmp)
    path = os.path.join(tmp, "small_init.h5")
    model.keras_model.save_weights(path)
    _, layers = _read_layout(path)
    drawn = _write_seeded(path, layers, WEIGHT_SEED)
    model.keras_model.load_weights(path, by_name=True)
    saved = os.path.join(tmp, "small_seeded.h5")
    model.keras_model.save_weights(saved)
    attrs, layers = _read_layout(saved)
    for (layer, weights), (layer2, values) in zip(layers, drawn):  # matterport's model holds exactly the draws
        assert layer == layer2 and all(np.array_equal(v, d) for (_, _, v), (_, d) in zip(weights, values)), layer
    record["small"] = dict(_layout_record(attrs, layers), config=SMALL, weights_checksum=layout_checksum(drawn),
                           count_params=int(model.keras_model.count_params()))
    with open(saved, "rb") as f:
        record["small"]["file_bytes"] = len(f.read())

    image = seeded_image()
    r = model.detect([image], verbose=0)[0]
    molded, metas, windows = model.mold_inputs([image])
    anchors = model.get_anchors(molded[0].shape)[np.newaxis]
    detections, _, _, mrcnn_mask, rois, rpn_class, rpn_bbox = model.keras_model.predict(
        [molded, metas, anchors], verbose=0)
    n = int(np.sum(detections[0, :, 4] > 0))  # the network's detections (detect then drops empty boxes)
    small_masks = np.stack([mrcnn_mask[0, i, :, :, int(detections[0, i, 4])] for i in range(n)]) if n else \
        np.zeros((0,) + mrcnn_mask.shape[2:4], np.float32)
    record["detections"] = {"network": n, "count": len(r["class_ids"]), "class_ids": [int(c) for c in r["class_ids"]],
                            "scores": [float(s) for s in r["scores"]]}
    print(f"detections: {n} ({len(r['class_ids'])} non-empty); class ids {r['class_ids'].tolist()}; "
          f"scores {np.round(r['scores'], 4).tolist()}")
    write_npz(FIXTURE, {"image": image, "rois": r["rois"], "class_ids": r["class_ids"], "scores": r["scores"],
                        "masks": np.packbits(r["masks"], axis=None), "masks_shape": np.array(r["masks"].shape),
                        "detections": detections[0], "small_masks": small_masks.astype(np.float32),
                        "proposals": rois[0], "rpn_class": rpn_class[0], "rpn_bbox": rpn_bbox[0],
                        "molded_image": molded[0].astype(np.float32), "image_meta": metas[0]})
    write_json(FIXTURE, record)


if __name__ == "__main__":
    main()
