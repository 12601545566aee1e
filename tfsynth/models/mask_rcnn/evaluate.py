"""Instance-segmentation evaluation for Mask R-CNN (TF-free): NMS, matterport's VOC-style AP on masks, and
COCO-style box / mask mAP through pycocotools.

VOC-style (`compute_matches`, `compute_ap`, `compute_ap_range`, `compute_recall`) has matterport's semantics:
predictions are ranked by score; each one, best mask IoU first, takes the first ground truth instance that is
still free and of its class, stopping at the first IoU below the threshold; AP is the area under the
precision-recall curve made monotone (every-point interpolation, as VOC 2010+), with the curve padded by
(recall 0, precision 0) at the start and (recall 1, precision 0) at the end.

COCO-style (`coco_evaluate`) runs pycocotools' COCOeval on a `utils.Dataset` and a detector, the way
matterport's COCO sample evaluates (AP@[.5:.95], AP@.5, AP@.75, ... for "bbox" and "segm").
"""
from __future__ import annotations

import contextlib
import io
from typing import Callable, Optional, Sequence

import numpy as np

from tfsynth.models.mask_rcnn.utils import compute_iou, compute_overlaps, trim_zeros


def compute_overlaps_masks(masks1, masks2) -> np.ndarray:
    """IoU [N1, N2] of two sets of [H, W, N] masks (values > 0.5 are inside); zeros [N1, N2] if either is empty."""
    masks1, masks2 = np.asarray(masks1), np.asarray(masks2)
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    a = (masks1 > 0.5).reshape(-1, masks1.shape[-1]).astype(np.float64)
    b = (masks2 > 0.5).reshape(-1, masks2.shape[-1]).astype(np.float64)
    inter = a.T @ b
    union = a.sum(axis=0)[:, None] + b.sum(axis=0)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def non_max_suppression(boxes, scores, threshold) -> np.ndarray:
    """Greedy NMS: int32 indices of the kept boxes, highest score first.

    boxes [N, (y1, x1, y2, x2)] ((y2, x2) outside the box), scores [N]; a box is dropped when its IoU with an
    already kept, higher-scoring box is above `threshold`.
    """
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[0] == 0:
        raise ValueError(f"non_max_suppression: expected a non-empty [N, 4] box array, got shape {boxes.shape}")
    boxes = boxes.astype(np.float32) if boxes.dtype.kind != "f" else boxes
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    order = np.argsort(np.asarray(scores))[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        iou = compute_iou(boxes[best], boxes[rest], areas[best], areas[rest])
        order = rest[iou <= threshold]
    return np.array(keep, dtype=np.int32)


def compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
                    iou_threshold=0.5, score_threshold=0.0):
    """Matches predictions to ground truth by mask IoU (see the module docstring).

    Zero-padded rows of gt_boxes / pred_boxes (and the masks beyond them) are dropped; predictions are sorted
    by score, highest first. Ground truth candidates whose IoU is below `score_threshold` are not considered.
    Returns gt_match [G] (index of the matched sorted prediction or -1), pred_match [P] (index of the matched
    ground truth or -1) and overlaps [P, G] (mask IoU, predictions in sorted order).
    """
    gt_boxes = trim_zeros(np.asarray(gt_boxes))
    gt_masks = np.asarray(gt_masks)[..., :gt_boxes.shape[0]]
    gt_class_ids = np.asarray(gt_class_ids)
    pred_boxes = trim_zeros(np.asarray(pred_boxes))
    pred_scores = np.asarray(pred_scores)[:pred_boxes.shape[0]]
    order = np.argsort(pred_scores)[::-1]
    pred_class_ids = np.asarray(pred_class_ids)[order]
    pred_masks = np.asarray(pred_masks)[..., order]
    overlaps = compute_overlaps_masks(pred_masks, gt_masks)

    pred_match = -np.ones(pred_boxes.shape[0])
    gt_match = -np.ones(gt_boxes.shape[0])
    for i in range(pred_boxes.shape[0]):
        candidates = np.argsort(overlaps[i])[::-1]
        candidates = candidates[overlaps[i, candidates] >= score_threshold] if score_threshold > 0 else candidates
        for j in candidates:
            if gt_match[j] > -1:
                continue
            if overlaps[i, j] < iou_threshold:
                break
            if pred_class_ids[i] == gt_class_ids[j]:
                gt_match[j], pred_match[i] = i, j
                break
    return gt_match, pred_match, overlaps


def compute_ap(gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks,
               iou_threshold=0.5):
    """AP at one mask-IoU threshold: (mAP, precisions, recalls, overlaps), matterport's VOC-style AP.

    precisions / recalls are the padded, monotone curve ([0, p1..pn, 0] and [0, r1..rn, 1]).
    """
    gt_match, pred_match, overlaps = compute_matches(gt_boxes, gt_class_ids, gt_masks, pred_boxes,
                                                     pred_class_ids, pred_scores, pred_masks, iou_threshold)
    hits = np.cumsum(pred_match > -1)
    precisions = hits / (np.arange(len(pred_match)) + 1)
    recalls = hits.astype(np.float32) / len(gt_match) if len(gt_match) else np.zeros(len(pred_match), np.float32)
    precisions = np.concatenate([[0], precisions, [0]])
    recalls = np.concatenate([[0], recalls, [1]])
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]  # precision at r = best precision at recall >= r
    steps = np.flatnonzero(recalls[1:] != recalls[:-1]) + 1
    mean_ap = float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))
    return mean_ap, precisions, recalls, overlaps


