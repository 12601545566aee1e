"""`import tfds_builders.nsd` registers the `nsd` TFDS builder."""
from tfds_builders.nsd.nsd_dataset_builder import Builder, NsdConfig

__all__ = ["Builder", "NsdConfig"]
