"""`import tfds_builders.majaj_hong_2015` registers the `majaj_hong_2015` TFDS builder."""
from tfds_builders.majaj_hong_2015.majaj_hong_2015_dataset_builder import Builder, MajajHong2015Config

__all__ = ["Builder", "MajajHong2015Config"]
