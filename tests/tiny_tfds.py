"""fractal_db/tiny built once per test process into a temporary TFDS data_dir (real Beam build, ~10 s)."""
import atexit
import functools
import shutil
import tempfile


@functools.lru_cache(maxsize=None)
def tiny_data_dir() -> str:
    import tensorflow_datasets as tfds

    import tfds_builders.fractal_db  # noqa: F401 - registers the builder
    from tfsynth.input.datasets import beam_download_config

    data_dir = tempfile.mkdtemp(prefix="tfsynth-tfds-")
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    tfds.builder("fractal_db", config="tiny", data_dir=data_dir).download_and_prepare(
        download_config=beam_download_config())
    return data_dir
