"""Class meshes of the 3D datasets and the search that keeps classes distinct. TF-free.

A class mesh is a pure function of (config, class, attempt): attempt a of class c draws from
`SeedSequence([seed, CLASS_TAG, c, a])` (MorphSynthDB: `[seed, MORPH_TAG, c, a]`). The search walks the classes in
order and accepts the first attempt whose mesh is valid and whose class distance to every class accepted before it
exceeds the configured minimum; rejected attempts are counted by reason. The distance
(`tfsynth.shapes.distance.class_descriptor`: D2 after scaling the mesh's bounding box to a cube) ignores the
rotations and single-axis stretches that every instance receives, so two classes that are one shape up to those
cannot both be accepted. The result, a
`ClassTable`, holds the accepted attempt of each class, so any worker rebuilds exactly the same mesh from it.

Candidates can be evaluated speculatively in parallel (`map_fn`, e.g. a render pool's map): acceptance is still
decided in class order, so the table does not depend on the batch size or the number of workers.
"""
from __future__ import annotations

import colorsys
import dataclasses
import functools
from typing import Callable, Optional

import numpy as np

from tfsynth.shapes.distance import (D2_BINS, D2_NOISE_FLOOR_MEDIAN, D2_NOISE_FLOOR_P99, DESCRIPTOR_NAME,
                                     class_descriptor, descriptor_distance, min_pairwise_distance)
from tfsynth.shapes.geometry import MeshError, normalize_vertices
from tfsynth.shapes.morph import build_model, resample
from tfsynth.shapes.procedural import Mesh, generate_mesh
from tfsynth.synth3d.config import Synth3DConfig

CLASS_TAG, INSTANCE_TAG, MORPH_TAG = 0, 1, 2


def class_rng(config: Synth3DConfig, tag: int, cls: int, attempt: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, tag, cls, attempt]))


def _mesh_key(config: Synth3DConfig) -> Synth3DConfig:
    """The part of the config that determines ProcSynthDB meshes (so Proc/Morph/Flat share cache entries)."""
    return Synth3DConfig(seed=config.seed, mesh=config.mesh, min_class_distance=config.min_class_distance,
                         max_attempts=config.max_attempts)


@functools.lru_cache(maxsize=16)
def _proc_mesh_cached(key: Synth3DConfig, cls: int, attempt: int) -> Mesh:
    mesh = generate_mesh(key.mesh, class_rng(key, CLASS_TAG, cls, attempt))
    mesh.info.update(cls=cls, attempt=attempt)
    return mesh


def proc_mesh(config: Synth3DConfig, cls: int, attempt: int) -> Mesh:
    """ProcSynthDB class `cls`, attempt `attempt` (raises MeshError if that draw is unusable)."""
    return _proc_mesh_cached(_mesh_key(config), cls, attempt).copy()


@functools.lru_cache(maxsize=4)
def _morph_reference(key: Synth3DConfig, morph, base: int, base_attempt: int):
    mesh = _proc_mesh_cached(key, base, base_attempt)
    vertices, faces = resample(mesh.vertices, mesh.faces, morph.target_vertices)
    model = build_model(vertices, np.full((len(vertices), 3), 0.5), morph)
    return vertices, faces, model


def morph_mesh(config: Synth3DConfig, cls: int, attempt: int, base_attempt: int) -> Mesh:
    """MorphSynthDB class `cls`: one GP morph (shape + per-vertex albedo) of ProcSynthDB base `cls % B`."""
    base = cls % config.morph_base_classes
    vertices, faces, model = _morph_reference(_mesh_key(config), config.morph, base, base_attempt)
    rng = class_rng(config, MORPH_TAG, cls, attempt)
    hue = rng.random()
    sat = rng.uniform(*config.morph_base_albedo_saturation)
    val = rng.uniform(*config.morph_base_albedo_value)
    mean_albedo = np.array(colorsys.hsv_to_rgb(hue, sat, val))
    displacement, albedo_change = model.sample(rng)
    new_vertices = vertices + displacement
    if not np.all(np.isfinite(new_vertices)):
        raise MeshError("morph: non-finite vertices")
    new_vertices, _, _ = normalize_vertices(new_vertices)
    tri = new_vertices[faces]
    volume = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
    if volume < config.mesh.min_volume:
        raise MeshError(f"morph: signed volume {volume:.4f} < {config.mesh.min_volume} (folded or inverted)")
    colors = np.clip(mean_albedo + albedo_change, 0.0, 1.0)
    info = {"cls": cls, "attempt": attempt, "base": base, "base_attempt": base_attempt,
            "mean_albedo": mean_albedo.tolist(), "captured_shape": model.captured["shape"],
            "captured_albedo": model.captured["albedo"], "rank": model.rank}
    return Mesh(new_vertices, faces, colors, info)


def candidate(config: Synth3DConfig, kind: str, cls: int, attempt: int, base_attempt: int = 0):
    """(cls, attempt, descriptor or None, error message or None): picklable summary of one candidate."""
    try:
        mesh = proc_mesh(config, cls, attempt) if kind == "proc" else morph_mesh(config, cls, attempt, base_attempt)
        return cls, attempt, class_descriptor(mesh.vertices, mesh.faces), None
    except MeshError as e:
        return cls, attempt, None, str(e)


