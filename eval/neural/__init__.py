"""Neural predictivity (Brain-Score-exact PLS), ceilings and RSA of Keras models against brain data.

    python -m eval.neural --demo --model runs/demo/backbone.keras          # simulated brain data, < 1 min
    python -m eval.neural --brain majaj_hong_2015 --model 'runs/*/backbone.keras' --pca_images DIR

The metric functions are TF-free (tfsynth.neural) and re-exported here:

    from eval.neural import pls_predictivity, split_half_ceiling, rdm_cv
"""
from tfsynth.neural.ceiling import (average_repetitions, ceiled_explained_variance, ceiled_squared_ratio,
                                    spearman_brown, split_half_ceiling)
from tfsynth.neural.fast_pls import KernelPLS, center_kernel, gram, kernel_pls_predict
from tfsynth.neural.metrics import FeatureGram, cv_splits, pearson_columns, pls_predictivity
from tfsynth.neural.rsa import compare_rdms, kendall_tau_a, rdm, rdm_cv

__all__ = [
    "pls_predictivity", "split_half_ceiling", "spearman_brown", "ceiled_explained_variance", "ceiled_squared_ratio",
    "average_repetitions", "rdm", "rdm_cv", "compare_rdms", "kendall_tau_a", "cv_splits", "pearson_columns",
    "FeatureGram", "KernelPLS", "kernel_pls_predict", "gram", "center_kernel",
]
