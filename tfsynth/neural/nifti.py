"""Minimal NIfTI-1 (.nii / .nii.gz) reader and writer with numpy alone (nibabel is not a dependency here).

Enough for the NSD ROI volumes (e.g. `prf-visualrois.nii.gz`, int16/float labels in a subject's func1pt8mm
space): the 348-byte NIfTI-1 header (either byte order), dim[], datatype, vox_offset, scl_slope/scl_inter,
and the voxel data in Fortran (x fastest) order. `read_nifti` returns the volume in (x, y, z[, t]) order, as
`nibabel.load(path).get_fdata()` does (as float64 when a scaling is set, else in the stored dtype); NSD's
HDF5 betas are (trial, z, y, x), i.e. the transpose. NIfTI-2 and multi-file (.hdr/.img) volumes are refused
with a clear error. TF-free.
"""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np

__all__ = ["read_nifti", "write_nifti", "NiftiError"]

_DTYPES = {2: "u1", 4: "i2", 8: "i4", 16: "f4", 64: "f8", 256: "i1", 512: "u2", 768: "u4", 1024: "i8", 1280: "u8"}
_CODES = {np.dtype(v).str[1:]: k for k, v in _DTYPES.items()}


class NiftiError(ValueError):
    """A file that is not a readable NIfTI-1 volume; the message names the file."""


def _open(path: str) -> bytes:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as e:
        raise NiftiError(f"{path}: cannot read ({e})") from None


def read_nifti(path: str) -> np.ndarray:
    path = os.fspath(path)
    raw = _open(path)
    if len(raw) < 348:
        raise NiftiError(f"{path}: {len(raw)} bytes, too short for a NIfTI-1 header")
    for endian in "<>":
        size = struct.unpack(endian + "i", raw[:4])[0]
        if size in (348, 540):
            break
    else:
        raise NiftiError(f"{path}: not a NIfTI file (sizeof_hdr {struct.unpack('<i', raw[:4])[0]})")
    if size == 540:
        raise NiftiError(f"{path}: NIfTI-2 is not supported; save the ROI volume as NIfTI-1 or .npz")
    magic = raw[344:348]
    if magic != b"n+1\0":
        raise NiftiError(f"{path}: magic {magic!r}; only single-file NIfTI-1 ('n+1') is supported")
    dim = struct.unpack(endian + "8h", raw[40:56])
    ndim = dim[0]
    if not 1 <= ndim <= 7:
        raise NiftiError(f"{path}: invalid dim[0] = {ndim}")
    shape = tuple(int(d) for d in dim[1:1 + ndim])
    datatype = struct.unpack(endian + "h", raw[70:72])[0]
    if datatype not in _DTYPES:
        raise NiftiError(f"{path}: unsupported NIfTI datatype code {datatype}")
    vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    slope, inter = struct.unpack(endian + "2f", raw[112:120])
    dtype = np.dtype(endian + _DTYPES[datatype])
    count = int(np.prod(shape))
    if len(raw) < vox_offset + count * dtype.itemsize:
        raise NiftiError(f"{path}: truncated: {shape} voxels of {dtype} need {vox_offset + count * dtype.itemsize} "
                         f"bytes, file has {len(raw)}")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=vox_offset).reshape(shape, order="F")
    data = data.astype(dtype.newbyteorder("="))
    if np.isfinite(slope) and slope != 0.0 and (slope != 1.0 or inter != 0.0):  # slope 0/NaN: unscaled
        data = data.astype(np.float64) * slope + inter
    return data


def write_nifti(path: str, data: np.ndarray, voxel_size: float = 1.8) -> None:
    """Write (x, y, z[, t]) data as single-file NIfTI-1 (gzipped when the path ends in .gz)."""
    data = np.asarray(data)
    code = _CODES.get(data.dtype.str[1:])
    if code is None:
        raise ValueError(f"unsupported dtype {data.dtype}")
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    dims = [data.ndim, *data.shape] + [1] * (7 - data.ndim)
    struct.pack_into("<8h", header, 40, *dims)
    struct.pack_into("<hh", header, 70, code, data.dtype.itemsize * 8)
    struct.pack_into("<8f", header, 76, 1.0, *([voxel_size] * 3), 1.0, 1.0, 1.0, 1.0)  # pixdim
    struct.pack_into("<f", header, 108, 352.0)
    struct.pack_into("<ff", header, 112, 1.0, 0.0)
    struct.pack_into("<h", header, 252, 1)  # qform_code: scanner
    header[344:348] = b"n+1\0"
    payload = bytes(header) + np.ascontiguousarray(data.astype(data.dtype.newbyteorder("<")).ravel(order="F")).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    tmp = f"{path}.tmp"
    with opener(tmp, "wb") as f:
        f.write(payload)
    os.replace(tmp, path)
