"""Natural Scenes Dataset (Allen et al. 2022): one subject's single-trial betas for the shared images, per ROI.

Files (the NSD release's own names; searched recursively under the manual dir):
* `nsd_expdesign.mat` (nsddata/experiments/nsd): `masterordering` (1 x 30000: trial -> 1-based index into the
  subject's 10,000 images), `subjectim` (8 x 10000: 1-based 73k ids), `sharedix` (1 x 1000: 1-based 73k ids
  of the images every subject saw);
* `nsd_stimuli.hdf5` (nsddata_stimuli/stimuli/nsd): 'imgBrick', (73000, 425, 425, 3) uint8;
* per subject, under a folder named `subjNN` (e.g. nsddata_betas/ppdata/subj01/func1pt8mm/
  betas_fithrf_GLMdenoise_RR/): `betas_sessionSS.hdf5`, '/betas' int16 (750 trials, Z, Y, X) = percent signal
  change x 300; the sessions present are used, in order;
* per subject, under `subjNN` (nsddata/ppdata/subjNN/func1pt8mm/roi/): `prf-visualrois.nii.gz` (labels
  1 V1v, 2 V1d, 3 V2v, 4 V2d, 5 V3v, 6 V3d, 7 hV4; 0 / -1 outside) and a user-supplied object-ROI volume
  `objectrois.nii.gz` in the same space (default labels 1 LO, 2 PfS, e.g. a LOC/pFs parcel from an fLoc
  objects > scrambled contrast or an atlas resampled to func1pt8mm). ROI volumes are NIfTI-1 in (X, Y, Z)
  order (read with `tfsynth.neural.nifti`, no nibabel) or .npz with a 'data' array in the same order.

Cleaning: betas / 300 (percent signal change), z-scored per voxel within each session (NSD's recommended
normalisation; voxels constant within a session get 0), then for every shared image each of its (up to 3)
repetitions kept in presentation order. Voxels are ordered by np.nonzero over (Z, Y, X). TF-free.
"""
from __future__ import annotations

import dataclasses
import os
import re
from typing import Iterator, Optional

import numpy as np

from tfsynth.neural.nifti import read_nifti

__all__ = ["NsdSpec", "read_expdesign", "shared_trials", "load_subject", "iter_images", "PRF_LABELS",
           "VISUAL_DEGREES", "TRIALS_PER_SESSION"]

TRIALS_PER_SESSION = 750
VISUAL_DEGREES = 8.4  # the 425 px NSD images span 8.4 x 8.4 degrees
PRF_LABELS = (("V1", (1, 2)), ("V2", (3, 4)), ("V3", (5, 6)), ("V4", (7,)))


@dataclasses.dataclass(frozen=True)
class NsdSpec:
    subject: int = 1
    regions: tuple[str, ...] = ("V1", "V2", "V3", "V4", "LO", "PfS")
    prf_roi_file: str = "prf-visualrois"  # .nii.gz / .nii / .npz
    object_roi_file: str = "objectrois"  # user-supplied: LO and PfS labels in the subject's func space
    object_roi_labels: tuple[tuple[str, tuple[int, ...]], ...] = (("LO", (1,)), ("PfS", (2,)))
    zscore: bool = True  # z-score each voxel within each session
    trials_per_session: int = TRIALS_PER_SESSION

    def __post_init__(self):
        if not 1 <= self.subject <= 8:
            raise ValueError(f"NSD subjects are 1..8, got {self.subject}")
        known = [r for r, _ in PRF_LABELS] + [r for r, _ in self.object_roi_labels]
        unknown = sorted(set(self.regions) - set(known))
        if unknown:
            raise ValueError(f"unknown NSD region(s) {unknown}; known: {', '.join(known)}")


def _find(root: str, name_re: str, under: Optional[str] = None) -> list[str]:
    pattern = re.compile(name_re)
    out = []
    for dirpath, _, files in os.walk(root):
        if under and under not in dirpath.split(os.sep):
            continue
        out.extend(os.path.join(dirpath, f) for f in files if pattern.fullmatch(f))
    return sorted(out)


