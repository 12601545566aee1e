"""COCO 2017 restricted to the 20 Pascal VOC categories, as semantic label maps (torchvision's reference).

    tfds build coco_seg20 --imports tfds_builders.coco_seg20 --config 1k --manual_dir ~/data/coco
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfsynth.segmentation import coco

_DESCRIPTION = f"""
COCO 2017 as 21-class semantic segmentation (background + the 20 Pascal VOC categories), converted exactly as
torchvision's segmentation reference (`references/segmentation/coco_utils.py`), as in Holm (2022),
"Synthesising Abstract Deep Computer Vision Pretraining Data":

* categories: CAT_LIST = {list(coco.CAT_LIST)}; class c is COCO category CAT_LIST[c] (class 0 = background);
  annotations of the other 60 categories are dropped.
* label map: each kept annotation (crowds included) rasterised with pycocotools (polygons OR-ed, RLE decoded);
  pixel = class of the covering annotation, 0 if none, and 255 (ignore) where two or more annotations overlap.
* images: kept only if their kept annotations' `area` fields sum to more than `min_area` = 1,000
  (torchvision's `_has_valid_annotation`; torchvision applies it to train only, this dataset to both splits by
  default); then a seeded subsample: the valid ids permuted by SeedSequence([seed, split]) and the first N
  readable ones taken. Unreadable / mis-sized image files are skipped, counted and replaced.

Features
* `image`: (H, W, 3) uint8, the original JPEG bytes (grey / CMYK / palette files converted to RGB).
* `label`: (H, W, 1) uint8 PNG, 0..20, 255 = ignore (overlaps). names: {', '.join(coco.CLASS_NAMES)}.
* `image/id` (int64 COCO id), `image/filename`.
* `objects`: the kept annotations: `id` (COCO annotation id), `label` (class 1..20), `area` (COCO `area`
  field), `is_crowd`.
"""

_CITATION = """
@inproceedings{lin2014microsoft,
  title={Microsoft {COCO}: Common Objects in Context},
  author={Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and Hays, James and Perona, Pietro and
          Ramanan, Deva and Doll{\\'a}r, Piotr and Zitnick, C. Lawrence},
  booktitle={European Conference on Computer Vision (ECCV)},
  pages={740--755},
  year={2014}
}
"""


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
            description=_DESCRIPTION,
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
            citation=_CITATION,
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
