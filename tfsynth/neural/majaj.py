"""MajajHong2015 (monkey V4 / IT multi-unit responses to the HvM images) from Brain-Score's BrainIO files.

Input (in one directory, searched recursively):
* assemblies: BrainIO netCDF-4 files (`assy_dicarlo_MajajHong2015_public.nc`, `..._private.nc`, the full
  `dicarlo.MajajHong2015`, or their `.temporal` variants) or the equivalent `.npz` layout (see
  `tfsynth.neural.netcdf`): presentation x neuroid [x time_bin] firing rates with presentation coordinates
  stimulus_id (or image_id) and repetition (object_name, category_name, variation optional here when the
  stimulus CSV has them) and neuroid coordinates neuroid_id and region;
* the stimulus set: CSV file(s) with columns stimulus_id (or image_id), filename (or image_file_name) and
  object_name, category_name, variation; the images next to them, loose or inside .zip archives.

Cleaning (Brain-Score's packaging and benchmark): responses are the mean rate in 70-170 ms (a temporal
assembly's bins inside that window are averaged; a single bin must be exactly 70-170); the 40 erroneous
'Tito_L_P_*' sites Brain-Score filters are dropped; V4 and IT must then have 88 and 168 sites; presentations
repeated across files are kept once; every repetition is kept (for the split-half ceiling) and the
variation level is kept (public = variations 0 and 3, private = variation 6). TF-free.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
import zipfile
from typing import Iterator

import numpy as np

from tfsynth.neural.netcdf import Assembly, AssemblyError, read_assembly

__all__ = ["ERRONEOUS_NEUROIDS", "MajajHongSpec", "load_majaj_hong", "Stimulus", "iter_stimuli", "access_of"]

# Brain-Score's data_packaging `_filter_erroneous_neuroids`: sites removed before packaging.
ERRONEOUS_NEUROIDS = frozenset(f"Tito_L_P_{a}_{b}" for a, b in (
    (8, 5), (7, 3), (7, 5), (5, 1), (9, 3), (6, 3), (7, 4), (5, 0), (5, 4), (9, 6), (0, 4), (4, 6), (5, 6), (7, 6),
    (9, 8), (4, 1), (0, 5), (9, 9), (3, 0), (0, 3), (6, 6), (5, 7), (1, 1), (3, 8), (1, 6), (3, 5), (6, 8), (2, 8),
    (9, 7), (6, 7), (1, 0), (4, 5), (4, 9), (7, 8), (4, 7), (4, 0), (3, 9), (7, 7), (4, 3), (9, 5)))
VISUAL_DEGREES = 8.0


def access_of(variation: int) -> str:
    """Brain-Score's MajajHong2015 packaging: variations 0 and 3 are public, 6 private."""
    return {0: "public", 3: "public", 6: "private"}.get(int(variation), "")


@dataclasses.dataclass(frozen=True)
class MajajHongSpec:
    regions: tuple[tuple[str, int], ...] = (("V4", 88), ("IT", 168))  # region -> expected sites (0: any)
    time_window: tuple[int, int] = (70, 170)
    drop_erroneous: bool = True


@dataclasses.dataclass
class Stimulus:
    stimulus_id: str
    object_name: str
    category_name: str
    variation: int
    image_path: str  # 'file' or 'archive.zip::member'
    repetition: np.ndarray  # (R,) int32
    responses: dict  # region -> (R, sites) float32


def _find(root: str, suffixes: tuple[str, ...]) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(root):
        out.extend(os.path.join(dirpath, f) for f in files if f.lower().endswith(suffixes))
    return sorted(out)


def _time_average(a: Assembly, window: tuple[int, int]) -> np.ndarray:
    """(presentation, neuroid) mean rate over the time bins inside `window`."""
    order = [a.dims.index("presentation"), a.dims.index("neuroid")]
    if "time_bin" not in a.dims:
        if len(a.dims) != 2:
            raise AssemblyError(f"{a.path}: dimensions {a.dims}; expected presentation, neuroid[, time_bin]")
        return np.transpose(a.values, order).astype(np.float64)
    values = np.transpose(a.values, order + [a.dims.index("time_bin")]).astype(np.float64)
    if not (a.has("time_bin_start") and a.has("time_bin_end")):
        if values.shape[2] == 1:
            return values[:, :, 0]
        raise AssemblyError(f"{a.path}: {values.shape[2]} time bins without time_bin_start/time_bin_end")
    start = np.asarray(a.coord("time_bin_start", "time_bin"), np.float64)
    end = np.asarray(a.coord("time_bin_end", "time_bin"), np.float64)
    lo, hi = window
    if len(start) == 1:
        if (start[0], end[0]) != (lo, hi):
            raise AssemblyError(f"{a.path}: its single time bin is {start[0]:g}-{end[0]:g} ms, expected {lo}-{hi} ms "
                                "(use the non-temporal assembly or a temporal one)")
        return values[:, :, 0]
    inside = (start >= lo) & (end <= hi)
    covered = np.sort(np.stack([start[inside], end[inside]], 1), axis=0)
    if not inside.any() or covered[0, 0] != lo or covered[-1, 1] != hi or np.any(covered[1:, 0] != covered[:-1, 1]):
        raise AssemblyError(f"{a.path}: time bins {list(zip(start.tolist(), end.tolist()))[:5]}... do not tile "
                            f"{lo}-{hi} ms")
    return np.nanmean(values[:, :, inside], axis=2)


