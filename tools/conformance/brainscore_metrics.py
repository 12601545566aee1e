"""Brain-Score vision's own metric classes on a seeded synthetic assembly: PLS predictivity, internal-consistency
ceiling, RDM and RDM similarity (plain and cross-validated).

Run with a Python that has brainscore-vision and brainscore-core (a scratch venv outside the repo: they need
numpy < 2, scikit-learn < 1.6, xarray < 2022.6; see README.md here):

    /work/scratch/bsenv/bin/python tools/conformance/brainscore_metrics.py

Writes tests/data/conformance/brainscore.npz (the synthetic features, trials and object labels; Brain-Score's
scores, errors, per-split scores and RDMs) and brainscore.json (versions). The data come from a seeded NumPy rule,
so the fixture is the only thing both sides share.
"""
from __future__ import annotations

import importlib.metadata as md
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tools.conformance._common import write_json, write_npz  # noqa: E402

N_OBJECTS, PER_OBJECT, N_FEATURES, N_NEUROIDS, N_REPS = 8, 10, 40, 12, 6


def synthetic(seed: int = 2024):
    """features (images x features), trials (repetitions x images x neuroids), object labels."""
    rng = np.random.default_rng(seed)
    n = N_OBJECTS * PER_OBJECT
    objects = np.repeat(np.arange(N_OBJECTS), PER_OBJECT)
    rng.shuffle(objects)  # objects interleaved, so stratification matters
    prototypes = rng.normal(size=(N_OBJECTS, N_FEATURES))
    features = prototypes[objects] + rng.normal(size=(n, N_FEATURES))
    weights = rng.normal(size=(N_FEATURES, N_NEUROIDS)) / np.sqrt(N_FEATURES)
    signal = features @ weights + 0.5 * rng.normal(size=(n, N_NEUROIDS))
    trials = signal[None] + rng.normal(scale=1.5, size=(N_REPS, n, N_NEUROIDS))
    return features, trials, objects


def main():
    logging.disable(logging.WARNING)
    from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
    from brainscore_vision.metrics.internal_consistency.ceiling import InternalConsistency
    from brainscore_vision.metrics.rdm.metric import RDM, RDMCrossValidated, RDMMetric
    from brainscore_vision.metrics.regression_correlation.metric import (CrossRegressedCorrelation,
                                                                         pearsonr_correlation, pls_regression)

    features, trials, objects = synthetic()
    n = features.shape[0]
    stimulus_id = np.array(["s%03d" % i for i in range(n)])  # sorted = image order (RDMSimilarity sorts by it)
    object_name = np.array(["obj%d" % o for o in objects])

    def presentation_assembly(values, neuroid_prefix):
        return NeuroidAssembly(values, coords={
            "stimulus_id": ("presentation", stimulus_id), "object_name": ("presentation", object_name),
            "neuroid_id": ("neuroid", np.array([f"{neuroid_prefix}{j}" for j in range(values.shape[1])])),
            # two neuroid coordinates, as Brain-Score's assemblies have (with one, its re-packaging fails here)
            "region": ("neuroid", np.array(["IT"] * values.shape[1]))},
            dims=["presentation", "neuroid"])

    responses = trials.mean(axis=0)
    source = presentation_assembly(features, "f")
    target = presentation_assembly(responses, "n")
    pls = CrossRegressedCorrelation(regression=pls_regression(), correlation=pearsonr_correlation())(source, target)
    raw = pls.attrs["raw"]  # split x neuroid
    pls_split_scores = raw.median("neuroid").transpose("split").values

    rep = np.repeat(np.arange(N_REPS), n)
    trial_assembly = NeuroidAssembly(trials.reshape(N_REPS * n, -1), coords={
        "stimulus_id": ("presentation", np.tile(stimulus_id, N_REPS)),
        "object_name": ("presentation", np.tile(object_name, N_REPS)),
        "repetition": ("presentation", rep),
        "neuroid_id": ("neuroid", np.array([f"n{j}" for j in range(N_NEUROIDS)])),
        "region": ("neuroid", np.array(["IT"] * N_NEUROIDS))},
        dims=["presentation", "neuroid"])
    ceiling = InternalConsistency()(trial_assembly)

    rdm_features = RDM()(source).values
    rdm_similarity = RDMMetric()(source, target)
    rdm_cv = RDMCrossValidated()(source, target)

    arrays = {
        "features": features, "trials": trials, "objects": objects,
        "pls_score": float(pls.values), "pls_error": float(pls.attrs["error"]), "pls_split_scores": pls_split_scores,
        "ceiling_score": float(ceiling.values), "ceiling_error": float(ceiling.attrs.get("error", np.nan)),
        "rdm_features": rdm_features, "rdm_similarity": float(rdm_similarity.values),
        "rdm_cv_score": float(rdm_cv.values), "rdm_cv_error": float(rdm_cv.attrs["error"]),
    }
    write_npz("brainscore", arrays)
    write_json("brainscore", {
        "reference": "brainscore_vision metrics: CrossRegressedCorrelation(pls_regression(), pearsonr_correlation()) "
                     "(default 10 x StratifiedShuffleSplit over object_name), InternalConsistency(), RDM, RDMMetric, "
                     "RDMCrossValidated; float64",
        "brainscore_vision": md.version("brainscore_vision"), "brainscore_core": md.version("brainscore_core"),
        "scikit_learn": md.version("scikit-learn"), "scipy": md.version("scipy"), "xarray": md.version("xarray"),
        "command": "tools/conformance/brainscore_metrics.py",
        "values": {k: float(v) for k, v in arrays.items() if np.ndim(v) == 0}})


if __name__ == "__main__":
    main()
