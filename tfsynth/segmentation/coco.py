"""COCO instance annotations -> 21-class (Pascal VOC) semantic label maps, as torchvision's segmentation reference.

torchvision `references/segmentation/coco_utils.py` (also what the seed's author ran, `imgseg02561/coco.py`):

* `FilterAndRemapCocoCategories(CAT_LIST)`: keep the annotations whose category is one of the 20 VOC categories
  and renumber them by their position in CAT_LIST (so 'person', COCO id 1, becomes class 15). Crowd annotations
  (iscrowd=1, RLE) are kept like any other.
* `ConvertCocoPolysToMask`: every kept annotation's polygons / RLE -> binary mask with pycocotools
  (`frPyObjects` + `decode`, polygons of one object OR-ed); label map = per pixel the maximum class over the
  masks covering it, 0 where none does, and 255 ("ignore") where two or more masks overlap -- whatever their
  classes, even two instances of one class. So overlaps are *not* resolved by "the later annotation wins".
* `_has_valid_annotation`: an image is kept only if it has kept annotations whose `area` fields sum to more
  than 1,000 pixels. torchvision applies this to the train split only; the seed discarded images without the 20
  categories in both splits, which `CocoSegConfig.filter_validation` (default True) follows.

Split selection: the valid image ids of a split (sorted) are permuted with a generator seeded by
`SeedSequence([seed, split number])` and the first `num_<split>` whose image file loads and matches the
annotated size are taken (unreadable or mismatched files are skipped, counted and replaced by the next ids).
The seed's author took the first 1,000 images instead (`data_limit`).

No TensorFlow here: `tfds_builders/coco_seg20` only encodes what this module returns.
"""
from __future__ import annotations

import copy
import dataclasses
import io
import os
import warnings
from typing import Iterator, Optional, Sequence

import numpy as np
from PIL import Image

# torchvision's CAT_LIST: position = class index; 0 = background (no COCO category has id 0).
CAT_LIST = (0, 5, 2, 16, 9, 44, 6, 3, 17, 62, 21, 67, 18, 19, 4, 1, 64, 20, 63, 7, 72)
CLASS_NAMES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
IGNORE_INDEX = 255
SPLITS = ("train", "validation")
_SPLIT_NUMBER = {"train": 0, "validation": 1}
_COCO_SPLIT = {"train": "train", "validation": "val"}


