"""Silences TensorFlow's per-function `Error in PredictCost()` warnings (e.g. for CropAndResize) and nothing else.

Where they come from: grappler's memory optimizer estimates the cost of every op of a traced function with
`OpLevelCostEstimator`; ops it has no cost model for with unknown shapes (CropAndResize in Mask R-CNN's ROI
Align, Softmax of unknown rank, ...) make it log a multi-line WARNING from op_level_cost_estimator.cc each time
a function is optimized. The memory optimizer swaps / recomputes tensors to fit GPU memory and has nothing to
do on a CPU; turning it off (RewriterConfig.memory_optimization = NO_MEM_OPT) removes the warnings at their
source, while every other TensorFlow message (errors included) still prints and the other grappler passes
still run. `TF_CPP_MIN_LOG_LEVEL=2` would also hide them, but would hide all warnings of the process.
"""
from __future__ import annotations

import os

# Set TFSYNTH_KEEP_MEMORY_OPTIMIZER=1 to keep TensorFlow's default (e.g. when GPU memory is tight).
ENV_KEEP = "TFSYNTH_KEEP_MEMORY_OPTIMIZER"


def quiet_tensorflow_cost_model() -> bool:
    """Turns grappler's memory optimizer off for functions traced from now on (all threads; the calling
    thread's cached call options too). Returns whether the setting was applied (False when ENV_KEEP is set)."""
    if os.environ.get(ENV_KEEP):
        return False
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.eager import context

    ctx = context.context()
    config = config_pb2.ConfigProto()
    if ctx._config is not None:  # noqa: SLF001 - the eager context keeps its base ConfigProto here
        config.CopyFrom(ctx._config)
    config.graph_options.rewrite_options.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    ctx._config = config
    ctx.function_call_options = None  # recomputed from the config on next use (this thread)
    return True
