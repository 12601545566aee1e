"""mrcnn.model's NumPy data functions keep matterport's signatures and output layout (no model is built)."""
import sys
import types

import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import utils
from mrcnn.config import Config
from tfsynth.models.mask_rcnn.shapes import ShapesDataset


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    BACKBONE = "resnet50"
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 12
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    MINI_MASK_SHAPE = (28, 28)
    MASK_SHAPE = [14, 14]


def _dataset():
    ds = ShapesDataset()
    ds.load_shapes(3, height=64, width=64, seed=2)
    ds.prepare()
    return ds


def test_data_generator_yields_matterports_inputs_outputs_lists():
    config, ds = TinyConfig(), _dataset()
    np.random.seed(0)
    inputs, outputs = next(modellib.data_generator(ds, config, batch_size=2, random_rois=20, detection_targets=True))
    images, metas, rpn_match, rpn_bbox, class_ids, boxes, masks, rpn_rois, rois = inputs
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.float32
    assert metas.shape == (2, config.IMAGE_META_SIZE) and rpn_match.shape[2] == 1
    assert boxes.dtype == np.int32 and boxes.shape == (2, 4, 4) and masks.shape == (2, 28, 28, 4)
    assert rpn_rois.shape == (2, 20, 4) and rois.shape == (2, 12, 4)
    t_class_ids, t_bbox, t_mask = outputs
    assert t_class_ids.shape == (2, 12, 1) and t_bbox.shape == (2, 12, 3, 4) and t_mask.shape == (2, 12, 14, 14, 3)
    positive = t_class_ids[..., 0] > 0
    assert positive.any() and (t_mask[positive].max(axis=(1, 2, 3)) > 0.5).all()
    assert not t_mask[~positive].any() and not t_bbox[~positive].any()
    np.random.seed(0)
    again, _ = next(modellib.data_generator(ds, config, batch_size=2, random_rois=20, detection_targets=True))
    for a, b in zip(inputs, again):  # np.random.seed makes it repeatable, as in matterport
        np.testing.assert_array_equal(a, b)
    plain_inputs, plain_outputs = next(modellib.data_generator(ds, config, batch_size=1))
    assert len(plain_inputs) == 7 and plain_outputs == []


def test_generate_random_rois_are_valid_and_near_the_boxes():
    np.random.seed(1)
    gt_boxes = np.array([[10, 10, 20, 30]])
    rois = modellib.generate_random_rois((64, 64, 3), 30, np.array([1]), gt_boxes)
    assert rois.shape == (30, 4) and rois.dtype == np.int32
    assert (rois[:, 2] > rois[:, 0]).all() and (rois[:, 3] > rois[:, 1]).all()
    near = rois[:27]  # 90% around the box: within one box size of it
    assert (near[:, 0] >= 0).all() and (near[:, 2] <= 30).all() and (near[:, 3] <= 50).all()


def test_load_image_gt_augment_flips_and_accepts_imgaug_style_augmenters(monkeypatch):
    config, ds = TinyConfig(), _dataset()
    image, meta, class_ids, bbox, mask = modellib.load_image_gt(ds, config, 0, use_mini_mask=False)
    assert image.shape == (64, 64, 3) and mask.shape[:2] == (64, 64) and len(class_ids) == len(bbox)
    np.testing.assert_array_equal(bbox, utils.extract_bboxes(mask))
    flips = set()
    for seed in range(8):
        np.random.seed(seed)
        flipped = modellib.load_image_gt(ds, config, 0, augment=True)[0]
        flips.add(np.array_equal(flipped, image[:, ::-1]) and not np.array_equal(flipped, image))
    assert flips == {True, False}

    calls = []

    class FakeImgaug(types.ModuleType):
        class HooksImages:
            def __init__(self, activator):
                self.activator = activator

    class Flipud:  # an imgaug-like augmenter: to_deterministic() -> object with augment_image
        def to_deterministic(self):
            return self

        def augment_image(self, img, hooks=None):
            calls.append(hooks is not None and hooks.activator(None, self, None, True))
            return img[::-1].copy()

    monkeypatch.setitem(sys.modules, "imgaug", FakeImgaug("imgaug"))
    up, _, _, _, up_mask = modellib.load_image_gt(ds, config, 0, augmentation=Flipud())
    np.testing.assert_array_equal(up, image[::-1])
    np.testing.assert_array_equal(up_mask, mask[::-1])
    assert calls == [False, True]  # the image, then the masks with the Flipud hook active
    monkeypatch.setitem(sys.modules, "imgaug", None)
    with pytest.raises(ValueError, match="imgaug package"):
        modellib.load_image_gt(ds, config, 0, augmentation=Flipud())


def test_mold_mask_log_and_download(tmp_path, capsys, monkeypatch):
    class Square(Config):
        IMAGE_MIN_DIM = 64
        IMAGE_MAX_DIM = 64

    mask = np.zeros((32, 16, 1), bool)
    mask[:16, :8, 0] = True
    molded = utils.mold_mask(mask, Square())
    assert molded.shape == (64, 64, 1) and molded.sum() == 32 * 16  # x2 scale, centred horizontally
    modellib.log("name", np.array([[1.0, -2.0]]))
    assert capsys.readouterr().out.startswith("name                     shape: (1, 2)")
    source = tmp_path / "src.h5"
    source.write_bytes(b"weights")
    monkeypatch.setattr(utils, "COCO_MODEL_URL", source.as_uri())
    utils.download_trained_weights(str(tmp_path / "coco.h5"), verbose=0)
    assert (tmp_path / "coco.h5").read_bytes() == b"weights"
