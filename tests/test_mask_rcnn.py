"""Mask R-CNN (Keras 3, matterport-compatible): architecture, weights by name, layers, inference."""

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfsynth.models.mask_rcnn import COCO_CLASS_NAMES, CocoConfig, CocoInferenceConfig, Config, make_config
from tfsynth.models.mask_rcnn import hdf5, utils
from tfsynth.models.mask_rcnn.layers import (PyramidROIAlign, apply_box_deltas_graph, detection_targets_graph,
                                             refine_detections_graph)
from tfsynth.models.mask_rcnn.model import LAYER_REGEX, MaskRCNN, _weight_entries

HEADS = ["mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_bbox", "mrcnn_mask"]


def tiny_config(**overrides):
    fields = dict(NAME="tiny", BACKBONE="resnet50", NUM_CLASSES=3, IMAGE_MIN_DIM=128, IMAGE_MAX_DIM=128,
                  RPN_ANCHOR_SCALES=(8, 16, 32, 64, 128), TRAIN_ROIS_PER_IMAGE=12, POST_NMS_ROIS_TRAINING=200,
                  POST_NMS_ROIS_INFERENCE=100, PRE_NMS_LIMIT=1000, MAX_GT_INSTANCES=4, MINI_MASK_SHAPE=(28, 28),
                  IMAGES_PER_GPU=1, DETECTION_MIN_CONFIDENCE=0.0, FPN_CLASSIF_FC_LAYERS_SIZE=64, MASK_POOL_SIZE=7,
                  MASK_SHAPE=[14, 14], TOP_DOWN_PYRAMID_SIZE=64, DETECTION_MAX_INSTANCES=10,
                  RPN_TRAIN_ANCHORS_PER_IMAGE=64)
    fields.update(overrides)
    return make_config(Config, **fields)


def _np(variable):
    return keras.ops.convert_to_numpy(variable)


def _weights(model):
    """{'<layer>/<weight>:0' as saved: value} of every weight (stable across builds, unlike variable paths)."""
    return {name: _np(v) for layer in model.keras_model.layers for name, v in _weight_entries(layer)}


# -- configuration and architecture --------------------------------------------------------------------------


def test_coco_inference_config_is_the_seeds_appendix_c():
    c = CocoInferenceConfig()
    expected = dict(BACKBONE="resnet101", BACKBONE_STRIDES=[4, 8, 16, 32, 64], BATCH_SIZE=1,
                    COMPUTE_BACKBONE_SHAPE=None, DETECTION_MAX_INSTANCES=100, DETECTION_MIN_CONFIDENCE=0.7,
                    DETECTION_NMS_THRESHOLD=0.3, FPN_CLASSIF_FC_LAYERS_SIZE=1024, GPU_COUNT=1,
                    GRADIENT_CLIP_NORM=5.0, IMAGES_PER_GPU=1, IMAGE_CHANNEL_COUNT=3, IMAGE_MAX_DIM=1024,
                    IMAGE_META_SIZE=93, IMAGE_MIN_DIM=800, IMAGE_MIN_SCALE=0, IMAGE_RESIZE_MODE="square",
                    LEARNING_MOMENTUM=0.9, LEARNING_RATE=0.001, MASK_POOL_SIZE=14, MASK_SHAPE=[28, 28],
                    MAX_GT_INSTANCES=100, MINI_MASK_SHAPE=(56, 56), NAME="coco", NUM_CLASSES=81, POOL_SIZE=7,
                    POST_NMS_ROIS_INFERENCE=1000, POST_NMS_ROIS_TRAINING=2000, PRE_NMS_LIMIT=6000,
                    ROI_POSITIVE_RATIO=0.33, RPN_ANCHOR_RATIOS=[0.5, 1, 2], RPN_ANCHOR_SCALES=(32, 64, 128, 256, 512),
                    RPN_ANCHOR_STRIDE=1, RPN_NMS_THRESHOLD=0.7, RPN_TRAIN_ANCHORS_PER_IMAGE=256,
                    STEPS_PER_EPOCH=1000, TOP_DOWN_PYRAMID_SIZE=256, TRAIN_BN=False, TRAIN_ROIS_PER_IMAGE=200,
                    USE_MINI_MASK=True, USE_RPN_ROIS=True, VALIDATION_STEPS=50)
    for name, value in expected.items():
        assert getattr(c, name) == value, name
    for name in ("BBOX_STD_DEV", "RPN_BBOX_STD_DEV"):
        np.testing.assert_array_equal(getattr(c, name), [0.1, 0.1, 0.2, 0.2])
    np.testing.assert_array_equal(c.MEAN_PIXEL, [123.7, 116.8, 103.9])
    np.testing.assert_array_equal(c.IMAGE_SHAPE, [1024, 1024, 3])
    assert set(c.LOSS_WEIGHTS.values()) == {1.0} and len(c.LOSS_WEIGHTS) == 5
    assert COCO_CLASS_NAMES[3] == "car" and COCO_CLASS_NAMES[8] == "truck" and len(COCO_CLASS_NAMES) == 81
    with pytest.raises(ValueError, match="NOT_A_FIELD"):
        make_config(Config, NOT_A_FIELD=1)


