"""Float comparisons whose tolerance scales with the magnitude compared.

float32 rounding is relative: a sum of many products near 100 carries absolute errors near 1e-4 that
the same sum near 1 would not. A fixed `atol` is therefore too tight for large values and too loose
for small ones; these helpers scale it by the largest magnitude of the reference.
"""
import numpy as np


def assert_close_scaled(actual, desired, rel=1e-5, err_msg=""):
    """|actual - desired| <= rel * max|desired| element-wise (plus `rel` relative to each element)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rel, atol=rel * max(scale, 1e-30),
                               err_msg=err_msg)
