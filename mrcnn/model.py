"""matterport's `mrcnn.model` on `tfsynth.models.mask_rcnn` (Keras 3 / TensorFlow 2.21).

`MaskRCNN` is tfsynth's model (same layer names, weight files, `train` presets, `detect`) plus matterport's
remaining methods (`build`, `ancestor`, `find_trainable_layer`, `run_graph`, `get_imagenet_weights`).
Augmentation: an imgaug augmenter (as in matterport; needs the `imgaug` package) or a plain callable
`(image, masks, rng) -> (image, masks)`. Randomness in the NumPy helpers below (`augment`, crops, ROI sampling)
draws from NumPy's global state, as matterport's does, so `np.random.seed(...)` makes a run repeatable.
"""
from __future__ import annotations

import logging
import re
from collections import OrderedDict

import keras
import numpy as np
import tensorflow as tf

from mrcnn import utils
from tfsynth.models.mask_rcnn import model as _model
from tfsynth.models.mask_rcnn import utils as _utils
from tfsynth.models.mask_rcnn.layers import (BatchNorm, DetectionLayer, DetectionTargetLayer,  # noqa: F401
                                             ProposalLayer, PyramidROIAlign, apply_box_deltas_graph,
                                             clip_boxes_graph, detection_targets_graph, mrcnn_bbox_loss_graph,
                                             mrcnn_class_loss_graph, mrcnn_mask_loss_graph, norm_boxes_graph,
                                             overlaps_graph, parse_image_meta_graph, refine_detections_graph,
                                             rpn_bbox_loss_graph, rpn_class_loss_graph, smooth_l1_loss)
from tfsynth.models.mask_rcnn.model import (LAYER_REGEX, build_fpn_mask_graph, build_rpn_model,  # noqa: F401
                                            conv_block, fpn_classifier_graph, identity_block, resnet_graph,
                                            rpn_graph)
from tfsynth.models.mask_rcnn.utils import (compose_image_meta, compute_backbone_shapes, mold_image,  # noqa: F401
                                            parse_image_meta, unmold_image)
# imgaug augmenters that move pixels and so must move the masks too (colour changes leave masks alone).
MASK_AUGMENTERS = ["Sequential", "SomeOf", "OneOf", "Sometimes", "Fliplr", "Flipud", "CropAndPad", "Affine",
                   "PiecewiseAffine"]


def log(text, array=None):
    """Prints `text`; with an array, also its shape, min, max and dtype (one aligned line)."""
    if array is not None:
        array = np.asarray(array)
        text = text.ljust(25) + f"shape: {str(array.shape):20}  "
        text += (f"min: {array.min():10.5f}  max: {array.max():10.5f}" if array.size
                 else f"min: {'':10}  max: {'':10}")
        text += f"  {array.dtype}"
    print(text)


def _global_rng() -> np.random.Generator:
    """A Generator seeded from NumPy's global state (so `np.random.seed` governs it, as in matterport)."""
    return np.random.default_rng(np.random.randint(0, 2 ** 31 - 1))


def _as_augmentation(augmentation):
    """imgaug augmenter or callable(image, masks, rng) -> callable(image, masks, rng) (None stays None)."""
    if augmentation is None or not hasattr(augmentation, "to_deterministic"):
        if augmentation is not None and not callable(augmentation):
            raise ValueError(f"augmentation: expected an imgaug augmenter or a callable (image, masks, rng), "
                             f"got {type(augmentation).__name__}")
        return augmentation
    try:
        import imgaug
    except ImportError as error:
        raise ValueError("augmentation: an imgaug augmenter needs the imgaug package (pip install imgaug); "
                         "or pass a callable (image, masks, rng) -> (image, masks)") from error

    def hook(images, augmenter, parents, default):
        return augmenter.__class__.__name__ in MASK_AUGMENTERS

    def apply(image, masks, rng):
        det = augmentation.to_deterministic()
        image = det.augment_image(image)
        masks = det.augment_image(masks.astype(np.uint8), hooks=imgaug.HooksImages(activator=hook))
        return image, masks.astype(bool)

    return apply


def _with_flip(augment, augmentation):
    augmentation = _as_augmentation(augmentation)
    if not augment:
        return augmentation
    logging.warning("'augment' is deprecated. Use 'augmentation' instead.")

    def flip_then(image, masks, rng):
        image, masks = _utils.fliplr(image, masks, rng)
        return augmentation(image, masks, rng) if augmentation is not None else (image, masks)

    return flip_then