def test_coco_resnet101_has_matterports_parameter_count():
    """COCO config (NUM_CLASSES=81, ResNet-101), keras_model.count_params() of both modes: 64,158,584 weights,
    of which 64,047,096 trainable; the other 111,488 are the BN moving means and variances (2 x 55,744 BN
    channels, backbone and heads), which Keras, like Keras 2 for matterport, counts as non-trainable."""
    for mode, config in (("inference", CocoInferenceConfig()), ("training", CocoConfig())):
        keras_model = MaskRCNN(mode, config, model_dir="/nonexistent").keras_model
        trainable = sum(int(np.prod(w.shape)) for w in keras_model.trainable_weights)
        assert keras_model.count_params() == 64_158_584, mode
        assert trainable == 64_047_096, mode
        moving = sum(int(np.prod(w.shape)) for w in keras_model.non_trainable_weights)
        assert moving == 111_488 and all("moving" in w.path for w in keras_model.non_trainable_weights)
        names = {layer.name for layer in keras_model.layers}
        assert {"conv1", "bn_conv1", "res4w_branch2c", "bn5c_branch2c", "fpn_p6", "rpn_model", "ROI",
                "mrcnn_class_bn2", "mrcnn_mask_deconv", "mrcnn_class", "mrcnn_bbox"} <= names
        assert "res4x_branch2a" not in names  # ResNet-101: stage 4 has blocks a..w
        if mode == "inference":
            assert [o.shape[1:] for o in keras_model.outputs[:2]] == [(100, 6), (1000, 81)]
            assert keras_model.outputs[3].shape[1:] == (100, 28, 28, 81)
        else:
            assert {"proposal_targets", "rpn_class_loss", "mrcnn_mask_loss", "anchors"} <= names


def test_image_size_must_divide_by_64():
    with pytest.raises(ValueError, match="divisible by 64"):
        MaskRCNN("inference", tiny_config(IMAGE_MIN_DIM=100, IMAGE_MAX_DIM=100), model_dir="/tmp")


# -- weights by name ------------------------------------------------------------------------------------------


def test_saved_weights_have_matterports_keras2_hdf5_layout(tmp_path):
    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", tiny_config(), model_dir=str(tmp_path))
    path = str(tmp_path / "w.h5")
    model.save_weights(path)
    with h5py.File(path, "r") as f:
        layer_names = [n.decode() for n in f.attrs["layer_names"]]
        assert layer_names == [layer.name for layer in model.keras_model.layers]
        assert [n.decode() for n in f["bn_conv1"].attrs["weight_names"]] == [
            "bn_conv1/gamma:0", "bn_conv1/beta:0", "bn_conv1/moving_mean:0", "bn_conv1/moving_variance:0"]
        assert [n.decode() for n in f["mrcnn_class_bn1"].attrs["weight_names"]][0] == "mrcnn_class_bn1/gamma:0"
        assert [n.decode() for n in f["rpn_model"].attrs["weight_names"]] == [
            "rpn_conv_shared/kernel:0", "rpn_conv_shared/bias:0", "rpn_class_raw/kernel:0", "rpn_class_raw/bias:0",
            "rpn_bbox_pred/kernel:0", "rpn_bbox_pred/bias:0"]
        assert f["conv1"]["conv1"]["kernel:0"].shape == (7, 7, 3, 64)
        assert f["mrcnn_mask_deconv"]["mrcnn_mask_deconv"]["kernel:0"].shape == (2, 2, 256, 256)
        np.testing.assert_array_equal(f["fpn_p2"]["fpn_p2"]["bias:0"],
                                      _np(model.keras_model.get_layer("fpn_p2").bias))
        assert list(f["input_image"].attrs["weight_names"]) == []


