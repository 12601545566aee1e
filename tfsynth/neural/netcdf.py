"""BrainIO data assemblies (netCDF-4 = HDF5 files) read and written with h5py alone (no xarray / netCDF4).

BrainIO stores a DataAssembly with `xarray.DataArray.to_netcdf` after `reset_index` (brainio `packaging.
write_netcdf`): one data variable ('data' in compressed mode, '__xarray_dataarray_variable__' otherwise) with
dimensions like (presentation, neuroid, time_bin); each dimension is an HDF5 dimension scale (a placeholder
dataset whose NAME starts "This is a netCDF dimension but not a netCDF variable"); every coordinate
(stimulus_id, repetition, object_name, variation, ..., neuroid_id, region, ..., time_bin_start/end) is a 1-D
dataset attached to one dimension scale through its DIMENSION_LIST attribute; strings are variable-length
UTF-8; floats may carry _FillValue (NaN) and scale_factor/add_offset. Global attributes hold the identifier
and stimulus_set_identifier.

`read_assembly` returns an `Assembly` (values, dims, coords); `write_assembly` writes the same layout (used
by the tests and to convert other data into the form the majaj_hong_2015 builder reads). An equivalent
`.npz` layout is supported by `read_assembly` too: key 'data' plus 1-D arrays named '<dim>.<coord>'
(e.g. 'presentation.stimulus_id', 'neuroid.region') and optionally 'dims' (the dimension names in order).
TF-free.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import numpy as np

__all__ = ["Assembly", "read_assembly", "write_assembly", "AssemblyError"]

_DIM_ONLY = b"This is a netCDF dimension but not a netCDF variable"


class AssemblyError(ValueError):
    """A file that is not a readable assembly; the message names the file and the problem."""


@dataclasses.dataclass
class Assembly:
    values: np.ndarray
    dims: tuple[str, ...]
    coords: dict[str, tuple[str, np.ndarray]]  # name -> (dim, values)
    attrs: dict = dataclasses.field(default_factory=dict)
    path: str = ""

    def coord(self, name: str, dim: Optional[str] = None) -> np.ndarray:
        if name not in self.coords:
            raise AssemblyError(f"{self.path}: no coordinate {name!r}; coordinates: {', '.join(sorted(self.coords))}")
        cdim, values = self.coords[name]
        if dim is not None and cdim != dim:
            raise AssemblyError(f"{self.path}: coordinate {name!r} is along {cdim!r}, expected {dim!r}")
        return values

    def has(self, name: str) -> bool:
        return name in self.coords

    def size(self, dim: str) -> int:
        return self.values.shape[self.dims.index(dim)]


def _decode(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "O":
        return np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.ravel()],
                        dtype=object).reshape(arr.shape).astype(str)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "utf-8")
    return arr


def _dataset_values(ds) -> np.ndarray:
    arr = ds[()]
    arr = np.asarray(arr)
    if arr.dtype.kind in "OS":
        if arr.dtype == np.dtype("S1") and arr.ndim >= 2:  # netCDF char array: join the trailing char dimension
            arr = np.array([b"".join(row).rstrip(b"\0")
                            for row in arr.reshape(-1, arr.shape[-1])]).reshape(arr.shape[:-1])
        return _decode(arr)
    attrs = ds.attrs
    if arr.dtype.kind in "fiu":
        fill = attrs.get("_FillValue")
        scale, offset = attrs.get("scale_factor"), attrs.get("add_offset")
        if scale is not None or offset is not None or (fill is not None and arr.dtype.kind == "f"):
            out = arr.astype(np.float64)
            if fill is not None:
                out[arr == np.asarray(fill).astype(arr.dtype)] = np.nan
            if scale is not None:
                out = out * float(np.asarray(scale).ravel()[0])
            if offset is not None:
                out = out + float(np.asarray(offset).ravel()[0])
            return out
    return arr


def _dim_names(f, ds) -> list[str]:
    dim_list = ds.attrs.get("DIMENSION_LIST")
    if dim_list is None:
        return []
    names = []
    for refs in dim_list:
        refs = np.atleast_1d(refs)
        names.append(os.path.basename(f[refs[0]].name))
    return names


def _read_h5(path: str) -> Assembly:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise AssemblyError(f"{path}: not an HDF5/netCDF-4 file ({e}); netCDF-3 (classic) files are not supported, "
                            "convert with `nccopy -k nc4` or use the .npz layout") from None
    with f:
        datasets = {name: obj for name, obj in f.items() if isinstance(obj, h5py.Dataset)}
        candidates = [n for n, ds in datasets.items() if ds.ndim >= 2 and "DIMENSION_LIST" in ds.attrs]
        preferred = [n for n in ("data", "__xarray_dataarray_variable__") if n in candidates]
        if preferred:
            data_name = preferred[0]
        elif len(candidates) == 1:
            data_name = candidates[0]
        else:
            raise AssemblyError(f"{path}: cannot tell the data variable among {candidates or list(datasets)} "
                                "(expected one multi-dimensional netCDF variable, e.g. 'data')")
        data_ds = datasets[data_name]
        dims = tuple(_dim_names(f, data_ds))
        if len(dims) != data_ds.ndim:
            raise AssemblyError(f"{path}: variable {data_name!r} has no dimension names")
        values = _dataset_values(data_ds)
        coords: dict[str, tuple[str, np.ndarray]] = {}
        for name, ds in datasets.items():
            if name == data_name:
                continue
            is_scale = ds.attrs.get("CLASS") == b"DIMENSION_SCALE"
            if is_scale:
                label = ds.attrs.get("NAME", b"")
                if isinstance(label, bytes) and label.startswith(_DIM_ONLY):
                    continue  # a bare dimension
                if ds.ndim == 1 and name in dims:
                    coords[name] = (name, _dataset_values(ds))
                continue
            ds_dims = _dim_names(f, ds)
            if len(ds_dims) == 1 and ds_dims[0] in dims:
                coords[name] = (ds_dims[0], _dataset_values(ds))
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    return Assembly(values=values, dims=dims, coords=coords, attrs=attrs, path=path)


def _read_npz(path: str) -> Assembly:
    with np.load(path, allow_pickle=False) as z:
        if "data" not in z.files:
            raise AssemblyError(f"{path}: no 'data' array (keys: {', '.join(z.files)})")
        values = z["data"]
        coords = {}
        dims_found: list[str] = []
        for key in z.files:
            if key in ("data", "dims"):
                continue
            dim, dot, name = key.partition(".")
            if not dot:
                raise AssemblyError(f"{path}: key {key!r} is not '<dim>.<coord>'")
            coords[name] = (dim, _decode(z[key]))
            if dim not in dims_found:
                dims_found.append(dim)
        dims = tuple(str(d) for d in z["dims"]) if "dims" in z.files else None
    if dims is None:
        order = ["presentation", "neuroid", "time_bin"]
        dims = tuple([d for d in order if d in dims_found] + [d for d in dims_found if d not in order])
    if len(dims) != values.ndim:
        raise AssemblyError(f"{path}: data has {values.ndim} dimensions but coordinates name {list(dims)}; "
                            "add a 'dims' array")
    for name, (dim, v) in coords.items():
        if v.shape != (values.shape[dims.index(dim)],):
            raise AssemblyError(f"{path}: coordinate {dim}.{name} has {v.shape[0]} entries, "
                                f"dimension {dim} has {values.shape[dims.index(dim)]}")
    return Assembly(values=values, dims=dims, coords=coords, path=path)


def read_assembly(path: str) -> Assembly:
    """A BrainIO netCDF-4 assembly (.nc) or the equivalent .npz layout."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise AssemblyError(f"{path}: no such file")
    return _read_npz(path) if path.endswith(".npz") else _read_h5(path)


