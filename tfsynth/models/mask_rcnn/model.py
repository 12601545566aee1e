"""Mask R-CNN for Keras 3 (TensorFlow backend) with matterport's architecture, layer names and public API.

    from tfsynth.models.mask_rcnn import MaskRCNN, CocoInferenceConfig, COCO_CLASS_NAMES

    model = MaskRCNN("inference", CocoInferenceConfig(), model_dir="logs")
    model.load_weights("mask_rcnn_coco.h5", by_name=True)        # matterport's released COCO weights
    r = model.detect([image])[0]   # rois [N, 4], class_ids [N], scores [N], masks [H, W, N]

Weights are read and written in the Keras-2 HDF5 layout matterport's files use (`hdf5.py`), matched by layer
name, with `exclude=[...]` for layers to leave untouched (e.g. the heads when fine-tuning to new classes).
Training (`train`) follows matterport: the five losses (RPN class/box, head class/box/mask), L2 weight decay
on all weights but BN gamma/beta, SGD with momentum and global-norm clipping, layer presets
'heads', '3+', '4+', '5+', 'all'.
"""
from __future__ import annotations

import datetime
import logging
import os
import re
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfsynth.models.mask_rcnn import hdf5, utils
from tfsynth.models.mask_rcnn.layers import (
    ActiveClassIdsLayer, AnchorsLayer, BatchNorm, DetectionLayer, DetectionTargetLayer, LossLayer,
    NormBoxesLayer, ProposalLayer, PyramidROIAlign, TimeDistributed, mrcnn_bbox_loss_graph,
    mrcnn_class_loss_graph, mrcnn_mask_loss_graph, rpn_bbox_loss_graph, rpn_class_loss_graph)
from tfsynth.quiet import quiet_tensorflow_cost_model
from tfsynth.training.checkpoint import atomic_write

log = logging.getLogger(__name__)

# ROI Align's CropAndResize would make grappler's memory optimizer log a multi-line PredictCost() warning for
# every traced function (each train/predict function); see tfsynth/quiet.py.
quiet_tensorflow_cost_model()

LOSS_NAMES = ("rpn_class_loss", "rpn_bbox_loss", "mrcnn_class_loss", "mrcnn_bbox_loss", "mrcnn_mask_loss")

# matterport's presets for MaskRCNN.train(layers=...): regular expressions over layer names.
LAYER_REGEX = {
    "heads": r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "3+": r"(res3.*)|(bn3.*)|(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "4+": r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "5+": r"(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)",
    "all": ".*",
}

############################################################
#  Backbone, RPN and heads
############################################################


def identity_block(input_tensor, kernel_size, filters, stage, block, use_bias=True, train_bn=True):
    """ResNet bottleneck block without a projection shortcut (names res{stage}{block}_branch2a/b/c)."""
    f1, f2, f3 = filters
    conv, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    x = keras.layers.Conv2D(f1, (1, 1), name=conv + "2a", use_bias=use_bias)(input_tensor)
    x = keras.layers.Activation("relu")(BatchNorm(train_bn, name=bn + "2a")(x))
    x = keras.layers.Conv2D(f2, (kernel_size, kernel_size), padding="same", name=conv + "2b", use_bias=use_bias)(x)
    x = keras.layers.Activation("relu")(BatchNorm(train_bn, name=bn + "2b")(x))
    x = keras.layers.Conv2D(f3, (1, 1), name=conv + "2c", use_bias=use_bias)(x)
    x = BatchNorm(train_bn, name=bn + "2c")(x)
    x = keras.layers.Add()([x, input_tensor])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(x)


def conv_block(input_tensor, kernel_size, filters, stage, block, strides=(2, 2), use_bias=True, train_bn=True):
    """ResNet bottleneck block with a projection shortcut (`..._branch1`); the stride is on the first 1x1."""
    f1, f2, f3 = filters
    conv, bn = f"res{stage}{block}_branch", f"bn{stage}{block}_branch"
    x = keras.layers.Conv2D(f1, (1, 1), strides=strides, name=conv + "2a", use_bias=use_bias)(input_tensor)
    x = keras.layers.Activation("relu")(BatchNorm(train_bn, name=bn + "2a")(x))
    x = keras.layers.Conv2D(f2, (kernel_size, kernel_size), padding="same", name=conv + "2b", use_bias=use_bias)(x)
    x = keras.layers.Activation("relu")(BatchNorm(train_bn, name=bn + "2b")(x))
    x = keras.layers.Conv2D(f3, (1, 1), name=conv + "2c", use_bias=use_bias)(x)
    x = BatchNorm(train_bn, name=bn + "2c")(x)
    shortcut = keras.layers.Conv2D(f3, (1, 1), strides=strides, name=conv + "1", use_bias=use_bias)(input_tensor)
    shortcut = BatchNorm(train_bn, name=bn + "1")(shortcut)
    x = keras.layers.Add()([x, shortcut])
    return keras.layers.Activation("relu", name=f"res{stage}{block}_out")(x)


