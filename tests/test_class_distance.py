"""ProcSynthDB class distance: invariant to the per-instance rotations and single-axis stretches, far between
different shapes, enforced by the class search and recorded in the class-table summary."""

import numpy as np
import pytest
import trimesh

from tfsynth.shapes import distance
from tfsynth.shapes.geometry import MeshError, normalize_vertices, quaternion_to_matrix, random_quaternion
from tfsynth.synth3d.classes import proc_mesh, search_classes
from tfsynth.synth3d.config import Synth3DConfig

CONFIG = Synth3DConfig()
LO, HI = CONFIG.scale_range


def _trimesh(mesh):
    return normalize_vertices(mesh.vertices)[0], np.asarray(mesh.faces)


@pytest.fixture(scope="module")
def meshes():
    """Three ProcSynthDB class meshes (one per style family in the first draws) and three primitives."""
    out = {f"proc{c}": (m.vertices, m.faces) for c in (0, 1, 4) for m in [proc_mesh(CONFIG, c, 0)]}
    out["sphere"] = _trimesh(trimesh.creation.icosphere(subdivisions=3))
    out["box"] = _trimesh(trimesh.creation.box((1.0, 1.0, 1.0)))
    out["torus"] = _trimesh(trimesh.creation.torus(1.0, 0.35))
    return out


def _stretch(vertices, axes, factors):
    scale = np.ones(3)
    for axis, factor in zip(axes, factors):
        scale[axis] *= factor
    return normalize_vertices(vertices * scale)[0]


@pytest.mark.parametrize("axes,factors", [((0, 0), (LO, LO)), ((1, 2), (HI, LO)), ((2, 2), (HI, HI)),
                                          ((0, 1), (1.1, 1.2))])
def test_single_axis_stretches_stay_at_the_noise_floor(meshes, axes, factors):
    for name in ("proc0", "proc1", "proc4", "torus"):
        vertices, faces = meshes[name]
        stretched = _stretch(vertices, axes, factors)
        base = distance.class_descriptor(vertices, faces)
        # Same surface samples: the axis normalisation undoes the stretch exactly (up to rounding).
        assert distance.descriptor_distance(base, distance.class_descriptor(stretched, faces)) < 1e-3
        # Other surface samples: the distance is sampling noise only, far below the class threshold.
        other = distance.descriptor_distance(base, distance.class_descriptor(stretched, faces, seed=7))
        assert other < 2 * distance.D2_NOISE_FLOOR_P99, (name, other)


def test_plain_d2_is_not_stretch_invariant_which_is_why_the_axes_are_normalised(meshes):
    vertices, faces = meshes["proc0"]
    stretched = _stretch(vertices, (0, 0), (HI, HI))
    plain = distance.descriptor_distance(distance.d2_descriptor(vertices, faces),
                                         distance.d2_descriptor(stretched, faces))
    assert plain > 2 * CONFIG.min_class_distance


def test_rotation_invariance_is_kept(meshes):
    rng = np.random.default_rng(3)
    for name in ("proc0", "proc4", "box"):
        vertices, faces = meshes[name]
        normalised = distance.normalize_axes(vertices)
        rot = quaternion_to_matrix(random_quaternion(rng))
        d = distance.descriptor_distance(distance.d2_descriptor(normalised, faces),
                                         distance.d2_descriptor(normalised @ rot.T, faces, seed=11))
        assert d < 2 * distance.D2_NOISE_FLOOR_P99, (name, d)
        # Axis permutations and flips commute with the per-axis normalisation: the class descriptor is unchanged.
        perm = vertices[:, [2, 0, 1]] * np.array([1.0, -1.0, 1.0])
        assert distance.descriptor_distance(distance.class_descriptor(vertices, faces),
                                            distance.class_descriptor(perm, faces)) < 1e-3


def test_different_primitives_are_far_apart_and_aspect_variants_are_one_shape(meshes):
    descs = {k: distance.class_descriptor(*meshes[k]) for k in ("sphere", "box", "torus")}
    for a, b in (("sphere", "box"), ("sphere", "torus"), ("box", "torus")):
        assert distance.descriptor_distance(descs[a], descs[b]) > 2 * CONFIG.min_class_distance, (a, b)
    # A 1 x 2 x 3 box and an ellipsoid are a cube and a sphere stretched per axis: the same class shape.
    long_box = _trimesh(trimesh.creation.box((1.0, 2.0, 3.0)))
    ellipsoid = normalize_vertices(meshes["sphere"][0] * np.array([0.5, 1.0, 2.0]))[0]
    assert distance.descriptor_distance(descs["box"], distance.class_descriptor(*long_box, seed=5)) < \
        CONFIG.min_class_distance
    assert distance.descriptor_distance(descs["sphere"], distance.class_descriptor(ellipsoid, meshes["sphere"][1],
                                                                                     seed=5)) < \
        CONFIG.min_class_distance


def test_descriptor_is_deterministic_and_flat_meshes_are_rejected(meshes):
    vertices, faces = meshes["proc1"]
    a, b = distance.class_descriptor(vertices, faces), distance.class_descriptor(vertices, faces)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (distance.D2_BINS,) and a.sum() == pytest.approx(1.0)
    flat = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]])
    with pytest.raises(MeshError, match="flat mesh"):
        distance.class_descriptor(flat, np.array([[0, 1, 2], [1, 3, 2]]))


def test_threshold_is_clearly_above_the_measured_noise_floor():
    assert CONFIG.min_class_distance >= 2 * distance.D2_NOISE_FLOOR_P99 > 2 * distance.D2_NOISE_FLOOR_MEDIAN


def test_search_enforces_the_threshold_with_the_class_descriptor_and_reports_it():
    config = Synth3DConfig(num_classes=6, min_class_distance=0.2)
    table = search_classes(config, "proc", batch=4)
    d, pair = table.min_distance()
    assert d > 0.2 and table.rejected_similar > 0
    for cls in range(config.num_classes):  # the table holds the stretch-invariant descriptors of the accepted meshes
        mesh = proc_mesh(config, cls, int(table.attempts[cls]))
        np.testing.assert_array_equal(table.descriptors[cls], distance.class_descriptor(mesh.vertices, mesh.faces))
    summary = table.summary()
    assert summary["descriptor"] == distance.DESCRIPTOR_NAME == "d2_axis_normalised"
    assert summary["min_distance_enforced"] == 0.2
    assert summary["descriptor_noise_floor_p99"] == distance.D2_NOISE_FLOOR_P99
    assert summary["descriptor_noise_floor_median"] == distance.D2_NOISE_FLOOR_MEDIAN
    assert summary["min_class_distance_d2"] == pytest.approx(d, abs=1e-5) and summary["closest_pair"] == list(pair)
    assert summary["rejected_similar"] == table.rejected_similar
    assert summary["rejected_invalid"] == table.rejected_invalid == sum(summary["failure_reasons"].values())
