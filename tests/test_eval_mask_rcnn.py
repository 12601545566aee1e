"""eval.mask_rcnn: COCO-format datasets, VOC-style and COCO mAP of a detector, and the CLI's input checks."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from eval.mask_rcnn import CocoJsonDataset, evaluate, main
from tfsynth.models.mask_rcnn.utils import extract_bboxes


def _coco_files(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(images / "a.png")
    annotations = {
        "images": [{"id": 7, "file_name": "a.png", "height": 20, "width": 30}],
        "categories": [{"id": 3, "name": "car"}, {"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "area": 50.0, "bbox": [2, 4, 10, 5],
             "segmentation": [[2, 4, 12, 4, 12, 9, 2, 9]]},
            {"id": 2, "image_id": 7, "category_id": 1, "iscrowd": 0, "area": 36.0, "bbox": [20, 10, 6, 6],
             "segmentation": [[20, 10, 26, 10, 26, 16, 20, 16]]}]}
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(annotations))
    return str(path), str(images)


class _GroundTruthDetector:
    """A stand-in for MaskRCNN.detect that returns the dataset's own instances (shifted when asked)."""

    def __init__(self, dataset, shift=0):
        self.dataset, self.shift = dataset, shift

    def detect(self, images):
        masks, class_ids = self.dataset.load_mask(self.dataset.image_ids[0])
        masks = np.roll(masks, self.shift, axis=1)
        return [{"rois": extract_bboxes(masks), "class_ids": class_ids, "scores": np.linspace(0.9, 0.8, len(class_ids)),
                 "masks": masks}]


def test_coco_json_dataset_and_evaluate(tmp_path):
    ann, images = _coco_files(tmp_path)
    ds = CocoJsonDataset()
    ds.load_coco(ann, images)
    ds.prepare()
    assert ds.class_names == ["BG", "person", "car"]  # category ids sorted -> contiguous class ids
    masks, class_ids = ds.load_mask(0)
    assert masks.shape == (20, 30, 2) and list(class_ids) == [2, 1]
    np.testing.assert_array_equal(extract_bboxes(masks)[1], [10, 20, 16, 26])
    perfect = evaluate(_GroundTruthDetector(ds), ds)
    assert perfect["voc_mask_map50"] == pytest.approx(1.0)
    assert perfect["coco"]["segm"]["AP"] == pytest.approx(1.0) and perfect["coco"]["bbox"]["AP50"] == pytest.approx(1.0)
    # Shifted 5 px right: the 10-px-wide box keeps IoU 5/15 = 0.33, the 6-px one 1/11: no match at 0.5.
    shifted = evaluate(_GroundTruthDetector(ds, shift=5), ds)
    assert shifted["voc_mask_map50"] == 0.0 and shifted["coco"]["segm"]["AP50"] == 0.0


def test_cli_names_the_bad_flag_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--weights", str(tmp_path / "missing.h5"), "--shapes", "3"])
    assert "--weights" in capsys.readouterr().err
    weights = tmp_path / "w.h5"
    weights.write_bytes(b"")
    with pytest.raises(SystemExit):
        main(["--weights", str(weights)])
    assert "exactly one of --shapes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--weights", str(weights), "--coco-annotations", str(tmp_path / "nope.json")])
    assert "--coco-annotations" in capsys.readouterr().err


def test_shapes_training_cli_rejects_bad_counts_before_building(tmp_path, capsys):
    from train.mask_rcnn_shapes import main as train_main

    with pytest.raises(SystemExit):
        train_main(["--workdir", str(tmp_path), "--epochs", "0"])
    assert "--epochs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train_main(["--workdir", str(tmp_path), "--config", "huge"])
    assert "--config" in capsys.readouterr().err


def test_shapes_configs_build_valid_matterport_configs():
    from tfsynth.models.mask_rcnn.shapes_configs import CONFIGS

    for cls in CONFIGS.values():
        config = cls()
        assert config.IMAGE_SHAPE[0] % 64 == 0 and config.NUM_CLASSES == 3
        assert config.BATCH_SIZE == config.IMAGES_PER_GPU


def test_shapes_training_writes_results_and_evaluates_a_given_checkpoint(tmp_path):
    # tiny keeps matterport's frozen BatchNorm (TRAIN_BN=False): nothing to recalibrate (the recalibration itself:
    # tests/test_mask_rcnn_training.py); small follows the training flag and is recalibrated
    from train.mask_rcnn_shapes import main as train_main

    common = ["--config", "tiny", "--train-images", "4", "--eval-images", "2", "--precise-bn-batches", "2"]
    first = train_main(["--workdir", str(tmp_path / "run"), "--epochs", "1", *common])
    assert first["precise_bn_layers"] == 0 and os.path.basename(first["weights"]) == "mask_rcnn_shapes_tiny_0001.h5"
    assert len(first["loss_per_epoch"]) == 1 and 0 <= first["voc_mask_map50"] <= 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["weights"] == first["weights"] and saved["train_cpu_s"] > 0
    again = train_main(["--workdir", str(tmp_path / "eval"), "--weights", first["weights"], *common])
    assert again["train_cpu_s"] is None and again["weights"] == first["weights"]
    assert again["voc_mask_map50"] == pytest.approx(first["voc_mask_map50"])
