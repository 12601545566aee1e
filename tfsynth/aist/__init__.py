"""Annotation-Invariant Style Transfer (seed 002): configs (TF-free), unaligned input pipeline, the train.aist job."""