def test_weights_round_trip_by_name_with_and_without_exclusions(tmp_path):
    keras.utils.set_random_seed(1)
    source = MaskRCNN("inference", tiny_config(), model_dir=str(tmp_path))
    path = str(tmp_path / "source.h5")
    source.save_weights(path)
    expected = _weights(source)

    keras.utils.set_random_seed(2)
    full = MaskRCNN("inference", tiny_config(), model_dir=str(tmp_path))
    assert any(not np.array_equal(v, expected[k]) for k, v in _weights(full).items())
    report = full.load_weights(path, by_name=True)
    assert not report["missing_in_file"] and not report["excluded"] and not report["unused_in_file"]
    for key, value in _weights(full).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)

    keras.utils.set_random_seed(3)
    partial = MaskRCNN("inference", tiny_config(), model_dir=str(tmp_path))
    own = _weights(partial)
    report = partial.load_weights(path, by_name=True, exclude=HEADS)
    assert sorted(report["excluded"]) == sorted(n for n in HEADS if partial.keras_model.get_layer(n).weights)
    loaded = _weights(partial)
    for key, value in loaded.items():
        if key.split("/")[0] in HEADS:
            np.testing.assert_array_equal(value, own[key], err_msg=key)  # untouched
            assert "kernel" not in key or not np.array_equal(value, expected[key])
        else:
            np.testing.assert_array_equal(value, expected[key], err_msg=key)

    # A training-mode model (more layers, other outputs) takes the inference model's weights by name.
    training = MaskRCNN("training", tiny_config(), model_dir=str(tmp_path))
    report = training.load_weights(path, by_name=True)
    assert not report["missing_in_file"]
    np.testing.assert_array_equal(_np(training.keras_model.get_layer("res5c_branch2c").kernel),
                                  expected["res5c_branch2c/kernel:0"])
    np.testing.assert_array_equal(_np(training.keras_model.get_layer("mrcnn_mask_bn3").weights[3]),
                                  expected["mrcnn_mask_bn3/moving_variance:0"])


def test_new_class_count_needs_exclude_and_errors_name_the_layer(tmp_path):
    keras.utils.set_random_seed(4)
    path = str(tmp_path / "coco_like.h5")
    MaskRCNN("inference", tiny_config(NUM_CLASSES=5), model_dir=str(tmp_path)).save_weights(path)
    fine_tune = MaskRCNN("training", tiny_config(NUM_CLASSES=2), model_dir=str(tmp_path))
    with pytest.raises(hdf5.WeightFileError, match=r"layer 'mrcnn_bbox_fc'.*\(64, 8\).*\(64, 20\)"):
        fine_tune.load_weights(path, by_name=True)
    before = _weights(fine_tune)
    with pytest.raises(hdf5.WeightFileError):
        fine_tune.load_weights(path, by_name=True)
    for key, value in _weights(fine_tune).items():  # all or nothing: the failed load changed no weight
        np.testing.assert_array_equal(value, before[key])
    report = fine_tune.load_weights(path, by_name=True, exclude=HEADS)
    assert "conv1" in report["loaded"] and "mrcnn_class_logits" in report["excluded"]
    assert "mrcnn_class_logits" in report["unused_in_file"]
    report = fine_tune.load_weights(path, by_name=True, skip_mismatch=True)
    assert set(report["mismatched"]) == {"mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"}
    with pytest.raises(hdf5.WeightFileError, match="does not have"):
        fine_tune.load_weights(path, exclude=["no_such_layer"])
    with pytest.raises(hdf5.WeightFileError, match="not-h5"):
        (tmp_path / "not-h5").write_text("text")
        fine_tune.load_weights(str(tmp_path / "not-h5"), by_name=True)