############################################################
#  Graph helpers matterport exposes
############################################################


def log2_graph(x):
    """log2 of a tensor."""
    return tf.math.log(x) / tf.math.log(2.0)


def trim_zeros_graph(boxes, name="trim_zeros"):
    """(boxes without all-zero rows, bool [N] mask of the kept rows)."""
    non_zeros = tf.cast(tf.reduce_sum(tf.abs(boxes), axis=1), tf.bool)
    return tf.boolean_mask(boxes, non_zeros, name=name), non_zeros


def batch_pack_graph(x, counts, num_rows):
    """Concatenates the first counts[i] entries of each row i < num_rows of x."""
    return tf.concat([x[i, :counts[i]] for i in range(num_rows)], axis=0)


def denorm_boxes_graph(boxes, shape):
    """Normalised boxes -> int32 pixel boxes for an image of `shape` (h, w); inverse of norm_boxes_graph."""
    shape = tf.cast(shape, tf.float32)
    h, w = shape[..., 0:1], shape[..., 1:2]
    scale = tf.concat([h, w, h, w], axis=-1) - 1.0
    return tf.cast(tf.round(boxes * scale + tf.constant([0.0, 0.0, 1.0, 1.0])), tf.int32)


############################################################
#  Data: matterport's signatures
############################################################


def load_image_gt(dataset, config, image_id, augment=False, augmentation=None, use_mini_mask=False):
    """(image, image_meta, class_ids, bbox, mask) of one image, resized as the config says.

    augment (deprecated in matterport too): random left-right flip. augmentation: imgaug augmenter or
    callable (image, masks, rng). Instances left empty after resizing / cropping are dropped.
    """
    return _utils.load_image_gt(dataset, config, image_id, augmentation=_with_flip(augment, augmentation),
                                use_mini_mask=use_mini_mask, rng=_global_rng())


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config):
    """(rpn_match [A], rpn_bbox [RPN_TRAIN_ANCHORS_PER_IMAGE, 4]): anchor labels and normalised deltas."""
    return _utils.build_rpn_targets(image_shape, anchors, np.asarray(gt_class_ids), np.asarray(gt_boxes), config,
                                    _global_rng())


