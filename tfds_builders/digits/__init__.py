"""`import tfds_builders.digits` registers the `digits` TFDS builder."""
from tfds_builders.digits.digits_dataset_builder import Builder, DigitsBuilderConfig

__all__ = ["Builder", "DigitsBuilderConfig"]
