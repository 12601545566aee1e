"""proc_synth_db, morph_synth_db and flat_world_db: real tiny TFDS builds (renders in TF-free workers)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_builders.flat_world_db  # noqa: F401  (registers the builders)
import tfds_builders.morph_synth_db  # noqa: F401
import tfds_builders.proc_synth_db  # noqa: F401
from tfsynth.input.datasets import beam_download_config

REPO = Path(__file__).resolve().parents[1]
NAMES = ("proc_synth_db", "morph_synth_db", "flat_world_db")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    builders = {}
    for name in NAMES:
        builder = tfds.builder(name, config="tiny", data_dir=data_dir)
        builder.download_and_prepare(download_config=beam_download_config())
        builders[name] = builder
    return builders


def _examples(builder):
    return {(int(ex["label"]), int(i)): ex for i, ex in enumerate(tfds.as_numpy(
        builder.as_dataset(split="train", shuffle_files=False)))}


@pytest.mark.parametrize("name", NAMES)
def test_tiny_build_is_complete_balanced_and_never_blank(built, name):
    builder = built[name]
    assert builder.info.splits["train"].num_examples == 32
    examples = list(tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)))
    labels = np.array([ex["label"] for ex in examples])
    np.testing.assert_array_equal(np.bincount(labels), [8, 8, 8, 8])
    for ex in examples:
        image = ex["image"]
        assert image.shape == (64, 64, 3) and image.dtype == np.uint8
        covered = image.max(axis=2) > 0
        assert covered.mean() >= 0.01, "empty image"
        assert image[covered].mean() >= 12
        assert np.linalg.norm(ex["rotation"]) == pytest.approx(1.0, abs=1e-5)
        assert ex["light_color"].shape == (len(ex["light_kind"]), 3)
    assert len({ex["image"].tobytes() for ex in examples}) == 32  # every instance differs
    meta = builder.info.metadata["classes"]
    assert meta["num_classes"] == 4 and meta["min_class_distance_d2"] > meta["min_distance_enforced"]


def test_metadata_survives_reload_and_configs_are_documented(built):
    reloaded = tfds.builder("proc_synth_db", config="tiny",
                            data_dir=built["proc_synth_db"].data_dir.split("/proc_synth_db")[0])
    assert reloaded.info.metadata["classes"] == built["proc_synth_db"].info.metadata["classes"]
    for name in NAMES:
        cls = tfds.builder_cls(name)
        names = [c.name for c in cls.BUILDER_CONFIGS]
        assert {"tiny", "small", "1k"} <= set(names)
        big = cls.builder_configs["1k"].synth
        assert (big.num_classes, big.instances_per_class, big.image_size) == (1000, 1000, 362)  # as FractalDB-1k
    assert tfds.builder_cls("flat_world_db").builder_configs["1k_morph"].synth.source == "morph"
    assert tfds.builder_cls("morph_synth_db").builder_configs["1k"].synth.morph_base_classes == 100


def test_flat_world_uses_the_proc_synth_classes(built):
    proc = built["proc_synth_db"].info.metadata["classes"]
    flat = built["flat_world_db"].info.metadata["classes"]
    assert proc == flat  # same class meshes, only the views differ
    morph = built["morph_synth_db"].info.metadata["classes"]
    assert morph["base"]["num_classes"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_cli_build_with_two_beam_and_two_render_workers_equals_in_process_build(built, name, tmp_path):
    """Worker invariance: 2 Beam worker processes, each with 2 render workers, give the bytes of the in-process
    build with one render worker."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFSYNTH_SEARCH_WORKERS="1", TFSYNTH_RENDER_WORKERS="2")
    cmd = [str(Path(sys.executable).with_name("tfds")), "build", str(REPO / "tfds_builders" / name),
           "--config", "tiny", "--data_dir", str(tmp_path),
           "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    other = tfds.builder(name, config="tiny", data_dir=str(tmp_path))
    ours = list(tfds.as_numpy(built[name].as_dataset(split="train", shuffle_files=False)))
    theirs = list(tfds.as_numpy(other.as_dataset(split="train", shuffle_files=False)))
    assert len(ours) == len(theirs) == 32
    for a, b in zip(ours, theirs):  # same keys -> same order; every feature equal
        for feature in a:
            np.testing.assert_array_equal(a[feature], b[feature])