def compute_ap_range(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                     iou_thresholds=None, verbose=1):
    """Mean of `compute_ap` over IoU thresholds (default 0.50, 0.55, ..., 0.95); prints each AP if verbose."""
    iou_thresholds = np.arange(0.5, 1.0, 0.05) if iou_thresholds is None else np.asarray(iou_thresholds)
    aps = []
    for t in iou_thresholds:
        ap = compute_ap(gt_box, gt_class_id, gt_mask, pred_box, pred_class_id, pred_score, pred_mask,
                        iou_threshold=t)[0]
        if verbose:
            print(f"AP @{t:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean_ap = float(np.mean(aps))
    if verbose:
        print(f"AP @{iou_thresholds[0]:.2f}-{iou_thresholds[-1]:.2f}:\t {mean_ap:.3f}")
    return mean_ap


def compute_recall(pred_boxes, gt_boxes, iou):
    """(recall, positive_ids): the fraction of GT boxes that are some prediction's best box with IoU >= iou,
    and the indices of the predictions whose best IoU is >= iou (box IoU, not masks)."""
    overlaps = compute_overlaps(np.asarray(pred_boxes), np.asarray(gt_boxes))
    best = overlaps.max(axis=1)
    positive_ids = np.flatnonzero(best >= iou)
    found = set(np.argmax(overlaps, axis=1)[positive_ids].tolist())
    return len(found) / np.asarray(gt_boxes).shape[0], positive_ids


############################################################
#  COCO-style evaluation
############################################################

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _rle(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _coco_box(box) -> list:
    y1, x1, y2, x2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def coco_evaluate(dataset, detect: Callable, image_ids: Optional[Sequence[int]] = None,
                  iou_types: Sequence[str] = ("bbox", "segm"), verbose: bool = False) -> dict:
    """COCO box and mask mAP of a detector on a prepared `utils.Dataset`, with pycocotools' COCOeval.

    detect: callable(list of images) -> list of dicts with "rois" [N, (y1, x1, y2, x2)], "class_ids" [N],
    "scores" [N], "masks" [H, W, N] (`MaskRCNN.detect` is one; it is called one image at a time).
    The ground truth comes from `dataset.load_mask` (class ids are the dataset's internal ids; instances with a
    negative class id are crowd regions). Returns {"bbox": {"AP": .., "AP50": .., ...}, "segm": {...}}: the
    12 COCOeval summary numbers (-1 where a size range has no instance).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    bad = sorted(set(iou_types) - {"bbox", "segm"})
    if bad:
        raise ValueError(f"iou_types: unknown {bad}; expected 'bbox' and/or 'segm'")
    image_ids = list(dataset.image_ids if image_ids is None else image_ids)
    if not image_ids:
        raise ValueError("coco_evaluate: no images to evaluate (did you call dataset.prepare()?)")
    images, annotations, results = [], [], []
    for image_id in image_ids:
        image = dataset.load_image(image_id)
        h, w = image.shape[:2]
        images.append({"id": int(image_id), "height": int(h), "width": int(w)})
        masks, class_ids = dataset.load_mask(image_id)
        for k in range(masks.shape[-1] if masks.ndim == 3 else 0):
            m = masks[:, :, k].astype(bool)
            if not m.any():
                continue
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            annotations.append({
                "id": len(annotations) + 1, "image_id": int(image_id), "category_id": int(abs(class_ids[k])),
                "iscrowd": int(class_ids[k] < 0), "area": float(m.sum()), "segmentation": _rle(m),
                "bbox": [float(cols[0]), float(rows[0]), float(cols[-1] + 1 - cols[0]),
                         float(rows[-1] + 1 - rows[0])]})
        r = detect([image])[0]
        for k in range(len(r["class_ids"])):
            results.append({"image_id": int(image_id), "category_id": int(r["class_ids"][k]),
                            "score": float(r["scores"][k]), "bbox": _coco_box(r["rois"][k]),
                            "segmentation": _rle(r["masks"][:, :, k])})
    categories = [{"id": int(i), "name": str(n)} for i, n in enumerate(dataset.class_names) if i > 0]
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    stats = {}
    with quiet:
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        for iou_type in iou_types:
            if not results:  # COCO.loadRes rejects an empty list; no detection scores 0 everywhere
                stats[iou_type] = {name: 0.0 for name in COCO_STAT_NAMES}
                continue
            dt = gt.loadRes([dict(d) for d in results])
            evaluator = COCOeval(gt, dt, iou_type)
            evaluator.params.imgIds = [int(i) for i in image_ids]
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
            stats[iou_type] = {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats)}
    return stats
