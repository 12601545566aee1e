"""The stanford_cars_clean builder on a tiny generated Stanford Cars folder: precomputed masks (every rule
rejects exactly its planted case) and the Mask R-CNN path with a random-init tiny model (plumbing)."""
import dataclasses
import os
import shutil

import keras
import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

from tfds_builders.stanford_cars_clean import Builder, StanfordCarsCleanConfig, load_report
from tfsynth.cleaning import stanford_cars as sc
from tfsynth.cleaning.filters import FilterConfig
from tfsynth.cleaning.normalise import car_to_frame_ratio

H, W = 240, 320
CAR, TRUCK, PERSON = 3, 8, 1


def _ellipse(cy, cx, hy, hx):
    yy, xx = np.mgrid[0:H, 0:W]
    return ((yy + 0.5 - cy) / hy) ** 2 + ((xx + 0.5 - cx) / hx) ** 2 <= 1


def _box(mask):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]


def _photo(rng, mask, grey=False):
    image = rng.integers(60, 200, (H, W, 3)).astype(np.uint8)
    image[mask] = (200, 30, 30)
    return Image.fromarray(image).convert("L") if grey else Image.fromarray(image)


# (folder, file, [(class id, score, mask)], grey) -- one planted rejection per rule, 3 good segmentations.
def _plan():
    big = _ellipse(120, 160, 70, 110)
    small = _ellipse(120, 160, 28, 28)
    sparse = np.zeros((H, W), bool)
    sparse[60:180, 60:260] = big[60:180, 60:260] & (np.arange(W)[None, 60:260] % 3 == 0)
    split = _ellipse(120, 90, 60, 50) | _ellipse(120, 240, 60, 50)
    cut = _ellipse(120, 40, 90, 100)
    return [
        ("cars_train", "00001.jpg", [(CAR, 0.95, big), (PERSON, 0.99, big)], False),
        ("cars_train", "00002.jpg", [(TRUCK, 0.8, big), (CAR, 0.5, big)], False),
        ("cars_train", "00003.jpg", [(CAR, 0.9, small), (CAR, 0.9, sparse)], False),
        ("cars_train", "00004.jpg", [(CAR, 0.9, big)], True),
        ("cars_train", "00005.jpg", None, False),  # no precomputed detections
        ("cars_test", "00001.jpg", [(CAR, 0.9, split)], False),
        ("cars_test", "00002.jpg", [(CAR, 0.9, cut)], False),
        ("cars_test", "00003.jpg", [(CAR, 0.97, _ellipse(110, 170, 80, 100))], False),
        ("cars_test", "00004.jpg", [], False),  # unreadable file
    ]


EXPECTED_REJECTED = {"label": 1, "confidence": 1, "bbox_size": 1, "mask_fill": 1, "colour": 1, "occlusion": 1,
                     "truncation": 1}


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("stanford_cars")
    rng = np.random.default_rng(0)
    annotations = {"cars_train": [], "cars_test": []}
    for i, (folder, name, detections, grey) in enumerate(_plan()):
        os.makedirs(root / folder, exist_ok=True)
        path = root / folder / name
        if folder == "cars_test" and name == "00004.jpg":
            path.write_bytes(b"not a jpeg")
        else:
            _photo(rng, detections[0][2] if detections else np.zeros((H, W), bool), grey).save(path, quality=95)
        annotations[folder].append({"bbox_x1": 1, "bbox_y1": 1, "bbox_x2": W - 1, "bbox_y2": H - 1,
                                    "class": 10 + i, "fname": name})
        if detections is not None:
            masks = np.stack([m for _, _, m in detections], -1) if detections else np.zeros((H, W, 0), bool)
            sc.save_detections(sc.precomputed_path(str(root), f"{folder}/{name}"), {
                "rois": np.array([_box(m) for _, _, m in detections]).reshape(-1, 4),
                "class_ids": np.array([c for c, _, _ in detections]), "scores": np.array([s for _, s, _ in detections]),
                "masks": masks})
    os.makedirs(root / "devkit")
    for folder, target in (("cars_train", root / "devkit" / "cars_train_annos.mat"),
                           ("cars_test", root / "cars_test_annos_withlabels.mat")):
        records = np.array([tuple(a.values()) for a in annotations[folder]],
                           dtype=[(k, object) for k in annotations[folder][0]])
        scipy.io.savemat(str(target), {"annotations": records.reshape(1, -1)})
    return str(root)