def candidates(args_list):
    """`candidate` over a list of argument tuples (one pool call evaluates a whole batch)."""
    return [candidate(*args) for args in args_list]


@dataclasses.dataclass
class ClassTable:
    """Outcome of the class search: which attempt each class uses, and the statistics to report."""

    kind: str
    attempts: np.ndarray  # (N,) accepted attempt per class
    descriptors: np.ndarray  # (N, bins) class descriptors (DESCRIPTOR_NAME) of the accepted meshes
    rejected_invalid: int
    rejected_similar: int
    min_distance_enforced: float
    failure_reasons: dict
    base: Optional["ClassTable"] = None  # MorphSynthDB: the ProcSynthDB search of the base meshes

    @property
    def num_classes(self) -> int:
        return len(self.attempts)

    def min_distance(self) -> tuple[float, tuple[int, int]]:
        return min_pairwise_distance(self.descriptors)

    def base_attempt(self, cls: int) -> int:
        return int(self.base.attempts[cls % self.base.num_classes]) if self.base is not None else 0

    def summary(self) -> dict:
        dist, pair = self.min_distance()
        out = {"kind": self.kind, "num_classes": self.num_classes,
               "min_class_distance_d2": None if not np.isfinite(dist) else round(dist, 5),
               "closest_pair": list(pair), "descriptor": DESCRIPTOR_NAME,
               "min_distance_enforced": self.min_distance_enforced,
               "descriptor_noise_floor_median": D2_NOISE_FLOOR_MEDIAN,
               "descriptor_noise_floor_p99": D2_NOISE_FLOOR_P99,
               "rejected_invalid": self.rejected_invalid, "rejected_similar": self.rejected_similar,
               "failure_reasons": dict(sorted(self.failure_reasons.items()))}
        if self.base is not None:
            out["base"] = self.base.summary()
        return out


def _reason(message: str) -> str:
    return message.split(":")[0] + ": " + message.split(":")[1].strip().split(" ")[0] if ":" in message else message


def search_classes(config: Synth3DConfig, kind: str = "proc", num_classes: Optional[int] = None,
                   map_fn: Optional[Callable] = None, workers: int = 1, batch: int = 64,
                   base: Optional[ClassTable] = None, progress: Optional[Callable[[int], None]] = None) -> ClassTable:
    """Accepts one attempt per class in order (see module docstring). `map_fn(candidates, list_of_batches)`
    evaluates `workers` batches of candidate argument tuples at a time (default: sequentially in this process,
    e.g. `RenderPool.map_callable` to use TF-free worker processes)."""
    n = config.num_classes if num_classes is None else num_classes
    if kind == "morph" and base is None:
        base = search_classes(config, "proc", config.morph_base_classes, map_fn, workers, batch)
    threshold = config.min_class_distance if kind == "proc" else config.morph_min_class_distance
    evaluate = map_fn or (lambda fn, batches: [fn(b) for b in batches])
    base_attempt = (lambda c: int(base.attempts[c % base.num_classes])) if base is not None else (lambda c: 0)
    cache: dict = {}
    attempts = np.zeros(n, np.int64)
    accepted = np.zeros((0, D2_BINS))
    invalid = similar = 0
    reasons: dict = {}
    cls = 0
    while cls < n:
        if (cls, attempts[cls]) not in cache:
            # Speculatively evaluate the current attempt of this class and the next attempt-0s of later classes.
            todo = [(cls, int(attempts[cls]))] + [(c, 0) for c in range(cls + 1, min(n, cls + batch))
                                                   if (c, 0) not in cache]
            if kind == "morph":  # group by base mesh: each worker builds a base's morph model once
                todo.sort(key=lambda ca: (ca[0] % base.num_classes, ca[0]))
            groups = max(1, workers)
            chunks = [todo[i::groups] for i in range(groups)] if kind == "proc" else \
                [todo[i * len(todo) // groups:(i + 1) * len(todo) // groups] for i in range(groups)]
            calls = [[(config, kind, c, a, base_attempt(c)) for c, a in chunk] for chunk in chunks if chunk]
            for results in evaluate(candidates, calls):
                for c, a, desc, err in results:
                    cache[(c, a)] = (desc, err)
        desc, err = cache.pop((cls, int(attempts[cls])))
        if err is not None:
            invalid += 1
            reasons[_reason(err)] = reasons.get(_reason(err), 0) + 1
        elif threshold > 0 and len(accepted) and descriptor_distance(accepted, desc).min() <= threshold:
            similar += 1
        else:
            accepted = np.concatenate([accepted, desc[None]], 0)
            cls += 1
            if progress is not None:
                progress(cls)
            continue
        attempts[cls] += 1
        if attempts[cls] >= config.max_attempts:
            raise RuntimeError(f"{kind} class {cls}: no acceptable mesh in {config.max_attempts} attempts "
                               f"(min_class_distance {threshold} may be too strict for {n} classes; "
                               f"rejections so far: {invalid} invalid, {similar} too similar)")
    return ClassTable(kind, attempts, accepted, invalid, similar, threshold, reasons, base)