def test_loads_a_file_written_the_way_keras2_writes_it(tmp_path):
    """An HDF5 file laid out by hand as Keras 2's `model.save` did (weights under `model_weights`, chunked
    `layer_names`), loaded by name and by order."""
    keras.utils.set_random_seed(5)
    model = MaskRCNN("inference", tiny_config(), model_dir=str(tmp_path))
    rng = np.random.default_rng(0)
    values = {}
    path = str(tmp_path / "keras2_model.h5")
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        names = [layer.name for layer in model.keras_model.layers]
        chunks = np.array_split(np.array([n.encode() for n in names]), 3)
        for i, chunk in enumerate(chunks):  # what Keras 2 does when the attribute exceeds 64 KiB
            root.attrs[f"layer_names{i}"] = chunk
        for layer in model.keras_model.layers:
            g = root.create_group(layer.name)
            entries = []
            for sub in (layer.layers if isinstance(layer, keras.Model) else [layer]):
                prefix = sub.name if isinstance(layer, keras.Model) else layer.name
                entries += [f"{prefix}/{w.name}:0" for w in sub.weights]
            g.attrs["weight_names"] = np.array([n.encode() for n in entries], dtype="S")
            shapes = [w.shape for _, w in _weight_entries(layer)]
            for name, shape in zip(entries, shapes):
                values[name] = rng.normal(size=shape).astype(np.float32)
                g.create_dataset(name, data=values[name])
    for by_name in (True, False):
        fresh = MaskRCNN("inference", tiny_config(), model_dir=str(tmp_path))
        fresh.load_weights(path, by_name=by_name)
        for key, value in _weights(fresh).items():
            np.testing.assert_array_equal(value, values[key], err_msg=key)


def test_attribute_chunking_round_trip(tmp_path):
    names = [f"layer_{i:05d}_" + "x" * 40 for i in range(3000)]  # ~150 KB: more than one object header
    with h5py.File(tmp_path / "a.h5", "w") as f:
        hdf5.write_attribute_list(f, "layer_names", names)
        assert "layer_names" not in f.attrs and "layer_names2" in f.attrs
        assert hdf5.read_attribute_list(f, "layer_names") == names


# -- NumPy utilities ------------------------------------------------------------------------------------------


def test_box_utilities_and_resizing():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 100, (20, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(2, 30, (20, 2))], axis=1)
    gt = boxes + rng.normal(0, 3, boxes.shape)
    gt[:, 2:] = np.maximum(gt[:, 2:], gt[:, :2] + 1)
    np.testing.assert_allclose(utils.apply_box_deltas(boxes, utils.box_refinement(boxes, gt)), gt, atol=1e-3)
    np.testing.assert_array_equal(utils.denorm_boxes(utils.norm_boxes([[0, 0, 64, 32]], (64, 32)), (64, 32)),
                                  [[0, 0, 64, 32]])
    assert utils.compute_overlaps(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 5, 15, 15],
                                                                         [20, 20, 30, 30]])).round(4).tolist() == \
        [[1.0, round(25 / 175, 4), 0.0]]
    ramp = np.arange(8, dtype=float)[None, :].repeat(4, 0)  # a linear ramp stays linear under bilinear resizing
    np.testing.assert_allclose(utils.resize(ramp, (4, 16))[0, 1:-1], (np.arange(16) + 0.5)[1:-1] / 2 - 0.5)
    image = np.full((100, 150, 3), 200, np.uint8)
    out, window, scale, padding, _ = utils.resize_image(image, min_dim=128, max_dim=128, mode="square")
    assert out.shape == (128, 128, 3) and window == (21, 0, 106, 128) and scale == 128 / 150
    assert out[:21].max() == 0 and out[21:106].min() == 200
    masks = np.zeros((100, 150, 1), bool)
    masks[10:50, 20:90] = True
    resized = utils.resize_mask(masks, scale, padding)
    assert resized.shape == (128, 128, 1)
    box = utils.extract_bboxes(resized)[0]
    np.testing.assert_allclose(box, [21 + 10 * scale, 20 * scale, 21 + 50 * scale, 90 * scale], atol=1.5)
    mini = utils.minimize_mask(utils.extract_bboxes(masks), masks, (28, 28))
    assert mini.all()
    np.testing.assert_array_equal(utils.expand_mask(utils.extract_bboxes(masks), mini, masks.shape), masks)
    full = utils.unmold_mask(np.ones((28, 28)) * 0.9, (10, 20, 50, 90), (100, 150))
    np.testing.assert_array_equal(full, masks[..., 0])