def write_assembly(path: str, values: np.ndarray, dims: tuple[str, ...], coords: dict, attrs: Optional[dict] = None,
                   name: str = "data") -> None:
    """Write values + coords ({name: (dim, 1-D array)}) in BrainIO's netCDF-4 layout (see module docstring)."""
    import h5py

    values = np.asarray(values)
    if values.ndim != len(dims):
        raise ValueError(f"values have {values.ndim} dimensions, dims are {dims}")
    tmp = f"{path}.tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["_NCProperties"] = np.bytes_(b"version=2,netcdf=4.7.4,hdf5=1.12.0,")
        for key, value in (attrs or {}).items():
            f.attrs[key] = np.bytes_(value.encode()) if isinstance(value, str) else value
        scales = {}
        for i, dim in enumerate(dims):
            n = values.shape[i]
            ds = f.create_dataset(dim, data=np.zeros(n, ">f4"))
            ds.make_scale(dim)
            ds.attrs["NAME"] = np.bytes_(_DIM_ONLY + b" %10d" % n)
            ds.attrs["_Netcdf4Dimid"] = np.int32(i)
            scales[dim] = ds
        kwargs = dict(compression="gzip", compression_opts=9) if values.size > 1 else {}
        data = f.create_dataset(name, data=values, **kwargs)
        if values.dtype.kind == "f":
            data.attrs["_FillValue"] = np.array(np.nan, values.dtype)
        for i, dim in enumerate(dims):
            data.dims[i].attach_scale(scales[dim])
        data.attrs["coordinates"] = np.bytes_(" ".join(coords).encode())
        data.attrs["_Netcdf4Coordinates"] = np.arange(len(dims), dtype=np.int32)
        for cname, (dim, cvalues) in coords.items():
            cvalues = np.asarray(cvalues)
            if cvalues.shape != (values.shape[dims.index(dim)],):
                raise ValueError(f"coordinate {cname!r} has shape {cvalues.shape}, dimension {dim!r} has "
                                 f"{values.shape[dims.index(dim)]}")
            if cvalues.dtype.kind in "UOS":
                ds = f.create_dataset(cname, data=np.array([str(v).encode() if not isinstance(v, bytes) else v
                                                            for v in cvalues], dtype=object),
                                      dtype=h5py.string_dtype("utf-8"))
            else:
                ds = f.create_dataset(cname, data=cvalues)
            ds.dims[0].attach_scale(scales[dim])
    os.replace(tmp, path)
