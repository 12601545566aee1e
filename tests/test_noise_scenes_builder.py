"""The noise_scenes TFDS builder: real builds of the tiny configs into a temporary data_dir."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

import tfds_builders.noise_scenes  # noqa: F401  (registers noise_scenes)
from tfds_builders.noise_scenes import Builder
from tfsynth.scenes import dataset


def _download_config():
    import apache_beam as beam

    return tfds.download.DownloadConfig(
        beam_options=beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"]))


def _examples(builder, split):
    """Parsed examples keyed by example index, in file order."""
    return {int(ex["index"]): ex for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def tiny(data_dir):
    builders = {}
    for name in ("perlin_tiny", "sc_tiny"):
        builder = tfds.builder(f"noise_scenes/{name}", data_dir=data_dir)
        builder.download_and_prepare(download_config=_download_config())
        builders[name] = builder
    return builders


@pytest.mark.parametrize("name", ["perlin_tiny", "sc_tiny"])
def test_tiny_build_holds_exactly_what_the_generator_returns(tiny, name):
    builder = tiny[name]
    config = builder.builder_config.scenes
    assert builder.info.splits["train"].num_examples == 12 and builder.info.splits["validation"].num_examples == 4
    assert builder.info.features["label"].num_classes == 4
    assert builder.info.features["objects"]["label"].names == ["background", "class_1", "class_2", "class_3"]
    for split in ("train", "validation"):
        examples = _examples(builder, split)
        assert sorted(examples) == list(dataset.split_indices(config, split))
        for index, ex in examples.items():
            expected = dataset.example(config, index)
            assert ex["image"].shape == (64, 64, 3) and ex["label"].shape == (64, 64, 1)
            assert ex["instance"].shape == (64, 64, 1) and ex["instance"].dtype == np.uint8
            for key in ("image", "label", "instance", "background_scale"):
                np.testing.assert_array_equal(ex[key], expected[key])
            for key, value in expected["objects"].items():
                np.testing.assert_array_equal(ex["objects"][key], value)
            assert set(np.unique(ex["label"])) <= {0, 1, 2, 3}
            np.testing.assert_array_equal(ex["label"], np.concatenate([[0], ex["objects"]["label"]])[ex["instance"]])


def test_perlin_and_sc_builds_share_scenes(tiny):
    perlin, sc = _examples(tiny["perlin_tiny"], "train"), _examples(tiny["sc_tiny"], "train")
    for index in perlin:
        np.testing.assert_array_equal(perlin[index]["instance"], sc[index]["instance"])
        np.testing.assert_array_equal(perlin[index]["objects"]["hue"], sc[index]["objects"]["hue"])
        assert not np.array_equal(perlin[index]["image"], sc[index]["image"])


def test_builder_configs():
    names = [c.name for c in Builder.BUILDER_CONFIGS]
    assert names == ["perlin", "sc", "perlin_small", "sc_small", "perlin_tiny", "sc_tiny"]
    full = {c.name: c.scenes for c in Builder.BUILDER_CONFIGS}
    for name in ("perlin", "sc"):
        assert full[name].noise == name and full[name].image_size == 512
        assert (full[name].num_train, full[name].num_validation) == (9000, 1000)
    assert all(c.scenes.seed == 0 for c in Builder.BUILDER_CONFIGS)
    assert "350" in Builder(config="perlin_tiny", data_dir="/nonexistent").info.description


@pytest.mark.slow
def test_cli_build_with_two_beam_workers_equals_in_process_build(tiny, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [str(Path(sys.executable).with_name("tfds")), "build", "noise_scenes",
           "--imports", "tfds_builders.noise_scenes", "--config", "sc_tiny", "--data_dir", str(tmp_path),
           "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    other = tfds.builder("noise_scenes/sc_tiny", data_dir=str(tmp_path))
    for split in ("train", "validation"):
        ours, theirs = _examples(tiny["sc_tiny"], split), _examples(other, split)
        assert list(ours) == list(theirs)  # same examples in the same (key-hash) order
        for index in ours:
            for key in ("image", "label", "instance", "background_scale", "index"):
                np.testing.assert_array_equal(ours[index][key], theirs[index][key])
            for key in ours[index]["objects"]:
                np.testing.assert_array_equal(ours[index]["objects"][key], theirs[index]["objects"][key])
