"""Mask R-CNN's custom Keras 3 layers and losses (TensorFlow backend), after matterport's `mrcnn/model.py`.

Every per-image computation runs batched (`tf.map_fn` where a kernel is per-image, e.g. NMS), so batches of
any size work; matterport sliced a fixed IMAGES_PER_GPU. Boxes are (y1, x1, y2, x2) in normalised coordinates.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

############################################################
#  Building blocks
############################################################


class BatchNorm(keras.layers.BatchNormalization):
    """BatchNormalization whose mode is fixed by `train_bn` (matterport's TRAIN_BN).

    train_bn=False: always normalise with the moving statistics (frozen, matterport's default; gamma and
    beta still receive gradients); True: always batch statistics; None: follow the `training` flag.
    Keras 3 passes the model-level `training` flag to every layer, overriding a `training=` given when the
    graph was built, so the fixed mode lives in the layer itself.
    """

    def __init__(self, train_bn=None, **kwargs):
        super().__init__(**kwargs)
        self.train_bn = train_bn

    def call(self, inputs, training=None, mask=None):
        if self.train_bn is not None:
            training = self.train_bn
        return super().call(inputs, training=training, mask=mask)

    def get_config(self):
        return {**super().get_config(), "train_bn": self.train_bn}


class TimeDistributed(keras.layers.Wrapper):
    """Applies a layer to every ROI of [batch, rois, ...] by merging the first two axes into one batch.

    Keras 3's own TimeDistributed unrolls a Python loop over a static time axis (hundreds of ROIs here);
    merging the axes runs one batched call instead. The weights are the wrapped layer's, so the layer keeps
    matterport's name and weight layout.
    """

    def build(self, input_shape):
        if not self.layer.built:
            self.layer.build((None,) + tuple(input_shape[2:]))
        self.built = True

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def call(self, inputs, training=None):
        shape = tf.shape(inputs)
        flat = tf.reshape(inputs, tf.concat([[-1], shape[2:]], axis=0))
        flat = tf.ensure_shape(flat, (None,) + tuple(inputs.shape[2:]))
        if getattr(self.layer, "_call_has_training_arg", False):
            out = self.layer(flat, training=training)
        else:
            out = self.layer(flat)
        static = tuple(inputs.shape[:2]) + tuple(out.shape[1:])
        out = tf.reshape(out, tf.concat([shape[:2], tf.shape(out)[1:]], axis=0))
        return tf.ensure_shape(out, static)


############################################################
#  Box graph functions
############################################################


def apply_box_deltas_graph(boxes, deltas):
    """Applies (dy, dx, log(dh), log(dw)) deltas to (y1, x1, y2, x2) boxes along the last axis."""
    height = boxes[..., 2] - boxes[..., 0]
    width = boxes[..., 3] - boxes[..., 1]
    center_y = boxes[..., 0] + 0.5 * height + deltas[..., 0] * height
    center_x = boxes[..., 1] + 0.5 * width + deltas[..., 1] * width
    height = height * tf.exp(deltas[..., 2])
    width = width * tf.exp(deltas[..., 3])
    y1 = center_y - 0.5 * height
    x1 = center_x - 0.5 * width
    return tf.stack([y1, x1, y1 + height, x1 + width], axis=-1)


def clip_boxes_graph(boxes, window):
    """Clips boxes [..., 4] to `window` (y1, x1, y2, x2), broadcast against the boxes."""
    window = tf.cast(window, boxes.dtype)
    low = tf.stack([window[..., 0], window[..., 1], window[..., 0], window[..., 1]], axis=-1)
    high = tf.stack([window[..., 2], window[..., 3], window[..., 2], window[..., 3]], axis=-1)
    return tf.maximum(tf.minimum(boxes, high), low)


def overlaps_graph(boxes1, boxes2):
    """IoU matrix [len(boxes1), len(boxes2)]."""
    b1 = boxes1[:, None, :]
    b2 = boxes2[None, :, :]
    y1 = tf.maximum(b1[..., 0], b2[..., 0])
    x1 = tf.maximum(b1[..., 1], b2[..., 1])
    y2 = tf.minimum(b1[..., 2], b2[..., 2])
    x2 = tf.minimum(b1[..., 3], b2[..., 3])
    intersection = tf.maximum(x2 - x1, 0.0) * tf.maximum(y2 - y1, 0.0)
    area1 = (b1[..., 2] - b1[..., 0]) * (b1[..., 3] - b1[..., 1])
    area2 = (b2[..., 2] - b2[..., 0]) * (b2[..., 3] - b2[..., 1])
    return tf.math.divide_no_nan(intersection, area1 + area2 - intersection)


def box_refinement_graph(box, gt_box):
    box = tf.cast(box, tf.float32)
    gt_box = tf.cast(gt_box, tf.float32)
    height = box[:, 2] - box[:, 0]
    width = box[:, 3] - box[:, 1]
    gt_height = gt_box[:, 2] - gt_box[:, 0]
    gt_width = gt_box[:, 3] - gt_box[:, 1]
    dy = (gt_box[:, 0] + 0.5 * gt_height - box[:, 0] - 0.5 * height) / height
    dx = (gt_box[:, 1] + 0.5 * gt_width - box[:, 1] - 0.5 * width) / width
    return tf.stack([dy, dx, tf.math.log(gt_height / height), tf.math.log(gt_width / width)], axis=1)


def norm_boxes_graph(boxes, shape):
    """Pixel boxes -> normalised, for an image of `shape` (h, w)."""
    shape = tf.cast(shape, tf.float32)
    h, w = shape[..., 0:1], shape[..., 1:2]
    scale = tf.concat([h, w, h, w], axis=-1) - 1.0
    shift = tf.constant([0.0, 0.0, 1.0, 1.0])
    return tf.math.divide(boxes - shift, scale)


def parse_image_meta_graph(meta):
    return {
        "image_id": meta[:, 0],
        "original_image_shape": meta[:, 1:4],
        "image_shape": meta[:, 4:7],
        "window": meta[:, 7:11],
        "scale": meta[:, 11],
        "active_class_ids": meta[:, 12:],
    }


def trim_zeros_graph(boxes):
    non_zeros = tf.reduce_sum(tf.abs(boxes), axis=1) > 0
    return tf.boolean_mask(boxes, non_zeros), non_zeros


############################################################
#  Layers
############################################################


class AnchorsLayer(keras.layers.Layer):
    """The (constant) normalised anchors, repeated over the batch of `image` (training graph)."""

    def __init__(self, anchors, **kwargs):
        super().__init__(**kwargs)
        self.anchors = np.asarray(anchors, dtype=np.float32)

    def call(self, image):
        anchors = tf.constant(self.anchors)
        return tf.broadcast_to(anchors[None], tf.stack([tf.shape(image)[0], *self.anchors.shape]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.anchors.shape


class NormBoxesLayer(keras.layers.Layer):
    """(pixel boxes [B, N, 4], image [B, H, W, C]) -> boxes normalised to the image size."""

    def call(self, inputs):
        boxes, image = inputs
        return norm_boxes_graph(boxes, tf.shape(image)[1:3])

    def compute_output_shape(self, input_shape):
        return input_shape[0]


class ActiveClassIdsLayer(keras.layers.Layer):
    """image_meta -> active class ids [B, NUM_CLASSES]."""

    def call(self, image_meta):
        return parse_image_meta_graph(image_meta)["active_class_ids"]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] - 12)


class ProposalLayer(keras.layers.Layer):
    """RPN scores + deltas + anchors -> `proposal_count` proposals per image (top PRE_NMS_LIMIT, then NMS).

    Returns [batch, proposal_count, (y1, x1, y2, x2)] normalised, zero padded.
    """

    def __init__(self, proposal_count, nms_threshold, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config
        self.proposal_count = int(proposal_count)
        self.nms_threshold = float(nms_threshold)

    def call(self, inputs):
        probs, deltas, anchors = inputs
        scores = probs[:, :, 1]
        deltas = deltas * np.reshape(self.config.RPN_BBOX_STD_DEV, [1, 1, 4]).astype(np.float32)
        limit = tf.minimum(self.config.PRE_NMS_LIMIT, tf.shape(anchors)[1])
        ix = tf.math.top_k(scores, limit, sorted=True).indices
        scores = tf.gather(scores, ix, batch_dims=1)
        deltas = tf.gather(deltas, ix, batch_dims=1)
        pre_nms_anchors = tf.gather(anchors, ix, batch_dims=1)
        boxes = apply_box_deltas_graph(pre_nms_anchors, deltas)
        boxes = tf.clip_by_value(boxes, 0.0, 1.0)  # the window (0, 0, 1, 1) in normalised coordinates
        count, threshold = self.proposal_count, self.nms_threshold

        def nms(args):
            image_boxes, image_scores = args
            keep = tf.image.non_max_suppression(image_boxes, image_scores, count, threshold,
                                                name="rpn_non_max_suppression")
            proposals = tf.gather(image_boxes, keep)
            return tf.pad(proposals, [(0, tf.maximum(count - tf.shape(proposals)[0], 0)), (0, 0)])

        return tf.map_fn(nms, (boxes, scores), fn_output_signature=tf.TensorSpec((count, 4), tf.float32))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.proposal_count, 4)


class PyramidROIAlign(keras.layers.Layer):
    """ROIAlign on the FPN level each box belongs to (FPN paper eq. 1: 224-pixel ROIs -> P4).

    Inputs: boxes [B, N, 4], image_meta [B, meta], feature maps P2..P5. One bilinear sample per bin
    (`tf.image.crop_and_resize`), as matterport. Output: [B, N, pool_h, pool_w, channels].
    """

    def __init__(self, pool_shape, **kwargs):
        super().__init__(**kwargs)
        self.pool_shape = tuple(int(v) for v in pool_shape)

    def call(self, inputs):
        boxes, image_meta = inputs[0], inputs[1]
        feature_maps = inputs[2:]
        y1, x1, y2, x2 = tf.split(boxes, 4, axis=2)
        area = tf.maximum((y2 - y1) * (x2 - x1), 1e-12)  # padding boxes (area 0) go to P2
        image_shape = parse_image_meta_graph(image_meta)["image_shape"][0]
        image_area = image_shape[0] * image_shape[1]
        roi_level = tf.math.log(tf.sqrt(area) / (224.0 / tf.sqrt(image_area))) / math.log(2.0)
        roi_level = tf.minimum(5, tf.maximum(2, 4 + tf.cast(tf.round(roi_level), tf.int32)))
        roi_level = tf.squeeze(roi_level, 2)
        pooled, box_to_level = [], []
        for i, level in enumerate(range(2, 6)):
            ix = tf.where(tf.equal(roi_level, level))
            level_boxes = tf.stop_gradient(tf.gather_nd(boxes, ix))
            box_indices = tf.stop_gradient(tf.cast(ix[:, 0], tf.int32))
            box_to_level.append(ix)
            pooled.append(tf.image.crop_and_resize(feature_maps[i], level_boxes, box_indices, self.pool_shape,
                                                   method="bilinear"))
        pooled = tf.concat(pooled, axis=0)
        box_to_level = tf.concat(box_to_level, axis=0)
        flat_index = box_to_level[:, 0] * tf.cast(tf.shape(boxes)[1], tf.int64) + box_to_level[:, 1]
        pooled = tf.gather(pooled, tf.argsort(flat_index))
        shape = tf.concat([tf.shape(boxes)[:2], tf.shape(pooled)[1:]], axis=0)
        return tf.reshape(pooled, shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:2]) + self.pool_shape + (input_shape[2][-1],)


def detection_targets_graph(proposals, gt_class_ids, gt_boxes, gt_masks, config):
    """Samples TRAIN_ROIS_PER_IMAGE ROIs of one image (ROI_POSITIVE_RATIO positive: IoU >= 0.5 with a GT
    box; negatives: IoU < 0.5 with every box and not touching a crowd box) and their targets: class ids,
    box deltas (/ BBOX_STD_DEV) and MASK_SHAPE masks (rounded). All zero padded."""
    proposals, _ = trim_zeros_graph(proposals)
    gt_boxes, non_zeros = trim_zeros_graph(gt_boxes)
    gt_class_ids = tf.boolean_mask(gt_class_ids, non_zeros)
    gt_masks = tf.gather(gt_masks, tf.where(non_zeros)[:, 0], axis=2)
    crowd_ix = tf.where(gt_class_ids < 0)[:, 0]
    non_crowd_ix = tf.where(gt_class_ids > 0)[:, 0]
    crowd_boxes = tf.gather(gt_boxes, crowd_ix)
    gt_class_ids = tf.gather(gt_class_ids, non_crowd_ix)
    gt_boxes = tf.gather(gt_boxes, non_crowd_ix)
    gt_masks = tf.gather(gt_masks, non_crowd_ix, axis=2)

    overlaps = overlaps_graph(proposals, gt_boxes)
    crowd_iou_max = tf.reduce_max(overlaps_graph(proposals, crowd_boxes), axis=1)
    no_crowd = crowd_iou_max < 0.001
    roi_iou_max = tf.reduce_max(overlaps, axis=1)
    positive_indices = tf.where(roi_iou_max >= 0.5)[:, 0]
    negative_indices = tf.where(tf.logical_and(roi_iou_max < 0.5, no_crowd))[:, 0]

    positive_count = int(config.TRAIN_ROIS_PER_IMAGE * config.ROI_POSITIVE_RATIO)
    positive_indices = tf.random.shuffle(positive_indices)[:positive_count]
    positive_count = tf.shape(positive_indices)[0]
    r = 1.0 / config.ROI_POSITIVE_RATIO
    negative_count = tf.cast(r * tf.cast(positive_count, tf.float32), tf.int32) - positive_count
    negative_indices = tf.random.shuffle(negative_indices)[:negative_count]
    positive_rois = tf.gather(proposals, positive_indices)
    negative_rois = tf.gather(proposals, negative_indices)

    positive_overlaps = tf.gather(overlaps, positive_indices)
    roi_gt_box_assignment = tf.cond(tf.greater(tf.shape(positive_overlaps)[1], 0),
                                    lambda: tf.argmax(positive_overlaps, axis=1),
                                    lambda: tf.zeros([0], tf.int64))
    roi_gt_boxes = tf.gather(gt_boxes, roi_gt_box_assignment)
    roi_gt_class_ids = tf.gather(gt_class_ids, roi_gt_box_assignment)
    deltas = box_refinement_graph(positive_rois, roi_gt_boxes)
    deltas /= np.asarray(config.BBOX_STD_DEV, dtype=np.float32)

    transposed_masks = tf.expand_dims(tf.transpose(gt_masks, [2, 0, 1]), -1)
    roi_masks = tf.gather(transposed_masks, roi_gt_box_assignment)
    boxes = positive_rois
    if config.USE_MINI_MASK:
        y1, x1, y2, x2 = tf.split(positive_rois, 4, axis=1)
        gt_y1, gt_x1, gt_y2, gt_x2 = tf.split(roi_gt_boxes, 4, axis=1)
        gt_h, gt_w = gt_y2 - gt_y1, gt_x2 - gt_x1
        boxes = tf.concat([(y1 - gt_y1) / gt_h, (x1 - gt_x1) / gt_w, (y2 - gt_y1) / gt_h, (x2 - gt_x1) / gt_w], 1)
    box_ids = tf.range(0, tf.shape(roi_masks)[0])
    masks = tf.image.crop_and_resize(tf.cast(roi_masks, tf.float32), boxes, box_ids, list(config.MASK_SHAPE))
    masks = tf.round(tf.squeeze(masks, axis=3))

    rois = tf.concat([positive_rois, negative_rois], axis=0)
    n = tf.shape(negative_rois)[0]
    p = tf.maximum(config.TRAIN_ROIS_PER_IMAGE - tf.shape(rois)[0], 0)
    rois = tf.pad(rois, [(0, p), (0, 0)])
    roi_gt_class_ids = tf.pad(roi_gt_class_ids, [(0, n + p)])
    deltas = tf.pad(deltas, [(0, n + p), (0, 0)])
    masks = tf.pad(masks, [(0, n + p), (0, 0), (0, 0)])
    return rois, roi_gt_class_ids, deltas, masks


class DetectionTargetLayer(keras.layers.Layer):
    """(proposals, gt_class_ids, gt_boxes (normalised), gt_masks) -> (rois, target_class_ids, target_bbox,
    target_mask), TRAIN_ROIS_PER_IMAGE per image."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, inputs):
        proposals, gt_class_ids, gt_boxes, gt_masks = inputs
        config = self.config
        t = config.TRAIN_ROIS_PER_IMAGE
        signature = (tf.TensorSpec((t, 4), tf.float32), tf.TensorSpec((t,), tf.int32),
                     tf.TensorSpec((t, 4), tf.float32), tf.TensorSpec((t, *config.MASK_SHAPE), tf.float32))
        # Targets are constants of the loss: no gradient flows into the proposals' coordinates (matterport let
        # it leak through the target deltas; Faster R-CNN's approximate joint training ignores it).
        proposals, gt_boxes = tf.stop_gradient(proposals), tf.stop_gradient(gt_boxes)
        return tf.map_fn(lambda x: detection_targets_graph(*x, config),
                         (proposals, tf.cast(gt_class_ids, tf.int32), gt_boxes, gt_masks),
                         fn_output_signature=signature)

    def compute_mask(self, inputs, mask=None):
        """No Keras masks on the four outputs (matterport's override, same signature)."""
        return [None, None, None, None]

    def compute_output_shape(self, input_shape):
        b, t = input_shape[0][0], self.config.TRAIN_ROIS_PER_IMAGE
        return [(b, t, 4), (b, t), (b, t, 4), (b, t, *self.config.MASK_SHAPE)]

    def compute_output_spec(self, inputs):
        shapes = self.compute_output_shape([x.shape for x in inputs])
        dtypes = ["float32", "int32", "float32", "float32"]
        return [keras.KerasTensor(s, dtype=d) for s, d in zip(shapes, dtypes)]


def refine_detections_graph(rois, probs, deltas, window, config):
    """Final detections of one image: [DETECTION_MAX_INSTANCES, (y1, x1, y2, x2, class_id, score)].

    Best class per ROI, its box deltas applied, clipped to the window; background and scores below
    DETECTION_MIN_CONFIDENCE dropped; per-class NMS (boxes shifted apart by class, so one NMS call never lets
    two classes suppress each other); the top DETECTION_MAX_INSTANCES by score, zero padded.
    """
    class_ids = tf.argmax(probs, axis=1, output_type=tf.int32)
    indices = tf.stack([tf.range(tf.shape(probs)[0]), class_ids], axis=1)
    class_scores = tf.gather_nd(probs, indices)
    deltas_specific = tf.gather_nd(deltas, indices)
    refined_rois = apply_box_deltas_graph(rois, deltas_specific * np.asarray(config.BBOX_STD_DEV, np.float32))
    refined_rois = clip_boxes_graph(refined_rois, window)
    keep = class_ids > 0
    if config.DETECTION_MIN_CONFIDENCE:
        keep = tf.logical_and(keep, class_scores >= config.DETECTION_MIN_CONFIDENCE)
    keep = tf.where(keep)[:, 0]
    pre_nms_class_ids = tf.gather(class_ids, keep)
    pre_nms_scores = tf.gather(class_scores, keep)
    pre_nms_rois = tf.gather(refined_rois, keep)
    shifted = pre_nms_rois + 2.0 * tf.cast(pre_nms_class_ids, tf.float32)[:, None]
    nms_keep = tf.image.non_max_suppression(shifted, pre_nms_scores, config.DETECTION_MAX_INSTANCES,
                                            config.DETECTION_NMS_THRESHOLD)
    keep = tf.gather(keep, nms_keep)
    detections = tf.concat([tf.gather(refined_rois, keep),
                            tf.cast(tf.gather(class_ids, keep), tf.float32)[:, None],
                            tf.gather(class_scores, keep)[:, None]], axis=1)
    gap = config.DETECTION_MAX_INSTANCES - tf.shape(detections)[0]
    return tf.pad(detections, [(0, gap), (0, 0)])


class DetectionLayer(keras.layers.Layer):
    """(rois, mrcnn_class, mrcnn_bbox, image_meta) -> [B, DETECTION_MAX_INSTANCES, 6] normalised detections."""

    def __init__(self, config=None, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def call(self, inputs):
        rois, mrcnn_class, mrcnn_bbox, image_meta = inputs
        meta = parse_image_meta_graph(image_meta)
        image_shape = meta["image_shape"][0]
        window = norm_boxes_graph(meta["window"], image_shape[:2])
        config = self.config
        signature = tf.TensorSpec((config.DETECTION_MAX_INSTANCES, 6), tf.float32)
        return tf.map_fn(lambda x: refine_detections_graph(*x, config), (rois, mrcnn_class, mrcnn_bbox, window),
                         fn_output_signature=signature)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.config.DETECTION_MAX_INSTANCES, 6)


############################################################
#  Losses
############################################################


def smooth_l1_loss(y_true, y_pred):
    diff = tf.abs(y_true - y_pred)
    less_than_one = tf.cast(diff < 1.0, tf.float32)
    return less_than_one * 0.5 * diff ** 2 + (1 - less_than_one) * (diff - 0.5)


def _mean_or_zero(values):
    return tf.math.divide_no_nan(tf.reduce_sum(values), tf.cast(tf.size(values), tf.float32))


def rpn_class_loss_graph(rpn_match, rpn_class_logits):
    """Cross entropy of the RPN's fg/bg logits over positive and negative anchors (neutral ones ignored)."""
    rpn_match = tf.squeeze(rpn_match, -1)
    anchor_class = tf.cast(tf.equal(rpn_match, 1), tf.int32)
    indices = tf.where(tf.not_equal(rpn_match, 0))
    logits = tf.gather_nd(rpn_class_logits, indices)
    anchor_class = tf.gather_nd(anchor_class, indices)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=anchor_class, logits=logits)
    return _mean_or_zero(loss)