def generate_random_rois(image_shape, count, gt_class_ids, gt_boxes):
    """`count` random int32 ROIs [count, (y1, x1, y2, x2)]: 90% spread around the GT boxes (within one box size
    of each), the rest anywhere in the image; every ROI at least one pixel high and wide."""
    gt_boxes = np.asarray(gt_boxes)
    rois = np.zeros((count, 4), dtype=np.int32)

    def sample(n, y_range, x_range):
        pairs = []
        for low, high in (y_range, x_range):
            if high - low < 2:
                raise ValueError(f"generate_random_rois: range {low}..{high} is too small for a 1-pixel ROI")
            drawn = np.zeros((0, 2), dtype=np.int64)
            while len(drawn) < n:
                d = np.random.randint(low, high, (2 * n, 2))
                drawn = np.concatenate([drawn, d[d[:, 0] != d[:, 1]]])
            pairs.append(np.sort(drawn[:n], axis=1))
        (y1, y2), (x1, x2) = pairs[0].T, pairs[1].T
        return np.stack([y1, x1, y2, x2], axis=1)

    per_box = int(0.9 * count / gt_boxes.shape[0]) if gt_boxes.shape[0] else 0
    for i, (y1, x1, y2, x2) in enumerate(gt_boxes):
        h, w = y2 - y1, x2 - x1
        rois[i * per_box:(i + 1) * per_box] = sample(
            per_box, (max(y1 - h, 0), min(y2 + h, image_shape[0])), (max(x1 - w, 0), min(x2 + w, image_shape[1])))
    rest = count - per_box * gt_boxes.shape[0]
    if rest:
        rois[-rest:] = sample(rest, (0, image_shape[0]), (0, image_shape[1]))
    return rois


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config):
    """NumPy detection targets for given proposals (for debugging / training heads without the RPN).

    Returns rois [TRAIN_ROIS_PER_IMAGE, 4], class_ids [TRAIN_ROIS_PER_IMAGE], bboxes [R, NUM_CLASSES, 4]
    (class-specific normalised deltas) and masks [R, MASK_SHAPE[0], MASK_SHAPE[1], NUM_CLASSES]. ROIs with
    IoU > 0.5 are positive (at most ROI_POSITIVE_RATIO of them), the others negative; short lists are filled
    with repeated negatives.
    """
    rpn_rois = np.asarray(rpn_rois)
    if rpn_rois.shape[0] == 0:
        raise ValueError("build_detection_targets: no proposals")
    keep_gt = np.flatnonzero(np.asarray(gt_class_ids) > 0)
    if keep_gt.size == 0:
        raise ValueError("build_detection_targets: the image must contain instances")
    gt_class_ids = np.asarray(gt_class_ids)[keep_gt]
    gt_boxes = np.asarray(gt_boxes)[keep_gt].astype(np.int32)
    gt_masks = np.asarray(gt_masks)[:, :, keep_gt]
    overlaps = _utils.compute_overlaps(rpn_rois, gt_boxes)
    best_gt = np.argmax(overlaps, axis=1)
    best_iou = overlaps[np.arange(len(rpn_rois)), best_gt]
    fg, bg = np.flatnonzero(best_iou > 0.5), np.flatnonzero(best_iou < 0.5)
    rois_per_image = config.TRAIN_ROIS_PER_IMAGE
    fg_count = int(rois_per_image * config.ROI_POSITIVE_RATIO)
    fg = np.random.choice(fg, fg_count, replace=False) if len(fg) > fg_count else fg
    room = rois_per_image - len(fg)
    bg = np.random.choice(bg, room, replace=False) if len(bg) > room else bg
    keep = np.concatenate([fg, bg]).astype(np.int64)
    if len(keep) < rois_per_image:
        pool = bg if len(bg) else keep
        if len(pool) == 0:
            raise ValueError("build_detection_targets: no proposal to sample from")
        keep = np.concatenate([keep, np.random.choice(pool, rois_per_image - len(keep), replace=True)])
    positive = np.zeros(len(keep), dtype=bool)
    positive[:len(fg)] = True
    rois = rpn_rois[keep]
    roi_gt = best_gt[keep]
    class_ids = np.where(positive, gt_class_ids[roi_gt], 0).astype(gt_class_ids.dtype)
    bboxes = np.zeros((rois_per_image, config.NUM_CLASSES, 4), dtype=np.float32)
    pos = np.flatnonzero(positive)
    bboxes[pos, class_ids[pos]] = _utils.box_refinement(rois[pos], gt_boxes[roi_gt[pos]])
    bboxes /= np.asarray(config.BBOX_STD_DEV, dtype=np.float32)
    masks = np.zeros((rois_per_image, config.MASK_SHAPE[0], config.MASK_SHAPE[1], config.NUM_CLASSES), np.float32)
    for i in pos:
        g = roi_gt[i]
        full = gt_masks[:, :, g]
        if config.USE_MINI_MASK:
            full = _utils.expand_mask(gt_boxes[g:g + 1], gt_masks[:, :, g:g + 1], config.IMAGE_SHAPE[:2])[:, :, 0]
        y1, x1, y2, x2 = rois[i].astype(np.int32)
        crop = full[y1:y2, x1:x2]
        if crop.size:
            masks[i, :, :, class_ids[i]] = utils.resize(crop, config.MASK_SHAPE)
    return rois, class_ids, bboxes, masks


def data_generator(dataset, config, shuffle=True, augment=False, augmentation=None, random_rois=0, batch_size=1,
                   detection_targets=False, no_augmentation_sources=None):
    """Endless `(inputs, outputs)` batches as matterport's generator yields them.

    inputs: [images (molded), image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes (int32), gt_masks],
    then rpn_rois if random_rois > 0, then rois if detection_targets; outputs: [] or, with detection_targets,
    [class_ids [B, R, 1], bbox deltas, masks]. Images without instances are skipped.
    """
    generator = _utils.data_generator(dataset, config, shuffle=shuffle, augmentation=_with_flip(augment, augmentation),
                                      batch_size=batch_size, seed=int(np.random.randint(0, 2 ** 31 - 1)),
                                      no_augmentation_sources=no_augmentation_sources)
    for images, metas, rpn_match, rpn_bbox, class_ids, boxes, masks in generator:
        boxes = boxes.astype(np.int32)
        inputs, outputs = [images, metas, rpn_match, rpn_bbox, class_ids, boxes, masks], []
        if random_rois:
            per_image = []
            for b in range(len(images)):
                n = int((class_ids[b] > 0).sum())
                per_image.append(generate_random_rois(images[b].shape, random_rois, class_ids[b, :n], boxes[b, :n]))
            inputs.append(np.stack(per_image))
            if detection_targets:
                targets = [build_detection_targets(per_image[b], class_ids[b], boxes[b], masks[b], config)
                           for b in range(len(images))]
                rois, t_class_ids, t_bbox, t_mask = (np.stack(column) for column in zip(*targets))
                inputs.append(rois)
                outputs.extend([t_class_ids[..., None], t_bbox, t_mask])
        yield inputs, outputs


