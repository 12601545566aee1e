"""`import tfds_builders.stanford_cars_clean` registers the `stanford_cars_clean` TFDS builder."""
from tfds_builders.stanford_cars_clean.stanford_cars_clean_dataset_builder import (Builder, StanfordCarsCleanConfig,
                                                                                   load_report)

__all__ = ["Builder", "StanfordCarsCleanConfig", "load_report"]
