"""What a model file is, before Keras tries it (TF-free checks, one loader for the model-loading jobs).

Keras reports any `.keras` path that is not a readable zip archive as "File not found", even when the file exists.
`check_keras_file` says what the file is instead (empty, a directory, HDF5, a NumPy .npz, a damaged or truncated
zip archive, something else) and `load_keras_model` loads it with that diagnosis, naming the file and the flag.
"""
from __future__ import annotations

import os
import zipfile


class ModelFileError(ValueError):
    """A model file that cannot be loaded: the message names the file and says what it is."""


_MAGIC = {b"\x89HDF\r\n\x1a\n": "an HDF5 file", b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image",
          b"\x93NUMPY": "a NumPy .npy array", b"%PDF": "a PDF document", b"\x1f\x8b": "a gzip archive"}


def _kind(head: bytes) -> str:
    for magic, kind in _MAGIC.items():
        if head.startswith(magic):
            return kind
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "a text file"
    return "not a zip archive"


def check_keras_file(path: str, what: str = "model") -> None:
    """Raises ModelFileError unless `path` looks like a complete Keras v3 `.keras` archive (or, for `.h5`/`.hdf5`
    paths, an HDF5 file). `what` names the flag or role in the message (e.g. '--model scratch')."""
    if not os.path.exists(path):
        raise ModelFileError(f"{what}: {path} does not exist")
    if os.path.isdir(path):
        raise ModelFileError(f"{what}: {path} is a directory, not a Keras model file")
    size = os.path.getsize(path)
    if size == 0:
        raise ModelFileError(f"{what}: {path} is empty (0 bytes); not a Keras model")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.lower().endswith((".h5", ".hdf5")):
        if not head.startswith(b"\x89HDF\r\n\x1a\n"):
            raise ModelFileError(f"{what}: {path} ({size} bytes) is {_kind(head)}, not an HDF5 Keras file")
        return
    if not zipfile.is_zipfile(path):
        if head.startswith(b"PK"):
            raise ModelFileError(f"{what}: {path} ({size} bytes) is a damaged zip archive (truncated?); "
                                 "a .keras model cannot be read from it")
        kind = _kind(head)
        hint = " (a legacy Keras .h5 model? name it .h5)" if kind == "an HDF5 file" else ""
        raise ModelFileError(f"{what}: {path} ({size} bytes) is {kind}{hint}, not a Keras .keras model "
                             "(a zip archive with config.json)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ModelFileError(f"{what}: {path} ({size} bytes) is a damaged zip archive ({err}); "
                             "a .keras model cannot be read from it") from None
    if bad is not None:
        raise ModelFileError(f"{what}: {path} is a damaged zip archive: member {bad} fails its CRC check")
    if "config.json" not in names:
        kind = "a NumPy .npz archive" if names and all(n.endswith(".npy") for n in names) else "a zip archive"
        raise ModelFileError(f"{what}: {path} is {kind} without config.json, not a Keras .keras model")


def load_keras_model(path: str, what: str = "model", **kwargs):
    """`keras.saving.load_model(path, compile=False, **kwargs)` after `check_keras_file`; any failure is a
    ModelFileError that names the file (e.g. custom objects that are not registered)."""
    check_keras_file(path, what)
    import keras

    kwargs.setdefault("compile", False)
    try:
        return keras.saving.load_model(path, **kwargs)
    except Exception as err:  # noqa: BLE001 - name the file whatever went wrong
        raise ModelFileError(f"{what}: cannot load {path} as a Keras model: {type(err).__name__}: {err}") from None
