"""matterport's `mrcnn.config`: the `Config` base class (same fields, defaults, `display()`)."""
from tfsynth.models.mask_rcnn.config import Config

__all__ = ["Config"]
