"""`import tfds_builders.proc_synth_db` registers the `proc_synth_db` TFDS builder."""
from tfds_builders.proc_synth_db.proc_synth_db_dataset_builder import Builder
from tfds_builders.synth3d_base import Synth3dBuilderConfig

__all__ = ["Builder", "Synth3dBuilderConfig"]
