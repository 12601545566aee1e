"""`import tfds_builders.noise_scenes` registers the `noise_scenes` TFDS builder."""
from tfds_builders.noise_scenes.noise_scenes_dataset_builder import Builder, NoiseScenesBuilderConfig

__all__ = ["Builder", "NoiseScenesBuilderConfig"]
