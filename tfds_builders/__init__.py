"""The project's TFDS builders, one package each (`import tfds_builders.<name>` registers `<name>`).

Importing this package also makes TFDS serialise examples deterministically (see `deterministic_serialization`),
so the records of a dataset are byte-identical for the same config, whatever the process or Beam worker count,
and `ShardChecksums` records the SHA-256 of every shard in a dataset's metadata.
"""
from __future__ import annotations

import glob
import hashlib
import os


def deterministic_serialization() -> None:
    """Serialises tf.train.Example protos with `deterministic=True` in TFDS's ExampleSerializer.

    A tf.train.Example keeps its features in a protobuf map; without `deterministic` the map's entries are written in
    the order of the hash table of the process (its seed differs from process to process), so two builds of one
    config wrote the same examples as different bytes. Deterministic serialisation writes the entries sorted by
    key; parsing is unchanged (readers do not depend on the order)."""
    from tensorflow_datasets.core import example_serializer

    cls = example_serializer.ExampleSerializer
    if getattr(cls.serialize_example, "_tfsynth_deterministic", False):
        return

    def serialize_example(self, example):
        return self.get_tf_example(example).SerializeToString(deterministic=True)

    serialize_example._tfsynth_deterministic = True
    serialize_example.__doc__ = cls.serialize_example.__doc__
    cls.serialize_example = serialize_example


def shard_sha256(data_path: str) -> dict[str, str]:
    """{shard file name: SHA-256 hex digest} of the record files in a prepared dataset directory."""
    digests = {}
    for path in sorted(glob.glob(os.path.join(str(data_path), "*.tfrecord*")) +
                       glob.glob(os.path.join(str(data_path), "*.array_record*"))):
        sha = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        digests[os.path.basename(path)] = sha.hexdigest()
    return digests


class ShardChecksums:
    """Builder mixin (put it before tfds.core.GeneratorBasedBuilder; `_info` must declare a MetadataDict): after
    `download_and_prepare`, `builder.info.metadata["shard_sha256"]` ({shard file: SHA-256}, saved in the dataset's
    metadata.json) identifies the build; two builds of one config have the same digests."""

    def download_and_prepare(self, *args, **kwargs):
        super().download_and_prepare(*args, **kwargs)
        metadata = self.info.metadata
        if metadata is not None and "shard_sha256" not in metadata:
            metadata["shard_sha256"] = shard_sha256(self.data_path)
            metadata.save_metadata(self.data_path)


deterministic_serialization()
