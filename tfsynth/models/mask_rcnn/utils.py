"""NumPy side of Mask R-CNN (TF-free): boxes, anchors, image molding, datasets and training targets.

Follows matterport's `mrcnn/utils.py` and the NumPy parts of `mrcnn/model.py` (same conventions: boxes are
(y1, x1, y2, x2) with (y2, x2) just outside the box in pixel coordinates and inside it in normalised ones).
Differences: resizing is an exact half-pixel-centre bilinear interpolation in NumPy (no scikit-image), every
random choice takes a `numpy.random.Generator` instead of the global state, and augmentation is a plain
callable `(image, masks, rng) -> (image, masks)` instead of an imgaug pipeline.
"""
from __future__ import annotations

import logging
import math
from typing import Callable, Iterator, Optional

import numpy as np

log = logging.getLogger(__name__)

############################################################
#  Boxes
############################################################


def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """[H, W, N] masks -> [N, (y1, x1, y2, x2)] int32 boxes ((y2, x2) exclusive); all zeros for an empty mask."""
    mask = np.asarray(mask)
    boxes = np.zeros((mask.shape[-1], 4), dtype=np.int32)
    for i in range(mask.shape[-1]):
        rows = np.flatnonzero(mask[:, :, i].any(axis=1))
        cols = np.flatnonzero(mask[:, :, i].any(axis=0))
        if rows.size:
            boxes[i] = (rows[0], cols[0], rows[-1] + 1, cols[-1] + 1)
    return boxes


def compute_iou(box, boxes, box_area, boxes_area) -> np.ndarray:
    """IoU of one box with each of `boxes` (areas passed in, as matterport does, to avoid recomputing them)."""
    y1 = np.maximum(box[0], boxes[:, 0])
    y2 = np.minimum(box[2], boxes[:, 2])
    x1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[3], boxes[:, 3])
    intersection = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    union = box_area + boxes_area - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / np.where(union > 0, union, 1), 0.0)


def box_areas(boxes) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def compute_overlaps(boxes1, boxes2) -> np.ndarray:
    """[len(boxes1), len(boxes2)] IoU matrix."""
    boxes1 = np.asarray(boxes1, dtype=np.float64)
    boxes2 = np.asarray(boxes2, dtype=np.float64)
    area1, area2 = box_areas(boxes1), box_areas(boxes2)
    overlaps = np.zeros((boxes1.shape[0], boxes2.shape[0]))
    for i in range(boxes2.shape[0]):
        overlaps[:, i] = compute_iou(boxes2[i], boxes1, area2[i], area1)
    return overlaps


def box_refinement(box, gt_box) -> np.ndarray:
    """Deltas (dy, dx, log(dh), log(dw)) that turn `box` into `gt_box` (both [N, 4])."""
    box = np.asarray(box, dtype=np.float32)
    gt_box = np.asarray(gt_box, dtype=np.float32)
    height, width = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    center_y, center_x = box[:, 0] + 0.5 * height, box[:, 1] + 0.5 * width
    gt_height, gt_width = gt_box[:, 2] - gt_box[:, 0], gt_box[:, 3] - gt_box[:, 1]
    gt_center_y, gt_center_x = gt_box[:, 0] + 0.5 * gt_height, gt_box[:, 1] + 0.5 * gt_width
    return np.stack([(gt_center_y - center_y) / height, (gt_center_x - center_x) / width,
                     np.log(gt_height / height), np.log(gt_width / width)], axis=1)


def apply_box_deltas(boxes, deltas) -> np.ndarray:
    """Inverse of `box_refinement`."""
    boxes = np.asarray(boxes, dtype=np.float32)
    deltas = np.asarray(deltas, dtype=np.float32)
    height, width = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    center_y = boxes[:, 0] + 0.5 * height + deltas[:, 0] * height
    center_x = boxes[:, 1] + 0.5 * width + deltas[:, 1] * width
    height = height * np.exp(deltas[:, 2])
    width = width * np.exp(deltas[:, 3])
    y1, x1 = center_y - 0.5 * height, center_x - 0.5 * width
    return np.stack([y1, x1, y1 + height, x1 + width], axis=1)