def rpn_bbox_loss_graph(config, target_bbox, rpn_match, rpn_bbox):
    """Smooth-L1 between the RPN deltas of the positive anchors and their targets (packed in anchor order)."""
    rpn_match = tf.squeeze(rpn_match, -1)
    indices = tf.where(tf.equal(rpn_match, 1))
    rpn_bbox = tf.gather_nd(rpn_bbox, indices)
    batch_counts = tf.reduce_sum(tf.cast(tf.equal(rpn_match, 1), tf.int32), axis=1)
    packed = tf.boolean_mask(target_bbox, tf.sequence_mask(batch_counts, tf.shape(target_bbox)[1]))
    return _mean_or_zero(smooth_l1_loss(packed, rpn_bbox))


def mrcnn_class_loss_graph(target_class_ids, pred_class_logits, active_class_ids):
    """Cross entropy of the classifier head; predictions of classes not active in the image's dataset are
    not counted (active ids of the first image, as matterport)."""
    target_class_ids = tf.cast(target_class_ids, tf.int64)
    pred_class_ids = tf.argmax(pred_class_logits, axis=2)
    pred_active = tf.cast(tf.gather(active_class_ids[0], pred_class_ids), tf.float32)
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=target_class_ids, logits=pred_class_logits)
    return tf.math.divide_no_nan(tf.reduce_sum(loss * pred_active), tf.reduce_sum(pred_active))


