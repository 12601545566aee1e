"""Stanford Cars segmented by Mask R-CNN, filtered and normalised (seed 002, ch. 3) as RGBA car crops.

    export TFSYNTH_MASK_RCNN_WEIGHTS=~/models/mask_rcnn_coco.h5          # matterport's COCO weights
    tfds build tfds_builders/stanford_cars_clean --config maskrcnn --manual_dir ~/data/stanford_cars
    tfds build tfds_builders/stanford_cars_clean --config precomputed_masks --manual_dir ~/data/stanford_cars

The filtering and normalisation live in `tfsynth.cleaning` (TF-free); the Mask R-CNN in
`tfsynth.models.mask_rcnn`. This builder only runs them per photo and encodes the results.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from tfsynth.cleaning import stanford_cars as sc
from tfsynth.cleaning.filters import FilterConfig, FilterReport, detections_from_result
from tfsynth.cleaning.normalise import (RatioNormal, car_to_frame_ratio, normal_from_ratios, ratio_summary,
                                        sampled_ratios)
from tfsynth.cleaning.plots import plot_ratio_distributions
from tfsynth.models.mask_rcnn.config import COCO_CLASS_NAMES, CocoInferenceConfig, make_config

WEIGHTS_ENV = "TFSYNTH_MASK_RCNN_WEIGHTS"
SPLITS = ("train", "test")

# Ratio Normal used when no synthetic dataset is given: the seed describes the synthetic renders' ratios as
# "tightly distributed, centered a little over 0.2" (Figure 3.10); fit the real values with `synthetic_tfds`.
DEFAULT_RATIO_MEAN = 0.21
DEFAULT_RATIO_STD = 0.03


@dataclasses.dataclass
class StanfordCarsCleanConfig(tfds.core.BuilderConfig):
    mask_source: str = "maskrcnn"  # "maskrcnn" (run the model) or "precomputed" (manual_dir/masks/*.npz)
    weights_path: str = ""  # matterport-format HDF5 weights; empty: $TFSYNTH_MASK_RCNN_WEIGHTS
    mask_rcnn_overrides: tuple = ()  # ((FIELD, value), ...) applied to CocoInferenceConfig
    filters: FilterConfig = FilterConfig()
    ratio_mean: float = DEFAULT_RATIO_MEAN  # target Normal when synthetic_tfds is empty
    ratio_std: float = DEFAULT_RATIO_STD
    synthetic_tfds: str = ""  # "name[/config]:split" of RGBA renders to fit the ratio Normal to
    synthetic_feature: str = "image"  # RGBA (or alpha) feature of that dataset
    synthetic_data_dir: str = ""  # its TFDS data_dir (empty: the default)
    seed: int = 0
    train_fraction: float = 0.8
    image_size: int = 0  # 0: keep each segmentation's size; > 0: resize to image_size x image_size


BUILDER_CONFIGS = [
    StanfordCarsCleanConfig(name="maskrcnn", description="Segment with Mask R-CNN (COCO weights from "
                            f"weights_path or ${WEIGHTS_ENV}), filter, normalise.", mask_source="maskrcnn"),
    StanfordCarsCleanConfig(name="precomputed_masks", description="Read detections from "
                            "<manual_dir>/masks/<folder>/<stem>.npz (no weights needed), filter, normalise.",
                            mask_source="precomputed"),
]


def mask_rcnn_config(overrides: tuple):
    return make_config(CocoInferenceConfig, **dict(overrides))


class _Segmenter:
    """Mask R-CNN in inference mode with weights loaded by name, built once per builder."""

    def __init__(self, weights_path: str, overrides: tuple):
        from tfsynth.models.mask_rcnn.model import MaskRCNN

        if not weights_path:
            raise ValueError(f"the maskrcnn config needs Mask R-CNN weights: set the builder config's weights_path "
                             f"or ${WEIGHTS_ENV} to matterport's mask_rcnn_coco.h5 (or use precomputed_masks)")
        if not os.path.exists(weights_path):
            raise FileNotFoundError(f"{weights_path}: Mask R-CNN weights file not found")
        config = mask_rcnn_config(overrides)
        if config.BATCH_SIZE != 1:
            raise ValueError("the segmenter runs one photo at a time: IMAGES_PER_GPU x GPU_COUNT must be 1")
        self.config = config
        self.class_names = COCO_CLASS_NAMES[:config.NUM_CLASSES]
        if len(self.class_names) != config.NUM_CLASSES:
            raise ValueError(f"NUM_CLASSES {config.NUM_CLASSES} exceeds the {len(COCO_CLASS_NAMES)} COCO class names")
        self.model = MaskRCNN("inference", config, model_dir=tempfile.gettempdir())
        report = self.model.load_weights(weights_path, by_name=True)
        if report["missing_in_file"]:
            raise ValueError(f"{weights_path}: has no weights for layers {report['missing_in_file'][:5]}...")

    def __call__(self, image: np.ndarray) -> dict:
        return self.model.detect([sc.as_rgb(image)])[0]


class Builder(tfds.core.GeneratorBasedBuilder):
    """Stanford Cars car segmentations, cleaned and normalised for style transfer (seed 002, ch. 3)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "maskrcnn"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Stanford Cars (https://ai.stanford.edu/~jkrause/cars/car_dataset.html; mirrors exist since the original
    site went down): extract cars_train.tgz, cars_test.tgz and car_devkit.tgz into one directory and put
    cars_test_annos_withlabels.mat next to them, giving cars_train/*.jpg, cars_test/*.jpg,
    devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat. For `precomputed_masks`, also
    masks/cars_train/<stem>.npz and masks/cars_test/<stem>.npz (see tfsynth.cleaning.stanford_cars).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        size = config.image_size or None
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(size, size, 4), encoding_format="png",
                                             doc="normalised RGBA segmentation"),
                "label": tfds.features.ClassLabel(names=list(config.filters.labels), doc="predicted class"),
                "score": tfds.features.Scalar(dtype=np.float32, doc="detection score"),
                "bbox": tfds.features.Tensor(shape=(4,), dtype=np.int32,
                                             doc="predicted (y1, x1, y2, x2) in the source photo, pixels"),
                "ratio": tfds.features.Scalar(dtype=np.float32, doc="car-to-frame ratio of `image`"),
                "target_ratio": tfds.features.Scalar(dtype=np.float32, doc="ratio drawn from the synthetic Normal"),
                "ratio_square": tfds.features.Scalar(dtype=np.float32, doc="ratio after square padding"),
                "source_image": tfds.features.Text(doc="photo path in the manual dir"),
                "source_class": tfds.features.Scalar(dtype=np.int32, doc="Stanford Cars class 1..196"),
                "detection_index": tfds.features.Scalar(dtype=np.int32, doc="index in the photo's detections"),
            }),
            homepage="https://ai.stanford.edu/~jkrause/cars/car_dataset.html",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        config = self.builder_config
        if config.mask_source not in ("maskrcnn", "precomputed"):
            raise ValueError(f"mask_source must be 'maskrcnn' or 'precomputed', got {config.mask_source!r}")
        manual_dir = str(dl_manager.manual_dir)
        photos = sc.read_annotations(manual_dir)
        if not photos:
            raise ValueError(f"{manual_dir}: the annotation files list no photos")
        target, synthetic_ratios = self._target_normal()
        self._segmenter = None
        if config.mask_source == "maskrcnn":
            self._segmenter = _Segmenter(config.weights_path or os.environ.get(WEIGHTS_ENV, ""),
                                         config.mask_rcnn_overrides)
        splits = sc.split_photos(photos, config.seed, config.train_fraction)
        return {split: self._generate_examples(manual_dir, splits[split], split, target, synthetic_ratios)
                for split in SPLITS}

    def _target_normal(self) -> tuple[RatioNormal, Optional[np.ndarray]]:
        config = self.builder_config
        if not config.synthetic_tfds:
            return RatioNormal(config.ratio_mean, config.ratio_std), None
        name, _, split = config.synthetic_tfds.partition(":")
        ds = tfds.load(name, split=split or "train", data_dir=config.synthetic_data_dir or None)
        ratios = np.array([car_to_frame_ratio(ex[config.synthetic_feature]) for ex in tfds.as_numpy(ds)])
        try:
            target = normal_from_ratios(ratios)
        except ValueError as error:
            raise ValueError(f"synthetic_tfds {config.synthetic_tfds!r}: {error}") from error
        return target, ratios

    def _detections(self, manual_dir: str, photo: sc.Photo, image: np.ndarray):
        if self._segmenter is not None:
            return detections_from_result(self._segmenter(image), self._segmenter.class_names)
        path = sc.precomputed_path(manual_dir, photo.path)
        if not os.path.exists(path):
            return None
        return detections_from_result(sc.load_detections(path), COCO_CLASS_NAMES)

    def _generate_examples(self, manual_dir, photos, split, target, synthetic_ratios):
        config = self.builder_config
        report = FilterReport()
        missing, failures = [], []
        before, after = [], []
        for photo, image, error in sc.iter_photos(manual_dir, photos):
            if image is None:
                report.images += 1
                report.unreadable_images += 1
                failures.append(error)
                continue
            detections = self._detections(manual_dir, photo, image)
            if detections is None:
                report.images += 1
                missing.append(photo.path)
                continue
            outcome = sc.clean_photo(photo, image, detections, config.filters, target, config.seed)
            report.merge(outcome.report)
            before.extend(outcome.first_pass_ratios)
            for cleaned in outcome.accepted:
                n = cleaned.normalised
                rgba = sc.resize_rgba(n.rgba, config.image_size) if config.image_size else n.rgba
                after.append(n.ratio)
                d = cleaned.detection
                yield f"{photo.path}:{d.index}", {
                    "image": rgba, "label": d.label, "score": np.float32(d.score),
                    "bbox": np.asarray(d.roi, np.int32), "ratio": np.float32(n.ratio),
                    "target_ratio": np.float32(n.target_ratio), "ratio_square": np.float32(n.ratio_before),
                    "source_image": photo.path, "source_class": np.int32(photo.source_class),
                    "detection_index": np.int32(d.index),
                }
        self._write_report(split, report, target, synthetic_ratios, before, after, missing, failures)

    def _write_report(self, split, report, target, synthetic_ratios, before, after, missing, failures):
        out = self.data_dir
        os.makedirs(out, exist_ok=True)
        synthetic = synthetic_ratios if synthetic_ratios is not None else sampled_ratios(target, 2000, seed=1)
        synthetic_label = "synthetic" if synthetic_ratios is not None else "synthetic Normal (draws)"
        summary = {
            "split": split, "filters": dataclasses.asdict(self.builder_config.filters), **report.as_dict(),
            "photos_without_precomputed_masks": len(missing), "missing_examples": missing[:20],
            "unreadable_examples": failures[:20],
            "target_normal": dataclasses.asdict(target),
            "target_source": self.builder_config.synthetic_tfds or "builder config (ratio_mean, ratio_std)",
            "ratios_first_pass": ratio_summary(before), "ratios_final": ratio_summary(after),
        }
        with open(os.path.join(out, f"cleaning_report_{split}.json"), "w") as f:
            json.dump(summary, f, indent=2)
        normal = (target.mean, target.std)
        plot_ratio_distributions({"real segmentations": before, synthetic_label: synthetic},
                                 os.path.join(out, f"ratios_before_{split}.png"),
                                 f"Car-to-frame ratios before normalisation ({split})", normal=normal)
        plot_ratio_distributions({"real, cleaned and normalised": after, synthetic_label: synthetic},
                                 os.path.join(out, f"ratios_after_{split}.png"),
                                 f"Car-to-frame ratios after filtering and normalisation ({split})", normal=normal)


def load_report(builder: tfds.core.DatasetBuilder) -> dict:
    """The per-split cleaning reports of a built dataset and their sum {"train": ..., "test": ..., "total": ...}."""
    reports, total = {}, FilterReport()
    for split in SPLITS:
        path = os.path.join(builder.data_dir, f"cleaning_report_{split}.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no cleaning report (was the dataset built by this builder?)")
        with open(path) as f:
            reports[split] = json.load(f)
        total.merge(FilterReport.from_dict(reports[split]))
    reports["total"] = total.as_dict()
    return reports
