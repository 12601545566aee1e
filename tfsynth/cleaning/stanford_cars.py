"""Stanford Cars (Krause et al. 2013) as the `stanford_cars_clean` builder reads it, and the per-photo pipeline.

Manual directory layout (the official archives, extracted):

    cars_train/00001.jpg ...                 8,144 photos
    cars_test/00001.jpg ...                  8,041 photos
    devkit/cars_train_annos.mat              struct `annotations`: bbox_x1, bbox_y1, bbox_x2, bbox_y2, class, fname
    cars_test_annos_withlabels.mat           the same for cars_test (also accepted inside devkit/)
    masks/cars_train/00001.npz ...           only for precomputed masks: a detect() result per photo
                                             (rois [N, 4], class_ids [N], scores [N], masks [H, W, N])

The official splits are merged; the photos (sorted by path) are permuted with the seed and the first
`train_fraction` go to `train`, the rest to `test`, so every segmentation of a photo lands in one split (the
seed split its segmentations 80/20; splitting photos keeps near-duplicate crops of one photo out of both).
Per segmentation, the random draws (square padding side, target ratio, ratio padding sides) come from
`SeedSequence([seed, crc32(photo path), detection index])`. TF-free.
"""
from __future__ import annotations

import dataclasses
import io
import os
import zlib
from typing import Iterator, Optional, Sequence

import numpy as np

from tfsynth.cleaning.filters import FIRST_PASS_RULES, Detection, FilterConfig, FilterReport, failed_rule
from tfsynth.cleaning.normalise import (NormalisedSegmentation, RatioNormal, car_to_frame_ratio, colour_correct,
                                        normalise_segmentation, segmentation_rgba)

OFFICIAL_SPLITS = {"cars_train": "devkit/cars_train_annos.mat",
                   "cars_test": ("cars_test_annos_withlabels.mat", "devkit/cars_test_annos_withlabels.mat")}


@dataclasses.dataclass(frozen=True)
class Photo:
    path: str  # relative to the manual dir, e.g. "cars_train/00001.jpg"
    source_class: int  # Stanford Cars class 1..196
    bbox: tuple[int, int, int, int]  # annotated (x1, y1, x2, y2), kept for reference


def _annotation_file(manual_dir: str, candidates) -> str:
    candidates = (candidates,) if isinstance(candidates, str) else candidates
    for name in candidates:
        path = os.path.join(manual_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{os.path.join(manual_dir, candidates[0])}: Stanford Cars annotation file not found "
                            f"(looked for {', '.join(candidates)} in {manual_dir})")


def read_annotations(manual_dir: str) -> list[Photo]:
    """Both official splits' photos, sorted by path."""
    import scipy.io

    photos = []
    for folder, candidates in OFFICIAL_SPLITS.items():
        path = _annotation_file(manual_dir, candidates)
        try:
            data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
            annotations = np.atleast_1d(data["annotations"])
        except (KeyError, ValueError, OSError, RuntimeError) as error:  # RuntimeError: e.g. MATLAB v7.3 files
            raise ValueError(f"{path}: not a Stanford Cars annotation file ({error})") from error
        for a in annotations:
            try:
                photos.append(Photo(f"{folder}/{a.fname}", int(getattr(a, "class", 0)),
                                    (int(a.bbox_x1), int(a.bbox_y1), int(a.bbox_x2), int(a.bbox_y2))))
            except AttributeError as error:
                raise ValueError(f"{path}: annotation without a required field ({error})") from error
    return sorted(photos, key=lambda p: p.path)


def split_photos(photos: Sequence[Photo], seed: int, train_fraction: float = 0.8) -> dict[str, list[Photo]]:
    """{"train": [...], "test": [...]}: a seeded permutation of the photos cut at `train_fraction`."""
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    ordered = sorted(photos, key=lambda p: p.path)
    order = np.random.default_rng(np.random.SeedSequence([seed, 0x5CA5])).permutation(len(ordered))
    cut = int(round(train_fraction * len(ordered)))
    return {"train": sorted((ordered[i] for i in order[:cut]), key=lambda p: p.path),
            "test": sorted((ordered[i] for i in order[cut:]), key=lambda p: p.path)}