def resnet_graph(input_image, architecture, stage5=False, train_bn=True):
    """ResNet-50/101 (matterport's variant: biases in every conv, stride in the first 1x1) -> [C1..C5]."""
    if architecture not in ("resnet50", "resnet101"):
        raise ValueError(f"BACKBONE {architecture!r}: expected 'resnet50' or 'resnet101'")
    x = keras.layers.ZeroPadding2D((3, 3))(input_image)
    x = keras.layers.Conv2D(64, (7, 7), strides=(2, 2), name="conv1", use_bias=True)(x)
    x = keras.layers.Activation("relu")(BatchNorm(train_bn, name="bn_conv1")(x))
    c1 = x = keras.layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same")(x)
    x = conv_block(x, 3, [64, 64, 256], stage=2, block="a", strides=(1, 1), train_bn=train_bn)
    x = identity_block(x, 3, [64, 64, 256], stage=2, block="b", train_bn=train_bn)
    c2 = x = identity_block(x, 3, [64, 64, 256], stage=2, block="c", train_bn=train_bn)
    x = conv_block(x, 3, [128, 128, 512], stage=3, block="a", train_bn=train_bn)
    for block in "bcd":
        x = identity_block(x, 3, [128, 128, 512], stage=3, block=block, train_bn=train_bn)
    c3 = x
    x = conv_block(x, 3, [256, 256, 1024], stage=4, block="a", train_bn=train_bn)
    for i in range({"resnet50": 5, "resnet101": 22}[architecture]):
        x = identity_block(x, 3, [256, 256, 1024], stage=4, block=chr(98 + i), train_bn=train_bn)
    c4 = x
    c5 = None
    if stage5:
        x = conv_block(x, 3, [512, 512, 2048], stage=5, block="a", train_bn=train_bn)
        x = identity_block(x, 3, [512, 512, 2048], stage=5, block="b", train_bn=train_bn)
        c5 = identity_block(x, 3, [512, 512, 2048], stage=5, block="c", train_bn=train_bn)
    return [c1, c2, c3, c4, c5]


def rpn_graph(feature_map, anchors_per_location, anchor_stride):
    """RPN layers on one feature map: [rpn_class_logits, rpn_probs, rpn_bbox] (matterport's names and layers)."""
    shared = keras.layers.Conv2D(512, (3, 3), padding="same", activation="relu", strides=anchor_stride,
                                 name="rpn_conv_shared")(feature_map)
    x = keras.layers.Conv2D(2 * anchors_per_location, (1, 1), padding="valid", activation="linear",
                            name="rpn_class_raw")(shared)
    rpn_class_logits = keras.layers.Reshape((-1, 2))(x)
    rpn_probs = keras.layers.Activation("softmax", name="rpn_class_xxx")(rpn_class_logits)
    x = keras.layers.Conv2D(anchors_per_location * 4, (1, 1), padding="valid", activation="linear",
                            name="rpn_bbox_pred")(shared)
    return [rpn_class_logits, rpn_probs, keras.layers.Reshape((-1, 4))(x)]


def build_rpn_model(anchor_stride, anchors_per_location, depth):
    """The RPN as a model named `rpn_model`, shared by all pyramid levels (one set of weights)."""
    feature_map = keras.Input(shape=[None, None, depth], name="input_rpn_feature_map")
    outputs = rpn_graph(feature_map, anchors_per_location, anchor_stride)
    return keras.Model([feature_map], outputs, name="rpn_model")


def fpn_classifier_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True,
                         fc_layers_size=1024):
    """Classifier and box heads: ROIAlign 7x7 -> two 1024 "FC" layers (as convs) -> logits, probs, deltas."""
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_classifier")([rois, image_meta] + feature_maps)
    x = TimeDistributed(keras.layers.Conv2D(fc_layers_size, (pool_size, pool_size), padding="valid"),
                        name="mrcnn_class_conv1")(x)
    x = keras.layers.Activation("relu")(TimeDistributed(BatchNorm(train_bn), name="mrcnn_class_bn1")(x))
    x = TimeDistributed(keras.layers.Conv2D(fc_layers_size, (1, 1)), name="mrcnn_class_conv2")(x)
    x = keras.layers.Activation("relu")(TimeDistributed(BatchNorm(train_bn), name="mrcnn_class_bn2")(x))
    shared = keras.layers.Reshape((-1, fc_layers_size), name="pool_squeeze")(x)
    mrcnn_class_logits = TimeDistributed(keras.layers.Dense(num_classes), name="mrcnn_class_logits")(shared)
    mrcnn_probs = keras.layers.Activation("softmax", name="mrcnn_class")(mrcnn_class_logits)
    x = TimeDistributed(keras.layers.Dense(num_classes * 4, activation="linear"), name="mrcnn_bbox_fc")(shared)
    mrcnn_bbox = keras.layers.Reshape((-1, num_classes, 4), name="mrcnn_bbox")(x)
    return mrcnn_class_logits, mrcnn_probs, mrcnn_bbox