def _build(config, manual_dir, data_dir):
    builder = Builder(config=config, data_dir=str(data_dir))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def _examples(builder, split):
    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def test_annotations_and_the_seeded_photo_split(manual_dir):
    photos = sc.read_annotations(manual_dir)
    assert [p.path for p in photos][:2] == ["cars_test/00001.jpg", "cars_test/00002.jpg"] and len(photos) == 9
    assert {p.source_class for p in photos} == set(range(10, 19))
    splits = sc.split_photos(photos, seed=0)
    assert len(splits["train"]) == 7 and len(splits["test"]) == 2
    assert sorted(p.path for s in splits.values() for p in s) == sorted(p.path for p in photos)
    assert splits == sc.split_photos(photos, seed=0) and splits != sc.split_photos(photos, seed=1)
    with pytest.raises(FileNotFoundError, match="cars_train_annos.mat"):
        sc.read_annotations(os.path.dirname(manual_dir))


def test_precomputed_masks_build_rejects_each_planted_case(manual_dir, tmp_path):
    config = StanfordCarsCleanConfig(name="test_precomputed", mask_source="precomputed", ratio_mean=0.3,
                                     ratio_std=0.02, seed=0)
    builder = _build(config, manual_dir, tmp_path)
    report = load_report(builder)
    total = report["total"]
    assert total["rejected"] == EXPECTED_REJECTED
    assert total["detections"] == 10 and total["accepted"] == 3 and total["after_first_pass"] == 5
    assert total["images"] == 9 and total["unreadable_images"] == 1
    assert sum(report[s]["photos_without_precomputed_masks"] for s in ("train", "test")) == 1
    splits = sc.split_photos(sc.read_annotations(manual_dir), seed=0)
    plan = {f"{folder}/{name}": dets for folder, name, dets, _ in _plan()}
    seen = []
    for split in ("train", "test"):
        assert os.path.exists(os.path.join(builder.data_dir, f"ratios_before_{split}.png"))
        assert os.path.exists(os.path.join(builder.data_dir, f"ratios_after_{split}.png"))
        for ex in _examples(builder, split):
            source = ex["source_image"].decode()
            assert source in {p.path for p in splits[split]}
            class_id, score, mask = plan[source][ex["detection_index"]]
            image = ex["image"]
            assert image.shape[0] == image.shape[1] and image.shape[2] == 4
            assert np.count_nonzero(image[..., 3]) == mask.sum()  # the mask survives normalisation exactly
            assert ex["ratio"] == pytest.approx(car_to_frame_ratio(image))
            assert abs(ex["ratio"] - ex["target_ratio"]) < 0.01 and ex["ratio_square"] > ex["ratio"]
            assert not image[image[..., 3] == 0].any()
            assert builder.info.features["label"].int2str(ex["label"]) == ("truck" if class_id == TRUCK else "car")
            assert ex["score"] == pytest.approx(score) and list(ex["bbox"]) == _box(mask)
            seen.append((source, int(ex["detection_index"])))
    assert sorted(seen) == [("cars_test/00003.jpg", 0), ("cars_train/00001.jpg", 0), ("cars_train/00002.jpg", 0)]


