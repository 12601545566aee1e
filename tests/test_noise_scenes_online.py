"""`--data noise_scenes_online/<config>` (train.segment): noise scenes rendered while training by TF-free workers.

Checked against a real stored build of noise_scenes/perlin_tiny: the same image and label-map PNG bytes in every
split and slice, whatever the number of workers, and a training stream that depends on (seed, epoch) only.
"""
import atexit
import functools
import shutil
import tempfile

import pytest
import tensorflow_datasets as tfds

from tfsynth.segmentation import pipeline
from tfsynth.input.datasets import DataSpecError


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("TFSYNTH_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@functools.lru_cache(maxsize=None)
def _stored_dir() -> str:
    import tfds_builders.noise_scenes  # noqa: F401 - registers the builder
    from tfsynth.input.datasets import beam_download_config

    data_dir = tempfile.mkdtemp(prefix="tfsynth-scenes-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    tfds.builder("noise_scenes/perlin_tiny", data_dir=data_dir).download_and_prepare(
        download_config=beam_download_config())
    return data_dir


def _pairs(data) -> list:
    return [(bytes(image), bytes(label)) for image, label in tfds.as_numpy(pipeline.encoded_dataset(data))]


SPLITS = ("train", "validation", "train[:50%]", "train[50%:]+validation")


def test_scenes_and_splits_equal_the_stored_builders_with_1_and_2_workers(monkeypatch):
    in_order = {}
    for workers in (1, 2):
        monkeypatch.setenv("TFSYNTH_ONLINE_WORKERS", str(workers))
        for split in SPLITS:
            stored = pipeline.load_data("noise_scenes/perlin_tiny", split, data_dir=_stored_dir())
            online = pipeline.load_data("noise_scenes_online/perlin_tiny", split)
            assert online.num_examples == stored.num_examples and online.num_classes == stored.num_classes == 4
            got = _pairs(online)
            assert sorted(got) == sorted(_pairs(stored))
            in_order[workers, split] = got
    assert all(in_order[1, split] == in_order[2, split] for split in SPLITS)


def _stream(seed: int, epochs: int, initial_epoch: int = 0) -> list:
    data = pipeline.load_data("noise_scenes_online/perlin_tiny", "train")
    ds, steps = pipeline.train_dataset(data, batch_size=4, seed=seed, epochs=epochs, initial_epoch=initial_epoch,
                                       min_size=32, max_size=64, crop_size=32, shuffle_buffer=4)
    assert steps == 3
    return [(images.numpy(), labels["out"].numpy()) for images, labels in ds]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all((x1 == x2).all() and (y1 == y2).all() for (x1, y1), (x2, y2) in zip(a, b))


def test_training_stream_depends_on_seed_and_epoch_only(monkeypatch):
    import keras

    keras.utils.set_random_seed(3)
    monkeypatch.setenv("TFSYNTH_ONLINE_WORKERS", "1")
    run = _stream(seed=3, epochs=2)
    assert len(run) == 6 and run[0][0].shape == (4, 32, 32, 3)
    assert _same(_stream(seed=3, epochs=2, initial_epoch=1), run[3:])
    monkeypatch.setenv("TFSYNTH_ONLINE_WORKERS", "2")
    assert _same(_stream(seed=3, epochs=2), run)
    assert not _same(run[:3], run[3:])


def test_bad_config_and_split_are_one_line_errors():
    with pytest.raises(DataSpecError, match="unknown config 'huge' of online dataset 'noise_scenes_online'.*"
                                            "Valid configs: perlin, sc") as err:
        pipeline.load_data("noise_scenes_online/huge", "train")
    assert "\n" not in str(err.value)
    with pytest.raises(DataSpecError, match="bad split 'test' for noise_scenes_online/perlin_tiny"):
        pipeline.load_data("noise_scenes_online/perlin_tiny", "test")