def _one(root: str, name_re: str, what: str, under: Optional[str] = None) -> str:
    found = _find(root, name_re, under)
    if not found:
        where = f" in a '{under}' folder" if under else ""
        raise FileNotFoundError(f"{root}: no {what} ({name_re}){where}; see the builder's MANUAL_DOWNLOAD_INSTRUCTIONS")
    return found[0]


def read_expdesign(path: str) -> dict:
    """masterordering, subjectim, sharedix as 1-based integer arrays (nsd_expdesign.mat, MATLAB v5)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as e:  # scipy raises several types for non-.mat input
        raise ValueError(f"{path}: not a MATLAB .mat file ({e})") from None
    out = {}
    for key in ("masterordering", "subjectim", "sharedix"):
        if key not in mat:
            raise ValueError(f"{path}: no variable {key!r} (has {', '.join(k for k in mat if not k.startswith('__'))})")
        out[key] = np.asarray(mat[key]).astype(np.int64)
    out["masterordering"] = out["masterordering"].ravel()
    out["sharedix"] = out["sharedix"].ravel()
    if out["subjectim"].ndim != 2 or out["subjectim"].shape[0] != 8:
        raise ValueError(f"{path}: subjectim has shape {out['subjectim'].shape}, expected (8, 10000)")
    return out


def shared_trials(design: dict, subject: int, n_sessions: int, trials_per_session: int = TRIALS_PER_SESSION):
    """[(nsd_id 1-based, session 0-based, trial in session, repetition)] for the subject's shared-image trials."""
    order = design["masterordering"]
    n_trials = min(len(order), n_sessions * trials_per_session)
    images = design["subjectim"][subject - 1]
    shared = set(design["sharedix"].tolist())
    seen: dict[int, int] = {}
    out = []
    for t in range(n_trials):
        nsd_id = int(images[order[t] - 1])
        if nsd_id in shared:
            rep = seen.get(nsd_id, 0)
            seen[nsd_id] = rep + 1
            out.append((nsd_id, t // trials_per_session, t % trials_per_session, rep))
    return out


def _read_roi(path: str) -> np.ndarray:
    if path.endswith(".npz"):
        with np.load(path) as z:
            if "data" not in z.files:
                raise ValueError(f"{path}: no 'data' array")
            return z["data"]
    return read_nifti(path)


def _roi_masks(root: str, spec: NsdSpec, volume_shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """region -> boolean mask over the betas' (Z, Y, X) grid."""
    subj = f"subj{spec.subject:02d}"
    masks = {}
    sources = [(spec.prf_roi_file, PRF_LABELS), (spec.object_roi_file, spec.object_roi_labels)]
    for stem, labels in sources:
        needed = [(r, l) for r, l in labels if r in spec.regions]
        if not needed:
            continue
        path = _one(root, re.escape(stem) + r"\.(nii\.gz|nii|npz)", f"ROI volume '{stem}'", under=subj)
        volume = np.asarray(_read_roi(path))
        if volume.ndim != 3:
            raise ValueError(f"{path}: ROI volume must be 3-D, got shape {volume.shape}")
        zyx = volume.T  # NIfTI (X, Y, Z) -> the HDF5 betas' (Z, Y, X)
        if zyx.shape != tuple(volume_shape):
            raise ValueError(f"{path}: ROI grid {volume.shape} (X, Y, Z) does not match the betas' (Z, Y, X) grid "
                             f"{tuple(volume_shape)}; use the func1pt8mm (or func1mm) volume of the betas' space")
        for region, values in needed:
            mask = np.isin(np.rint(np.nan_to_num(zyx, nan=-1)).astype(np.int64), values)
            if not mask.any():
                raise ValueError(f"{path}: no voxel with label(s) {values} for {region}")
            masks[region] = mask
    return {r: masks[r] for r in spec.regions}


def load_subject(root: str, spec: NsdSpec):
    """(per-image records sorted by nsd_id, metadata). Each record: nsd_id, repetition (R,),
    responses {region: (R, voxels)}."""
    import h5py

    subj = f"subj{spec.subject:02d}"
    design = read_expdesign(_one(root, r"nsd_expdesign\.mat", "experimental design"))
    sessions = _find(root, r"betas_session\d+\.hdf5", under=subj)
    if not sessions:
        raise FileNotFoundError(f"{root}: no betas_sessionNN.hdf5 under a '{subj}' folder")
    numbers = [int(re.search(r"(\d+)\.hdf5$", p).group(1)) for p in sessions]
    order = np.argsort(numbers)
    sessions = [sessions[i] for i in order]
    numbers = [numbers[i] for i in order]
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"{subj}: betas sessions {numbers} are not 1..{len(numbers)} without gaps (masterordering "
                         "maps trials to sessions in order)")
    trials = shared_trials(design, spec.subject, len(sessions), spec.trials_per_session)
    if not trials:
        raise ValueError(f"{subj}: no shared-image trials in the first {len(sessions)} sessions")
    with h5py.File(sessions[0], "r") as f:
        if "betas" not in f:
            raise ValueError(f"{sessions[0]}: no '/betas' dataset")
        volume_shape = f["betas"].shape[1:]
    masks = _roi_masks(root, spec, volume_shape)
    flat = {r: np.flatnonzero(m) for r, m in masks.items()}
    by_session: dict[int, list] = {}
    for rec in trials:
        by_session.setdefault(rec[1], []).append(rec)
    responses: dict[int, dict] = {}  # nsd_id -> {rep: {region: vector}}
    for s, path in enumerate(sessions):
        if s not in by_session:
            continue
        with h5py.File(path, "r") as f:
            if "betas" not in f:
                raise ValueError(f"{path}: no '/betas' dataset")
            data = f["betas"]
            if data.shape[1:] != volume_shape or data.shape[0] != spec.trials_per_session:
                raise ValueError(f"{path}: betas shape {data.shape}, expected ({spec.trials_per_session}, "
                                 f"{', '.join(map(str, volume_shape))})")
            betas = data[()].reshape(data.shape[0], -1)
        for region, index in flat.items():
            roi = betas[:, index].astype(np.float32) / 300.0
            if spec.zscore:
                mean = roi.mean(axis=0)
                std = roi.std(axis=0)
                std[std == 0] = 1.0
                roi = (roi - mean) / std
            for nsd_id, _, t, rep in by_session[s]:
                responses.setdefault(nsd_id, {}).setdefault(rep, {})[region] = roi[t]
    records = []
    for nsd_id in sorted(responses):
        reps = sorted(responses[nsd_id])
        records.append({"nsd_id": nsd_id, "repetition": np.array(reps, np.int32),
                        "responses": {r: np.stack([responses[nsd_id][k][r] for k in reps]).astype(np.float32)
                                      for r in spec.regions}})
    meta = {"regions": list(spec.regions), "visual_degrees": VISUAL_DEGREES, "subject": spec.subject,
            "sessions": len(sessions), "num_shared_images": len(records),
            "voxels": {r: int(len(i)) for r, i in flat.items()},
            "voxel_index_zyx": {r: [int(v) for v in i] for r, i in flat.items()},
            "volume_shape_zyx": [int(v) for v in volume_shape], "zscored_per_session": spec.zscore,
            "units": "z-scored betas" if spec.zscore else "percent signal change"}
    return records, meta


def iter_images(root: str, records: list) -> Iterator[tuple[str, dict]]:
    """(key, example) pairs: the shared image from nsd_stimuli.hdf5 with its trials."""
    import h5py

    path = _one(root, r"nsd_stimuli\.hdf5", "stimulus file nsd_stimuli.hdf5")
    with h5py.File(path, "r") as f:
        if "imgBrick" not in f:
            raise ValueError(f"{path}: no 'imgBrick' dataset")
        brick = f["imgBrick"]
        for rec in records:
            nsd_id = rec["nsd_id"]
            if not 1 <= nsd_id <= brick.shape[0]:
                raise ValueError(f"{path}: nsd id {nsd_id} outside imgBrick ({brick.shape[0]} images)")
            image = np.asarray(brick[nsd_id - 1], np.uint8)
            key = f"nsd_{nsd_id - 1:05d}"
            yield key, {"image": image, "stimulus_id": key, "nsd_id": np.int32(nsd_id - 1),
                        "repetition": rec["repetition"], "responses": rec["responses"]}