def norm_boxes(boxes, shape) -> np.ndarray:
    """Pixel boxes -> normalised coordinates of an image of `shape` (h, w)."""
    h, w = shape
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide(np.asarray(boxes) - shift, scale).astype(np.float32)


def denorm_boxes(boxes, shape) -> np.ndarray:
    """Normalised boxes -> int32 pixel boxes of an image of `shape` (h, w)."""
    h, w = shape
    scale = np.array([h - 1, w - 1, h - 1, w - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


def trim_zeros(x: np.ndarray) -> np.ndarray:
    """Drops the all-zero rows of a [rows, columns] array (zero padding)."""
    return x[~np.all(x == 0, axis=1)]


############################################################
#  Resizing
############################################################


def _axis_taps(n_in: int, n_out: int, zero_edge: bool):
    centre = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    if zero_edge:  # index into the input padded with one zero on each side
        centre = np.clip(centre + 1, 0, n_in + 1)
        n_in += 2
    else:
        centre = np.clip(centre, 0, n_in - 1)
    low = np.floor(centre).astype(np.int64)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, (centre - low)


def resize(image, output_shape, edge: str = "zero") -> np.ndarray:
    """Bilinear resize of the first two axes with pixel centres aligned; returns float64.

    Output pixel i samples input position (i + 0.5) * n_in / n_out - 0.5, as scikit-image's `resize(order=1)`
    (without anti-aliasing), which matterport calls everywhere. edge="zero" treats the outside of the image as
    0, like scikit-image's mode="constant" that matterport passes (border pixels of an upscaled image blend
    with 0); edge="clamp" repeats the border pixels.
    """
    if edge not in ("zero", "clamp"):
        raise ValueError(f"edge must be 'zero' or 'clamp', got {edge!r}")
    x = np.asarray(image)
    out_h, out_w = int(output_shape[0]), int(output_shape[1])
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"resize: output shape {output_shape} must be positive")
    x = x.astype(np.float64)
    if x.shape[:2] == (out_h, out_w):
        return x.copy()
    zero = edge == "zero"
    if zero:
        x = np.pad(x, [(1, 1), (1, 1)] + [(0, 0)] * (x.ndim - 2))
    y0, y1, wy = _axis_taps(x.shape[0] - 2 * zero, out_h, zero)
    x0, x1, wx = _axis_taps(x.shape[1] - 2 * zero, out_w, zero)
    extra = (1,) * (x.ndim - 2)
    wy = wy.reshape((-1, 1) + extra)
    rows = x[y0] * (1 - wy) + x[y1] * wy
    wx = wx.reshape((1, -1) + extra)
    return rows[:, x0] * (1 - wx) + rows[:, x1] * wx


def resize_image(image, min_dim=None, max_dim=None, min_scale=None, mode="square",
                 rng: Optional[np.random.Generator] = None):
    """Resizes keeping the aspect ratio; returns (image, window, scale, padding, crop) like matterport.

    mode: "none" (unchanged), "square" (scale so the short side is >= min_dim and the long side <= max_dim,
    then zero-pad to max_dim x max_dim, centred), "pad64" (scale up, pad each side to a multiple of 64) or
    "crop" (scale up, then a random min_dim x min_dim crop drawn from `rng`; training only).
    window: (y1, x1, y2, x2) of the image inside the padded result.
    """
    image = np.asarray(image)
    dtype = image.dtype
    h, w = image.shape[:2]
    window = (0, 0, h, w)
    scale = 1
    padding = [(0, 0), (0, 0), (0, 0)]
    crop = None
    if mode == "none":
        return image, window, scale, padding, crop
    if mode not in ("square", "pad64", "crop"):
        raise ValueError(f"IMAGE_RESIZE_MODE {mode!r} not supported (none, square, pad64, crop)")
    if min_dim:
        scale = max(1, min_dim / min(h, w))
    if min_scale and scale < min_scale:
        scale = min_scale
    if max_dim and mode == "square":
        image_max = max(h, w)
        if round(image_max * scale) > max_dim:
            scale = max_dim / image_max
    if scale != 1:
        resized = resize(image, (round(h * scale), round(w * scale)))
        if np.issubdtype(dtype, np.integer):
            # matterport returns `image.astype(image_dtype)` of scikit-image's float result: truncation, not
            # rounding (tests/test_conformance_matterport.py compares the molded image)
            info = np.iinfo(dtype)
            resized = np.clip(resized, info.min, info.max)
        image = resized.astype(dtype)
    h, w = image.shape[:2]
    if mode == "square":
        top = (max_dim - h) // 2
        left = (max_dim - w) // 2
        padding = [(top, max_dim - h - top), (left, max_dim - w - left), (0, 0)]
        image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
        window = (top, left, h + top, w + left)
    elif mode == "pad64":
        if min_dim % 64:
            raise ValueError(f"pad64 mode needs IMAGE_MIN_DIM to be a multiple of 64, got {min_dim}")
        pad_h, pad_w = (-h) % 64, (-w) % 64
        padding = [(pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)]
        image = np.pad(image, padding[:image.ndim], mode="constant", constant_values=0)
        window = (pad_h // 2, pad_w // 2, h + pad_h // 2, w + pad_w // 2)
    else:
        rng = rng if rng is not None else np.random.default_rng()
        y = int(rng.integers(0, h - min_dim + 1))
        x = int(rng.integers(0, w - min_dim + 1))
        crop = (y, x, min_dim, min_dim)
        image = image[y:y + min_dim, x:x + min_dim]
        window = (0, 0, min_dim, min_dim)
    return image, window, scale, padding, crop


def resize_mask(mask, scale, padding, crop=None) -> np.ndarray:
    """Applies `resize_image`'s scale and padding (or crop) to [H, W, N] masks (nearest neighbour)."""
    mask = np.asarray(mask)
    if scale != 1:
        out_h, out_w = round(mask.shape[0] * scale), round(mask.shape[1] * scale)
        rows = np.minimum(((np.arange(out_h) + 0.5) * mask.shape[0] / out_h).astype(np.int64), mask.shape[0] - 1)
        cols = np.minimum(((np.arange(out_w) + 0.5) * mask.shape[1] / out_w).astype(np.int64), mask.shape[1] - 1)
        mask = mask[rows][:, cols]
    if crop is not None:
        y, x, h, w = crop
        return mask[y:y + h, x:x + w]
    return np.pad(mask, padding, mode="constant", constant_values=0)


def minimize_mask(bbox, mask, mini_shape) -> np.ndarray:
    """Crops each [H, W, N] mask to its box and resizes it to `mini_shape` (bilinear, rounded)."""
    mini = np.zeros(tuple(mini_shape) + (mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        m = mask[y1:y2, x1:x2, i].astype(bool)
        if m.size == 0:
            raise ValueError(f"instance {i}: bounding box {tuple(bbox[i][:4])} has zero area")
        mini[:, :, i] = np.around(resize(m, mini_shape)).astype(bool)
    return mini


def expand_mask(bbox, mini_mask, image_shape) -> np.ndarray:
    """Inverse of `minimize_mask`: mini masks back to full [H, W, N] masks."""
    mask = np.zeros(tuple(image_shape[:2]) + (mini_mask.shape[-1],), dtype=bool)
    for i in range(mask.shape[-1]):
        y1, x1, y2, x2 = bbox[i][:4]
        if y2 > y1 and x2 > x1:
            mask[y1:y2, x1:x2, i] = np.around(resize(mini_mask[:, :, i], (y2 - y1, x2 - x1))).astype(bool)
    return mask


def unmold_mask(mask, bbox, image_shape, threshold=0.5) -> np.ndarray:
    """A small float mask (e.g. 28x28) -> a full-image bool mask, resized into `bbox` and thresholded."""
    y1, x1, y2, x2 = (int(v) for v in bbox)
    full = np.zeros(tuple(image_shape[:2]), dtype=bool)
    h, w = y2 - y1, x2 - x1
    if h <= 0 or w <= 0:
        return full
    m = resize(mask, (h, w)) >= threshold
    # Boxes may reach outside the image by rounding; paste the part that is inside.
    ty1, tx1 = max(y1, 0), max(x1, 0)
    ty2, tx2 = min(y2, full.shape[0]), min(x2, full.shape[1])
    if ty2 > ty1 and tx2 > tx1:
        full[ty1:ty2, tx1:tx2] = m[ty1 - y1:ty2 - y1, tx1 - x1:tx2 - x1]
    return full


############################################################
#  Anchors and image meta
############################################################


def compute_backbone_shapes(config, image_shape) -> np.ndarray:
    """[[h, w]] of each pyramid level (one per BACKBONE_STRIDES entry) for an input of `image_shape`."""
    if callable(config.BACKBONE):
        return config.COMPUTE_BACKBONE_SHAPE(image_shape)
    if config.BACKBONE not in ("resnet50", "resnet101"):
        raise ValueError(f"BACKBONE {config.BACKBONE!r}: expected 'resnet50', 'resnet101' or a callable")
    return np.array([[int(math.ceil(image_shape[0] / s)), int(math.ceil(image_shape[1] / s))]
                     for s in config.BACKBONE_STRIDES])


def generate_anchors(scales, ratios, shape, feature_stride, anchor_stride) -> np.ndarray:
    """Anchors [N, (y1, x1, y2, x2)] in pixels for one feature map: every (position, ratio) for `scales`."""
    scales, ratios = np.meshgrid(np.array(scales), np.array(ratios))
    scales, ratios = scales.flatten(), ratios.flatten()
    heights = scales / np.sqrt(ratios)
    widths = scales * np.sqrt(ratios)
    shifts_y = np.arange(0, shape[0], anchor_stride) * feature_stride
    shifts_x = np.arange(0, shape[1], anchor_stride) * feature_stride
    shifts_x, shifts_y = np.meshgrid(shifts_x, shifts_y)
    box_widths, box_centers_x = np.meshgrid(widths, shifts_x)
    box_heights, box_centers_y = np.meshgrid(heights, shifts_y)
    centers = np.stack([box_centers_y, box_centers_x], axis=2).reshape([-1, 2])
    sizes = np.stack([box_heights, box_widths], axis=2).reshape([-1, 2])
    return np.concatenate([centers - 0.5 * sizes, centers + 0.5 * sizes], axis=1)


def generate_pyramid_anchors(scales, ratios, feature_shapes, feature_strides, anchor_stride) -> np.ndarray:
    """Anchors of all pyramid levels, level by level (scale i on level i)."""
    return np.concatenate([generate_anchors(scales[i], ratios, feature_shapes[i], feature_strides[i],
                                            anchor_stride) for i in range(len(scales))], axis=0)


def compose_image_meta(image_id, original_image_shape, image_shape, window, scale, active_class_ids) -> np.ndarray:
    """[image_id, original shape (3), molded shape (3), window (4), scale, active_class_ids...] as float32."""
    return np.array([image_id] + list(original_image_shape) + list(image_shape) + list(window) + [scale]
                    + list(active_class_ids), dtype=np.float32)


def parse_image_meta(meta) -> dict:
    meta = np.asarray(meta)
    return {
        "image_id": meta[:, 0].astype(np.int32),
        "original_image_shape": meta[:, 1:4].astype(np.int32),
        "image_shape": meta[:, 4:7].astype(np.int32),
        "window": meta[:, 7:11].astype(np.int32),
        "scale": meta[:, 11].astype(np.float32),
        "active_class_ids": meta[:, 12:].astype(np.int32),
    }


def mold_image(images, config) -> np.ndarray:
    """RGB image(s) -> float32 with the config's MEAN_PIXEL subtracted."""
    return np.asarray(images).astype(np.float32) - np.asarray(config.MEAN_PIXEL, dtype=np.float32)


def unmold_image(normalized_images, config) -> np.ndarray:
    return (np.asarray(normalized_images) + config.MEAN_PIXEL).astype(np.uint8)


############################################################
#  Dataset
############################################################


class Dataset:
    """matterport's dataset base class: register classes and images, then override `load_mask`.

        class Balloons(Dataset):
            def load_mask(self, image_id):
                ...  # -> (bool masks [H, W, N], int32 class ids [N])

    `load_image` reads `image_info[id]["path"]` with Pillow (grey -> RGB, alpha dropped).
    """

    def __init__(self, class_map=None):
        self._image_ids = []
        self.image_info = []
        self.class_info = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids = {}

    def add_class(self, source, class_id, class_name):
        if "." in source:
            raise ValueError(f"source name {source!r} cannot contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return
        self.class_info.append({"source": source, "id": class_id, "name": class_name})

    def add_image(self, source, image_id, path, **kwargs):
        self.image_info.append({"id": image_id, "source": source, "path": path, **kwargs})

    def image_reference(self, image_id):
        return str(self.image_info[image_id].get("path", image_id))

    def prepare(self, class_map=None):
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        self.class_names = [",".join(c["name"].split(",")[:1]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {f"{info['source']}.{info['id']}": i
                                      for info, i in zip(self.class_info, self.class_ids)}
        self.image_from_source_map = {f"{info['source']}.{info['id']}": i
                                      for info, i in zip(self.image_info, self._image_ids)}
        self.sources = sorted({c["source"] for c in self.class_info})
        self.source_class_ids = {source: [i for i, info in enumerate(self.class_info)
                                          if i == 0 or info["source"] == source] for source in self.sources}

    def map_source_class_id(self, source_class_id):
        return self.class_from_source_map[source_class_id]

    def get_source_class_id(self, class_id, source):
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(f"class {class_id} belongs to source {info['source']!r}, not {source!r}")
        return info["id"]

    @property
    def image_ids(self):
        return self._image_ids

    def source_image_link(self, image_id):
        return self.image_info[image_id]["path"]

    def load_image(self, image_id) -> np.ndarray:
        from PIL import Image

        path = self.image_info[image_id]["path"]
        try:
            with Image.open(path) as im:
                image = np.asarray(im.convert("RGB"))
        except OSError as error:
            raise OSError(f"{path}: cannot read image ({error})") from error
        return image

    def load_mask(self, image_id):
        """Override: -> (bool [H, W, N] instance masks, int32 [N] class ids). The base has no instances."""
        return np.empty([0, 0, 0], dtype=bool), np.empty([0], np.int32)


############################################################
#  Training targets
############################################################


def build_rpn_targets(image_shape, anchors, gt_class_ids, gt_boxes, config, rng: np.random.Generator):
    """Anchor labels and deltas for the RPN losses.

    An anchor is positive when its IoU with a GT box is >= 0.7 or it is a GT box's best anchor, negative when
    every IoU is < 0.3 (and it does not touch a crowd box: class id < 0), neutral otherwise; positives are
    subsampled to at most half of RPN_TRAIN_ANCHORS_PER_IMAGE and negatives fill the rest.
    Returns rpn_match [A] int32 (1, -1, 0) and rpn_bbox [RPN_TRAIN_ANCHORS_PER_IMAGE, 4] float32, the
    normalised deltas of the positive anchors in anchor order, zero padded.
    """
    rpn_match = np.zeros([anchors.shape[0]], dtype=np.int32)
    rpn_bbox = np.zeros((config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), dtype=np.float32)
    crowd_ix = np.where(gt_class_ids < 0)[0]
    if crowd_ix.size:
        non_crowd_ix = np.where(gt_class_ids > 0)[0]
        crowd_overlaps = compute_overlaps(anchors, gt_boxes[crowd_ix])
        no_crowd = crowd_overlaps.max(axis=1) < 0.001
        gt_class_ids, gt_boxes = gt_class_ids[non_crowd_ix], gt_boxes[non_crowd_ix]
    else:
        no_crowd = np.ones([anchors.shape[0]], dtype=bool)
    if gt_boxes.shape[0] == 0:
        negatives = np.where(no_crowd)[0]
        keep = rng.choice(negatives, min(len(negatives), config.RPN_TRAIN_ANCHORS_PER_IMAGE), replace=False)
        rpn_match[keep] = -1
        return rpn_match, rpn_bbox
    overlaps = compute_overlaps(anchors, gt_boxes)
    anchor_iou_argmax = np.argmax(overlaps, axis=1)
    anchor_iou_max = overlaps[np.arange(overlaps.shape[0]), anchor_iou_argmax]
    rpn_match[(anchor_iou_max < 0.3) & no_crowd] = -1
    gt_iou_argmax = np.argwhere(overlaps == np.max(overlaps, axis=0))[:, 0]
    rpn_match[gt_iou_argmax] = 1
    rpn_match[anchor_iou_max >= 0.7] = 1
    ids = np.where(rpn_match == 1)[0]
    extra = len(ids) - config.RPN_TRAIN_ANCHORS_PER_IMAGE // 2
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0
    ids = np.where(rpn_match == -1)[0]
    extra = len(ids) - (config.RPN_TRAIN_ANCHORS_PER_IMAGE - np.sum(rpn_match == 1))
    if extra > 0:
        rpn_match[rng.choice(ids, extra, replace=False)] = 0
    ids = np.where(rpn_match == 1)[0]
    deltas = box_refinement(anchors[ids], gt_boxes[anchor_iou_argmax[ids]])
    rpn_bbox[:len(ids)] = deltas / np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float32)
    return rpn_match, rpn_bbox


def load_image_gt(dataset: Dataset, config, image_id, augmentation: Optional[Callable] = None,
                  use_mini_mask: bool = False, rng: Optional[np.random.Generator] = None):
    """(image, image_meta, class_ids, bbox, mask) of one image, resized as the config says.

    augmentation: optional callable (image, masks, rng) -> (image, masks) that keeps the shapes.
    Instances whose mask is empty after resizing/cropping are dropped.
    """
    rng = rng if rng is not None else np.random.default_rng()
    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    original_shape = image.shape
    image, window, scale, padding, crop = resize_image(
        image, min_dim=config.IMAGE_MIN_DIM, min_scale=config.IMAGE_MIN_SCALE, max_dim=config.IMAGE_MAX_DIM,
        mode=config.IMAGE_RESIZE_MODE, rng=rng)
    mask = resize_mask(mask, scale, padding, crop)
    if augmentation is not None:
        shapes = (image.shape, mask.shape)
        image, mask = augmentation(image, mask, rng)
        if (image.shape, mask.shape) != shapes:
            raise ValueError(f"augmentation changed shapes {shapes} -> {(image.shape, mask.shape)}")
    keep = np.sum(mask, axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, keep], np.asarray(class_ids)[keep]
    bbox = extract_bboxes(mask)
    active_class_ids = np.zeros([dataset.num_classes], dtype=np.int32)
    active_class_ids[dataset.source_class_ids[dataset.image_info[image_id]["source"]]] = 1
    if use_mini_mask:
        mask = minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    image_meta = compose_image_meta(image_id, original_shape, image.shape, window, scale, active_class_ids)
    return image, image_meta, class_ids, bbox, mask


def fliplr(image, masks, rng):
    """Augmentation: horizontal flip with probability 1/2."""
    if rng.random() < 0.5:
        return image[:, ::-1].copy(), masks[:, ::-1].copy()
    return image, masks


def data_generator(dataset: Dataset, config, shuffle=True, augmentation=None, batch_size=1,
                   seed: int = 0, max_errors: int = 5, no_augmentation_sources=None) -> Iterator[tuple]:
    """Endless batches (images, image_meta, rpn_match, rpn_bbox, gt_class_ids, gt_boxes, gt_masks).

    Images whose source is in `no_augmentation_sources` are never augmented.
    Images without instances are skipped; an image that fails to load is logged and skipped, and more than
    `max_errors` failures raise. All randomness comes from `numpy.random.default_rng(seed)`.
    """
    rng = np.random.default_rng(seed)
    image_ids = np.copy(dataset.image_ids)
    if len(image_ids) == 0:
        raise ValueError("data_generator: the dataset has no images (did you call prepare()?)")
    backbone_shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    anchors = generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
                                       config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE)
    mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else tuple(config.IMAGE_SHAPE[:2])
    index, errors, batch = -1, 0, []
    while True:
        index = (index + 1) % len(image_ids)
        if shuffle and index == 0:
            rng.shuffle(image_ids)
        image_id = image_ids[index]
        augment = None if dataset.image_info[image_id]["source"] in (no_augmentation_sources or ()) else augmentation
        try:
            image, image_meta, gt_class_ids, gt_boxes, gt_masks = load_image_gt(
                dataset, config, image_id, augmentation=augment, use_mini_mask=config.USE_MINI_MASK, rng=rng)
        except (OSError, ValueError) as error:
            errors += 1
            log.warning("skipping image %s: %s", dataset.image_reference(image_id), error)
            if errors > max_errors:
                raise
            continue
        if not np.any(gt_class_ids > 0):
            continue
        rpn_match, rpn_bbox = build_rpn_targets(image.shape, anchors, gt_class_ids, gt_boxes, config, rng)
        if gt_boxes.shape[0] > config.MAX_GT_INSTANCES:
            ids = rng.choice(np.arange(gt_boxes.shape[0]), config.MAX_GT_INSTANCES, replace=False)
            gt_class_ids, gt_boxes, gt_masks = gt_class_ids[ids], gt_boxes[ids], gt_masks[:, :, ids]
        n = gt_boxes.shape[0]
        class_ids = np.zeros(config.MAX_GT_INSTANCES, np.int32)
        boxes = np.zeros((config.MAX_GT_INSTANCES, 4), np.float32)
        masks = np.zeros(mask_shape + (config.MAX_GT_INSTANCES,), bool)
        class_ids[:n], boxes[:n], masks[:, :, :n] = gt_class_ids, gt_boxes, gt_masks
        batch.append((mold_image(image, config), image_meta, rpn_match[:, None], rpn_bbox, class_ids, boxes, masks))
        if len(batch) == batch_size:
            yield tuple(np.stack(column) for column in zip(*batch))
            batch = []


def batch_signature(config):
    """(shape, dtype) of each array `data_generator` yields (batch dimension None)."""
    backbone_shapes = compute_backbone_shapes(config, config.IMAGE_SHAPE)
    n_anchors = len(generate_pyramid_anchors(config.RPN_ANCHOR_SCALES, config.RPN_ANCHOR_RATIOS, backbone_shapes,
                                             config.BACKBONE_STRIDES, config.RPN_ANCHOR_STRIDE))
    mask_shape = tuple(config.MINI_MASK_SHAPE) if config.USE_MINI_MASK else tuple(config.IMAGE_SHAPE[:2])
    h, w, c = (int(v) for v in config.IMAGE_SHAPE)
    g = config.MAX_GT_INSTANCES
    return (((None, h, w, c), np.float32), ((None, config.IMAGE_META_SIZE), np.float32),
            ((None, n_anchors, 1), np.int32), ((None, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4), np.float32),
            ((None, g), np.int32), ((None, g, 4), np.float32), ((None,) + mask_shape + (g,), bool))