def build_fpn_mask_graph(rois, feature_maps, image_meta, pool_size, num_classes, train_bn=True):
    """Mask head: ROIAlign 14x14 -> 4 x (conv 3x3 256, BN, ReLU) -> deconv 2x -> per-class sigmoid masks."""
    x = PyramidROIAlign([pool_size, pool_size], name="roi_align_mask")([rois, image_meta] + feature_maps)
    for i in range(1, 5):
        x = TimeDistributed(keras.layers.Conv2D(256, (3, 3), padding="same"), name=f"mrcnn_mask_conv{i}")(x)
        x = keras.layers.Activation("relu")(TimeDistributed(BatchNorm(train_bn), name=f"mrcnn_mask_bn{i}")(x))
    x = TimeDistributed(keras.layers.Conv2DTranspose(256, (2, 2), strides=2, activation="relu"),
                        name="mrcnn_mask_deconv")(x)
    return TimeDistributed(keras.layers.Conv2D(num_classes, (1, 1), strides=1, activation="sigmoid"),
                           name="mrcnn_mask")(x)


def get_anchors(config, image_shape) -> np.ndarray:
    """Normalised pyramid anchors for a molded image of `image_shape`."""
    backbone_shapes = utils.compute_backbone_shapes(config, image_shape)
    anchors = utils.generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
                                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    return utils.norm_boxes(anchors, image_shape[:2])


