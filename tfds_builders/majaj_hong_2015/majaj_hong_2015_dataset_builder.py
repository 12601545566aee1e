"""MajajHong2015 (monkey V4 and IT, HvM images) as a TFDS builder, from Brain-Score's BrainIO files.

    tfds build majaj_hong_2015 --imports tfds_builders.majaj_hong_2015 --manual_dir ~/brain/majajhong2015

Reading and cleaning live in `tfsynth.neural.majaj` (TF-free); this builder only encodes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfsynth.neural.majaj import MajajHongSpec, iter_stimuli, load_majaj_hong

_INSTRUCTIONS = """
Put Brain-Score's MajajHong2015 files in the manual dir (any sub-folder layout; searched recursively):

1. Trial-level assemblies (BrainIO netCDF-4 .nc): `assy_dicarlo_MajajHong2015_public.nc` and
   `assy_dicarlo_MajajHong2015_private.nc` (or the full `dicarlo.MajajHong2015` assembly, or a `.temporal`
   one with 10/20-ms bins inside 70-170 ms), e.g. saved from Python with brainscore_vision:
       from brainscore_vision import load_dataset
       load_dataset('MajajHong2015.public').to_netcdf('assy_dicarlo_MajajHong2015_public.nc')
   (the brainio S3 files 'brainio-brainscore/assy_dicarlo_MajajHong2015_*.nc' are the same).
   Equivalent .npz: arrays 'data' (presentation x neuroid [x time_bin]) and 1-D coordinates
   'presentation.stimulus_id', 'presentation.repetition', 'neuroid.neuroid_id', 'neuroid.region', ...
2. The stimulus sets: CSV(s) with stimulus_id (or image_id), filename, object_name, category_name, variation
   (`image_dicarlo_hvm-public.csv`, `..-private.csv`) and the images, loose or in their .zip archives.

Then: tfds build majaj_hong_2015 --imports tfds_builders.majaj_hong_2015 --manual_dir DIR
"""


@dataclasses.dataclass
class MajajHong2015Config(tfds.core.BuilderConfig):
    spec: MajajHongSpec = MajajHongSpec()


class Builder(tfds.core.GeneratorBasedBuilder):
    """MajajHong2015: macaque V4/IT responses to HvM images (Brain-Score's cleaned assemblies)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [MajajHong2015Config(
        name="default", description="V4 (88) and IT (168) sites, mean rate 70-170 ms, all repetitions.")]
    DEFAULT_BUILDER_CONFIG_NAME = "default"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        spec = self.builder_config.spec
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "stimulus_id": tfds.features.Text(),
                "object_name": tfds.features.Text(),
                "category_name": tfds.features.Text(),
                "variation": tfds.features.Scalar(dtype=np.int32),
                "access": tfds.features.Text(),
                "repetition": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "responses": tfds.features.FeaturesDict({
                    region: tfds.features.Tensor(shape=(None, count) if count else (None, None), dtype=np.float32,
                                                 encoding=tfds.features.Encoding.ZLIB)
                    for region, count in spec.regions}),
            }),
            homepage="https://www.brain-score.org/vision/",
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # examples stay in stimulus order
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        stimuli, meta = load_majaj_hong(str(dl_manager.manual_dir), self.builder_config.spec)
        self.info.metadata.update(meta)
        return {"train": self._generate_examples(stimuli)}

    def _generate_examples(self, stimuli):
        yield from iter_stimuli(stimuli)
