"""multiview_shapes: model lists and splits, TF-free renders whose masks match the DPC camera, a real Beam build."""
import dataclasses

import numpy as np
import pytest

from tfsynth.multiview.generate import (SPLITS, MultiviewConfig, fit_unit_cube, fit_view_sphere, folder_meshes,
                                       list_models)


def _write_meshes(folder):
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    shapes = {"box.obj": trimesh.creation.box((1.0, 0.4, 0.6)),
              "ball.ply": trimesh.creation.icosphere(2, 0.5),
              "can.off": trimesh.creation.cylinder(0.3, 1.0, sections=16),
              "cone.glb": trimesh.creation.cone(0.4, 0.9, sections=16)}
    for name, mesh in shapes.items():
        mesh.export(folder / name)
    (folder / "broken.obj").write_text("this is not a mesh\n")
    return sorted(shapes)


def test_model_lists_and_splits(tmp_path):
    names = _write_meshes(tmp_path / "meshes")
    cfg = MultiviewConfig(source="folder", mesh_dir=str(tmp_path / "meshes"), split_fractions=(1, 1, 1))
    found = [k for s in SPLITS for k, _ in list_models(cfg, s)]
    assert sorted(found) == names  # disjoint splits covering every readable file (broken.obj is left out)
    assert [len(list_models(cfg, s)) for s in SPLITS] == [2, 1, 1]
    assert [list_models(cfg, s) for s in SPLITS] == [list_models(cfg, s) for s in SPLITS]
    # ShapeNet layout (v2 paths) with DRC split files.
    root = tmp_path / "shapenet"
    for mid in ("a1", "b2", "c3"):
        (root / "02958343" / mid / "models").mkdir(parents=True)
        (root / "02958343" / mid / "models" / "model_normalized.obj").write_text("v 0 0 0\n")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "02958343_train.txt").write_text("a1\nc3\n")
    sn = MultiviewConfig(source="shapenet", mesh_dir=str(root), split_dir=str(tmp_path / "splits"))
    assert [k for k, _ in list_models(sn, "train")] == ["a1", "c3"]
    with pytest.raises(FileNotFoundError, match="02958343_val.txt"):
        list_models(sn, "validation")
    with pytest.raises(FileNotFoundError, match="synset folder"):
        list_models(dataclasses.replace(sn, synset="03001627"), "train")
    v = fit_unit_cube([[0, 0, 0], [2, 1, 4]])
    np.testing.assert_allclose(v.max(0) - v.min(0), [0.5, 0.25, 1.0])
    np.testing.assert_allclose(v.max(0) + v.min(0), 0.0)


def test_only_readable_meshes_are_split_and_every_split_gets_one(tmp_path):
    import trimesh

    folder = tmp_path / "meshes"
    folder.mkdir()
    for i in range(5):
        trimesh.creation.box((1.0, 0.3 + 0.1 * i, 0.5)).export(folder / f"good{i}.obj")
    for i in range(4):
        (folder / f"bad{i}.obj").write_text("not a mesh\n")
    cfg = MultiviewConfig(source="folder", mesh_dir=str(folder))  # default fractions 0.7 / 0.1 / 0.2
    readable, skipped = folder_meshes(cfg)
    assert len(readable) == 5 and [k for k, _ in skipped] == [f"bad{i}.obj" for i in range(4)]
    splits = {s: [k for k, _ in list_models(cfg, s)] for s in SPLITS}
    assert [len(splits[s]) for s in SPLITS] == [3, 1, 1]  # validation and test get at least one readable mesh
    assert sorted(sum(splits.values(), [])) == [f"good{i}.obj" for i in range(5)]
    for path in list(folder.glob("good*.obj"))[:3]:
        path.unlink()
    with pytest.raises(ValueError) as err:
        list_models(cfg, "train")
    assert str(err.value) == (f"mesh folder {folder}: 2 readable meshes (4 unreadable of 6) cannot give train, "
                              "validation, test at least one each; needs 3 readable meshes")


