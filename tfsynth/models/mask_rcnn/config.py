"""Mask R-CNN configuration with matterport's field names and defaults (TF-free).

Subclass `Config` and override class attributes, exactly as with matterport's `mrcnn.config.Config`:

    class CarsConfig(Config):
        NAME = "cars"
        NUM_CLASSES = 1 + 1

or derive a config without a subclass: `make_config(CocoInferenceConfig, DETECTION_MIN_CONFIDENCE=0.5)`.
`__init__` computes BATCH_SIZE, IMAGE_SHAPE and IMAGE_META_SIZE from the other fields, as matterport does.
`CocoInferenceConfig` is the configuration the seed used to segment Stanford Cars (its Appendix C).
"""
from __future__ import annotations

import numpy as np

# matterport's class order for the COCO weights (mask_rcnn_coco.h5): index = class id, 0 = background.
COCO_CLASS_NAMES = (
    "BG", "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)

# Fields that __init__ derives from the others (never set them directly).
DERIVED_FIELDS = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")


class Config:
    """Base configuration; same fields and defaults as matterport's `mrcnn.config.Config`."""

    NAME = None  # name of the experiment; the training log directory starts with it
    GPU_COUNT = 1  # kept for compatibility: replicas are tf.distribute's business here, not the model's
    IMAGES_PER_GPU = 2  # images per batch (per replica)
    STEPS_PER_EPOCH = 1000
    VALIDATION_STEPS = 50
    BACKBONE = "resnet101"  # "resnet50", "resnet101", or a callable (input_image, stage5, train_bn) -> [C1..C5]
    COMPUTE_BACKBONE_SHAPE = None  # callable(image_shape) -> [[h, w]] per stride; needed with a callable BACKBONE
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    TOP_DOWN_PYRAMID_SIZE = 256
    NUM_CLASSES = 1  # including background
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)  # square anchor side (pixels), one per pyramid level
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]  # width / height
    RPN_ANCHOR_STRIDE = 1
    RPN_NMS_THRESHOLD = 0.7
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    PRE_NMS_LIMIT = 6000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    IMAGE_RESIZE_MODE = "square"  # "none", "square", "pad64" or "crop" (training only)
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    IMAGE_MIN_SCALE = 0
    IMAGE_CHANNEL_COUNT = 3
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    MASK_SHAPE = [28, 28]
    MAX_GT_INSTANCES = 100
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])
    DETECTION_MAX_INSTANCES = 100
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.,
        "rpn_bbox_loss": 1.,
        "mrcnn_class_loss": 1.,
        "mrcnn_bbox_loss": 1.,
        "mrcnn_mask_loss": 1.,
    }
    USE_RPN_ROIS = True
    # None: BN follows the training flag; False: frozen (moving statistics, the default); True: always batch stats.
    TRAIN_BN = False
    GRADIENT_CLIP_NORM = 5.0  # clip by the global norm of all gradients (Keras 2's `clipnorm` did the same)
    save_best_only = False

    def __init__(self):
        self.BATCH_SIZE = self.IMAGES_PER_GPU * self.GPU_COUNT
        side = self.IMAGE_MIN_DIM if self.IMAGE_RESIZE_MODE == "crop" else self.IMAGE_MAX_DIM
        self.IMAGE_SHAPE = np.array([side, side, self.IMAGE_CHANNEL_COUNT])
        # image_id (1) + original shape (3) + molded shape (3) + window (4) + scale (1) + active classes
        self.IMAGE_META_SIZE = 1 + 3 + 3 + 4 + 1 + self.NUM_CLASSES

    def to_dict(self) -> dict:
        """Every upper-case field (including the derived ones) -> value."""
        return {name: getattr(self, name) for name in dir(self) if name.isupper()
                and (not callable(getattr(self, name)) or name in ("BACKBONE", "COMPUTE_BACKBONE_SHAPE"))}

    def display(self):
        """Prints the configuration like matterport's `Config.display()`."""
        print("\nConfigurations:")
        for name, value in sorted(self.to_dict().items()):
            print(f"{name:30} {value}")
        print("\n")


def make_config(base=Config, **fields) -> Config:
    """An instance of `base` with `fields` overridden (derived fields recomputed); unknown names raise."""
    known = {name for name in dir(base) if not name.startswith("__")}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown Mask R-CNN config field(s) {unknown}")
    derived = sorted(set(fields) & set(DERIVED_FIELDS))
    if derived:
        raise ValueError(f"{derived} are derived from other fields; set IMAGES_PER_GPU / IMAGE_MAX_DIM / "
                         f"NUM_CLASSES instead")
    cls = type(f"{base.__name__}Derived", (base,), dict(fields))
    return cls()


class CocoConfig(Config):
    """matterport's `samples/coco/coco.py` training configuration (80 COCO classes + background)."""

    NAME = "coco"
    IMAGES_PER_GPU = 2
    NUM_CLASSES = 1 + 80


class CocoInferenceConfig(CocoConfig):
    """The inference configuration of the seed's Appendix C: one image per batch, confidence >= 0.7."""

    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
