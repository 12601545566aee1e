"""The fractal_db TFDS builder: real builds into a temporary data_dir (in-process and via the CLI)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfds_builders.fractal_db  # noqa: F401  (registers fractal_db)
from tfds_builders.fractal_db import Builder, FractalDbBuilderConfig
from tfsynth.fractals.dataset import FractalDBConfig
from tfsynth.fractals.params_csv import read_params_csv, write_params_dir

OFFICIAL = Path(__file__).parent / "data" / "fractaldb_official"
REPO = Path(__file__).resolve().parents[1]


def _download_config(**kw):
    import apache_beam as beam

    return tfds.download.DownloadConfig(
        beam_options=beam.options.pipeline_options.PipelineOptions(["--runner=DirectRunner"]), **kw)


def _examples_by_key(builder):
    """Parsed examples keyed by (label, weight, patch, flip), in file order."""
    out = {}
    for ex in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)):
        key = tuple(int(ex[k]) for k in ("label", "weight_index", "patch_index", "flip"))
        out[key] = ex
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    builder = tfds.builder("fractal_db/tiny", data_dir=str(tmp_path_factory.mktemp("tfds")))
    builder.download_and_prepare(download_config=_download_config())
    return builder


def test_tiny_build_has_official_categories_and_balanced_labels(tiny):
    assert tiny.info.splits["train"].num_examples == 64
    examples = _examples_by_key(tiny)
    assert len(examples) == 64
    labels = np.array([k[0] for k in examples])
    np.testing.assert_array_equal(np.bincount(labels), [16, 16, 16, 16])
    for (label, *_), ex in examples.items():
        assert ex["image"].shape == (64, 64, 1) and ex["image"].dtype == np.uint8
        assert set(np.unique(ex["image"])) <= {0, 127} and ex["image"].max() == 127
        if label < 3:
            np.testing.assert_array_equal(ex["params"], read_params_csv(OFFICIAL / ("%05d.csv" % label)))


def test_shard_sha256_is_recorded_in_the_metadata(tiny):
    import hashlib

    digests = tiny.info.metadata["shard_sha256"]
    assert list(digests) == ["fractal_db-train.tfrecord-00000-of-00001"]
    for name, digest in digests.items():
        assert hashlib.sha256((Path(tiny.data_path) / name).read_bytes()).hexdigest() == digest
    # Restored from metadata.json by a new builder object.
    assert tfds.builder("fractal_db/tiny", data_dir=str(Path(tiny.data_dir).parents[2])).info.metadata == {
        "shard_sha256": digests}


def test_examples_serialise_with_sorted_feature_keys(tiny):
    # Without deterministic serialisation a tf.train.Example's feature map is written in the process's hash-table
    # order, which differs between processes: two builds of one config gave different bytes.
    from tensorflow_datasets.core import example_serializer

    features = tiny.info.features
    example = {"image": np.zeros((64, 64, 1), np.uint8), "label": 1, "params": np.zeros((2, 7)), "weight_index": 0,
               "patch_index": 1, "flip": 0}
    data = features.serialize_example(example)
    keys = sorted(example)
    assert sorted(keys, key=lambda k: data.index(k.encode())) == keys
    proto = example_serializer.ExampleSerializer(features.get_serialized_info()).get_tf_example(
        features.encode_example(example))
    assert data == proto.SerializeToString(deterministic=True)


def test_builder_configs_and_unknown_config():
    names = [c.name for c in Builder.BUILDER_CONFIGS]
    assert names == ["tiny", "small", "100", "1k", "1k_svd", "1k_csv"]
    sizes = {c.name: (c.fractal.num_categories, c.fractal.instances_per_category, c.fractal.image_size)
             for c in Builder.BUILDER_CONFIGS}
    assert sizes["1k"] == (1000, 1000, 362) and sizes["tiny"] == (4, 16, 64)
    with pytest.raises(ValueError, match="nope not found"):
        tfds.builder("fractal_db/nope")


def test_csv_sampler_renders_given_categories_and_rejects_bad_files(tmp_path):
    params = [read_params_csv(OFFICIAL / "00001.csv"), read_params_csv(OFFICIAL / "00002.csv")]
    manual = tmp_path / "manual"
    write_params_dir(manual, params)
    config = FractalDbBuilderConfig(name="csv_test", fractal=FractalDBConfig(
        num_categories=2, sampler="csv", image_size=32, num_points=5000, weight_indices=(2,), patches_per_weight=1,
        flips=(0,)))
    builder = Builder(config=config, data_dir=str(tmp_path / "data"))
    builder.download_and_prepare(download_config=_download_config(manual_dir=str(manual)))
    got = {k[0]: ex["params"] for k, ex in _examples_by_key(builder).items()}
    for label in (0, 1):
        np.testing.assert_array_equal(got[label], params[label])

    (manual / "00001.csv").write_text("0.1,0.2,0.3\n")
    broken = Builder(config=config, data_dir=str(tmp_path / "data2"))
    with pytest.raises(ValueError, match=r"00001\.csv:1"):
        broken.download_and_prepare(download_config=_download_config(manual_dir=str(manual)))
    assert not (tmp_path / "data2" / "fractal_db" / "csv_test" / "1.0.0" / "dataset_info.json").exists()


def test_svd_sampler_config_builds_contractive_categories(tmp_path):
    config = FractalDbBuilderConfig(name="svd_test", fractal=FractalDBConfig(
        num_categories=3, sampler="svd", image_size=32, num_points=5000, weight_indices=(2,), patches_per_weight=1,
        flips=(0,)))
    builder = Builder(config=config, data_dir=str(tmp_path))
    builder.download_and_prepare(download_config=_download_config())
    examples = _examples_by_key(builder)
    assert len(examples) == 3
    for ex in examples.values():
        for a, b, c, d in ex["params"][:, :4]:
            assert np.linalg.svd(np.array([[a, b], [c, d]]), compute_uv=False).max() < 1.0
        assert ex["image"].max() == 127


@pytest.mark.slow
def test_cli_build_by_name_with_two_beam_workers_equals_in_process_build(tiny, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [str(Path(sys.executable).with_name("tfds")), "build", "fractal_db", "--imports", "tfds_builders.fractal_db",
           "--config", "tiny", "--data_dir", str(tmp_path),
           "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    other = tfds.builder("fractal_db/tiny", data_dir=str(tmp_path))
    ours, theirs = _examples_by_key(tiny), _examples_by_key(other)
    assert list(ours) == list(theirs)  # same keys in the same (hash-shuffled) order
    for key in ours:
        for feature in ours[key]:
            np.testing.assert_array_equal(ours[key][feature], theirs[key][feature])
    # Byte-identical records (deterministic serialisation, tfds_builders.deterministic_serialization), whatever
    # the process or worker count: the shard digests recorded in the metadata agree.
    assert other.info.metadata["shard_sha256"] == tiny.info.metadata["shard_sha256"]
    for name in tiny.info.metadata["shard_sha256"]:
        assert (Path(other.data_path) / name).read_bytes() == (Path(tiny.data_path) / name).read_bytes()


@pytest.mark.slow
def test_cli_build_by_directory_path(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [str(Path(sys.executable).with_name("tfds")), "build", str(REPO / "tfds_builders" / "fractal_db"),
           "--config", "tiny", "--data_dir", str(tmp_path)]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "fractal_db" / "tiny" / "1.0.0" / "dataset_info.json").exists()
    images = [ex["image"] for ex in tfds.as_numpy(tfds.load("fractal_db/tiny", split="train", data_dir=str(tmp_path)))]
    assert len(images) == 64 and tf.reduce_max(images[0]) == 127