def test_meshes_fit_every_view_at_the_worst_case_elevations():
    import trimesh

    from tfsynth.dpc import geometry as geo

    cfg = MultiviewConfig()
    nut = trimesh.creation.cylinder(radius=0.5, height=0.6, sections=6)  # a wide hexagonal nut
    cube = trimesh.creation.box((1.0, 1.0, 1.0))  # the corners are the farthest points of any unit-cube fit

    def worst(vertices):
        out = 0.0
        for elevation in (cfg.elevation[0], cfg.elevation[1], -90.0, 90.0):  # sampled extremes, and beyond
            for azimuth in np.arange(0.0, 360.0, 7.5):
                proj = geo.project_points(vertices, geo.quaternion_from_view(azimuth, elevation), cfg.focal_length,
                                          cfg.camera_distance)
                out = max(out, float(np.abs(proj[:, 1:]).max()))
        return out

    for mesh in (nut, cube):
        assert worst(fit_view_sphere(mesh.vertices)) <= 0.5  # inside the image plane [-0.5, 0.5] in every view
        assert worst(fit_unit_cube(mesh.vertices)) > 0.5  # the old longest-side fit was cut by the border
    assert np.linalg.norm(fit_view_sphere(nut.vertices), axis=1).max() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sees only a sphere of radius 0.386"):
        MultiviewConfig(camera_distance=1.5)


def test_builder_folder_build_masks_match_dpc_projection(tmp_path):
    """A real Beam build of 4 meshes (+1 unreadable, skipped) with renders in TF-free workers; every mask agrees
    with the DPC projection of the model's ground-truth points from its quaternion; the DPC loader reads it."""
    import tensorflow_datasets as tfds

    from tfds_builders.multiview_shapes.multiview_shapes_dataset_builder import Builder, MultiviewBuilderConfig
    from tfsynth.dpc import data as dpc_data
    from tfsynth.dpc import geometry as geo
    from tfsynth.input.datasets import beam_download_config

    _write_meshes(tmp_path / "meshes")
    mv = MultiviewConfig(source="folder", mesh_dir=str(tmp_path / "meshes"), split_fractions=(1, 1, 1), views=2,
                         image_size=32, gt_points=4000)
    builder = Builder(config=MultiviewBuilderConfig(name="test_folder", multiview=mv), data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=beam_download_config())
    examples = [ex for split in builder.info.splits for ex in tfds.as_numpy(
        builder.as_dataset(split=split, shuffle_files=False))]
    assert sorted(ex["model_id"].decode() for ex in examples) == ["ball.ply", "box.obj", "can.off", "cone.glb"]
    for ex in examples:
        assert ex["images"].shape == (2, 32, 32, 3) and ex["masks"].shape == (2, 32, 32, 1)
        assert ex["points"].shape[1] == 3 and 200 < len(ex["points"]) <= 4000
        assert np.all(np.abs(ex["points"]) <= 0.5 + 1e-5)
        np.testing.assert_allclose(np.linalg.norm(ex["quaternions"], axis=1), 1.0, atol=1e-5)
        for k in range(2):
            mask = ex["masks"][k, ..., 0] > 0
            assert 0.02 < mask.mean() < 0.9
            assert np.all(ex["images"][k][~mask] == 255)  # white background
            proj = geo.silhouette_from_points(ex["points"], ex["quaternions"][k], 32, radius=1.0) > 0
            assert (mask & proj).sum() / (mask | proj).sum() > 0.7
            np.testing.assert_allclose(ex["extrinsics"][k] @ geo.camera_to_world(ex["quaternions"][k]), np.eye(4),
                                       atol=1e-4)
            assert np.all(ex["depths"][k][mask] > 1.0) and np.all(ex["depths"][k][~mask] == 0)
    mset = dpc_data.from_examples(examples)
    assert mset.images.shape == (4, 2, 32, 32, 3) and mset.masks.max() == 1


def test_render_is_deterministic_in_worker_processes():
    from tfsynth.render.pool import get_pool

    cfg = MultiviewConfig(num_models=(1, 0, 0), views=2, image_size=24, gt_points=2000)
    a = get_pool().call("tfsynth.multiview.generate:render_item", (cfg, "train", "proc00000", ""))
    b = get_pool().call("tfsynth.multiview.generate:render_item", (cfg, "train", "proc00000", ""))
    assert a[1]["images"] == b[1]["images"] and np.array_equal(a[1]["points"], b[1]["points"])
    assert np.array_equal(a[1]["quaternions"], b[1]["quaternions"])


