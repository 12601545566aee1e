"""The 3D datasets as pure functions of (config, class table, class, instance) -> example dict. TF-free.

Work is done in units of (class, first instance, end instance): the worker builds (or reuses from its cache) the
class mesh once and renders the unit's instances. Instance i of class c draws its view from
`SeedSequence([seed, INSTANCE_TAG, source, views, c, i, retry])` (the dataset's source and views in the seed, so
ProcSynthDB class k and its MorphSynthDB morph k never share poses and lights); retry > 0 only when the render
failed or came out unusable (object covering < `min_object_fraction` of the image, darker than
`min_object_brightness`, or with more than `max_clipped_fraction` of it blown out to white), so the examples never
depend on which worker rendered them, and no example is a blank image (after `max_attempts` re-draws a unit fails
loudly instead, naming the last renderer error).

Rendering needs OpenGL, which must not share a process with TensorFlow: TFDS builders call `render_unit` through
`tfsynth.render.pool`; `render_unit` refuses to run in a process that has imported TensorFlow.
"""
from __future__ import annotations

import functools
import sys
from typing import Iterator, Optional

import numpy as np

from tfsynth.png import encode_png
from tfsynth.render.scene import RenderMesh, View
from tfsynth.shapes.procedural import Mesh
from tfsynth.synth3d import views
from tfsynth.synth3d.classes import INSTANCE_TAG, ClassTable, morph_mesh, proc_mesh
from tfsynth.synth3d.config import SOURCES, VIEWS, Synth3DConfig

# Exceptions that mean "this process cannot render at all": re-drawing the view would only hide them.
_FATAL_RENDER_ERRORS = (ImportError, AttributeError, TypeError, NameError, MemoryError)


def work_units(config: Synth3DConfig, table: ClassTable) -> list[tuple]:
    """(class, start, stop, class attempt, base attempt) for every chunk of `instances_per_unit` instances.

    MorphSynthDB units come grouped by base mesh (classes b, b + B, b + 2B, ...): a worker keeps the GP model of
    the base it last used, and runners hand out contiguous runs of this list, so each model is built about once
    per worker instead of once per unit. The order does not change any example (keys fix the dataset order).
    """
    step = config.instances_per_unit
    classes = range(config.num_classes)
    if config.source == "morph":
        classes = sorted(classes, key=lambda c: (c % config.morph_base_classes, c))
    return [(c, s, min(s + step, config.instances_per_class), int(table.attempts[c]), table.base_attempt(c))
            for c in classes for s in range(0, config.instances_per_class, step)]


def example_key(cls: int, instance: int) -> str:
    return f"{cls:05d}_{instance:05d}"


def class_mesh(config: Synth3DConfig, cls: int, attempt: int, base_attempt: int = 0) -> Mesh:
    if config.source == "proc":
        return proc_mesh(config, cls, attempt)
    return morph_mesh(config, cls, attempt, base_attempt)


def render_mesh(config: Synth3DConfig, mesh: Mesh, key: Optional[str] = None) -> RenderMesh:
    color = tuple(config.base_color) + (1.0,) if mesh.vertex_colors is None else (1.0, 1.0, 1.0, 1.0)
    return RenderMesh(mesh.vertices, mesh.faces, vertex_colors=mesh.vertex_colors, base_color=color,
                      roughness=config.roughness, key=key)


def instance_rng(config: Synth3DConfig, cls: int, inst: int, retry: int) -> np.random.Generator:
    """The random stream of one instance draw (view, lights, scalings; FlatWorldDB: the 2D transform)."""
    tags = [config.seed, INSTANCE_TAG, SOURCES.index(config.source), VIEWS.index(config.views), cls, inst, retry]
    return np.random.default_rng(np.random.SeedSequence(tags))


def _rejection(rgb: np.ndarray, mask: np.ndarray, config: Synth3DConfig) -> Optional[str]:
    """None for a usable render, else the count it is recorded under."""
    covered = np.count_nonzero(mask)
    if covered < config.min_object_fraction * mask.size:
        return "empty_renders"
    # Whole-image channel arithmetic, then one masked sum: several times cheaper than gathering rgb[mask].
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    grey_sum = int((r.astype(np.uint16) + g + b)[mask].sum())
    if grey_sum < config.min_object_brightness * 3 * covered:
        return "empty_renders"
    clipped = np.count_nonzero((r >= 250) & (g >= 250) & (b >= 250) & mask)
    if clipped > config.max_clipped_fraction * covered:
        return "overexposed_renders"
    return None


def _lights_arrays(view: View) -> dict:
    lights = view.lights
    return {
        "light_kind": np.array([views.KIND_IDS[l.kind] for l in lights], np.int32),
        "light_color": np.array([l.color for l in lights], np.float32).reshape(-1, 3),
        "light_intensity": np.array([l.intensity for l in lights], np.float32),
        "light_direction": np.array([l.direction for l in lights], np.float32).reshape(-1, 3),
        "light_position": np.array([l.position for l in lights], np.float32).reshape(-1, 3),
        "light_cone": np.array([(l.inner_cone, l.outer_cone) for l in lights], np.float32).reshape(-1, 2),
    }


def _render(mesh: RenderMesh, view: View):
    from tfsynth import render as render_module

    return render_module.render(mesh, view)


@functools.lru_cache(maxsize=4)
def _canonical(config: Synth3DConfig, cls: int, attempt: int, base_attempt: int):
    mesh = class_mesh(config, cls, attempt, base_attempt)
    view = views.canonical_view(config)
    out = _render(render_mesh(config, mesh), view)
    rejection = _rejection(out.rgb, out.mask, config)
    if rejection:
        raise RuntimeError(f"class {cls}: the canonical FlatWorldDB render is unusable ({rejection})")
    return out.rgba, view


