"""Mask R-CNN for Keras 3 after matterport's `mrcnn` (same Config fields, layer names, weights and API).

`config`, `utils`, `hdf5` and `shapes` are TF-free; `MaskRCNN` (in `model`) is imported on first use so that
`from tfsynth.models.mask_rcnn import Config` does not load TensorFlow.
"""
from tfsynth.models.mask_rcnn.config import (COCO_CLASS_NAMES, CocoConfig, CocoInferenceConfig, Config,
                                             make_config)

__all__ = ["COCO_CLASS_NAMES", "CocoConfig", "CocoInferenceConfig", "Config", "make_config", "MaskRCNN",
           "LAYER_REGEX", "LOSS_NAMES"]


def __getattr__(name):
    if name in ("MaskRCNN", "LAYER_REGEX", "LOSS_NAMES"):
        from tfsynth.models.mask_rcnn import model

        return getattr(model, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