def test_vehicle_family_is_one_coherent_family_in_one_canonical_frame():
    """Car-like meshes: one watertight component each, normalised like ProcSynthDB meshes, length along x, up y,
    wheels at the bottom front and rear; proportions vary from model to model; unknown families fail clearly."""
    import trimesh

    from tfsynth.shapes.geometry import MeshError
    from tfsynth.shapes.vehicles import VehicleConfig, generate_vehicle

    extents = []
    for i in range(12):
        try:
            mesh = generate_vehicle(VehicleConfig(), np.random.default_rng(i))
        except MeshError:
            continue
        tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
        assert tm.is_watertight and tm.volume > 0.05 and len(tm.split(only_watertight=False)) == 1
        lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
        np.testing.assert_allclose(lo + hi, 0.0, atol=1e-6)  # bounding box centred
        assert np.linalg.norm(mesh.vertices, axis=1).max() == pytest.approx(1.0)
        size = hi - lo
        assert size[0] > size[2] > 0 and size[0] > size[1] > 0  # length x > width z, length x > height y
        bottom = mesh.vertices[mesh.vertices[:, 1] < lo[1] + 0.02 * size[1]]
        assert np.all(np.abs(bottom[:, 0]) > 0.15 * size[0])  # only the wheels touch the ground, front and rear
        extents.append(size / size[0])
    assert len(extents) >= 10
    assert np.std(np.array(extents)[:, 1]) > 0.02 and np.std(np.array(extents)[:, 2]) > 0.02
    with pytest.raises(ValueError, match="unknown procedural family 'boats'"):
        MultiviewConfig(family="boats")
    with pytest.raises(ValueError, match="wheelbase"):
        VehicleConfig(wheelbase=(0.7, 0.5))


def test_vehicle_renders_match_the_dpc_projection():
    """multiview_shapes' vehicles configs: renders from a TF-free worker whose masks agree with the DPC projection of
    the model's ground-truth points, in the shared frame (front +x)."""
    from tfsynth.dpc import geometry as geo
    from tfsynth.render.pool import get_pool

    cfg = MultiviewConfig(family="vehicles", num_models=(2, 0, 0), views=3, image_size=32, gt_points=4000)
    for key in ("proc00000", "proc00001"):
        ex = get_pool().call("tfsynth.multiview.generate:render_model", cfg, "train", key)
        points = ex["points"]
        assert np.ptp(points[:, 0]) > np.ptp(points[:, 2]) and np.ptp(points[:, 0]) > np.ptp(points[:, 1])
        for k in range(3):
            mask = ex["masks"][k] > 0
            assert 0.05 < mask.mean() < 0.9 and np.all(ex["images"][k][~mask] == 255)
            dilated = geo.silhouette_from_points(points, ex["quaternions"][k], 32, radius=1.0) > 0
            assert (mask & dilated).sum() >= 0.99 * mask.sum()  # every object pixel is near a projected point
            nearest = geo.silhouette_from_points(points, ex["quaternions"][k], 32, radius=0.0) > 0
            assert (mask & nearest).sum() / (mask | nearest).sum() > 0.8  # measured 0.88-0.95


@pytest.mark.slow
def test_cli_build_with_two_beam_and_two_render_workers_equals_in_process_build(tmp_path):
    """Worker invariance: `multiview_shapes/procedural_tiny` built in-process (one render worker) and by `tfds build`
    with 2 Beam worker processes, each with 2 render workers, holds the same examples in every split."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import tensorflow_datasets as tfds

    import tfds_builders.multiview_shapes  # noqa: F401  (registers the builder)
    from tfsynth.input.datasets import beam_download_config

    repo = Path(__file__).resolve().parents[1]
    ours = tfds.builder("multiview_shapes/procedural_tiny", data_dir=str(tmp_path / "one"))
    ours.download_and_prepare(download_config=beam_download_config())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TFSYNTH_RENDER_WORKERS="2")
    cmd = [str(Path(sys.executable).with_name("tfds")), "build", str(repo / "tfds_builders" / "multiview_shapes"),
           "--config", "procedural_tiny", "--data_dir", str(tmp_path / "many"),
           "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"]
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = tfds.builder("multiview_shapes/procedural_tiny", data_dir=str(tmp_path / "many"))
    for split in ("train", "validation", "test"):
        a = {ex["model_id"]: ex for ex in tfds.as_numpy(ours.as_dataset(split=split, shuffle_files=False))}
        b = {ex["model_id"]: ex for ex in tfds.as_numpy(theirs.as_dataset(split=split, shuffle_files=False))}
        assert sorted(a) == sorted(b) and len(a) > 0, split
        for key in a:
            for feature in a[key]:
                np.testing.assert_array_equal(a[key][feature], b[key][feature], err_msg=f"{split} {key} {feature}")
