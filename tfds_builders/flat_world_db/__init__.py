"""`import tfds_builders.flat_world_db` registers the `flat_world_db` TFDS builder."""
from tfds_builders.flat_world_db.flat_world_db_dataset_builder import Builder

__all__ = ["Builder"]
