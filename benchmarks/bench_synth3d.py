"""3D procedural datasets: rendered examples per CPU-second (one core) for ProcSynthDB, MorphSynthDB and
FlatWorldDB at the `1k` configs' 362 px (or --image_size), the pipeline's overhead over bare pyrender renders of the
same meshes and views, and the GP morph sampling time per sample at 10k vertices. TF-free (runs its own renderer in
this process).

Baseline measured in the same run: `pyrender.OffscreenRenderer.render` alone on the same meshes, poses, lights
(scene construction, mesh upload, view sampling, emptiness checks, PNG encoding and class-mesh building are the
pipeline's overhead). Targets: overhead <= 30 %; morph sampling <= 20 ms per sample at 10k vertices.
`*_amortised_*` is one class mesh rendered for a whole work unit (64 instances with --quick, 250 as in the 1k
configs), i.e. the class-mesh cost amortised as the real builders amortise it (MorphSynthDB: with its base's GP
model already built, as grouped units give, and `*_unit_with_model_build_*` the worst case); the small 2- and 4-class
runs charge each class mesh (and each morph model) to only 8 or 25 instances. Pipeline and bare renders alternate in
blocks of 25 instances, so a change of machine load between them does not show up as overhead. BLAS runs on one
thread (OPENBLAS_NUM_THREADS=1).

    python -m benchmarks.bench_synth3d [--quick] [--image_size 224]
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("LP_NUM_THREADS", "1")  # llvmpipe on one thread: numbers are per core
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # BLAS on one thread too (morph sampling is per core)

import numpy as np  # noqa: E402

from tfsynth.shapes import morph  # noqa: E402
from tfsynth.synth3d import dataset, views  # noqa: E402
from tfsynth.synth3d.classes import class_rng, search_classes  # noqa: E402
from tfsynth.synth3d.config import Synth3DConfig  # noqa: E402


def _cpu(fn):
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def _bare_render_seconds(config: Synth3DConfig, mesh, cls: int, examples: list) -> float:
    """CPU seconds of pyrender's render() alone for the same mesh and views the pipeline produced (one render per
    example: the view of its accepted draw; the pipeline's rejected draws count as pipeline cost)."""
    from tfsynth.render import pyrender_backend as pb

    pyrender = pb.pyrender
    rmesh = dataset.render_mesh(config, mesh)
    total = 0.0
    for key, example in examples:
        inst = int(key.split("_")[1])
        rng = dataset.instance_rng(config, cls, inst, int(example["retries"]))
        view = views.random_instance(config, mesh.vertices, rng).view
        scene = pyrender.Scene(bg_color=np.zeros(4, np.float32), ambient_light=np.asarray(view.ambient, np.float32))
        pose = view.pose
        rigid = type(pose)(rotation=pose.rotation, translation=pose.translation)
        scene.add(pyrender.Mesh([pb._primitive(rmesh, pose.scale)]), pose=rigid.matrix())
        scene.add(pb._camera(view), pose=view.camera.pose)
        for light in view.lights:
            scene.add(pb._light(light), pose=light.pose())
        renderer = pb._renderer(view.width, view.height)
        renderer.render(scene, flags=pyrender.RenderFlags.RGBA)  # upload outside the timing
        _, seconds = _cpu(lambda: renderer.render(scene, flags=pyrender.RenderFlags.RGBA))
        total += seconds
    return total


