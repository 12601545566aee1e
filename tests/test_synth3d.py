"""3D procedural datasets: meshes, shape distance, GP morphs, renderer + worker pool, instances, layering."""
import subprocess
import sys

import numpy as np
import pytest

from tfsynth.render.pool import RenderPool, WorkerError
from tfsynth.shapes import morph
from tfsynth.shapes.distance import d2_descriptor, descriptor_distance
from tfsynth.shapes.geometry import (matrix_to_quaternion, normalize_vertices, quaternion_to_matrix,
                                     random_quaternion)
from tfsynth.shapes.procedural import ProcMeshConfig, generate_mesh, to_manifold
from tfsynth.synth3d import dataset
from tfsynth.synth3d.classes import search_classes
from tfsynth.synth3d.config import Synth3DConfig

TINY = Synth3DConfig(num_classes=3, instances_per_class=4, image_size=48, instances_per_unit=4)


@pytest.fixture(scope="module")
def pool():
    pool = RenderPool(1)
    yield pool
    pool.close()


def test_builder_process_never_loads_opengl():
    code = ("import sys, tfds_builders.proc_synth_db, tfds_builders.morph_synth_db, tfds_builders.flat_world_db; "
            "bad = [m for m in ('pyrender', 'OpenGL') if m in sys.modules]; assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_quaternions_round_trip_and_are_uniform_rotations():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = random_quaternion(rng)
        r = quaternion_to_matrix(q)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_allclose(matrix_to_quaternion(r), q, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]) @ [1, 0, 0],
                               [0, 1, 0], atol=1e-12)  # 90 deg about z maps x to y


@pytest.mark.parametrize("seed", range(8))
def test_procedural_meshes_are_deterministic_watertight_and_normalised(seed):
    config = ProcMeshConfig()
    try:
        a = generate_mesh(config, np.random.default_rng(seed))
    except ValueError:  # MeshError: an unusable draw is allowed, but must be reproducible
        with pytest.raises(ValueError):
            generate_mesh(config, np.random.default_rng(seed))
        return
    b = generate_mesh(config, np.random.default_rng(seed))
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert a.info["style"] in config.styles
    radius = np.linalg.norm(a.vertices, axis=1).max()
    assert radius == pytest.approx(1.0)
    assert a.to_trimesh().is_watertight or a.info["style"] in ("smooth", "skin")  # Taubin keeps topology
    assert to_manifold(a.vertices, a.faces).volume() > config.min_volume


def test_d2_distance_is_rotation_invariant_and_separates_shapes():
    config = ProcMeshConfig()
    meshes = [generate_mesh(config, np.random.default_rng(s)) for s in (2, 8, 15)]
    descs = [d2_descriptor(m.vertices, m.faces) for m in meshes]
    rot = quaternion_to_matrix(random_quaternion(np.random.default_rng(1)))
    rotated, _, _ = normalize_vertices(meshes[0].vertices @ rot.T)
    same = descriptor_distance(descs[0], d2_descriptor(rotated, meshes[0].faces))
    assert same < 0.05  # sampling noise only
    assert min(descriptor_distance(descs[0], descs[1]), descriptor_distance(descs[0], descs[2])) > 2 * same


def test_class_search_enforces_the_minimum_distance_and_counts_rejections():
    config = Synth3DConfig(num_classes=6, min_class_distance=0.2)
    table = search_classes(config, "proc", batch=3)
    d, _ = table.min_distance()
    assert d > 0.2
    assert table.rejected_similar > 0
    assert (table.attempts > 0).sum() > 0
    # Speculative batches do not change the outcome.
    again = search_classes(config, "proc", batch=1)
    np.testing.assert_array_equal(table.attempts, again.attempts)
    summary = table.summary()
    assert summary["min_class_distance_d2"] == pytest.approx(d, abs=1e-5)
    assert summary["rejected_similar"] == table.rejected_similar


def test_nystrom_is_exact_with_all_points_and_captures_the_target():
    pts = np.random.default_rng(0).normal(size=(150, 3))
    phi, frac = morph.nystrom_basis(pts, 2.0, 1.5, target=1.1, initial=8, maximum=150)
    np.testing.assert_allclose(phi @ phi.T, morph.gaussian_kernel(pts, pts, 2.0, 1.5), atol=1e-6)
    assert frac == pytest.approx(1.0, abs=1e-6)
    phi, frac = morph.nystrom_basis(pts, 2.0, 1.5, target=0.9, initial=4, maximum=150)
    assert 0.9 <= frac <= 1.0 and phi.shape[1] < 150


