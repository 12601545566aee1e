"""multiview_shapes: multi-view renders + ground-truth point clouds for DPC shape & pose (see README.md)."""
from tfds_builders.multiview_shapes.multiview_shapes_dataset_builder import Builder, MultiviewBuilderConfig

__all__ = ["Builder", "MultiviewBuilderConfig"]
