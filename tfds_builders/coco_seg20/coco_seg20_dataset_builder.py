"""COCO 2017 restricted to the 20 Pascal VOC categories, as semantic label maps (torchvision's reference).

    tfds build coco_seg20 --imports tfds_builders.coco_seg20 --config 1k --manual_dir ~/data/coco
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfsynth.segmentation import coco


@dataclasses.dataclass
class CocoSeg20BuilderConfig(tfds.core.BuilderConfig):
    coco: coco.CocoSegConfig = coco.CocoSegConfig()


BUILDER_CONFIGS = [
    CocoSeg20BuilderConfig(name="1k", description="1,000 train + 1,000 validation images (seeded subsample, "
                           "seed 0): the seed paper's data-limited COCO task.", coco=coco.CocoSegConfig()),
    CocoSeg20BuilderConfig(name="full", description="Every valid train2017 and val2017 image.",
                           coco=coco.CocoSegConfig(num_train=None, num_validation=None)),
    CocoSeg20BuilderConfig(name="tiny", description="3 train + 2 validation images: for tests, built from a small "
                           "COCO-format fixture given as --manual_dir.",
                           coco=coco.CocoSegConfig(num_train=3, num_validation=2)),
]


class Builder(tfds.core.GeneratorBasedBuilder):
    """COCO 2017, 20 VOC categories + background, as label maps (torchvision's segmentation reference)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = BUILDER_CONFIGS
    DEFAULT_BUILDER_CONFIG_NAME = "1k"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download COCO 2017 from https://cocodataset.org/#download (train2017.zip, val2017.zip,
    annotations_trainval2017.zip) and unzip all three into one directory, giving
    `<dir>/annotations/instances_train2017.json`, `<dir>/annotations/instances_val2017.json`,
    `<dir>/train2017/*.jpg` and `<dir>/val2017/*.jpg`. Pass that directory as --manual_dir.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        names = list(coco.CLASS_NAMES)
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg", doc="RGB photo"),
                "label": tfds.features.LabeledImage(labels=names, shape=(None, None, 1), encoding_format="png",
                                                    doc="class per pixel: 0 background, 1..20 VOC, 255 ignore"),
                "image/id": tfds.features.Scalar(dtype=np.int64, doc="COCO image id"),
                "image/filename": tfds.features.Text(doc="file name in train2017/ or val2017/"),
                "objects": tfds.features.Sequence({
                    "id": tfds.features.Scalar(dtype=np.int64, doc="COCO annotation id"),
                    "label": tfds.features.ClassLabel(names=names, doc="class 1..20"),
                    "area": tfds.features.Scalar(dtype=np.float32, doc="COCO `area` field"),
                    "is_crowd": tfds.features.Scalar(dtype=np.bool_, doc="COCO `iscrowd`"),
                }),
            }),
            supervised_keys=("image", "label"),
            homepage="https://cocodataset.org",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = str(dl_manager.manual_dir)
        for split in coco.SPLITS:  # fail before any work if the download is incomplete
            coco.split_files(manual_dir, split, self.builder_config.coco.year)
        return {split: self._generate_examples(manual_dir, split) for split in coco.SPLITS}

    def _generate_examples(self, manual_dir: str, split: str):
        for image_id, ex in coco.examples(manual_dir, self.builder_config.coco, split):
            loaded = ex["image"]
            ex["image"] = loaded.encoded if loaded.encoded is not None else loaded.pixels
            yield image_id, ex
