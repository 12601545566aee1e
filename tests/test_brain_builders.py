"""majaj_hong_2015 and nsd TFDS builders: tiny files in the original formats, real builds into a tmp data_dir.

MajajHong: BrainIO netCDF-4 assemblies written with h5py in the layout brainio/xarray produce (dimension
scales, DIMENSION_LIST, vlen strings), an .npz temporal assembly, stimulus CSVs, PNGs loose and zipped.
NSD: nsd_expdesign.mat (scipy), betas_sessionNN.hdf5 ('/betas' int16, 750 trials x Z x Y x X),
nsd_stimuli.hdf5 ('imgBrick'), NIfTI-1 ROI volumes (X, Y, Z).
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import tensorflow_datasets as tfds
from PIL import Image

import tfds_builders.majaj_hong_2015  # noqa: F401  (registers the builders)
import tfds_builders.nsd  # noqa: F401
from tfds_builders.majaj_hong_2015 import Builder as MajajBuilder
from tfds_builders.nsd import Builder as NsdBuilder
from tfds_builders.nsd import NsdConfig
from tfsynth.neural import majaj, nsd
from tfsynth.neural.netcdf import AssemblyError, read_assembly, write_assembly
from tfsynth.neural.nifti import read_nifti, write_nifti

# ---------------------------------------------------------------------------------------------- MajajHong
N_OBJECTS, PER_VARIATION, REPS = 4, 8, 3
VARIATIONS = (0, 3, 6)
ERRONEOUS = ["Tito_L_P_8_5", "Tito_L_P_7_3", "Tito_L_P_9_5"]


def _stimuli():
    out = []
    for o in range(N_OBJECTS):
        for v in VARIATIONS:
            for i in range(PER_VARIATION):
                out.append({"stimulus_id": f"{o:02d}{v}{i:02d}" + "f" * 34, "object_name": f"obj{o}",
                            "category_name": f"cat{o % 2}", "variation": v})
    return out


def _neuroids():
    ids = [f"Chabo_L_M_{i}" for i in range(88)] + [f"Tito_L_M_{i}" for i in range(168)] + ERRONEOUS
    regions = ["V4"] * 88 + ["IT"] * 168 + ["IT"] * len(ERRONEOUS)
    return np.array(ids), np.array(regions)


def _rates(stimuli, seed=0):
    """(presentation, neuroid) rates, presentations = stimuli x repetitions (repetition-major)."""
    rng = np.random.default_rng(seed)
    ids, _ = _neuroids()
    signal = rng.normal(size=(len(stimuli), len(ids)))
    return np.concatenate([signal + 0.5 * rng.normal(size=signal.shape) for _ in range(REPS)]).astype(np.float32)


def write_majaj(root: Path, temporal_npz: bool = False) -> dict:
    """Public (variations 0, 3) and private (6) assemblies + CSVs + images; returns the expected trials."""
    root.mkdir(parents=True, exist_ok=True)
    stimuli = _stimuli()
    rates = _rates(stimuli)
    ids, regions = _neuroids()
    expected = {}
    for r in range(REPS):
        for s, stim in enumerate(stimuli):
            expected.setdefault(stim["stimulus_id"], []).append(rates[r * len(stimuli) + s])
    for access, variations in (("public", (0, 3)), ("private", (6,))):
        idx = [s for s, stim in enumerate(stimuli) if stim["variation"] in variations]
        pres = [r * len(stimuli) + s for r in range(REPS) for s in idx]
        coords = {
            "stimulus_id": ("presentation", np.array([stimuli[p % len(stimuli)]["stimulus_id"] for p in pres])),
            "repetition": ("presentation", np.array([p // len(stimuli) for p in pres])),
            "object_name": ("presentation", np.array([stimuli[p % len(stimuli)]["object_name"] for p in pres])),
            "variation": ("presentation", np.array([stimuli[p % len(stimuli)]["variation"] for p in pres])),
            "neuroid_id": ("neuroid", ids), "region": ("neuroid", regions),
            "animal": ("neuroid", np.array([i.split("_")[0] for i in ids])),
            "time_bin_start": ("time_bin", np.array([70])), "time_bin_end": ("time_bin", np.array([170])),
        }
        values = rates[pres][:, :, None]
        if temporal_npz and access == "private":  # 10-ms bins 60-180 ms whose 70-170 mean is the rate
            bins = np.arange(60, 180, 10)
            noise = np.random.default_rng(1).normal(size=(len(pres), len(ids), len(bins))).astype(np.float32)
            inside = (bins >= 70) & (bins + 10 <= 170)
            noise[:, :, inside] -= noise[:, :, inside].mean(axis=2, keepdims=True)
            values = values + noise
            arrays = {"data": values, "dims": np.array(["presentation", "neuroid", "time_bin"])}
            for name, (dim, v) in coords.items():
                if dim != "time_bin":
                    arrays[f"{dim}.{name}"] = v
            arrays["time_bin.time_bin_start"] = bins
            arrays["time_bin.time_bin_end"] = bins + 10
            np.savez(root / f"assy_dicarlo_MajajHong2015_temporal_{access}.npz", **arrays)
        else:
            write_assembly(str(root / f"assy_dicarlo_MajajHong2015_{access}.nc"), values,
                           ("presentation", "neuroid", "time_bin"), coords,
                           attrs={"identifier": f"dicarlo.MajajHong2015.{access}",
                                  "stimulus_set_identifier": f"hvm-{access}"})
        rows = [dict(stim, filename=f"im_{stim['stimulus_id']}.png")
                for stim in stimuli if stim["variation"] in variations]
        with open(root / f"image_dicarlo_hvm-{access}.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["stimulus_id", "object_name", "category_name", "variation",
                                                   "filename"])
            writer.writeheader()
            writer.writerows(rows)
        images = {row["filename"]: _png(int(row["stimulus_id"][:2]), row["variation"]) for row in rows}
        if access == "public":  # zipped, as BrainIO ships stimuli
            with zipfile.ZipFile(root / "image_dicarlo_hvm-public.zip", "w") as z:
                for name, data in images.items():
                    z.writestr(f"hvm-public/{name}", data)
        else:
            (root / "images").mkdir(exist_ok=True)
            for name, data in images.items():
                (root / "images" / name).write_bytes(data)
    return {k: np.stack(v) for k, v in expected.items()}


def _png(obj: int, variation: int) -> bytes:
    image = np.full((24, 24), 40 * obj + 10 * variation, np.uint8)  # grayscale like HvM
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _examples(builder):
    return {ex["stimulus_id"].decode(): ex
            for ex in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False))}


@pytest.fixture(scope="module")
def majaj_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("majaj")
    expected = write_majaj(root / "manual")
    builder = MajajBuilder(data_dir=str(root / "data"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root / "manual")))
    return builder, expected, root


def test_netcdf_roundtrip_has_brainio_layout(tmp_path):
    path = str(tmp_path / "a.nc")
    values = np.arange(12, dtype=np.float64).reshape(4, 3)
    values[1, 1] = np.nan
    write_assembly(path, values, ("presentation", "neuroid"), {
        "stimulus_id": ("presentation", np.array(["a", "b", "a", "b"])),
        "repetition": ("presentation", np.array([0, 0, 1, 1])),
        "region": ("neuroid", np.array(["V4", "IT", "IT"]))}, attrs={"identifier": "x"})
    import h5py

    with h5py.File(path, "r") as f:  # the netCDF-4 conventions brainio files carry
        assert f["presentation"].attrs["CLASS"] == b"DIMENSION_SCALE"
        assert f["presentation"].attrs["NAME"].startswith(b"This is a netCDF dimension but not a netCDF variable")
        assert "DIMENSION_LIST" in f["data"].attrs and "DIMENSION_LIST" in f["stimulus_id"].attrs
        assert f["stimulus_id"].dtype.kind == "O"  # variable-length strings
    a = read_assembly(path)
    assert a.dims == ("presentation", "neuroid") and a.attrs["identifier"] == "x"
    np.testing.assert_array_equal(a.values, values)
    assert a.coord("stimulus_id", "presentation").tolist() == ["a", "b", "a", "b"]
    assert a.coord("region", "neuroid").tolist() == ["V4", "IT", "IT"]
    with pytest.raises(AssemblyError, match="no such file"):
        read_assembly(str(tmp_path / "missing.nc"))
    (tmp_path / "bad.nc").write_bytes(b"CDF\x01 classic netcdf")
    with pytest.raises(AssemblyError, match="bad.nc: not an HDF5/netCDF-4 file"):
        read_assembly(str(tmp_path / "bad.nc"))


def test_majaj_build_keeps_trials_variation_and_cleans_sites(majaj_build):
    builder, expected, _ = majaj_build
    examples = _examples(builder)
    assert len(examples) == N_OBJECTS * len(VARIATIONS) * PER_VARIATION
    assert list(examples) == sorted(examples)  # sorted by stimulus_id
    meta = builder.info.metadata
    assert meta["regions"] == ["V4", "IT"] and meta["visual_degrees"] == 8.0
    assert len(meta["neuroid_ids"]["V4"]) == 88 and len(meta["neuroid_ids"]["IT"]) == 168
    assert meta["erroneous_sites_dropped"] == sorted(ERRONEOUS)
    for sid, ex in examples.items():
        assert ex["image"].shape == (24, 24, 3) and ex["image"].dtype == np.uint8
        assert ex["access"].decode() == {0: "public", 3: "public", 6: "private"}[int(ex["variation"])]
        assert ex["object_name"].decode() == f"obj{int(sid[:2])}"
        np.testing.assert_array_equal(ex["repetition"], np.arange(REPS))
        assert ex["responses"]["V4"].shape == (REPS, 88) and ex["responses"]["IT"].shape == (REPS, 168)
        np.testing.assert_array_equal(ex["responses"]["V4"], expected[sid][:, :88])
        np.testing.assert_array_equal(ex["responses"]["IT"], expected[sid][:, 88:256])


def test_majaj_temporal_npz_is_averaged_over_70_170_ms(tmp_path):
    expected = write_majaj(tmp_path, temporal_npz=True)
    stimuli, meta = majaj.load_majaj_hong(str(tmp_path))
    assert any(f.endswith(".npz") for f in meta["assembly_files"])
    private = [s for s in stimuli if s.variation == 6]
    assert private
    for s in private:
        np.testing.assert_allclose(s.responses["V4"], expected[s.stimulus_id][:, :88], atol=1e-5)


def test_majaj_bad_inputs_give_clear_errors(tmp_path):
    write_majaj(tmp_path)
    next((tmp_path / "images").iterdir()).unlink()
    with pytest.raises(FileNotFoundError, match="no image file for 1 stimuli"):
        majaj.load_majaj_hong(str(tmp_path))
    with pytest.raises(AssemblyError, match="168 IT sites after cleaning, expected 100"):
        majaj.load_majaj_hong(str(tmp_path), majaj.MajajHongSpec(regions=(("V4", 88), ("IT", 100))))
    # a single time bin that is not 70-170 ms
    a = read_assembly(str(tmp_path / "assy_dicarlo_MajajHong2015_public.nc"))
    coords = dict(a.coords, time_bin_start=("time_bin", np.array([0])), time_bin_end=("time_bin", np.array([100])))
    write_assembly(str(tmp_path / "assy_dicarlo_MajajHong2015_public.nc"), a.values, a.dims, coords)
    with pytest.raises(AssemblyError, match=r"public.nc: its single time bin is 0-100 ms, expected 70-170 ms"):
        majaj.load_majaj_hong(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no BrainIO assembly"):
        majaj.load_majaj_hong(str(empty))


def test_majaj_eval_loader_uses_brain_score_public_private_split(majaj_build):
    from eval.neural.data import load_brain_data

    builder, expected, root = majaj_build
    data = load_brain_data("majaj_hong_2015", data_dir=str(root / "data"))
    assert data.regions == ["V4", "IT"] and not data.simulated and data.visual_degrees == 8.0
    assert data.trials["IT"].shape == (REPS, len(data), 168)
    variation = data.meta["variation"]
    np.testing.assert_array_equal(data.selection, variation != 6)
    sid = data.stimulus_id[5]
    np.testing.assert_array_equal(data.trials["V4"][:, 5], expected[sid][:, :88])
    np.testing.assert_allclose(data.responses("V4")[5], expected[sid][:, :88].mean(0), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------- NSD
SHAPE_XYZ = (5, 4, 3)
N_SESSIONS = 2


def write_nsd(root: Path, with_object_rois: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    exp = root / "nsddata" / "experiments" / "nsd"
    exp.mkdir(parents=True)
    subjectim = np.stack([rng.permutation(np.arange(1, 10001)) for _ in range(8)])
    shared = subjectim[0, :1000].copy()  # the first 1000 of subject 1's images are the shared ones
    rng.shuffle(shared)
    order = rng.integers(1001, 10001, 30000)  # mostly unshared ...
    first = rng.choice(np.arange(1, 1001), 12, replace=False)
    for rep in range(3):  # ... plus 12 shared images x 3 repetitions, the third of 4 of them after session 2
        slots = rng.choice(np.arange(rep * 500, rep * 500 + 480), 12, replace=False)
        if rep == 2:
            slots[8:] += 600  # trials 1600.. are in session 3, which is not there
        order[slots] = first
    scipy.io.savemat(exp / "nsd_expdesign.mat", {"masterordering": order[None, :], "subjectim": subjectim,
                                                 "sharedix": shared[None, :]})
    stim = root / "nsddata_stimuli" / "stimuli" / "nsd"
    stim.mkdir(parents=True)
    import h5py

    with h5py.File(stim / "nsd_stimuli.hdf5", "w") as f:
        brick = f.create_dataset("imgBrick", shape=(10000, 8, 8, 3), dtype=np.uint8, chunks=(1, 8, 8, 3))
        for nsd_id in subjectim[0, first - 1]:
            brick[nsd_id - 1] = nsd_id % 251
    betas_dir = root / "nsddata_betas" / "ppdata" / "subj01" / "func1pt8mm" / "betas_fithrf_GLMdenoise_RR"
    betas_dir.mkdir(parents=True)
    zyx = SHAPE_XYZ[::-1]
    betas = []
    for s in range(N_SESSIONS):
        b = rng.integers(-900, 900, size=(750, *zyx)).astype(np.int16)
        with h5py.File(betas_dir / f"betas_session{s + 1:02d}.hdf5", "w") as f:
            f.create_dataset("betas", data=b, chunks=(750, 1, 1, 1))
        betas.append(b)
    roi_dir = root / "nsddata" / "ppdata" / "subj01" / "func1pt8mm" / "roi"
    roi_dir.mkdir(parents=True)
    prf = rng.integers(-1, 8, size=SHAPE_XYZ).astype(np.int16)
    prf.ravel()[:9] = np.arange(-1, 8)  # every label present
    write_nifti(str(roi_dir / "prf-visualrois.nii.gz"), prf)
    objects = rng.integers(0, 3, size=SHAPE_XYZ).astype(np.int16)
    objects.ravel()[:3] = [0, 1, 2]
    if with_object_rois:
        write_nifti(str(roi_dir / "objectrois.nii.gz"), objects)
    return {"order": order, "subjectim": subjectim, "shared": shared, "betas": betas, "prf": prf, "objects": objects,
            "first": first}


def _expected_nsd(files, region_labels):
    """Independent computation: z-scored betas of each shared image's trials, per region (voxels in z,y,x order)."""
    out = {}
    for region, (volume, labels) in region_labels.items():
        mask = np.isin(files[volume].T, labels)  # (Z, Y, X)
        per_session = []
        for b in files["betas"]:
            x = b[:, mask].astype(np.float32) / 300
            sd = x.std(0)
            sd[sd == 0] = 1
            per_session.append((x - x.mean(0)) / sd)
        for t in range(N_SESSIONS * 750):
            nsd_id = int(files["subjectim"][0, files["order"][t] - 1])
            if nsd_id in set(files["shared"].tolist()):
                out.setdefault(nsd_id, {}).setdefault(region, []).append(per_session[t // 750][t % 750])
    return out


@pytest.fixture(scope="module")
def nsd_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("nsd")
    files = write_nsd(root / "manual")
    builder = tfds.builder("nsd/subj01", data_dir=str(root / "data"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(root / "manual")))
    return builder, files, root


def test_nifti_reader_is_fortran_ordered_xyz(tmp_path):
    volume = np.arange(np.prod(SHAPE_XYZ), dtype=np.int16).reshape(SHAPE_XYZ)
    write_nifti(str(tmp_path / "v.nii.gz"), volume)
    raw = __import__("gzip").open(tmp_path / "v.nii.gz").read()
    assert raw[344:348] == b"n+1\0" and np.frombuffer(raw[352:354], "<i2")[0] == volume[0, 0, 0]
    assert np.frombuffer(raw[354:356], "<i2")[0] == volume[1, 0, 0]  # x varies fastest on disk
    np.testing.assert_array_equal(read_nifti(str(tmp_path / "v.nii.gz")), volume)
    (tmp_path / "bad.nii").write_bytes(b"\0" * 400)
    with pytest.raises(ValueError, match="bad.nii: not a NIfTI file"):
        read_nifti(str(tmp_path / "bad.nii"))


def test_nsd_build_has_shared_images_repetitions_and_zscored_rois(nsd_build):
    builder, files, _ = nsd_build
    labels = {"V1": ("prf", (1, 2)), "V2": ("prf", (3, 4)), "V3": ("prf", (5, 6)), "V4": ("prf", (7,)),
              "LO": ("objects", (1,)), "PfS": ("objects", (2,))}
    expected = _expected_nsd(files, labels)
    examples = _examples(builder)
    assert len(examples) == len(expected) == 12
    meta = builder.info.metadata
    assert meta["regions"] == ["V1", "V2", "V3", "V4", "LO", "PfS"] and meta["sessions"] == N_SESSIONS
    for sid, ex in examples.items():
        nsd_id = int(ex["nsd_id"]) + 1
        assert sid == f"nsd_{nsd_id - 1:05d}"
        assert ex["image"].shape == (8, 8, 3) and (ex["image"] == nsd_id % 251).all()
        reps = len(expected[nsd_id]["V1"])
        np.testing.assert_array_equal(ex["repetition"], np.arange(reps))
        for region in labels:
            np.testing.assert_allclose(ex["responses"][region], np.stack(expected[nsd_id][region]),
                                       rtol=1e-5, atol=1e-6)
            assert ex["responses"][region].shape[1] == meta["voxels"][region]
    assert {len(ex["repetition"]) for ex in examples.values()} == {2, 3}  # 3rd repetitions past session 2 are absent


def test_nsd_needs_object_rois_unless_early_config(tmp_path):
    files = write_nsd(tmp_path / "manual", with_object_rois=False)
    manual = tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual"))
    with pytest.raises(FileNotFoundError, match="no ROI volume 'objectrois'"):
        NsdBuilder(config="subj01", data_dir=str(tmp_path / "d1")).download_and_prepare(download_config=manual)
    early = NsdBuilder(config="subj01_early", data_dir=str(tmp_path / "d2"))
    early.download_and_prepare(download_config=manual)
    assert early.info.metadata["regions"] == ["V1", "V2", "V3", "V4"]
    assert early.info.splits["train"].num_examples == 12
    with pytest.raises(FileNotFoundError, match="no betas_sessionNN.hdf5 under a 'subj02' folder"):
        NsdBuilder(config=NsdConfig(name="s2", spec=nsd.NsdSpec(subject=2)),
                   data_dir=str(tmp_path / "d3")).download_and_prepare(download_config=manual)
    assert files["prf"].shape == SHAPE_XYZ


def test_nsd_rejects_roi_grid_mismatch(tmp_path):
    write_nsd(tmp_path)
    roi = next(tmp_path.rglob("prf-visualrois.nii.gz"))
    write_nifti(str(roi), np.ones((3, 4, 5), np.int16))  # (Z, Y, X) written as if it were (X, Y, Z)
    with pytest.raises(ValueError, match=r"prf-visualrois.nii.gz: ROI grid \(3, 4, 5\) \(X, Y, Z\) does not match"):
        nsd.load_subject(str(tmp_path), nsd.NsdSpec(regions=("V1",)))
