"""Transfer-learning protocol of Kataoka et al. (2020): fine-tuning from a pre-trained backbone, k-fold
cross-validated hyper-parameter search, and transfer score tables.

TF-free modules: `digits` (the bundled downstream dataset), `cv` (folds, grid, selection), `table` (score tables
and bar chart). `heads` and `finetune` use TensorFlow/Keras.
"""