def build(mode: str, config) -> keras.Model:
    """The Keras model of matterport's `MaskRCNN.build` (inputs, outputs and layer names as matterport)."""
    if mode not in ("training", "inference"):
        raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
    h, w = config.IMAGE_SHAPE[:2]
    if h % 64 or w % 64:
        raise ValueError(f"IMAGE_SHAPE {tuple(config.IMAGE_SHAPE)}: the image size must be divisible by 64 "
                         f"(e.g. 256, 320, 384, 448, 512, ...) to keep the pyramid levels aligned")
    input_image = keras.Input(shape=[None, None, int(config.IMAGE_SHAPE[2])], name="input_image")
    input_image_meta = keras.Input(shape=[config.IMAGE_META_SIZE], name="input_image_meta")
    if mode == "training":
        input_rpn_match = keras.Input(shape=[None, 1], name="input_rpn_match", dtype="int32")
        input_rpn_bbox = keras.Input(shape=[None, 4], name="input_rpn_bbox", dtype="float32")
        input_gt_class_ids = keras.Input(shape=[None], name="input_gt_class_ids", dtype="int32")
        input_gt_boxes = keras.Input(shape=[None, 4], name="input_gt_boxes", dtype="float32")
        gt_boxes = NormBoxesLayer(name="norm_gt_boxes")([input_gt_boxes, input_image])
        mask_hw = list(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else [int(h), int(w)]
        input_gt_masks = keras.Input(shape=mask_hw + [None], name="input_gt_masks", dtype="bool")
    else:
        input_anchors = keras.Input(shape=[None, 4], name="input_anchors")

    if callable(config.BACKBONE):
        _, c2, c3, c4, c5 = config.BACKBONE(input_image, stage5=True, train_bn=config.TRAIN_BN)
    else:
        _, c2, c3, c4, c5 = resnet_graph(input_image, config.BACKBONE, stage5=True, train_bn=config.TRAIN_BN)
    size = config.TOP_DOWN_PYRAMID_SIZE
    p5 = keras.layers.Conv2D(size, (1, 1), name="fpn_c5p5")(c5)
    p4 = keras.layers.Add(name="fpn_p4add")([keras.layers.UpSampling2D(size=(2, 2), name="fpn_p5upsampled")(p5),
                                             keras.layers.Conv2D(size, (1, 1), name="fpn_c4p4")(c4)])
    p3 = keras.layers.Add(name="fpn_p3add")([keras.layers.UpSampling2D(size=(2, 2), name="fpn_p4upsampled")(p4),
                                             keras.layers.Conv2D(size, (1, 1), name="fpn_c3p3")(c3)])
    p2 = keras.layers.Add(name="fpn_p2add")([keras.layers.UpSampling2D(size=(2, 2), name="fpn_p3upsampled")(p3),
                                             keras.layers.Conv2D(size, (1, 1), name="fpn_c2p2")(c2)])
    p2 = keras.layers.Conv2D(size, (3, 3), padding="same", name="fpn_p2")(p2)
    p3 = keras.layers.Conv2D(size, (3, 3), padding="same", name="fpn_p3")(p3)
    p4 = keras.layers.Conv2D(size, (3, 3), padding="same", name="fpn_p4")(p4)
    p5 = keras.layers.Conv2D(size, (3, 3), padding="same", name="fpn_p5")(p5)
    p6 = keras.layers.MaxPooling2D(pool_size=(1, 1), strides=2, name="fpn_p6")(p5)
    rpn_feature_maps = [p2, p3, p4, p5, p6]
    mrcnn_feature_maps = [p2, p3, p4, p5]

    if mode == "training":
        anchors = AnchorsLayer(get_anchors(config, config.IMAGE_SHAPE), name="anchors")(input_image)
    else:
        anchors = input_anchors

    rpn = build_rpn_model(config.RPN_ANCHOR_STRIDE, len(config.RPN_ANCHOR_RATIOS), size)
    level_outputs = [rpn([p]) for p in rpn_feature_maps]
    rpn_class_logits, rpn_class, rpn_bbox = [
        keras.layers.Concatenate(axis=1, name=name)(list(outputs))
        for outputs, name in zip(zip(*level_outputs), ("rpn_class_logits", "rpn_class", "rpn_bbox"))]

    proposal_count = config.POST_NMS_ROIS_TRAINING if mode == "training" else config.POST_NMS_ROIS_INFERENCE
    rpn_rois = ProposalLayer(proposal_count=proposal_count, nms_threshold=config.RPN_NMS_THRESHOLD, name="ROI",
                             config=config)([rpn_class, rpn_bbox, anchors])

    if mode == "training":
        active_class_ids = ActiveClassIdsLayer(name="active_class_ids")(input_image_meta)
        inputs = [input_image, input_image_meta, input_rpn_match, input_rpn_bbox, input_gt_class_ids,
                  input_gt_boxes, input_gt_masks]
        if not config.USE_RPN_ROIS:
            input_rois = keras.Input(shape=[config.POST_NMS_ROIS_TRAINING, 4], name="input_roi", dtype="float32")
            target_rois = NormBoxesLayer(name="norm_input_rois")([input_rois, input_image])
            inputs.append(input_rois)
        else:
            target_rois = rpn_rois
        rois, target_class_ids, target_bbox, target_mask = DetectionTargetLayer(config, name="proposal_targets")(
            [target_rois, input_gt_class_ids, gt_boxes, input_gt_masks])
        mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
            rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
            train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
        mrcnn_mask = build_fpn_mask_graph(rois, mrcnn_feature_maps, input_image_meta, config.MASK_POOL_SIZE,
                                          config.NUM_CLASSES, train_bn=config.TRAIN_BN)
        output_rois = keras.layers.Identity(name="output_rois")(rois)
        rpn_class_loss = LossLayer(rpn_class_loss_graph, name="rpn_class_loss")([input_rpn_match, rpn_class_logits])
        rpn_bbox_loss = LossLayer(lambda *x: rpn_bbox_loss_graph(config, *x), name="rpn_bbox_loss")(
            [input_rpn_bbox, input_rpn_match, rpn_bbox])
        class_loss = LossLayer(mrcnn_class_loss_graph, name="mrcnn_class_loss")(
            [target_class_ids, mrcnn_class_logits, active_class_ids])
        bbox_loss = LossLayer(mrcnn_bbox_loss_graph, name="mrcnn_bbox_loss")(
            [target_bbox, target_class_ids, mrcnn_bbox])
        mask_loss = LossLayer(mrcnn_mask_loss_graph, name="mrcnn_mask_loss")(
            [target_mask, target_class_ids, mrcnn_mask])
        outputs = [rpn_class_logits, rpn_class, rpn_bbox, mrcnn_class_logits, mrcnn_class, mrcnn_bbox, mrcnn_mask,
                   rpn_rois, output_rois, rpn_class_loss, rpn_bbox_loss, class_loss, bbox_loss, mask_loss]
        return keras.Model(inputs, outputs, name="mask_rcnn")

    mrcnn_class_logits, mrcnn_class, mrcnn_bbox = fpn_classifier_graph(
        rpn_rois, mrcnn_feature_maps, input_image_meta, config.POOL_SIZE, config.NUM_CLASSES,
        train_bn=config.TRAIN_BN, fc_layers_size=config.FPN_CLASSIF_FC_LAYERS_SIZE)
    detections = DetectionLayer(config, name="mrcnn_detection")([rpn_rois, mrcnn_class, mrcnn_bbox, input_image_meta])
    detection_boxes = keras.layers.Lambda(lambda x: x[..., :4], output_shape=lambda s: s[:-1] + (4,),
                                          name="detection_boxes")(detections)
    mrcnn_mask = build_fpn_mask_graph(detection_boxes, mrcnn_feature_maps, input_image_meta, config.MASK_POOL_SIZE,
                                      config.NUM_CLASSES, train_bn=config.TRAIN_BN)
    return keras.Model([input_image, input_image_meta, input_anchors],
                       [detections, mrcnn_class, mrcnn_bbox, mrcnn_mask, rpn_rois, rpn_class, rpn_bbox],
                       name="mask_rcnn")


############################################################
#  Weights by layer name (Keras-2 HDF5 layout)
############################################################


def _weighted_layers(keras_model):
    return [layer for layer in keras_model.layers if layer.weights]


def _weight_entries(layer) -> list[tuple[str, "keras.Variable"]]:
    """(Keras-2 weight name, variable) of a layer, in Keras 2's order: '<layer>/<weight>:0'.

    For a nested model (rpn_model) the prefix is the inner layer's name, as Keras 2 wrote it; for a
    TimeDistributed wrapper it is the wrapper's (the name matterport gave it).
    """
    if isinstance(layer, keras.Model):
        return [entry for inner in layer.layers if inner.weights for entry in _weight_entries(inner)]
    return [(f"{layer.name}/{v.name}:0", v) for v in layer.weights]


def save_weights_hdf5(keras_model, filepath: str) -> None:
    """Writes every layer's weights in matterport's (Keras 2) HDF5 layout, atomically."""
    layers = [(layer.name, [(name, np.asarray(keras.ops.convert_to_numpy(v))) for name, v in _weight_entries(layer)])
              for layer in keras_model.layers]
    atomic_write(filepath, lambda tmp: hdf5.write_weights(tmp, layers))


def load_weights_hdf5(keras_model, filepath: str, by_name: bool = False, exclude: Optional[Sequence[str]] = None,
                      skip_mismatch: bool = False) -> dict:
    """Loads a Keras-2 HDF5 weight file (e.g. matterport's mask_rcnn_coco.h5) into `keras_model`.

    by_name=True: each model layer with weights takes the file's layer of the same name; layers the file
    lacks keep their weights. by_name=False: layers with weights are matched by order, and the counts must
    agree. `exclude`: layer names never touched (implies by_name). A shape mismatch raises naming the layer
    and both shapes, unless skip_mismatch (then the layer is left as it is and reported).
    Returns {"loaded": [...], "excluded": [...], "missing_in_file": [...], "mismatched": [...],
    "unused_in_file": [...]} (layer names).
    """
    exclude = set(exclude or ())
    if exclude:
        by_name = True
    stored = hdf5.read_weights(filepath)
    stored_with_weights = [name for name, weights in stored.items() if weights]
    layers = _weighted_layers(keras_model)
    unknown_excludes = sorted(exclude - {layer.name for layer in keras_model.layers})
    if unknown_excludes:
        raise hdf5.WeightFileError(f"exclude names layers the model does not have: {unknown_excludes}")
    report = {"loaded": [], "excluded": [], "missing_in_file": [], "mismatched": [], "unused_in_file": []}
    if by_name:
        pairs = []
        for layer in layers:
            if layer.name in exclude:
                report["excluded"].append(layer.name)
            elif layer.name not in stored or not stored[layer.name]:
                report["missing_in_file"].append(layer.name)
            else:
                pairs.append((layer, layer.name))
    else:
        if len(stored_with_weights) != len(layers):
            raise hdf5.WeightFileError(
                f"{filepath}: holds {len(stored_with_weights)} layers with weights, the model has {len(layers)}; "
                f"load with by_name=True")
        pairs = list(zip(layers, stored_with_weights))
    assignments = []
    for layer, stored_name in pairs:
        entries = _weight_entries(layer)
        values = stored[stored_name]
        problem = None
        if len(values) != len(entries):
            problem = (f"layer {layer.name!r} has {len(entries)} weights, the file's {stored_name!r} has "
                       f"{len(values)}")
        else:
            for (name, variable), (stored_weight, value) in zip(entries, values):
                if tuple(variable.shape) != tuple(value.shape):
                    problem = (f"layer {layer.name!r}: weight {name} has shape {tuple(variable.shape)}, the file's "
                               f"{stored_weight} has shape {tuple(value.shape)}")
                    break
        if problem:
            if not skip_mismatch:
                raise hdf5.WeightFileError(f"{filepath}: {problem} (exclude the layer or pass skip_mismatch=True)")
            report["mismatched"].append(layer.name)
            continue
        assignments.append((layer.name, [(variable, value) for (_, variable), (_, value) in zip(entries, values)]))
    for name, pairs_ in assignments:  # assign only once every layer checked out: all or nothing
        for variable, value in pairs_:
            variable.assign(value.astype(variable.dtype))
        report["loaded"].append(name)
    used = set(report["loaded"]) if by_name else set(stored_with_weights)
    report["unused_in_file"] = [name for name in stored_with_weights if name not in used]
    return report


############################################################
#  Training model
############################################################


class _TrainingModel(keras.Model):
    """Wraps the training graph: the loss is the weighted sum of its five loss outputs + L2 weight decay."""

    def __init__(self, net: keras.Model, config, **kwargs):
        super().__init__(name="mask_rcnn_trainer", **kwargs)
        self.net = net
        self.config = config
        self.trackers = {name: keras.metrics.Mean(name=name) for name in ("loss",) + LOSS_NAMES}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, inputs, training=False):
        return self.net(list(inputs), training=training)

    def _loss_terms(self, data, training):
        inputs = data[0] if len(data) == 1 else data
        outputs = self.net(list(inputs), training=training)
        named = dict(zip(LOSS_NAMES, outputs[-len(LOSS_NAMES):]))
        losses = {name: named[name] * float(self.config.LOSS_WEIGHTS.get(name, 1.0)) for name in LOSS_NAMES}
        decay = [tf.reduce_sum(tf.square(w)) / tf.cast(tf.size(w), tf.float32) for w in self.net.trainable_weights
                 if "gamma" not in w.name and "beta" not in w.name]
        regularisation = self.config.WEIGHT_DECAY * tf.add_n(decay) if decay else tf.constant(0.0)
        return tf.add_n(list(losses.values())) + regularisation, losses

    def _update(self, total, losses):
        self.trackers["loss"].update_state(total)
        for name, value in losses.items():
            self.trackers[name].update_state(value)
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    def train_step(self, data):
        with tf.GradientTape() as tape:
            total, losses = self._loss_terms(data, training=True)
        variables = self.net.trainable_variables
        gradients = tape.gradient(total, variables)
        self.optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
        return self._update(total, losses)

    def test_step(self, data):
        total, losses = self._loss_terms(data, training=False)
        return self._update(total, losses)