def test_rpn_targets_mark_the_best_anchor_and_encode_the_box():
    config = tiny_config()
    shapes = utils.compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, shapes,
                                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    assert len(anchors) == 3 * (32 ** 2 + 16 ** 2 + 8 ** 2 + 4 ** 2 + 2 ** 2)
    gt = np.array([[30, 40, 62, 72]], dtype=np.float32)
    match, deltas = utils.build_rpn_targets(config.IMAGE_SHAPE, anchors, np.array([1]), gt, config,
                                            np.random.default_rng(0))
    positives = np.where(match == 1)[0]
    assert len(positives) >= 1 and np.sum(match == -1) + len(positives) == config.RPN_TRAIN_ANCHORS_PER_IMAGE
    assert utils.compute_overlaps(anchors[positives], gt).max() == utils.compute_overlaps(anchors, gt).max()
    decoded = utils.apply_box_deltas(anchors[positives], deltas[:len(positives)] * config.RPN_BBOX_STD_DEV)
    np.testing.assert_allclose(decoded, np.repeat(gt, len(positives), 0), atol=1e-3)
    assert not deltas[len(positives):].any()


# -- graph layers ---------------------------------------------------------------------------------------------


def test_graph_box_deltas_match_numpy():
    rng = np.random.default_rng(1)
    corners = rng.uniform(0, 0.7, (10, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(0.05, 0.3, (10, 2))], axis=1).astype(np.float32)
    deltas = rng.normal(0, 0.3, (10, 4)).astype(np.float32)
    np.testing.assert_allclose(apply_box_deltas_graph(tf.constant(boxes), tf.constant(deltas)).numpy(),
                               utils.apply_box_deltas(boxes, deltas), atol=1e-6)


def test_detection_targets_of_proposals_equal_to_the_gt_boxes():
    config = tiny_config(TRAIN_ROIS_PER_IMAGE=12, ROI_POSITIVE_RATIO=0.33, MASK_POOL_SIZE=14, MASK_SHAPE=[28, 28])
    gt_boxes = np.array([[0.1, 0.1, 0.5, 0.4], [0.5, 0.5, 0.9, 0.95], [0, 0, 0, 0]], np.float32)
    far = np.array([[0.0, 0.6, 0.05, 0.65], [0.92, 0.0, 0.99, 0.05], [0.6, 0.0, 0.7, 0.1]], np.float32)
    proposals = np.concatenate([gt_boxes[:2], far, np.zeros((5, 4), np.float32)])
    masks = np.zeros((28, 28, 3), bool)
    masks[:, :, :2] = True
    tf.random.set_seed(0)
    rois, class_ids, deltas, target_masks = [t.numpy() for t in detection_targets_graph(
        tf.constant(proposals), tf.constant([1, 2, 0], tf.int32), tf.constant(gt_boxes), tf.constant(masks), config)]
    assert rois.shape == (12, 4) and target_masks.shape == (12, 28, 28)
    positive = class_ids > 0
    assert positive.sum() == 2 and sorted(class_ids[positive]) == [1, 2]
    for roi, cls in zip(rois[positive], class_ids[positive]):
        np.testing.assert_allclose(roi, gt_boxes[cls - 1])
    np.testing.assert_allclose(deltas[positive], 0, atol=1e-6)
    assert target_masks[positive].min() == 1.0 and target_masks[~positive].max() == 0.0
    # negatives: int(2 / 0.33) - 2 = 4 wanted, 3 available (the far boxes); the rest is zero padding
    negatives = rois[~positive]
    assert (np.abs(negatives).sum(axis=1) > 0).sum() == 3