def mrcnn_bbox_loss_graph(target_bbox, target_class_ids, pred_bbox):
    """Smooth-L1 of the class-specific deltas of the positive ROIs."""
    target_class_ids = tf.reshape(target_class_ids, (-1,))
    target_bbox = tf.reshape(target_bbox, (-1, 4))
    pred_bbox = tf.reshape(pred_bbox, (-1, pred_bbox.shape[2], 4))
    positive_roi_ix = tf.where(target_class_ids > 0)[:, 0]
    positive_roi_class_ids = tf.cast(tf.gather(target_class_ids, positive_roi_ix), tf.int64)
    indices = tf.stack([positive_roi_ix, positive_roi_class_ids], axis=1)
    target_bbox = tf.gather(target_bbox, positive_roi_ix)
    pred_bbox = tf.gather_nd(pred_bbox, indices)
    return _mean_or_zero(smooth_l1_loss(target_bbox, pred_bbox))


def binary_crossentropy(target, output, epsilon=1e-7):
    """Keras 2's `K.binary_crossentropy` on probabilities (clipped to [eps, 1 - eps], then as logits)."""
    output = tf.clip_by_value(output, epsilon, 1.0 - epsilon)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=tf.math.log(output / (1.0 - output)))


def mrcnn_mask_loss_graph(target_masks, target_class_ids, pred_masks):
    """Per-pixel binary cross entropy of the positive ROIs' masks of their GT class."""
    target_class_ids = tf.reshape(target_class_ids, (-1,))
    mask_shape = tf.shape(target_masks)
    target_masks = tf.reshape(target_masks, (-1, mask_shape[2], mask_shape[3]))
    pred_shape = tf.shape(pred_masks)
    pred_masks = tf.reshape(pred_masks, (-1, pred_shape[2], pred_shape[3], pred_shape[4]))
    pred_masks = tf.transpose(pred_masks, [0, 3, 1, 2])
    positive_ix = tf.where(target_class_ids > 0)[:, 0]
    positive_class_ids = tf.cast(tf.gather(target_class_ids, positive_ix), tf.int64)
    indices = tf.stack([positive_ix, positive_class_ids], axis=1)
    y_true = tf.gather(target_masks, positive_ix)
    y_pred = tf.gather_nd(pred_masks, indices)
    return _mean_or_zero(binary_crossentropy(y_true, y_pred))


class LossLayer(keras.layers.Layer):
    """Wraps one loss graph function; its output is the scalar loss of the batch."""

    def __init__(self, loss_fn, **kwargs):
        super().__init__(**kwargs)
        self.loss_fn = loss_fn

    def call(self, inputs):
        return self.loss_fn(*inputs)

    def compute_output_shape(self, input_shape):
        return ()