def _presentation_coord(a: Assembly, *names: str, required: bool = True):
    for name in names:
        if a.has(name):
            return a.coord(name, "presentation")
    if required:
        raise AssemblyError(f"{a.path}: needs presentation coordinate {' or '.join(names)}; has "
                            f"{', '.join(sorted(a.coords))}")
    return None


def _read_stimulus_csvs(root: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in _find(root, (".csv",)):
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            id_col = "stimulus_id" if "stimulus_id" in fields else "image_id" if "image_id" in fields else None
            file_col = ("filename" if "filename" in fields
                        else "image_file_name" if "image_file_name" in fields else None)
            if id_col is None:
                continue  # not a stimulus CSV
            if file_col is None:
                raise ValueError(f"{path}: stimulus CSV has no 'filename' (or 'image_file_name') column")
            for line, row in enumerate(reader, start=2):
                sid = row[id_col]
                if not sid:
                    raise ValueError(f"{path}:{line}: empty {id_col}")
                rows.setdefault(sid, {**row, "_filename": row[file_col], "_csv": path})
    return rows


class _ImageIndex:
    """Finds stimulus files by name on disk or inside .zip archives under the manual dir."""

    def __init__(self, root: str):
        self.files: dict[str, str] = {}
        for path in _find(root, (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")):
            self.files.setdefault(os.path.basename(path), path)
        for archive in _find(root, (".zip",)):
            with zipfile.ZipFile(archive) as z:
                for member in z.namelist():
                    if not member.endswith("/"):
                        self.files.setdefault(os.path.basename(member), f"{archive}::{member}")

    def locate(self, filename: str) -> str | None:
        return self.files.get(os.path.basename(filename))


def read_image(ref: str) -> np.ndarray:
    """(H, W, 3) uint8 from a file path or 'archive.zip::member'."""
    from PIL import Image

    if "::" in ref:
        archive, member = ref.split("::", 1)
        with zipfile.ZipFile(archive) as z:
            data = z.read(member)
        image = Image.open(io.BytesIO(data))
    else:
        image = Image.open(ref)
    try:
        return np.asarray(image.convert("RGB"))
    except OSError as e:
        raise ValueError(f"{ref}: cannot decode image ({e})") from None


def load_majaj_hong(root: str, spec: MajajHongSpec = MajajHongSpec()) -> tuple[list[Stimulus], dict]:
    """All stimuli with their per-region trials (sorted by stimulus_id) and metadata (neuroid ids, counts)."""
    paths = [p for p in _find(root, (".nc", ".npz"))]
    if not paths:
        raise FileNotFoundError(f"{root}: no BrainIO assembly (.nc) or .npz assembly found; see "
                                "MANUAL_DOWNLOAD_INSTRUCTIONS")
    wanted = [r for r, _ in spec.regions]
    trials: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    meta_by_stim: dict[str, dict] = {}
    neuroids: dict[str, np.ndarray] = {}
    dropped, duplicates = set(), 0
    for path in paths:
        a = read_assembly(path)
        for dim in ("presentation", "neuroid"):
            if dim not in a.dims:
                raise AssemblyError(f"{path}: no {dim!r} dimension (dims {a.dims})")
        rates = _time_average(a, spec.time_window)
        sids = _presentation_coord(a, "stimulus_id", "image_id")
        reps = _presentation_coord(a, "repetition", required=False)
        if reps is None:
            raise AssemblyError(f"{path}: no 'repetition' coordinate: the builder needs trial-level assemblies "
                                "(not repetition-averaged ones) for the split-half ceilings")
        neuroid_id = a.coord("neuroid_id", "neuroid") if a.has("neuroid_id") else None
        region = a.coord("region", "neuroid")
        keep = np.ones(len(region), bool)
        if spec.drop_erroneous and neuroid_id is not None:
            bad = np.isin(neuroid_id.astype(str), list(ERRONEOUS_NEUROIDS))
            dropped.update(neuroid_id[bad].tolist())
            keep &= ~bad
        extra = {k: _presentation_coord(a, k, required=False) for k in ("object_name", "category_name", "variation")}
        present = [r for r in wanted if (keep & (region == r)).any()]
        for r in present:
            sel = keep & (region == r)
            ids = neuroid_id[sel] if neuroid_id is not None else np.array([f"{r}_{i}" for i in range(sel.sum())])
            if r in neuroids and not np.array_equal(neuroids[r], ids):
                raise AssemblyError(f"{path}: {r} sites differ from the other assembly files "
                                    f"({len(ids)} vs {len(neuroids[r])})")
            neuroids[r] = ids
        masks = {r: keep & (region == r) for r in present}
        for i, (sid, rep) in enumerate(zip(sids.astype(str), np.asarray(reps).astype(int))):
            entry = trials.setdefault((sid, int(rep)), {})
            if all(r in entry for r in present):
                duplicates += 1  # the same presentation in two files (e.g. the full and the public assembly)
                continue
            for r, m in masks.items():
                entry.setdefault(r, rates[i, m].astype(np.float32))
            info = meta_by_stim.setdefault(sid, {})
            for k, v in extra.items():
                if v is not None:
                    info.setdefault(k, v[i])
    for r, expected in spec.regions:
        found = len(neuroids.get(r, []))
        if found == 0:
            raise AssemblyError(f"{root}: no {r} sites in the assemblies (neuroid coordinate 'region')")
        if expected and found != expected:
            raise AssemblyError(f"{root}: {found} {r} sites after cleaning, expected {expected} "
                                f"(MajajHong2015: V4 88, IT 168)")

    csv_rows = _read_stimulus_csvs(root)
    images = _ImageIndex(root)
    by_stim: dict[str, list] = {}
    for (sid, rep), value in trials.items():
        by_stim.setdefault(sid, []).append((rep, value))
    stimuli, missing = [], []
    for sid in sorted(by_stim):
        row = csv_rows.get(sid, {})
        info = meta_by_stim.get(sid, {})
        filename = row.get("_filename") or sid
        ref = images.locate(filename)
        if ref is None:
            missing.append(f"{sid} ({filename})")
            continue
        variation = row.get("variation", info.get("variation", -1))
        try:
            variation = int(float(variation))
        except (TypeError, ValueError):
            raise ValueError(f"{row.get('_csv', root)}: stimulus {sid}: "
                             f"variation {variation!r} is not a number") from None
        pairs = sorted(by_stim[sid], key=lambda p: p[0])
        stimuli.append(Stimulus(
            stimulus_id=sid, object_name=str(row.get("object_name", info.get("object_name", ""))),
            category_name=str(row.get("category_name", info.get("category_name", ""))), variation=variation,
            image_path=ref, repetition=np.array([p[0] for p in pairs], np.int32),
            responses={r: np.stack([p[1].get(r, np.full(len(neuroids[r]), np.nan, np.float32)) for p in pairs])
                       for r in wanted}))
    if missing:
        raise FileNotFoundError(f"{root}: no image file for {len(missing)} stimuli with responses, e.g. "
                                f"{missing[:3]}; put the stimulus CSV and images (or their .zip) in the manual dir")
    meta = {"regions": wanted, "visual_degrees": VISUAL_DEGREES, "time_window_ms": list(spec.time_window),
            "neuroid_ids": {r: [str(x) for x in ids] for r, ids in neuroids.items()},
            "erroneous_sites_dropped": sorted(dropped), "duplicate_presentations_skipped": duplicates,
            "assembly_files": [os.path.relpath(p, root) for p in paths], "num_stimuli": len(stimuli)}
    return stimuli, meta


def iter_stimuli(stimuli: list[Stimulus]) -> Iterator[tuple[str, dict]]:
    """(key, example) pairs for the TFDS builder."""
    for s in stimuli:
        yield s.stimulus_id, {
            "image": read_image(s.image_path), "stimulus_id": s.stimulus_id, "object_name": s.object_name,
            "category_name": s.category_name, "variation": np.int32(s.variation), "access": access_of(s.variation),
            "repetition": s.repetition, "responses": {r: v.astype(np.float32) for r, v in s.responses.items()}}
