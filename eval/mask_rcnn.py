"""Mask R-CNN evaluation on a dataset: matterport's VOC-style mask mAP@0.5 and COCO box / mask mAP (pycocotools).

    python -m eval.mask_rcnn --weights W.h5 --config shapes-small --shapes 50 [--seed 1000] [--out r.json]
    python -m eval.mask_rcnn --weights mask_rcnn_coco.h5 --config coco \
        --coco-annotations instances_val2017.json --coco-images val2017/ --limit 500

The COCO form reads any COCO-format annotation file (category ids are mapped to contiguous class ids in the
order of the file, so the COCO 2017 file gives matterport's COCO class order). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from tfsynth.models.mask_rcnn.config import CocoInferenceConfig
from tfsynth.models.mask_rcnn.evaluate import coco_evaluate, compute_ap
from tfsynth.models.mask_rcnn.utils import Dataset


class CocoJsonDataset(Dataset):
    """A `utils.Dataset` over a COCO-format annotation file and its image folder (matterport's CocoDataset)."""

    def load_coco(self, annotation_file: str, image_dir: str, limit: int | None = None):
        from pycocotools.coco import COCO
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            self.coco = COCO(annotation_file)
        for cat_id in sorted(self.coco.getCatIds()):
            self.add_class("coco", cat_id, self.coco.loadCats(cat_id)[0]["name"])
        image_ids = sorted(self.coco.getImgIds())[:limit]
        for image_id in image_ids:
            info = self.coco.loadImgs(image_id)[0]
            self.add_image("coco", image_id=image_id, path=os.path.join(image_dir, info["file_name"]),
                           width=info["width"], height=info["height"],
                           annotations=self.coco.loadAnns(self.coco.getAnnIds(imgIds=[image_id], iscrowd=None)))

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        masks, class_ids = [], []
        for ann in info["annotations"]:
            class_id = self.map_source_class_id(f"coco.{ann['category_id']}")
            m = self.coco.annToMask(ann).astype(bool)
            if m.sum() < 1:
                continue
            masks.append(m)
            class_ids.append(-class_id if ann.get("iscrowd") else class_id)  # crowd: negative, as matterport
        if not masks:
            return np.zeros((info["height"], info["width"], 0), bool), np.zeros(0, np.int32)
        return np.stack(masks, axis=-1), np.array(class_ids, np.int32)


def voc_mask_map(model, dataset, image_ids=None, iou_threshold=0.5) -> float:
    """Mean over images of matterport's `compute_ap` (mask IoU) of `model.detect` on the original images."""
    aps = []
    for image_id in (dataset.image_ids if image_ids is None else image_ids):
        image = dataset.load_image(image_id)
        gt_masks, gt_class_ids = dataset.load_mask(image_id)
        keep = gt_class_ids > 0
        gt_masks, gt_class_ids = gt_masks[:, :, keep], gt_class_ids[keep]
        from tfsynth.models.mask_rcnn.utils import extract_bboxes

        r = model.detect([image])[0]
        aps.append(compute_ap(extract_bboxes(gt_masks), gt_class_ids, gt_masks, r["rois"], r["class_ids"],
                              r["scores"], r["masks"], iou_threshold=iou_threshold)[0])
    return float(np.mean(aps))


def evaluate(model, dataset, image_ids=None) -> dict:
    """{"voc_mask_map50": ..., "coco": {"bbox": {...}, "segm": {...}}} of a MaskRCNN in inference mode."""
    return {"voc_mask_map50": voc_mask_map(model, dataset, image_ids),
            "coco": coco_evaluate(dataset, model.detect, image_ids)}


def _config(name: str):
    if name == "coco":
        return CocoInferenceConfig()
    from tfsynth.models.mask_rcnn.config import make_config
    from tfsynth.models.mask_rcnn.shapes_configs import CONFIGS

    key = name.removeprefix("shapes-")
    if key not in CONFIGS:
        raise SystemExit(f"--config {name!r}: expected coco or one of {['shapes-' + k for k in CONFIGS]}")
    return make_config(CONFIGS[key], IMAGES_PER_GPU=1)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m eval.mask_rcnn", description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="HDF5 weight file (matterport layout)")
    parser.add_argument("--config", default="shapes-small", help="coco, shapes-tiny or shapes-small")
    parser.add_argument("--shapes", type=int, default=None, help="evaluate on this many held-out shape scenes")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the shape scenes (training uses 0)")
    parser.add_argument("--coco-annotations", default=None)
    parser.add_argument("--coco-images", default=None)
    parser.add_argument("--limit", type=int, default=None, help="first N images of the COCO file")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.weights):
        parser.error(f"--weights {args.weights}: no such file")
    if (args.shapes is None) == (args.coco_annotations is None):
        parser.error("pass exactly one of --shapes N and --coco-annotations FILE (with --coco-images DIR)")
    if args.coco_annotations is not None:
        if not os.path.isfile(args.coco_annotations):
            parser.error(f"--coco-annotations {args.coco_annotations}: no such file")
        if not args.coco_images or not os.path.isdir(args.coco_images):
            parser.error(f"--coco-images {args.coco_images}: not a directory")
    config = _config(args.config)
    if args.shapes is not None:
        from tfsynth.models.mask_rcnn.shapes import ShapesDataset

        dataset = ShapesDataset()
        dataset.load_shapes(args.shapes, height=int(config.IMAGE_SHAPE[0]), width=int(config.IMAGE_SHAPE[1]),
                            seed=args.seed)
    else:
        dataset = CocoJsonDataset()
        dataset.load_coco(args.coco_annotations, args.coco_images, args.limit)
    dataset.prepare()
    from tfsynth.models.mask_rcnn.model import MaskRCNN

    model = MaskRCNN("inference", config, model_dir=os.path.dirname(os.path.abspath(args.weights)))
    model.load_weights(args.weights, by_name=True)
    result = {"weights": args.weights, "config": args.config, "images": len(dataset.image_ids),
              **evaluate(model, dataset)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