def test_morph_model_captures_90_percent_and_samples_reproducibly():
    mesh = generate_mesh(ProcMeshConfig(), np.random.default_rng(2))
    vertices, faces = morph.resample(mesh.vertices, mesh.faces, 500)
    assert 250 <= len(vertices) <= 520
    model = morph.build_model(vertices, np.full((len(vertices), 3), 0.5), morph.MorphConfig())
    assert model.captured["shape"] >= 0.9 and model.captured["albedo"] >= 0.9
    assert all(t["captured"] >= 0.9 for t in model.captured["terms"])
    u1, a1 = model.sample(np.random.default_rng(5))
    u2, a2 = model.sample(np.random.default_rng(5))
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(a1, a2)
    # Shape std: sqrt(7 + 5 + 3) mm / 100 mm x strength 2.5 ~ 0.097 per coordinate (Nyström: slightly less).
    assert 0.05 < u1.std() < 0.15
    assert 0.03 < a1.std() < 0.25


def test_worker_pool_renders_and_reports_errors(pool):
    out = pool.call("tfsynth.synth3d.dataset:render_unit", TINY, (0, 0, 2, 0, 0))
    assert [k for k, _ in out] == ["00000_00000", "00000_00001"]
    with pytest.raises(WorkerError, match="ZeroDivisionError"):
        pool.call("operator:truediv", 1, 0)


def test_render_unit_is_deterministic_for_any_chunking_and_never_blank(pool):
    from PIL import Image
    import io

    whole = pool.call("tfsynth.synth3d.dataset:render_unit", TINY, (1, 0, 4, 0, 0))
    halves = (pool.call("tfsynth.synth3d.dataset:render_unit", TINY, (1, 0, 2, 0, 0))
              + pool.call("tfsynth.synth3d.dataset:render_unit", TINY, (1, 2, 4, 0, 0)))
    assert [k for k, _ in whole] == [k for k, _ in halves]
    for (_, a), (_, b) in zip(whole, halves):
        assert a["image"] == b["image"]
        np.testing.assert_array_equal(a["rotation"], b["rotation"])
    images = [np.asarray(Image.open(io.BytesIO(ex["image"]))) for _, ex in whole]
    for img, (_, ex) in zip(images, whole):
        assert img.shape == (48, 48, 3) and (img.max(axis=2) > 0).mean() >= TINY.min_object_fraction
        assert np.linalg.norm(ex["rotation"]) == pytest.approx(1.0, abs=1e-5)
        assert len(ex["light_kind"]) == len(ex["light_color"]) >= 1
    assert len({ex["image"] for _, ex in whole}) == 4  # instances differ
    # The scale applied is the product of the two single-axis scalings, refitted uniformly.
    ex = whole[0][1]
    raw = np.ones(3)
    for axis, factor in zip(ex["scale_axes"], ex["scale_factors"]):
        raw[axis] *= factor
    np.testing.assert_allclose(ex["scale"] / ex["scale"][0], raw / raw[0], rtol=1e-5)


def test_flat_world_keeps_view_and_lights_fixed(pool):
    flat = TINY.replace(views="flat")
    examples = pool.call("tfsynth.synth3d.dataset:render_unit", flat, (0, 0, 4, 0, 0))
    rotations = {tuple(ex["rotation"]) for _, ex in examples}
    lights = {ex["light_direction"].tobytes() + ex["light_color"].tobytes() for _, ex in examples}
    assert len(rotations) == 1 and len(lights) == 1
    assert len({ex["image"] for _, ex in examples}) == 4  # 2D transforms still vary
    assert all(not np.allclose(ex["image_transform"], [[1, 0, 0], [0, 1, 0]]) for _, ex in examples)


