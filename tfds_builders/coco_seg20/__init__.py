"""`import tfds_builders.coco_seg20` registers the `coco_seg20` TFDS builder."""
from tfds_builders.coco_seg20.coco_seg20_dataset_builder import Builder, CocoSeg20BuilderConfig

__all__ = ["Builder", "CocoSeg20BuilderConfig"]