def _random_example(config, rmesh, vertices, cls, inst, counts):
    last_error = None
    for retry in range(config.max_attempts):
        params = views.random_instance(config, vertices, instance_rng(config, cls, inst, retry))
        try:
            out = _render(rmesh, params.view)
        except _FATAL_RENDER_ERRORS:
            raise
        except Exception as err:  # noqa: BLE001 - a renderer error: re-draw with the next derived seed, counted
            counts["render_errors"] += 1
            last_error = err
            continue
        rejection = _rejection(out.rgb, out.mask, config)
        if rejection:
            counts[rejection] += 1
            continue
        view = params.view
        scale = np.ones(3)
        for axis, factor in zip(params.scale_axes, params.scale_factors):
            scale[axis] *= factor
        return out.rgb, retry, {
            "rotation": np.asarray(view.pose.rotation, np.float32),
            "scale": np.asarray(view.pose.scale, np.float32),
            "scale_axes": params.scale_axes.astype(np.int32),
            "scale_factors": np.asarray(params.scale_factors, np.float32),
            "ambient": np.float32(view.ambient[0]),
            "image_transform": np.array([[1, 0, 0], [0, 1, 0]], np.float32),
            "flip": np.int32(0),
            **_lights_arrays(view),
        }, view
    raise RuntimeError(f"class {cls} instance {inst}: no usable render in {config.max_attempts} attempts "
                       f"({counts['render_errors']} renderer errors, {counts['empty_renders']} empty, "
                       f"{counts['overexposed_renders']} overexposed renders)"
                       + (f"; last renderer error: {last_error!r}" if last_error else "")) from last_error


def _flat_example(config, canonical_rgba, view, cls, inst, counts):
    for retry in range(config.max_attempts):
        forward, p = views.flat_transform(config, instance_rng(config, cls, inst, retry))
        rgba = views.warp_rgba(canonical_rgba, forward)
        mask = rgba[..., 3] > 0
        rejection = _rejection(rgba[..., :3], mask, config)
        if rejection:
            counts[rejection] += 1
            continue
        return np.ascontiguousarray(rgba[..., :3]), retry, {
            "rotation": np.asarray(view.pose.rotation, np.float32),
            "scale": np.ones(3, np.float32),
            "scale_axes": p["scale_axes"],
            "scale_factors": np.asarray(p["scale_factors"], np.float32),
            "ambient": np.float32(view.ambient[0]),
            "image_transform": forward.astype(np.float32),
            "flip": np.int32(p["flip"]),
            **_lights_arrays(view),
        }, view
    raise RuntimeError(f"class {cls} instance {inst}: every 2D transform left the object outside the image")


def render_unit(config: Synth3DConfig, unit: tuple) -> list[tuple[str, dict]]:
    """[(key, example)] for the instances [start, stop) of one class. Example fields:

    image (S, S, 3) PNG bytes; label; rotation (4,) [w,x,y,z] object rotation; scale (3,) per-axis object scale
    actually applied (two single-axis scalings x refit); scale_axes (2,), scale_factors (2,) as drawn;
    camera_pose (4, 4) camera-to-world (OpenGL); camera_yfov (rad); ambient; light_kind (L,) 0 directional /
    1 point / 2 spot; light_color (L, 3); light_intensity (L,); light_direction (L, 3) travel direction;
    light_position (L, 3); light_cone (L, 2) spot inner/outer half-angles; image_transform (2, 3) 2D affine map
    applied to the render (identity except FlatWorldDB); flip (FlatWorldDB); retries (instance re-draws);
    class_attempt (class mesh re-draws).
    """
    if "tensorflow" in sys.modules:
        raise RuntimeError("render_unit must run in a TF-free process (use tfsynth.render.pool): TensorFlow and "
                           "OpenGL crash in one process")
    cls, start, stop, attempt, base_attempt = unit
    counts = {"render_errors": 0, "empty_renders": 0, "overexposed_renders": 0}
    if config.views == "flat":
        canonical, view = _canonical(config, cls, attempt, base_attempt)
    else:
        mesh = class_mesh(config, cls, attempt, base_attempt)
        rmesh = render_mesh(config, mesh, key=f"{config.source}-{hash(config)}-{cls}-{attempt}")
    out = []
    for inst in range(start, stop):
        if config.views == "flat":
            rgb, retries, meta, view = _flat_example(config, canonical, view, cls, inst, counts)
        else:
            rgb, retries, meta, view = _random_example(config, rmesh, mesh.vertices, cls, inst, counts)
        cam = view.camera
        out.append((example_key(cls, inst), {
            "image": encode_png(rgb, config.png_compress_level),
            "label": cls,
            "camera_pose": np.asarray(cam.pose, np.float32),
            "camera_yfov": np.float32(cam.yfov),
            "retries": np.int32(retries),
            "class_attempt": np.int32(attempt),
            **meta,
        }))
    return out


def render_unit_args(args: tuple) -> list[tuple[str, dict]]:
    """`render_unit(*args)` (for pool.map, which passes one item)."""
    return render_unit(*args)


def render_units(config: Synth3DConfig, units: list) -> list[tuple[str, dict]]:
    """`render_unit` over several units in one worker call."""
    return [item for unit in units for item in render_unit(config, unit)]


def generate(config: Synth3DConfig, table: Optional[ClassTable] = None) -> Iterator[tuple[str, dict]]:
    """Every example, sequentially, in this (TF-free) process."""
    from tfsynth.synth3d.classes import search_classes

    table = search_classes(config, config.source) if table is None else table
    for unit in work_units(config, table):
        yield from render_unit(config, unit)