############################################################
#  MaskRCNN
############################################################


class MaskRCNN(_model.MaskRCNN):
    """matterport's `MaskRCNN(mode, config, model_dir)`; `keras_model` is the Keras 3 model `build` returns."""

    def train(self, train_dataset, val_dataset, learning_rate, epochs, layers, augmentation=None,
              custom_callbacks=None, no_augmentation_sources=None, **kwargs):
        """matterport's `train`; `augmentation` may be an imgaug augmenter or a callable (image, masks, rng)."""
        return super().train(train_dataset, val_dataset, learning_rate, epochs, layers,
                             augmentation=_as_augmentation(augmentation), custom_callbacks=custom_callbacks,
                             no_augmentation_sources=no_augmentation_sources, **kwargs)

    def get_imagenet_weights(self):
        """Path of Keras' ImageNet ResNet-50 weights file (no top), downloaded on first use into ~/.keras;
        load it with `load_weights(path, by_name=True)`."""
        url = ("https://github.com/fchollet/deep-learning-models/releases/download/v0.2/"
               "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
        return keras.utils.get_file("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", url,
                                    cache_subdir="models", file_hash="a268eb855778b3df3c7506639542a6af")

    def ancestor(self, tensor, name, checked=None):
        """The first ancestor of a symbolic Keras tensor whose tensor name or producing layer's name fully
        matches `name` (a string or regex; "/" also matches Keras' "_<n>/" suffixes), or None."""
        checked = checked if checked is not None else []
        if len(checked) > 500:
            return None
        if isinstance(name, str):
            name = re.compile(name.replace("/", r"(\_\d+)*/"))
        for parent in _parents(tensor):
            if any(parent is c for c in checked):
                continue
            operation = parent._keras_history[0] if hasattr(parent, "_keras_history") else None
            names = [getattr(parent, "name", ""), getattr(operation, "name", "")]
            if any(n and re.fullmatch(name, n) for n in names):
                return parent
            checked.append(parent)
            found = self.ancestor(parent, name, checked)
            if found is not None:
                return found
        return None

    def find_trainable_layer(self, layer):
        """The layer that holds the weights (unwraps TimeDistributed)."""
        if layer.__class__.__name__ == "TimeDistributed":
            return self.find_trainable_layer(layer.layer)
        return layer

    def run_graph(self, images, outputs, image_metas=None):
        """Computes the named symbolic tensors `outputs` [(name, tensor), ...] of `keras_model` for `images`
        (molded already when image_metas is given); returns an OrderedDict name -> array and logs each."""
        outputs = OrderedDict(outputs)
        if any(o is None for o in outputs.values()):
            raise ValueError("run_graph: an output tensor is None")
        sub = keras.Model(self.keras_model.inputs, list(outputs.values()))
        if image_metas is None:
            molded_images, image_metas, _ = self.mold_inputs(images)
        else:
            molded_images = np.asarray(images)
        anchors = self.get_anchors(molded_images[0].shape)
        anchors = np.broadcast_to(anchors, (len(molded_images),) + anchors.shape)
        if self.mode == "training":
            raise ValueError("run_graph: build the model in inference mode (training mode needs the targets)")
        values = sub.predict_on_batch([molded_images, np.asarray(image_metas, np.float32),
                                       np.ascontiguousarray(anchors)])
        values = values if isinstance(values, (list, tuple)) else [values]
        result = OrderedDict((k, keras.ops.convert_to_numpy(v)) for k, v in zip(outputs, values))
        for k, v in result.items():
            log(k, v)
        return result


def _parents(tensor):
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return []
    operation, node_index, _ = history
    nodes = getattr(operation, "_inbound_nodes", [])
    if node_index >= len(nodes):
        return []
    return list(nodes[node_index].input_tensors)