def test_maskrcnn_config_runs_a_random_init_model_end_to_end(manual_dir, tmp_path):
    """Plumbing only: a tiny random-init Mask R-CNN (classifier forced to 'car', masks to the full box, no box
    refinement, so detections are the highest-scoring anchors) saved in matterport's format and loaded by the
    builder from `weights_path`."""
    from tfsynth.models.mask_rcnn.model import MaskRCNN
    from tfds_builders.stanford_cars_clean.stanford_cars_clean_dataset_builder import mask_rcnn_config

    overrides = (("BACKBONE", "resnet50"), ("IMAGE_MIN_DIM", 128), ("IMAGE_MAX_DIM", 128), ("NUM_CLASSES", 9),
                 ("RPN_ANCHOR_SCALES", (8, 16, 32, 64, 128)), ("POST_NMS_ROIS_INFERENCE", 50),
                 ("PRE_NMS_LIMIT", 500), ("FPN_CLASSIF_FC_LAYERS_SIZE", 32), ("TOP_DOWN_PYRAMID_SIZE", 32),
                 ("MASK_POOL_SIZE", 7), ("MASK_SHAPE", (14, 14)), ("DETECTION_MAX_INSTANCES", 5))
    keras.utils.set_random_seed(0)
    model = MaskRCNN("inference", mask_rcnn_config(overrides), model_dir=str(tmp_path))
    rpn_bbox = model.keras_model.get_layer("rpn_model").get_layer("rpn_bbox_pred")
    for layer, bias in ((model.keras_model.get_layer("mrcnn_class_logits"), np.eye(9)[CAR] * 10),
                        (model.keras_model.get_layer("mrcnn_mask"), np.full(9, 10.0)),
                        (model.keras_model.get_layer("mrcnn_bbox_fc"), np.zeros(36)),  # boxes = proposals
                        (rpn_bbox, np.zeros(12))):  # proposals = anchors
        layer.weights[0].assign(np.zeros(layer.weights[0].shape, np.float32))
        layer.weights[1].assign(bias.astype(np.float32))
    weights = str(tmp_path / "tiny_mask_rcnn.h5")
    model.save_weights(weights)
    config = StanfordCarsCleanConfig(name="test_maskrcnn", mask_source="maskrcnn", weights_path=weights,
                                     mask_rcnn_overrides=overrides, filters=FilterConfig(min_bbox_side=16,
                                                                                         max_border_coverage=1.0))
    builder = _build(config, manual_dir, tmp_path / "data")
    total = load_report(builder)["total"]
    examples = _examples(builder, "train") + _examples(builder, "test")
    assert total["images"] == 9 and total["unreadable_images"] == 1
    assert total["detections"] > 0 and total["accepted"] == len(examples) > 0
    assert total["rejected"]["label"] == 0 and total["rejected"]["colour"] >= 1  # the grey photo
    for ex in examples:
        assert builder.info.features["label"].int2str(ex["label"]) == "car" and ex["score"] > 0.99
        y1, x1, y2, x2 = ex["bbox"]
        assert np.count_nonzero(ex["image"][..., 3]) <= (y2 - y1) * (x2 - x1)

    # The same detections stored by the precompute tool and read back by precomputed_masks: the same dataset.
    from tfds_builders.stanford_cars_clean.precompute import precompute

    copy = tmp_path / "copy"
    shutil.copytree(manual_dir, copy, ignore=shutil.ignore_patterns("masks"))
    counts = precompute(str(copy), weights, overrides=overrides)
    assert counts["written"] == 8 and counts["unreadable"] == 1 and counts["detections"] == total["detections"]
    assert precompute(str(copy), weights, overrides=overrides)["already_done"] == 8  # resumes: nothing to redo
    stored = _build(dataclasses.replace(config, name="test_stored", mask_source="precomputed"), str(copy),
                    tmp_path / "data3")
    assert load_report(stored)["total"] == total
    for split in ("train", "test"):
        for ours, theirs in zip(_examples(builder, split), _examples(stored, split)):
            np.testing.assert_array_equal(ours["image"], theirs["image"])
            assert ours["source_image"] == theirs["source_image"]

    with pytest.raises(FileNotFoundError, match="no_such.h5"):
        _build(StanfordCarsCleanConfig(name="test_missing_weights", weights_path=str(tmp_path / "no_such.h5")),
               manual_dir, tmp_path / "data2")
