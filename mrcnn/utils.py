"""matterport's `mrcnn.utils` on `tfsynth.models.mask_rcnn.utils` (TF-free until a `*_graph` helper is called).

Differences from matterport, all in the direction of fewer dependencies: `resize` is tfsynth's exact NumPy
bilinear / nearest resize (scikit-image is not needed; anti-aliasing is not offered), `Dataset.load_image` reads
with Pillow, and `resize_image` / `load_image_gt` accept a `numpy.random.Generator` for the "crop" mode.
"""
from __future__ import annotations

import os
import shutil
import urllib.request

import numpy as np

from tfsynth.models.mask_rcnn.evaluate import (compute_ap, compute_ap_range, compute_matches,  # noqa: F401
                                               compute_overlaps_masks, compute_recall, non_max_suppression)
from tfsynth.models.mask_rcnn.utils import (Dataset, apply_box_deltas, box_refinement,  # noqa: F401
                                            compose_image_meta, compute_backbone_shapes, compute_iou,
                                            compute_overlaps, denorm_boxes, expand_mask, extract_bboxes,
                                            generate_anchors, generate_pyramid_anchors, minimize_mask,
                                            mold_image, norm_boxes, parse_image_meta, resize_image, resize_mask,
                                            trim_zeros, unmold_image, unmold_mask)
from tfsynth.models.mask_rcnn.utils import resize as _resize

# Where matterport publishes its COCO-trained weights (`download_trained_weights` fetches this file).
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"


def resize(image, output_shape, order=1, mode="constant", cval=0, clip=True, preserve_range=False,
           anti_aliasing=False, anti_aliasing_sigma=None):
    """scikit-image's `transform.resize` as matterport calls it, without scikit-image.

    order 1 (bilinear) or 0 (nearest), pixel centres aligned; mode "constant" (outside = cval) or "edge".
    Like scikit-image, an integer image is first scaled to [0, 1] unless preserve_range=True, and clip=True
    keeps the output within the input's range (and cval for mode "constant"). Returns float64.
    """
    if order not in (0, 1):
        raise ValueError(f"resize: order={order} is not supported (0 = nearest, 1 = bilinear)")
    if mode not in ("constant", "edge"):
        raise ValueError(f"resize: mode={mode!r} is not supported ('constant' or 'edge')")
    if anti_aliasing:
        raise ValueError("resize: anti_aliasing=True is not supported (matterport's calls use False)")
    x = np.asarray(image)
    if x.dtype == bool:
        x = x.astype(np.float64)
    elif x.dtype.kind in "ui" and not preserve_range:
        x = x.astype(np.float64) / np.iinfo(x.dtype).max
    else:
        x = x.astype(np.float64)
    out_h, out_w = int(output_shape[0]), int(output_shape[1])
    if order == 0:
        rows = np.minimum(((np.arange(out_h) + 0.5) * x.shape[0] / out_h).astype(np.int64), x.shape[0] - 1)
        cols = np.minimum(((np.arange(out_w) + 0.5) * x.shape[1] / out_w).astype(np.int64), x.shape[1] - 1)
        out = x[rows][:, cols]
    elif mode == "constant":
        out = _resize(x - cval, (out_h, out_w), edge="zero") + cval
    else:
        out = _resize(x, (out_h, out_w), edge="clamp")
    if clip and x.size:
        low, high = x.min(), x.max()
        if mode == "constant":
            low, high = min(low, cval), max(high, cval)
        out = np.clip(out, low, high)
    return out


def mold_mask(mask, config):
    """Instance masks [H, W, N] of an original image -> the frame of its molded image (resized and padded as
    `resize_image` does for this config), as bool. ("crop" mode is random: use `load_image_gt` there.)"""
    mask = np.asarray(mask)
    if config.IMAGE_RESIZE_MODE == "crop":
        raise ValueError("mold_mask: IMAGE_RESIZE_MODE 'crop' picks a random crop; use model.load_image_gt")
    probe = np.zeros(mask.shape[:2] + (1,), dtype=np.uint8)
    _, _, scale, padding, crop = resize_image(probe, min_dim=config.IMAGE_MIN_DIM, max_dim=config.IMAGE_MAX_DIM,
                                              min_scale=config.IMAGE_MIN_SCALE, mode=config.IMAGE_RESIZE_MODE)
    return resize_mask(mask, scale, padding, crop).astype(bool)


def box_refinement_graph(box, gt_box):
    """TensorFlow version of `box_refinement`: deltas (dy, dx, log dh, log dw) from box to gt_box."""
    from tfsynth.models.mask_rcnn.layers import box_refinement_graph as graph

    return graph(box, gt_box)


def batch_slice(inputs, graph_fn, batch_size, names=None):
    """Runs `graph_fn` on each of the first `batch_size` slices of `inputs` and stacks the results."""
    import tensorflow as tf

    if not isinstance(inputs, list):
        inputs = [inputs]
    per_slice = []
    for i in range(batch_size):
        out = graph_fn(*[x[i] for x in inputs])
        per_slice.append(out if isinstance(out, (tuple, list)) else [out])
    columns = list(zip(*per_slice))
    names = names if names is not None else [None] * len(columns)
    result = [tf.stack(column, axis=0, name=name) for column, name in zip(columns, names)]
    return result[0] if len(result) == 1 else result


def download_trained_weights(coco_model_path, verbose=1):
    """Downloads matterport's COCO weights (COCO_MODEL_URL) to `coco_model_path` (written atomically)."""
    if verbose > 0:
        print(f"Downloading pretrained model to {coco_model_path} ...")
    partial = f"{coco_model_path}.part"
    with urllib.request.urlopen(COCO_MODEL_URL) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    os.replace(partial, coco_model_path)
    if verbose > 0:
        print("... done downloading pretrained model!")
