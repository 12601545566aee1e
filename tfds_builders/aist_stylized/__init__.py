"""`import tfds_builders.aist_stylized` registers the `aist_stylized` TFDS builder
(AIST-stylised multi-view renders)."""
from tfds_builders.aist_stylized.aist_stylized_dataset_builder import AISTStylizedConfig, Builder

__all__ = ["AISTStylizedConfig", "Builder"]
