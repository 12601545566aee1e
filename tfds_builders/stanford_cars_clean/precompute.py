"""Runs Mask R-CNN once over Stanford Cars and stores each photo's detections for the `precomputed_masks` config.

    python -m tfds_builders.stanford_cars_clean.precompute --manual_dir ~/data/stanford_cars \
        --weights ~/models/mask_rcnn_coco.h5 [--limit 100]

Writes `<manual_dir>/masks/<cars_train|cars_test>/<stem>.npz` (rois, class_ids, scores, masks: the raw
`detect()` result, before any filtering), skipping photos that already have one, so an interrupted run resumes
where it stopped. Segment on a GPU machine once, then build (and re-build with other filter thresholds) anywhere.
"""
from __future__ import annotations

import argparse
import os
import time

from tqdm import tqdm

from tfsynth.cleaning import stanford_cars as sc
from tfds_builders.stanford_cars_clean.stanford_cars_clean_dataset_builder import WEIGHTS_ENV, _Segmenter


def precompute(manual_dir: str, weights: str, limit: int = 0, overrides: tuple = ()) -> dict:
    """Detections for every photo without a stored result; returns counts (written, skipped, unreadable)."""
    photos = sc.read_annotations(manual_dir)
    if limit:
        photos = photos[:limit]
    todo = [p for p in photos if not os.path.exists(sc.precomputed_path(manual_dir, p.path))]
    counts = {"photos": len(photos), "already_done": len(photos) - len(todo), "written": 0, "unreadable": 0,
              "detections": 0}
    if not todo:
        return counts
    segmenter = _Segmenter(weights, overrides)
    start = time.perf_counter()
    for photo, image, error in tqdm(sc.iter_photos(manual_dir, todo), total=len(todo), unit="photo"):
        if image is None:
            counts["unreadable"] += 1
            tqdm.write(f"skipping {error}")
            continue
        result = segmenter(image)
        sc.save_detections(sc.precomputed_path(manual_dir, photo.path), result)
        counts["written"] += 1
        counts["detections"] += len(result["class_ids"])
    counts["seconds_per_photo"] = round((time.perf_counter() - start) / max(1, len(todo)), 3)
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manual_dir", required=True, help="Stanford Cars folder (cars_train/, cars_test/, devkit/)")
    parser.add_argument("--weights", default=os.environ.get(WEIGHTS_ENV, ""),
                        help=f"matterport-format Mask R-CNN weights (default: ${WEIGHTS_ENV})")
    parser.add_argument("--limit", type=int, default=0, help="only the first N photos (sorted by path)")
    args = parser.parse_args(argv)
    print(precompute(os.path.expanduser(args.manual_dir), os.path.expanduser(args.weights), args.limit))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
