"""Comparing models to brain data, TF-free: Brain-Score-exact PLS predictivity, ceilings, RSA, brain-data readers.

    metrics     pls_predictivity (CrossRegressedCorrelation + pls + pearsonr), cv_splits, pearson_columns
    fast_pls    KernelPLS: scikit-learn's NIPALS PLSRegression from image x image kernels (wide features)
    ceiling     split_half_ceiling (InternalConsistency + Spearman-Brown), ceiled scores both conventions
    rsa         rdm, compare_rdms (Spearman / Kendall tau-a), rdm_cv (RDMCrossValidated)
    pca         LayerPCA (PCA per layer on a separate image set, for layer selection)
    mapping     layer selection on a selection split, report on held-out images
    screen      stimuli at a visual angle (place_on_screen) and the model's input size
    data        BrainData: stimuli + per-region trials; simulated: a SIMULATED demo dataset
    netcdf, nifti, majaj, nsd   BrainIO assemblies, NIfTI-1, MajajHong2015 and NSD readers (for the builders)

Keras feature extraction and the job are in eval.neural; this package never imports TensorFlow.
"""
