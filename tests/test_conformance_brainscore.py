"""tfsynth.neural against Brain-Score vision's own metric classes (no Brain-Score needed here).

Fixture: tests/data/conformance/brainscore.npz, written by tools/conformance/brainscore_metrics.py, which ran
brainscore_vision's CrossRegressedCorrelation (PLS), InternalConsistency, RDM, RDMMetric and RDMCrossValidated
(versions in brainscore.json) on a seeded synthetic assembly stored in the same file.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from tfsynth.neural.ceiling import split_half_ceiling
from tfsynth.neural.metrics import pls_predictivity
from tfsynth.neural.rsa import compare_rdms, rdm, rdm_cv

FIXTURES = Path(__file__).parent / "data" / "conformance"
META = json.loads((FIXTURES / "brainscore.json").read_text())


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURES / "brainscore.npz") as data:
        return {k: data[k] for k in data.files}


def _objects(ref):
    return np.array(["obj%d" % o for o in ref["objects"]])  # Brain-Score stratified on these object_name strings


def test_pls_predictivity_equals_brainscore(ref):
    got = pls_predictivity(ref["features"], ref["trials"].mean(axis=0), stratify=_objects(ref))
    np.testing.assert_allclose(got.split_scores, ref["pls_split_scores"], rtol=1e-9, atol=1e-9)
    assert got.score == pytest.approx(float(ref["pls_score"]), abs=1e-9)
    assert got.error == pytest.approx(float(ref["pls_error"]), abs=1e-9)


def test_split_half_ceiling_equals_brainscore_internal_consistency(ref):
    got = split_half_ceiling(ref["trials"])
    assert got.score == pytest.approx(float(ref["ceiling_score"]), abs=1e-12)
    assert got.error == pytest.approx(float(ref["ceiling_error"]), abs=1e-12)


def test_rdm_and_rdm_similarity_equal_brainscore(ref):
    features, responses = ref["features"], ref["trials"].mean(axis=0)
    np.testing.assert_allclose(rdm(features), ref["rdm_features"], rtol=0, atol=1e-12)
    assert compare_rdms(rdm(features), rdm(responses)) == pytest.approx(float(ref["rdm_similarity"]), abs=1e-12)
    got = rdm_cv(features, responses, stratify=_objects(ref))
    assert got.score == pytest.approx(float(ref["rdm_cv_score"]), abs=1e-12)
    assert got.error == pytest.approx(float(ref["rdm_cv_error"]), abs=1e-12)
