"""Natural Scenes Dataset (Allen et al. 2022) shared images with one subject's fMRI responses, as a TFDS builder.

    tfds build nsd --imports tfds_builders.nsd --config subj01 --manual_dir ~/brain/nsd

Reading and cleaning live in `tfsynth.neural.nsd` (TF-free); this builder only encodes.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfsynth.neural.nsd import NsdSpec, iter_images, load_subject

_INSTRUCTIONS = """
Download from the NSD AWS bucket (s3://natural-scenes-dataset, after accepting the NSD terms of use) into the
manual dir, keeping any folder layout (files are searched recursively; per-subject files must sit under a
folder named subjNN):

  nsddata/experiments/nsd/nsd_expdesign.mat
  nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5                                  (~37 GB; 'imgBrick')
  nsddata_betas/ppdata/subjNN/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_sessionSS.hdf5   (any number of
                                                                                  sessions, from 01 on)
  nsddata/ppdata/subjNN/func1pt8mm/roi/prf-visualrois.nii.gz                    (V1v/d, V2v/d, V3v/d, hV4)
  .../subjNN/.../objectrois.nii.gz   YOUR LO / PfS volume in the same func1pt8mm space, NIfTI-1 (or .npz with
                                     a 'data' array in NIfTI (X, Y, Z) order), labels 1 = LO, 2 = PfS

NSD ships no LO/PfS ROIs: derive them, e.g., from an object-selective localizer or an atlas (Julian et al.
2012 object parcels) resampled to the subject's func1pt8mm grid. To build without them use a config with
regions=('V1','V2','V3','V4'). nibabel is not needed (tfsynth.neural.nifti reads NIfTI-1).

Then: tfds build nsd --imports tfds_builders.nsd --config subj01 --manual_dir DIR
"""


@dataclasses.dataclass
class NsdConfig(tfds.core.BuilderConfig):
    spec: NsdSpec = NsdSpec()


def _configs():
    out = []
    for s in range(1, 9):
        out.append(NsdConfig(name=f"subj{s:02d}", spec=NsdSpec(subject=s),
                             description=f"Subject {s}: V1, V2, V3, V4 (pRF ROIs), LO, PfS (user object ROIs)."))
    for s in range(1, 9):
        out.append(NsdConfig(name=f"subj{s:02d}_early", spec=NsdSpec(subject=s, regions=("V1", "V2", "V3", "V4")),
                             description=f"Subject {s}: V1, V2, V3, V4 only (no object-ROI file needed)."))
    return out


class Builder(tfds.core.GeneratorBasedBuilder):
    """NSD shared images with single-trial fMRI responses of one subject in V1-V4, LO and PfS."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = _configs()
    DEFAULT_BUILDER_CONFIG_NAME = "subj01"
    MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS

    def _info(self) -> tfds.core.DatasetInfo:
        spec = self.builder_config.spec
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "stimulus_id": tfds.features.Text(),
                "nsd_id": tfds.features.Scalar(dtype=np.int32),
                "repetition": tfds.features.Tensor(shape=(None,), dtype=np.int32),
                "responses": tfds.features.FeaturesDict({
                    region: tfds.features.Tensor(shape=(None, None), dtype=np.float32,
                                                 encoding=tfds.features.Encoding.ZLIB)
                    for region in spec.regions}),
            }),
            homepage="https://naturalscenesdataset.org",
            metadata=tfds.core.MetadataDict(),
            disable_shuffling=True,  # examples stay in stimulus order
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = str(dl_manager.manual_dir)
        records, meta = load_subject(root, self.builder_config.spec)
        self.info.metadata.update(meta)
        return {"train": self._generate_examples(root, records)}

    def _generate_examples(self, root, records):
        yield from iter_images(root, records)