class _CheckpointCallback(keras.callbacks.Callback):
    """Saves matterport-style `mask_rcnn_<name>_<epoch:04d>.h5` weight files after every epoch."""

    def __init__(self, owner: "MaskRCNN"):
        super().__init__()
        self.owner = owner

    def on_epoch_end(self, epoch, logs=None):
        path = self.owner.checkpoint_path.format(epoch=epoch + 1)
        self.owner.save_weights(path)


############################################################
#  MaskRCNN
############################################################


class MaskRCNN:
    """matterport's `MaskRCNN`: `keras_model` holds the Keras model of the given mode."""

    def __init__(self, mode: str, config, model_dir: str):
        if mode not in ("training", "inference"):
            raise ValueError(f"mode must be 'training' or 'inference', got {mode!r}")
        self.mode = mode
        self.config = config
        self.model_dir = model_dir
        self.set_log_dir()
        self._anchor_cache = {}
        self.keras_model = self.build(mode=mode, config=config)

    def build(self, mode, config):
        """The Keras model of this mode (matterport's architecture and layer names); subclasses may override."""
        return build(mode=mode, config=config)

    # -- weights ---------------------------------------------------------------------------------------------

    def load_weights(self, filepath, by_name=False, exclude=None, skip_mismatch=False) -> dict:
        """Loads a matterport / Keras-2 HDF5 weight file (see `load_weights_hdf5`); returns the report.

        Load before changing which layers train: the weights are assigned by name whatever is trainable.
        """
        report = load_weights_hdf5(self.keras_model, filepath, by_name=by_name, exclude=exclude,
                                   skip_mismatch=skip_mismatch)
        self.set_log_dir(filepath)
        return report

    def save_weights(self, filepath) -> None:
        """Saves in matterport's HDF5 layout, so matterport (Keras 2) and `load_weights` both read it."""
        save_weights_hdf5(self.keras_model, filepath)

    def find_last(self) -> str:
        """The last checkpoint of the last training run of this config's NAME in `model_dir`."""
        key = self.config.NAME.lower()
        dirs = sorted(d for d in (os.listdir(self.model_dir) if os.path.isdir(self.model_dir) else [])
                      if d.startswith(key) and os.path.isdir(os.path.join(self.model_dir, d)))
        if not dirs:
            raise FileNotFoundError(f"no training directory for {key!r} under {self.model_dir}")
        directory = os.path.join(self.model_dir, dirs[-1])
        checkpoints = sorted(f for f in os.listdir(directory) if f.startswith("mask_rcnn") and f.endswith(".h5"))
        if not checkpoints:
            raise FileNotFoundError(f"no weight files in {directory}")
        return os.path.join(directory, checkpoints[-1])

    def set_log_dir(self, model_path=None):
        """Log directory `<model_dir>/<name><YYYYmmddTHHMM>`; a checkpoint path of that form resumes its epoch."""
        self.epoch = 0
        now = datetime.datetime.now()
        if model_path:
            regex = r".*[/\\][\w-]+(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})[/\\]mask\_rcnn\_[\w-]+(\d{4})\.h5"
            match = re.match(regex, str(model_path))
            if match:
                now = datetime.datetime(*(int(match.group(i)) for i in range(1, 6)))
                self.epoch = int(match.group(6))
                log.info("re-starting from epoch %d", self.epoch)
        name = (self.config.NAME or "mask_rcnn").lower()
        self.log_dir = os.path.join(self.model_dir, f"{name}{now:%Y%m%dT%H%M}")
        self.checkpoint_path = os.path.join(self.log_dir, f"mask_rcnn_{name}_{{epoch:04d}}.h5")

    # -- training --------------------------------------------------------------------------------------------

    def set_trainable(self, layer_regex, keras_model=None, indent=0, verbose=1):
        """Layers whose names fully match `layer_regex` train; all others are frozen (nested models too)."""
        keras_model = keras_model or self.keras_model
        for layer in keras_model.layers:
            if isinstance(layer, keras.Model):
                self.set_trainable(layer_regex, keras_model=layer, indent=indent + 4, verbose=verbose)
                continue
            if not layer.weights:
                continue
            trainable = bool(re.fullmatch(layer_regex, layer.name))
            layer.trainable = trainable
            if trainable and verbose > 0:
                log.info("%s%-20s (%s)", " " * indent, layer.name, layer.__class__.__name__)

    def compile(self, learning_rate, momentum) -> _TrainingModel:
        """A trainer for the current trainable layers: SGD(momentum, global-norm clip GRADIENT_CLIP_NORM)."""
        if self.mode != "training":
            raise ValueError("create the model in training mode to train it")
        trainer = _TrainingModel(self.keras_model, self.config)
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                         global_clipnorm=self.config.GRADIENT_CLIP_NORM)
        trainer.compile(optimizer=optimizer, jit_compile=False)
        return trainer

    def _tf_dataset(self, dataset, shuffle, augmentation, seed, no_augmentation_sources=None):
        signature = tuple(tf.TensorSpec(shape, tf.as_dtype(dtype))
                          for shape, dtype in utils.batch_signature(self.config))
        config = self.config

        def generate():
            for batch in utils.data_generator(dataset, config, shuffle=shuffle, augmentation=augmentation,
                                              batch_size=config.BATCH_SIZE, seed=seed,
                                              no_augmentation_sources=no_augmentation_sources):
                yield batch

        return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation=None,
              custom_callbacks=None, no_augmentation_sources=None, seed: int = 0, tensorboard: bool = True,
              verbose: int = 1):
        """Trains up to epoch `epochs` (counting the epochs of a loaded checkpoint), as matterport.

        layers: a preset ('heads', '3+', '4+', '5+', 'all') or a regular expression over layer names.
        augmentation: callable (image, masks, rng) -> (image, masks) (see `utils.fliplr`), not applied to
        images of the dataset sources listed in `no_augmentation_sources`.
        Each epoch runs STEPS_PER_EPOCH batches and VALIDATION_STEPS validation batches, writes TensorBoard
        scalars to `log_dir` and the weights to `checkpoint_path`. Returns the Keras History.
        """
        if self.mode != "training":
            raise ValueError("create the model in training mode to train it")
        regex = LAYER_REGEX.get(layers, layers)
        os.makedirs(self.log_dir, exist_ok=True)
        callbacks = [_CheckpointCallback(self)]
        if tensorboard:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=self.log_dir, histogram_freq=0, write_graph=False))
        callbacks += list(custom_callbacks or [])
        self.set_trainable(regex, verbose=0)
        trainer = self.compile(learning_rate, self.config.LEARNING_MOMENTUM)
        train_data = self._tf_dataset(train_dataset, True, augmentation, seed, no_augmentation_sources)
        val_data = self._tf_dataset(val_dataset, True, None, seed + 1) if val_dataset is not None else None
        history = trainer.fit(train_data, initial_epoch=self.epoch, epochs=epochs,
                              steps_per_epoch=self.config.STEPS_PER_EPOCH, callbacks=callbacks,
                              validation_data=val_data,
                              validation_steps=self.config.VALIDATION_STEPS if val_data is not None else None,
                              verbose=verbose, shuffle=False)
        self.epoch = max(self.epoch, epochs)
        return history

    def recalibrate_batchnorm(self, dataset, batches: int = 50, seed: int = 0) -> int:
        """Precise BatchNorm statistics (Wu & Johnson 2021, "Rethinking 'Batch' in BatchNorm", PreciseBN): sets the
        moving mean and variance of every BatchNorm layer that follows the training flag (TRAIN_BN=None) to the
        average of its batch statistics over `batches` training-mode batches of `dataset`; weights are unchanged.

        Why: with random initialisation and small batches, the EMA moving statistics lag behind weights that are
        still changing fast, so inference (moving statistics) sees other activations than training did (batch
        statistics): the shapes `small` run's validation RPN loss rose while its training loss fell, and its
        detections were far worse in inference mode than with batch statistics. Returns the number of layers
        recalibrated; `save_weights` afterwards keeps them."""
        if self.mode != "training":
            raise ValueError("recalibrate BatchNorm on the training-mode model (it has the ground-truth inputs)")
        layers = [layer for layer in _walk_layers(self.keras_model)
                  if isinstance(layer, keras.layers.BatchNormalization) and getattr(layer, "train_bn", None) is None]
        if not layers or batches < 1:
            return 0
        momenta = [layer.momentum for layer in layers]
        for layer in layers:  # momentum 0: after a call the moving statistics are that batch's statistics
            layer.momentum = 0.0
        sums = [[np.zeros(layer.moving_mean.shape, np.float64), np.zeros(layer.moving_variance.shape, np.float64)]
                for layer in layers]
        forward = tf.function(lambda inputs: self.keras_model(list(inputs), training=True))
        try:
            for inputs in self._tf_dataset(dataset, True, None, seed).take(batches):
                forward(inputs)
                for total, layer in zip(sums, layers):
                    total[0] += np.asarray(layer.moving_mean, np.float64)
                    total[1] += np.asarray(layer.moving_variance, np.float64)
            for (mean, var), layer in zip(sums, layers):
                layer.moving_mean.assign((mean / batches).astype(np.float32))
                layer.moving_variance.assign((var / batches).astype(np.float32))
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum
        return len(layers)

    # -- inference -------------------------------------------------------------------------------------------

    def get_anchors(self, image_shape) -> np.ndarray:
        key = tuple(int(v) for v in image_shape)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = get_anchors(self.config, key)
        return self._anchor_cache[key]

    def mold_inputs(self, images):
        """Images -> (molded [N, h, w, 3] float32, image_metas [N, meta], windows [N, 4])."""
        molded, metas, windows = [], [], []
        for image in images:
            image = np.asarray(image)
            if image.ndim != 3 or image.shape[2] != self.config.IMAGE_CHANNEL_COUNT:
                raise ValueError(f"expected images [H, W, {self.config.IMAGE_CHANNEL_COUNT}], got shape {image.shape}")
            resized, window, scale, _, _ = utils.resize_image(
                image, min_dim=self.config.IMAGE_MIN_DIM, min_scale=self.config.IMAGE_MIN_SCALE,
                max_dim=self.config.IMAGE_MAX_DIM, mode=self.config.IMAGE_RESIZE_MODE)
            m = utils.mold_image(resized, self.config)
            metas.append(utils.compose_image_meta(0, image.shape, m.shape, window, scale,
                                                  np.zeros([self.config.NUM_CLASSES], dtype=np.int32)))
            molded.append(m)
            windows.append(window)
        return np.stack(molded), np.stack(metas), np.stack(windows)

    def unmold_detections(self, detections, mrcnn_mask, original_image_shape, image_shape, window):
        """Network output of one image -> (boxes [N, 4] pixels, class_ids, scores, masks [H, W, N] bool)."""
        zero_ix = np.where(detections[:, 4] == 0)[0]
        n = zero_ix[0] if zero_ix.shape[0] > 0 else detections.shape[0]
        boxes = detections[:n, :4]
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5]
        masks = mrcnn_mask[np.arange(n), :, :, class_ids]
        wy1, wx1, wy2, wx2 = utils.norm_boxes(window, image_shape[:2])
        shift = np.array([wy1, wx1, wy1, wx1])
        scale = np.array([wy2 - wy1, wx2 - wx1, wy2 - wy1, wx2 - wx1])
        boxes = utils.denorm_boxes(np.divide(boxes - shift, scale), original_image_shape[:2])
        keep = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) > 0
        boxes, class_ids, scores, masks = boxes[keep], class_ids[keep], scores[keep], masks[keep]
        full = [utils.unmold_mask(masks[i], boxes[i], original_image_shape) for i in range(len(boxes))]
        full_masks = np.stack(full, axis=-1) if full else np.zeros(tuple(original_image_shape[:2]) + (0,), bool)
        return boxes, class_ids, scores, full_masks

    def _run(self, molded_images, image_metas):
        if len(molded_images) != self.config.BATCH_SIZE:
            raise ValueError(f"got {len(molded_images)} images, the config's BATCH_SIZE is {self.config.BATCH_SIZE}")
        image_shape = molded_images[0].shape
        for g in molded_images[1:]:
            if g.shape != image_shape:
                raise ValueError("after resizing all images of a batch must have one size "
                                 f"({image_shape} vs {g.shape}); check IMAGE_RESIZE_MODE")
        anchors = self.get_anchors(image_shape)
        anchors = np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)
        outputs = self.keras_model.predict_on_batch([molded_images, image_metas.astype(np.float32),
                                                     np.ascontiguousarray(anchors)])
        return [keras.ops.convert_to_numpy(o) for o in outputs]

    def detect(self, images, verbose=0):
        """Per image a dict: rois [N, (y1, x1, y2, x2)] pixels, class_ids [N], scores [N], masks [H, W, N]."""
        if self.mode != "inference":
            raise ValueError("create the model in inference mode to detect")
        molded_images, image_metas, windows = self.mold_inputs(images)
        detections, _, _, mrcnn_mask, _, _, _ = self._run(molded_images, image_metas)
        results = []
        for i, image in enumerate(images):
            rois, class_ids, scores, masks = self.unmold_detections(
                detections[i], mrcnn_mask[i], np.asarray(image).shape, molded_images[i].shape, windows[i])
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return results

    def detect_molded(self, molded_images, image_metas, verbose=0):
        """`detect` for images already molded (e.g. from `utils.load_image_gt`)."""
        if self.mode != "inference":
            raise ValueError("create the model in inference mode to detect")
        molded_images = np.asarray(molded_images)
        detections, _, _, mrcnn_mask, _, _, _ = self._run(molded_images, np.asarray(image_metas))
        results = []
        for i, image in enumerate(molded_images):
            window = [0, 0, image.shape[0], image.shape[1]]
            rois, class_ids, scores, masks = self.unmold_detections(detections[i], mrcnn_mask[i], image.shape,
                                                                    image.shape, window)
            results.append({"rois": rois, "class_ids": class_ids, "scores": scores, "masks": masks})
        return results

    def get_trainable_layers(self):
        """Layers that own weights (wrappers unwrapped)."""
        found = []
        for layer in self.keras_model.layers:
            while isinstance(layer, TimeDistributed):
                layer = layer.layer
            if layer.weights:
                found.append(layer)
        return found


def _walk_layers(model):
    """Every layer of `model`, nested models' layers included (depth first)."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk_layers(layer)