def load_photo(path: str) -> np.ndarray:
    """uint8 [H, W, 3], or [H, W] for a greyscale photo (kept so the colour rule can see it)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("L", "I", "I;16", "1"):
            return np.asarray(im.convert("L"))
        return np.asarray(im.convert("RGB"))


def as_rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image


def precomputed_path(manual_dir: str, photo_path: str) -> str:
    return os.path.join(manual_dir, "masks", os.path.splitext(photo_path)[0] + ".npz")


def save_detections(path: str, result: dict) -> None:
    """Writes one photo's detect() result as the precomputed-masks config reads it (atomic)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, rois=np.asarray(result["rois"], np.int32),
                        class_ids=np.asarray(result["class_ids"], np.int32),
                        scores=np.asarray(result["scores"], np.float32),
                        masks=np.asarray(result["masks"], bool))
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)


def load_detections(path: str) -> dict:
    try:
        with np.load(path) as data:
            return {key: data[key] for key in ("rois", "class_ids", "scores", "masks")}
    except KeyError as error:
        raise ValueError(f"{path}: precomputed detections lack {error}") from error


def detection_rng(seed: int, photo_path: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(photo_path.encode("utf8")), index]))


@dataclasses.dataclass
class CleanedSegmentation:
    photo: Photo
    detection: Detection
    normalised: NormalisedSegmentation


@dataclasses.dataclass
class PhotoOutcome:
    """What one photo gave: accepted segmentations, the first-pass crops' ratios (Figure 3.10), counts."""

    accepted: list
    first_pass_ratios: list
    report: FilterReport


def clean_photo(photo: Photo, image: np.ndarray, detections: Sequence[Detection], filters: FilterConfig,
                target: RatioNormal, seed: int) -> PhotoOutcome:
    """Filters one photo's detections and normalises the survivors."""
    report = FilterReport(images=1)
    accepted, first_pass_ratios = [], []
    for detection in detections:
        rule = failed_rule(detection, image, filters)
        report.add(rule)
        if rule is None or rule not in FIRST_PASS_RULES:
            first_pass_ratios.append(car_to_frame_ratio(segmentation_rgba(image, detection.mask, detection.roi)))
        if rule is None:
            rng = detection_rng(seed, photo.path, detection.index)
            normalised = normalise_segmentation(as_rgb(image), detection.mask, detection.roi, target, rng)
            accepted.append(CleanedSegmentation(photo, detection, normalised))
    return PhotoOutcome(accepted, first_pass_ratios, report)


def resize_rgba(rgba: np.ndarray, size: int) -> np.ndarray:
    """Square RGBA -> size x size (Lanczos on colour premultiplied by alpha, then un-premultiplied); RGB is
    zeroed where alpha is 0 and colour-corrected again."""
    from PIL import Image

    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    premultiplied = (rgba[..., :3].astype(np.float32) * alpha)
    channels = [np.asarray(Image.fromarray(premultiplied[..., c]).resize((size, size), Image.LANCZOS))
                for c in range(3)]
    new_alpha = np.asarray(Image.fromarray(alpha[..., 0]).resize((size, size), Image.LANCZOS)).clip(0, 1)
    rgb = np.stack(channels, axis=-1) / np.maximum(new_alpha[..., None], 1e-6)
    out = np.zeros((size, size, 4), np.uint8)
    a8 = np.round(new_alpha * 255).astype(np.uint8)
    out[..., :3] = np.where(a8[..., None] > 0, np.clip(np.round(rgb), 0, 255), 0).astype(np.uint8)
    out[..., 3] = a8
    return colour_correct(out)


def iter_photos(manual_dir: str, photos: Sequence[Photo]) -> Iterator[tuple[Photo, Optional[np.ndarray], str]]:
    """(photo, image or None, error message) for each photo; unreadable photos yield None and the reason."""
    for photo in photos:
        path = os.path.join(manual_dir, photo.path)
        try:
            yield photo, load_photo(path), ""
        except (OSError, ValueError) as error:
            yield photo, None, f"{path}: {error}"