def test_render_unit_refuses_a_tensorflow_process():
    code = ("import tensorflow, sys\nfrom tfsynth.synth3d import dataset, config\n"
            "try:\n    dataset.render_unit(config.Synth3DConfig(), (0, 0, 1, 0, 0))\n"
            "except RuntimeError as e:\n    print('refused' if 'TF-free' in str(e) else e)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "refused" in result.stdout, result.stderr[-2000:]


def test_config_validation_names_the_problem():
    with pytest.raises(ValueError, match="source 'nope' unknown"):
        Synth3DConfig(source="nope")
    with pytest.raises(ValueError, match="unknown mesh styles"):
        ProcMeshConfig(styles=("blob",), style_weights=(1.0,))


def test_reused_scene_renders_exactly_what_a_fresh_scene_renders():
    """pyrender_backend keeps one Scene per process and edits it in place; every image (meshes swapped, cameras
    changed, lights of each kind added, re-coloured and removed) must equal a render of a freshly built scene."""
    code = r'''
import numpy as np
from tfsynth.render import pyrender_backend as pb
from tfsynth.render.scene import Camera, Light, ObjectPose, RenderMesh, View
from tfsynth.shapes.geometry import look_at
from tfsynth.shapes.procedural import ProcMeshConfig, generate_mesh
pyrender = pb.pyrender

def fresh(mesh, view):
    scene = pb._OrderedLightsScene(bg_color=np.asarray(view.background, np.float32),
                                   ambient_light=np.asarray(view.ambient, np.float32))
    scene.add(pyrender.Mesh([pb._primitive(mesh, (1.0, 1.0, 1.0))]), pose=view.pose.matrix())
    scene.add(pb._camera(view), pose=view.camera.pose)
    for order, light in enumerate(view.lights):
        scene.add(pb._light(light), pose=light.pose()).view_index = order
    color, depth = pb._renderer(view.width, view.height).render(scene, flags=pyrender.RenderFlags.RGBA)
    return np.ascontiguousarray(color), np.ascontiguousarray(depth)

rng = np.random.default_rng(0)
meshes = [generate_mesh(ProcMeshConfig(), np.random.default_rng(s)) for s in (1, 2)]
render_meshes = [RenderMesh(m.vertices, m.faces, key=f"m{i}") for i, m in enumerate(meshes)]
render_meshes.append(RenderMesh(meshes[0].vertices, meshes[0].faces, base_color=(0.9, 0.3, 0.2, 1.0)))  # uncached
light_sets = [
    (Light("directional", (1, 1, 1), 3.0, direction=(0, 0, -1)),),
    (Light("point", (1, 0.5, 0.2), 20.0, position=(1, 2, 3)), Light("spot", (0.2, 1, 0.3), 30.0,
     direction=(0, -0.5, -1), position=(0, 1, 3), inner_cone=0.2, outer_cone=0.5)),
    (Light("spot", (1, 1, 0.5), 25.0, direction=(0.3, 0, -1), position=(-1, 0, 3), inner_cone=0.4, outer_cone=0.9),
     Light("spot", (0.5, 0.5, 1), 15.0, direction=(0, 0, -1), position=(0, 0, 3), inner_cone=0.1, outer_cone=0.3),
     Light("directional", (1, 0.8, 0.8), 2.0, direction=(1, -1, -1))),
    (),
]
checked = 0
for i in range(24):
    q = rng.normal(size=4); q /= np.linalg.norm(q)
    cam = Camera(pose=look_at((0, 0, 2.5 + 0.5 * (i % 2))), yfov=np.deg2rad(35 + 10 * (i % 3)))
    size = (48, 64)[i % 2]
    view = View(camera=cam, lights=light_sets[(i * 7) % 4], pose=ObjectPose(rotation=tuple(q),
                scale=tuple(rng.uniform(0.6, 1.2, 3))), width=size, height=size, ambient=(0.1 * (i % 3),) * 3)
    mesh = render_meshes[(i // 3) % 3]
    out = pb.render(mesh, view)
    if mesh.key is None:  # uncached meshes carry the scale in the vertices
        rigid = ObjectPose(rotation=view.pose.rotation)
        scaled = RenderMesh(mesh.vertices * np.asarray(view.pose.scale), mesh.faces, base_color=mesh.base_color)
        color, depth = fresh(scaled, View(camera=cam, lights=view.lights, pose=rigid, width=size, height=size,
                                          ambient=view.ambient))
    else:
        color, depth = fresh(mesh, view)
    assert np.array_equal(out.rgba, color), i
    assert np.array_equal(out.depth, depth), i
    assert out.mask.any(), i
    checked += 1
print("checked", checked)
'''
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "checked 24" in result.stdout, result.stderr[-3000:]


def test_morph_work_units_are_grouped_by_base_and_cover_every_instance_once():
    config = TINY.replace(source="morph", num_classes=7, morph_base_classes=3, instances_per_class=5,
                          instances_per_unit=2)
    table = type("Table", (), {"attempts": np.zeros(7, int), "base_attempt": lambda self, c: 0})()
    units = dataset.work_units(config, table)
    bases = [cls % 3 for cls, *_ in units]
    assert bases == sorted(bases)  # one contiguous run per base mesh
    covered = sorted((cls, i) for cls, start, stop, _, _ in units for i in range(start, stop))
    assert covered == [(c, i) for c in range(7) for i in range(5)]
    proc_units = dataset.work_units(config.replace(source="proc"), table)
    assert [u[0] for u in proc_units] == sorted(u[0] for u in proc_units)


def test_lights_reach_the_shader_in_view_order_whatever_the_process_history():
    """pyrender orders same-kind lights by Python set iteration (object ids), and the shader sums them in that
    order: the backend must hand them over in `View.lights` order instead, so bytes do not depend on history."""
    code = r'''
import numpy as np
from tfsynth.render import pyrender_backend as pb
from tfsynth.render.scene import Camera, Light, ObjectPose, RenderMesh, View
from tfsynth.shapes.geometry import look_at
from tfsynth.shapes.procedural import ProcMeshConfig, generate_mesh
m = generate_mesh(ProcMeshConfig(), np.random.default_rng(3))
mesh = RenderMesh(m.vertices, m.faces, key="m")
cam = Camera(pose=look_at((0, 0, 3)))
def lights(shift):
    return tuple(Light(kind, (1, 1, 1), 5.0 + i + shift, direction=(0, 0, -1), position=(0.3 * i, 1, 3))
                 for i, kind in enumerate(["point", "spot", "point", "directional", "point", "spot", "directional"]))
keep = []
for history in range(6):
    keep.extend(object() for _ in range(97 * history))  # perturb object ids between scenes
    for n in range(1 + history % 4):  # different add/remove histories of the light nodes
        pb.render(mesh, View(camera=cam, lights=lights(0)[:n + 1], width=32, height=32))
    view = View(camera=cam, lights=lights(history), width=32, height=32)
    pb.render(mesh, view)
    got = [node.light.intensity for node in pb._SCENE.scene.light_nodes]
    assert got == [l.intensity for l in view.lights], (history, got)
print("ordered")
'''
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "ordered" in result.stdout, result.stderr[-3000:]


def test_proc_and_morph_instances_draw_different_views():
    """MorphSynthDB class k morphs ProcSynthDB class k: their instance i must not share pose and lights."""
    from tfsynth.synth3d import views

    vertices = np.random.default_rng(0).normal(size=(50, 3))
    draws = {}
    for source in ("proc", "morph"):
        for kind in ("random", "flat"):
            config = TINY.replace(source=source, views=kind)
            params = views.random_instance(config, vertices, dataset.instance_rng(config, 2, 3, 0))
            draws[source, kind] = params.view.pose.rotation
    assert len({tuple(np.round(r, 12)) for r in draws.values()}) == 4
    same = dataset.instance_rng(TINY, 2, 3, 0).random(4)
    np.testing.assert_array_equal(same, dataset.instance_rng(TINY, 2, 3, 0).random(4))  # still a pure function


def test_unusable_renders_are_classified():
    config = TINY
    rgb = np.zeros((20, 20, 3), np.uint8)
    mask = np.zeros((20, 20), bool)
    assert dataset._rejection(rgb, mask, config) == "empty_renders"
    mask[5:15, 5:15] = True
    rgb[mask] = 3
    assert dataset._rejection(rgb, mask, config) == "empty_renders"  # too dark
    rgb[mask] = 120
    assert dataset._rejection(rgb, mask, config) is None
    rgb[5:12, 5:15] = 255  # 70 % of the object blown out to white
    assert dataset._rejection(rgb, mask, config) == "overexposed_renders"
    assert dataset._rejection(rgb, mask, config.replace(max_clipped_fraction=0.8)) is None


def test_renderer_errors_are_retried_counted_and_reported_with_their_cause(monkeypatch):
    config = TINY.replace(max_attempts=3)
    vertices = np.random.default_rng(0).normal(size=(50, 3))
    vertices /= np.linalg.norm(vertices, axis=1).max()

    def gl_failure(mesh, view):
        raise RuntimeError("GL_OUT_OF_MEMORY in glDrawElements")

    monkeypatch.setattr(dataset, "_render", gl_failure)
    counts = {"render_errors": 0, "empty_renders": 0, "overexposed_renders": 0}
    with pytest.raises(RuntimeError, match="last renderer error.*GL_OUT_OF_MEMORY") as info:
        dataset._random_example(config, None, vertices, 0, 0, counts)
    assert counts["render_errors"] == 3 and isinstance(info.value.__cause__, RuntimeError)

    def broken_install(mesh, view):
        raise ImportError("no OpenGL platform 'osmesa'")

    monkeypatch.setattr(dataset, "_render", broken_install)
    with pytest.raises(ImportError, match="osmesa"):  # not retried: re-drawing the view cannot fix it
        dataset._random_example(config, None, vertices, 0, 0, dict.fromkeys(counts, 0))
