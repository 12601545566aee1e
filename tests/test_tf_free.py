"""The TF-free rule in one place: generation, metric and reporting modules never import TensorFlow or Keras.

Generation code runs in Beam and render workers beside software OpenGL, where TensorFlow in the same process
segfaults (DESIGN.md); metric and report modules stay importable without TensorFlow so that `--help`, tables and
the metrics run anywhere. One interpreter imports every module in turn and stops at the first one after whose
import TensorFlow or Keras is loaded, naming it (one interpreter start instead of one per module).
"""
import json
import subprocess
import sys

REPO_ROOT = __file__.rsplit("/tests/", 1)[0]

TF_FREE_MODULES = {
    "fractals": ["tfsynth.fractals.ifs", "tfsynth.fractals.params_csv", "tfsynth.fractals.search",
                 "tfsynth.fractals.render", "tfsynth.fractals.dataset", "tfsynth.fractals.svd_sampler",
                 "tfsynth.fractals.online"],
    "3D generation": ["tfsynth.shapes", "tfsynth.shapes.geometry", "tfsynth.shapes.camera", "tfsynth.shapes.procedural",
                      "tfsynth.shapes.distance", "tfsynth.shapes.morph", "tfsynth.render", "tfsynth.render.scene",
                      "tfsynth.render.pool", "tfsynth.render.worker", "tfsynth.render.pyrender_backend",
                      "tfsynth.synth3d", "tfsynth.synth3d.config", "tfsynth.synth3d.classes",
                      "tfsynth.synth3d.views", "tfsynth.synth3d.dataset", "tfsynth.multiview.generate",
                      "tfsynth.shapes.vehicles"],
    "noise and scenes": ["tfsynth.noise", "tfsynth.noise.perlin", "tfsynth.noise.sparse_convolution",
                         "tfsynth.scenes", "tfsynth.scenes.config", "tfsynth.scenes.sampling",
                         "tfsynth.scenes.render", "tfsynth.scenes.dataset",
                         "tfsynth.scenes.online"],
    "cleaning and AIST stand-ins": ["tfsynth.cleaning", "tfsynth.cleaning.filters", "tfsynth.cleaning.normalise",
                                    "tfsynth.cleaning.plots", "tfsynth.cleaning.stanford_cars",
                                    "tfsynth.aist.standin", "tfsynth.aist.target_domain", "tfsynth.aist.configs",
                                    "experiments.aist_invariance", "experiments.aist_shape_pose", "eval.aist"],
    "transfer": ["tfsynth.transfer", "tfsynth.transfer.digits", "tfsynth.transfer.cv", "tfsynth.transfer.table",
                 "tfsynth.transfer.configs", "eval.transfer"],
    "neural": ["tfsynth.neural", "tfsynth.neural.metrics", "tfsynth.neural.fast_pls", "tfsynth.neural.ceiling",
               "tfsynth.neural.rsa", "tfsynth.neural.pca", "tfsynth.neural.screen", "tfsynth.neural.simulated",
               "tfsynth.neural.mapping", "tfsynth.neural.report", "tfsynth.neural.netcdf", "tfsynth.neural.nifti",
               "tfsynth.neural.majaj", "tfsynth.neural.nsd", "tfsynth.neural.data", "eval.neural"],
    "segmentation": ["tfsynth.segmentation.metrics", "tfsynth.segmentation.coco", "tfsynth.segmentation.report",
                     "tfsynth.segmentation.visualize", "tfsynth.segmentation.configs"],
    "shape and pose": ["tfsynth.dpc.geometry", "tfsynth.dpc.metrics", "tfsynth.dpc.synthetic", "tfsynth.dpc.configs",
                       "tfsynth.dpc.data", "experiments.shape_pose"],
    "Mask R-CNN": ["tfsynth.models.mask_rcnn", "tfsynth.models.mask_rcnn.config", "tfsynth.models.mask_rcnn.utils",
                   "tfsynth.models.mask_rcnn.hdf5", "tfsynth.models.mask_rcnn.shapes",
                   "tfsynth.models.mask_rcnn.evaluate", "tfsynth.models.mask_rcnn.shapes_configs",
                   "mrcnn.config", "mrcnn.utils", "mrcnn.visualize"],
    "shared": ["tfsynth.quaternion", "tfsynth.markdown", "tfsynth.atomic", "tfsynth.workdir", "tfsynth.stats",
               "tfsynth.imagenet", "tfsynth.cli", "tfsynth.config_flags", "tfsynth.training.config",
               "experiments.common"],
}

_CHECK = """
import importlib, json, sys
for module in json.loads(sys.argv[1]):
    importlib.import_module(module)
    heavy = [name for name in ("tensorflow", "keras") if name in sys.modules]
    if heavy:
        sys.exit(f"{module} imported {' and '.join(heavy)}")
"""


def _first_offender(modules):
    result = subprocess.run([sys.executable, "-c", _CHECK, json.dumps(modules)], cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=900)
    return None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1]


def test_every_tf_free_module_imports_without_tensorflow():
    modules = [m for group in TF_FREE_MODULES.values() for m in group]
    assert len(set(modules)) == len(modules)
    assert _first_offender(modules) is None


def test_the_check_names_a_module_that_imports_tensorflow():
    # A module that pulls TensorFlow in is named, even after TF-free ones.
    assert _first_offender(["tfsynth.noise", "tfsynth.input.datasets"]) .startswith(
        "tfsynth.input.datasets imported tensorflow")
