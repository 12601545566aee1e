"""Transfer-learning protocol of Kataoka et al. (2020): fine-tuning from a pre-trained backbone, k-fold
cross-validated hyper-parameter search, transfer score tables, and a frozen-feature linear probe.

TF-free modules: `digits` (the bundled downstream dataset), `cv` (folds, grid, selection, per-class draws),
`table` (score tables with confidence intervals and paired differences, plots). `heads` and `finetune` use
TensorFlow/Keras; `probe` imports them only to extract features (its probe and report functions are TF-free).
"""
