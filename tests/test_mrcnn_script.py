"""A matterport-style script that imports only `mrcnn.*` runs unchanged (samples/shapes_matterport_style.py:
train heads, train all, find_last, reload for inference, load_image_gt, detect, draw, compute_ap) and its
training output carries no TensorFlow PredictCost() warning; the warning's fix is scoped (tfsynth/quiet.py)."""
import os
import runpy
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow  # ~40 CPU-seconds: two training traces (heads, all), validation and inference
def test_matterport_style_shapes_script_runs_unchanged(tmp_path, capfd, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setattr(sys, "argv", ["shapes_matterport_style.py", str(tmp_path / "logs"), "--figures",
                                      str(figures)])
    namespace = runpy.run_path(os.path.join(ROOT, "samples", "shapes_matterport_style.py"), run_name="not_main")
    m_ap, model, dataset_val = namespace["main"]()
    # matterport's inspection helpers on the reloaded inference model
    detections = model.keras_model.get_layer("mrcnn_detection").output
    rois = model.ancestor(detections, "ROI")
    assert rois is model.keras_model.get_layer("ROI").output
    assert model.ancestor(detections, "no_such_layer") is None
    image = dataset_val.load_image(dataset_val.image_ids[0])
    outputs = model.run_graph([image], [("proposals", rois), ("detections", detections)])
    assert list(outputs) == ["proposals", "detections"]
    assert outputs["proposals"].shape == (1, model.config.POST_NMS_ROIS_INFERENCE, 4)
    assert outputs["detections"].shape == (1, model.config.DETECTION_MAX_INSTANCES, 6)
    assert type(model.find_trainable_layer(model.keras_model.get_layer("mrcnn_mask"))).__name__ == "Conv2D"
    out, err = capfd.readouterr()
    assert "PredictCost" not in err and "PredictCost" not in out
    assert 0.0 <= m_ap <= 1.0 and "mAP: " in out
    run_dirs = os.listdir(tmp_path / "logs")
    assert len(run_dirs) == 1 and run_dirs[0].startswith("shapes")
    assert sorted(os.listdir(tmp_path / "logs" / run_dirs[0]))[:2] == ["mask_rcnn_shapes_0001.h5",
                                                                       "mask_rcnn_shapes_0002.h5"]
    assert "Loading weights from  " + str(tmp_path / "logs" / run_dirs[0] / "mask_rcnn_shapes_0002.h5") in out
    assert sorted(os.listdir(figures)) == ["0000_display_images.png", "0001_display_instances.png",
                                           "0002_display_instances.png", "0003_plot_precision_recall.png"]
    assert "gt_mask                  shape: (64, 64" in out  # modellib.log's aligned line


QUIET_CHECK = r"""
import sys
import tensorflow as tf
from tfsynth.quiet import quiet_tensorflow_cost_model

scale = tf.Variable(tf.ones([1, 16, 16, 8]))

def traced():
    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 8]), tf.TensorSpec([None, 4]),
                                  tf.TensorSpec([None], tf.int32)])
    def f(image, boxes, box_indices):
        with tf.GradientTape() as tape:
            tape.watch(image)
            loss = tf.reduce_sum(tf.image.crop_and_resize(image * scale, boxes, box_indices, [7, 7]))
        return tape.gradient(loss, image)
    f(tf.ones([2, 16, 16, 8]), tf.constant([[0.0, 0.0, 0.5, 0.5]]), tf.constant([0]))

traced()
sys.stderr.flush()
print("=== quiet ===", file=sys.stderr, flush=True)
quiet_tensorflow_cost_model()
traced()
tf.print("still-logged", output_stream=sys.stderr)
"""


def test_predict_cost_warning_comes_from_grappler_memory_optimizer_and_only_it_is_silenced():
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("TFSYNTH_KEEP_MEMORY_OPTIMIZER", None)
    result = subprocess.run([sys.executable, "-c", QUIET_CHECK], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    before, after = result.stderr.split("=== quiet ===")
    assert "PredictCost" in before and "CropAndResize" in before  # the warning, as users see it
    assert "PredictCost" not in after and "still-logged" in after