def _dataset(config: Synth3DConfig, classes: int, instances: int, block: int = 25,
             prebuilt_morph_model: bool = False) -> dict:
    """Pipeline and bare renders alternate in blocks of `block` instances, so that a change in machine load
    between the two measurements cannot masquerade as pipeline overhead (or hide it). `prebuilt_morph_model`:
    the base mesh's GP model is built before the timing (and its cost reported), as in a real build where the
    units of one base come together and the model is built about once per worker."""
    config = config.replace(num_classes=classes, instances_per_class=instances, instances_per_unit=instances)
    table, search_s = _cpu(lambda: search_classes(config, config.source))
    dataset.render_unit(config, (0, 0, 1, int(table.attempts[0]), table.base_attempt(0)))  # warm up GL
    dataset._canonical.cache_clear()
    from tfsynth.synth3d import classes as cl

    cl._proc_mesh_cached.cache_clear()
    cl._morph_reference.cache_clear()
    extra = {}
    if prebuilt_morph_model:
        _, build_s = _cpu(lambda: dataset.class_mesh(config, 0, int(table.attempts[0]), table.base_attempt(0)))
        extra["morph_model_build_cpu_s"] = round(build_s, 2)
    n, seconds, bare = 0, 0.0, 0.0
    for cls, start, stop, attempt, base_attempt in dataset.work_units(config, table):
        for first in range(start, stop, block):
            unit = (cls, first, min(first + block, stop), attempt, base_attempt)
            # The class mesh is built inside the first block's timing (ProcSynthDB meshes are then cached per
            # process, as across the units of a real build; 25 is a whole class in the non-amortised runs).
            examples, block_s = _cpu(lambda: dataset.render_unit(config, unit))
            n, seconds = n + len(examples), seconds + block_s
            if config.views == "random":
                mesh = dataset.class_mesh(config, cls, attempt, base_attempt)
                bare += _bare_render_seconds(config, mesh, cls, examples)
                # The bare renders evicted the unit's mesh from the GL context; a real unit keeps it, so
                # re-upload it outside the timing.
                dataset.render_unit(config, (cls, first, first + 1, attempt, base_attempt))
    out = {"examples": n, "examples_per_cpu_s": round(n / seconds, 2),
           "class_search_cpu_s_per_class": round(search_s / classes, 3), **extra}
    if config.views == "random":
        out["bare_pyrender_examples_per_cpu_s"] = round(n / bare, 2)
        out["pipeline_overhead"] = round(seconds / bare - 1.0, 3)
    return out


def _morph_sampling(vertices_target: int, draws: int) -> dict:
    from tfsynth.shapes.procedural import ProcMeshConfig, generate_mesh

    mesh = generate_mesh(ProcMeshConfig(), class_rng(Synth3DConfig(), 0, 0, 0))
    vertices, faces = morph.resample(mesh.vertices, mesh.faces, 2 * vertices_target)
    vertices, faces = morph.decimate(vertices, faces, vertices_target)
    model, build_s = _cpu(lambda: morph.build_model(vertices, np.full((len(vertices), 3), 0.5), morph.MorphConfig()))
    rng = np.random.default_rng(0)
    model.sample(rng)
    _, seconds = _cpu(lambda: [model.sample(rng) for _ in range(draws)])
    per_sample = seconds / draws
    return {"vertices": int(len(vertices)), "model_build_cpu_s": round(build_s, 2),
            "sample_cpu_ms": round(1000 * per_sample, 2), "rank_shape_albedo": list(model.rank),
            "methods": [f"{t['space']} sigma={t['sigma']:g}: {t['method']} rank {t['rank']}, "
                        f"captured {t['captured']:.3f}"
                        for t in model.captured["terms"]],
            "captured_shape": round(model.captured["shape"], 4), "captured_albedo": round(model.captured["albedo"], 4)}


def run(quick: bool = False, image_size: int = 362) -> dict:
    classes, instances = (2, 8) if quick else (4, 25)
    base = Synth3DConfig(image_size=image_size)
    results = {
        "proc_synth_db": _dataset(base, classes, instances),
        "morph_synth_db": _dataset(base.replace(source="morph", morph_base_classes=classes), classes, instances),
        "flat_world_db": _dataset(base.replace(views="flat"), classes, instances),
        # As the real builders run: one class mesh amortised over a work unit of many instances (1k configs: 250).
        "proc_synth_db_amortised": _dataset(base, 1, 64 if quick else 250),
        # As a real MorphSynthDB build runs (units grouped by base mesh): the GP model exists, the class morph is
        # sampled inside the timing.
        "morph_synth_db_amortised": _dataset(base.replace(source="morph", morph_base_classes=1), 1,
                                             64 if quick else 250, prebuilt_morph_model=True),
        # The worst case: the base mesh's GP model is built for this unit alone.
        "morph_synth_db_unit_with_model_build": _dataset(base.replace(source="morph", morph_base_classes=1), 1,
                                                         64 if quick else 250),
    }
    sampling = _morph_sampling(10_000, 10 if quick else 50)
    return {
        "benchmark": "synth3d",
        **{f"{k}_{m}": v for k, r in results.items() for m, v in r.items()},
        "pipeline_overhead_target": 0.3,
        "morph_10k": sampling,
        "morph_sample_ms_target": 20,
        "setting": f"{image_size} px, {classes} classes x {instances} instances per dataset, "
                   "one llvmpipe thread (LP_NUM_THREADS=1), CPU seconds of this process",
        "quick": quick,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--image_size", type=int, default=362, help="render size (the 1k configs: 362)")
    args = parser.parse_args()
    print(json.dumps(run(args.quick, args.image_size), indent=2))
