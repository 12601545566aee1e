"""`import tfds_builders.fractal_db` registers the `fractal_db` TFDS builder."""
from tfds_builders.fractal_db.fractal_db_dataset_builder import Builder, FractalDbBuilderConfig

__all__ = ["Builder", "FractalDbBuilderConfig"]
