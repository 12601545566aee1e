"""matterport's `mrcnn` package API (`mrcnn.config`, `mrcnn.utils`, `mrcnn.model`, `mrcnn.visualize`) on
`tfsynth.models.mask_rcnn` (TensorFlow 2.21 / Keras 3), so matterport-style scripts run unchanged:

    from mrcnn.config import Config
    from mrcnn import utils, visualize
    import mrcnn.model as modellib

Not the unrelated `mrcnn` distribution on the package registry: this package is installed by tfsynth itself.
`config`, `utils` and `visualize` never import TensorFlow; `model` does.
"""
