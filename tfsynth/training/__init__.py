"""Training utilities (TensorFlow/Keras): optimisers, schedules, callbacks, checkpoints, and the pre-training job."""
