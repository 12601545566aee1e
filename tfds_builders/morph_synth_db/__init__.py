"""`import tfds_builders.morph_synth_db` registers the `morph_synth_db` TFDS builder."""
from tfds_builders.morph_synth_db.morph_synth_db_dataset_builder import Builder

__all__ = ["Builder"]
