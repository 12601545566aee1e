"""Mask R-CNN configurations for the toy shapes (`shapes.py`): a learning check of the port on a CPU (TF-free).

* `tiny`: seconds per step, for smoke runs;
* `small`: ResNet-50 + FPN at 128 x 128, trained from scratch ("all" layers), the README's learning check.
"""
from __future__ import annotations

from tfsynth.models.mask_rcnn.config import Config
from tfsynth.models.mask_rcnn.shapes import SHAPE_CLASSES


class _ShapesConfig(Config):
    """What both sizes share: the shapes classes, ResNet-50 + FPN, the anchor scales and mini-masks."""
    BACKBONE = "resnet50"
    NUM_CLASSES = 1 + len(SHAPE_CLASSES)
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    MAX_GT_INSTANCES = 4
    MINI_MASK_SHAPE = (28, 28)


class ShapesTinyConfig(_ShapesConfig):
    NAME = "shapes_tiny"
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    TRAIN_ROIS_PER_IMAGE = 12
    POST_NMS_ROIS_TRAINING = 100
    POST_NMS_ROIS_INFERENCE = 50
    PRE_NMS_LIMIT = 500
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    TOP_DOWN_PYRAMID_SIZE = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    DETECTION_MAX_INSTANCES = 10
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1


class ShapesSmallConfig(_ShapesConfig):
    NAME = "shapes_small"
    IMAGES_PER_GPU = 4
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    TRAIN_ROIS_PER_IMAGE = 32
    POST_NMS_ROIS_TRAINING = 500
    POST_NMS_ROIS_INFERENCE = 200
    PRE_NMS_LIMIT = 1000
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    TOP_DOWN_PYRAMID_SIZE = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 256
    DETECTION_MAX_INSTANCES = 10
    DETECTION_MIN_CONFIDENCE = 0.5
    TRAIN_BN = None  # random init: batch statistics while training, moving averages at inference
    LEARNING_RATE = 0.01
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 5


CONFIGS = {"tiny": ShapesTinyConfig, "small": ShapesSmallConfig}