@dataclasses.dataclass(frozen=True)
class CocoSegConfig:
    """Which COCO images make up the dataset (see the module docstring)."""

    num_train: Optional[int] = 1_000  # None: every valid image of train2017
    num_validation: Optional[int] = 1_000  # None: every valid image of val2017
    seed: int = 0  # subsample seed
    min_area: float = 1_000.0  # keep images whose kept annotations' `area` fields sum to more than this
    filter_validation: bool = True  # apply the min_area rule to validation too (torchvision: train only)
    year: str = "2017"

    def __post_init__(self):
        for name in ("num_train", "num_validation"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")

    def num_examples(self, split: str) -> Optional[int]:
        return self.num_train if split == "train" else self.num_validation


def split_files(manual_dir: str, split: str, year: str = "2017") -> tuple[str, str]:
    """(image directory, annotation JSON) of a split in a COCO download.

    Accepts the official layout `<dir>/annotations/instances_val2017.json` + `<dir>/val2017/`, and the JSON
    directly in `<dir>`. Raises FileNotFoundError naming what is missing."""
    if split not in _SPLIT_NUMBER:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    name = f"{_COCO_SPLIT[split]}{year}"
    candidates = [os.path.join(manual_dir, "annotations", f"instances_{name}.json"),
                  os.path.join(manual_dir, f"instances_{name}.json")]
    annotation = next((c for c in candidates if os.path.isfile(c)), None)
    image_dir = os.path.join(manual_dir, name)
    missing = ([f"annotation file (looked for {' and '.join(candidates)})"] if annotation is None else []) + \
              ([f"image directory {image_dir}"] if not os.path.isdir(image_dir) else [])
    if missing:
        raise FileNotFoundError(f"COCO {year} {split} split incomplete in {manual_dir}: missing " + "; ".join(missing)
                                + ". Download train2017.zip, val2017.zip and annotations_trainval2017.zip from "
                                  "https://cocodataset.org/#download and unzip them there.")
    return image_dir, annotation


def load_coco(annotation_file: str):
    """pycocotools COCO index of an instances JSON (clear error for a file that is not one)."""
    from pycocotools.coco import COCO

    try:
        return COCO(annotation_file)
    except Exception as e:  # noqa: BLE001 - json errors, missing keys, ...: name the file
        raise ValueError(f"{annotation_file}: not a COCO instances annotation file ({type(e).__name__}: {e})") from e


def filter_and_remap(annotations: Sequence[dict], categories: Sequence[int] = CAT_LIST) -> list[dict]:
    """FilterAndRemapCocoCategories(remap=True): VOC annotations only, category_id -> class index (deep copies)."""
    kept = copy.deepcopy([a for a in annotations if a["category_id"] in categories])
    for a in kept:
        a["category_id"] = list(categories).index(a["category_id"])
    return kept


def has_valid_annotation(annotations: Sequence[dict], min_area: float = 1_000.0) -> bool:
    """torchvision's _has_valid_annotation on already filtered annotations: non-empty and sum(area) > min_area."""
    return len(annotations) > 0 and sum(a["area"] for a in annotations) > min_area


def annotation_mask(segmentation, height: int, width: int) -> np.ndarray:
    """(H, W) uint8 0/1 mask of one annotation's polygons or RLE (torchvision's convert_coco_poly_to_mask)."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), (str, bytes)):
        rles = dict(segmentation)  # compressed RLE: already what decode takes (torchvision would fail here)
        if isinstance(rles["counts"], str):
            rles["counts"] = rles["counts"].encode("ascii")
    else:
        rles = coco_mask.frPyObjects(segmentation, height, width)
    with warnings.catch_warnings():
        # pycocotools 2.0.11 under NumPy 2: "__array__ implementation doesn't accept a copy keyword" (harmless).
        warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        mask = coco_mask.decode(rles)
    if mask.ndim < 3:
        mask = mask[..., None]
    if mask.shape[:2] != (height, width):
        raise ValueError(f"segmentation decodes to {mask.shape[:2]}, image is {(height, width)}")
    return mask.any(axis=2).astype(np.uint8)


def label_map(annotations: Sequence[dict], height: int, width: int) -> np.ndarray:
    """ConvertCocoPolysToMask on filtered + remapped annotations: (H, W) uint8, 0..20 and 255 at overlaps."""
    if not annotations:
        return np.zeros((height, width), np.uint8)
    masks = np.stack([annotation_mask(a["segmentation"], height, width) for a in annotations])
    cats = np.asarray([a["category_id"] for a in annotations], np.uint8)
    target = (masks * cats[:, None, None]).max(axis=0).astype(np.uint8)
    target[masks.sum(axis=0, dtype=np.int64) > 1] = IGNORE_INDEX
    return target


def valid_image_ids(coco, config: CocoSegConfig, split: str) -> list[int]:
    """Sorted ids of the images that pass the filter of `split` (all images when the split is not filtered)."""
    ids = sorted(coco.getImgIds())
    if split == "validation" and not config.filter_validation:
        return ids
    return [i for i in ids
            if has_valid_annotation(filter_and_remap(coco.loadAnns(coco.getAnnIds(imgIds=i, iscrowd=None))),
                                    config.min_area)]


def subsample_order(ids: Sequence[int], seed: int, split: str) -> list[int]:
    """All `ids` in the seeded random order from which the subsample is taken."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_NUMBER[split]]))
    return [int(ids[i]) for i in rng.permutation(len(ids))]


@dataclasses.dataclass
class LoadedImage:
    """An image file checked against its annotation: raw bytes kept when they are RGB JPEG/PNG, else RGB pixels."""

    path: str
    encoded: Optional[bytes]  # original file bytes (JPEG or PNG, RGB): stored as is
    pixels: Optional[np.ndarray]  # (H, W, 3) uint8 when the file was grey / CMYK / palette / RGBA: converted


def load_image(path: str, height: int, width: int) -> LoadedImage:
    """Reads and fully decodes one image; raises ValueError naming the file for unreadable or mis-sized images."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            size, fmt, mode = im.size, im.format, im.mode
            pixels = None if (fmt in ("JPEG", "PNG") and mode == "RGB") else np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise ValueError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e
    if size != (width, height):
        raise ValueError(f"{path}: image is {size[0]}x{size[1]}, annotations say {width}x{height}")
    return LoadedImage(path, data if pixels is None else None, pixels)


def example(coco, image_dir: str, image_id: int) -> dict:
    """One example: image (LoadedImage), label (H, W, 1) uint8, ids and the kept (remapped) objects."""
    info = coco.loadImgs(image_id)[0]
    height, width = info["height"], info["width"]
    annotations = filter_and_remap(coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)))
    return {
        "image": load_image(os.path.join(image_dir, info["file_name"]), height, width),
        "label": label_map(annotations, height, width)[..., None],
        "image/id": int(image_id),
        "image/filename": info["file_name"],
        "objects": {
            "id": np.asarray([a["id"] for a in annotations], np.int64),
            "label": np.asarray([a["category_id"] for a in annotations], np.int64),
            "area": np.asarray([a["area"] for a in annotations], np.float32),
            "is_crowd": np.asarray([bool(a.get("iscrowd", 0)) for a in annotations], bool),
        },
    }


def examples(manual_dir: str, config: CocoSegConfig, split: str,
             stats: Optional[dict] = None) -> Iterator[tuple[int, dict]]:
    """(image id, example) for the selected images of a split, in the seeded order.

    Walks the seeded permutation of the valid ids, skipping (and counting) images whose file is unreadable or
    does not match the annotated size, until `num_<split>` examples are out; raises ValueError if there are not
    enough. `stats` (a dict), when given, receives 'valid', 'selected' and 'skipped' ({image id: reason})."""
    image_dir, annotation_file = split_files(manual_dir, split, config.year)
    coco = load_coco(annotation_file)
    valid = valid_image_ids(coco, config, split)
    wanted = config.num_examples(split)
    stats = {} if stats is None else stats
    stats.update(valid=len(valid), selected=0, skipped={})
    for image_id in subsample_order(valid, config.seed, split):
        if wanted is not None and stats["selected"] >= wanted:
            break
        try:
            ex = example(coco, image_dir, image_id)
        except ValueError as e:
            stats["skipped"][image_id] = str(e)
            print(f"coco_seg20 {split}: skipping image {image_id}: {e}", flush=True)
            continue
        stats["selected"] += 1
        yield image_id, ex
    print(f"coco_seg20 {split}: {stats['selected']} images of {len(valid)} valid ({len(coco.getImgIds())} in "
          f"{os.path.basename(annotation_file)}); {len(stats['skipped'])} unreadable or mis-sized skipped", flush=True)
    if wanted is not None and stats["selected"] < wanted:
        raise ValueError(f"COCO {split}: asked for {wanted} images, but only {stats['selected']} of the {len(valid)} "
                         f"valid ones could be read ({len(stats['skipped'])} skipped)")