def test_pyramid_roi_align_picks_the_level_by_box_size():
    meta = utils.compose_image_meta(0, (1024, 1024, 3), (1024, 1024, 3), (0, 0, 1024, 1024), 1, np.zeros(3))
    maps = [tf.fill([2, 256 // 2 ** i, 256 // 2 ** i, 1], float(level)) for i, level in enumerate(range(2, 6))]
    sides = np.array([[56, 224, 448, 1000], [112, 1000, 56, 224]]) / 1024  # expected levels: 2,4,5,5 / 3,5,2,4
    boxes = np.stack([np.zeros_like(sides), np.zeros_like(sides), sides, sides], axis=-1).astype(np.float32)
    pooled = PyramidROIAlign([7, 7])([tf.constant(boxes), tf.constant(np.stack([meta, meta]))] + maps).numpy()
    assert pooled.shape == (2, 4, 7, 7, 1)
    np.testing.assert_array_equal(pooled[..., 0].mean(axis=(2, 3)), [[2, 4, 5, 5], [3, 5, 2, 4]])


def test_refine_detections_drops_background_and_low_scores_and_nms_per_class():
    config = tiny_config(NUM_CLASSES=3, DETECTION_MIN_CONFIDENCE=0.5, DETECTION_NMS_THRESHOLD=0.3,
                         DETECTION_MAX_INSTANCES=5)
    rois = np.array([[0.1, 0.1, 0.4, 0.4], [0.11, 0.1, 0.41, 0.4], [0.1, 0.12, 0.4, 0.42],
                     [0.6, 0.6, 0.9, 0.9], [0.5, 0.5, 0.6, 0.6], [0.0, 0.0, 0.2, 0.2]], np.float32)
    probs = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.2, 0.0, 0.8],   # 0 and 1 overlap (class 1), 2 is class 2
                      [0.3, 0.0, 0.7], [0.9, 0.1, 0.0], [0.55, 0.45, 0.0]], np.float32)  # 4: bg, 5: bg
    deltas = np.zeros((6, 3, 4), np.float32)
    window = tf.constant([0.0, 0.0, 1.0, 1.0])
    det = refine_detections_graph(tf.constant(rois), tf.constant(probs), tf.constant(deltas), window, config).numpy()
    assert det.shape == (5, 6)
    kept = det[det[:, 4] > 0]
    np.testing.assert_allclose(kept[:, 5], [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(kept[:, 4], [1, 2, 2])
    np.testing.assert_allclose(kept[:, :4], rois[[0, 2, 3]])
    assert not det[3:].any()


# -- inference ------------------------------------------------------------------------------------------------


def test_detect_returns_full_image_masks_inside_the_boxes(tmp_path):
    keras.utils.set_random_seed(6)
    config = tiny_config(IMAGES_PER_GPU=2)
    model = MaskRCNN("inference", config, model_dir=str(tmp_path))
    # Random weights give arbitrary (often background) classes; a classifier that always says class 1 (zero
    # kernel, biased bias) makes every proposal a detection, leaving boxes and masks to the random network.
    logits = model.keras_model.get_layer("mrcnn_class_logits")
    logits.weights[0].assign(np.zeros(logits.weights[0].shape, np.float32))
    logits.weights[1].assign([0.0, 5.0, 0.0])
    images = [np.random.default_rng(i).integers(0, 256, shape).astype(np.uint8)
              for i, shape in enumerate([(90, 160, 3), (128, 100, 3)])]
    results = model.detect(images)
    assert len(results) == 2
    for image, r in zip(images, results):
        n = len(r["class_ids"])
        assert 0 < n <= config.DETECTION_MAX_INSTANCES
        assert r["rois"].shape == (n, 4) and r["scores"].shape == (n,) and r["masks"].shape == image.shape[:2] + (n,)
        assert r["masks"].dtype == bool and np.all(np.diff(r["scores"]) <= 1e-6)
        assert np.all((r["class_ids"] >= 1) & (r["class_ids"] < config.NUM_CLASSES))
        assert np.all(r["rois"][:, :2] >= 0) and np.all(r["rois"][:, 2] <= image.shape[0] + 1)
        for i in range(n):
            y1, x1, y2, x2 = r["rois"][i]
            outside = r["masks"][:, :, i].copy()
            outside[max(y1, 0):y2, max(x1, 0):x2] = False
            assert not outside.any()
    with pytest.raises(ValueError, match="BATCH_SIZE"):
        model.detect(images[:1])
    molded, metas, windows = model.mold_inputs(images)
    assert molded.shape == (2, 128, 128, 3) and tuple(windows[0]) == (28, 0, 100, 128)
    np.testing.assert_allclose(molded[0, 0, 0], -config.MEAN_PIXEL, rtol=1e-6)  # padding = 0 - mean pixel


def test_set_trainable_presets_follow_matterports_regexes(tmp_path):
    model = MaskRCNN("training", tiny_config(), model_dir=str(tmp_path))
    layers = {layer.name: layer for layer in model.keras_model.layers}
    model.set_trainable(LAYER_REGEX["heads"], verbose=0)
    assert not layers["res2a_branch2a"].trainable and not layers["bn_conv1"].trainable
    assert layers["fpn_c5p5"].trainable and layers["mrcnn_mask"].trainable
    assert all(l.trainable for l in layers["rpn_model"].layers if l.weights)
    model.set_trainable(LAYER_REGEX["4+"], verbose=0)
    assert not layers["res3d_branch2c"].trainable and layers["res4a_branch1"].trainable
    assert layers["bn5c_branch2c"].trainable
    model.set_trainable(LAYER_REGEX["all"], verbose=0)
    assert all(l.trainable for l in model.keras_model.layers if l.weights)
