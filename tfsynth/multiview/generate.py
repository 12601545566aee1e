"""Multi-view renders of meshes for DPC shape & pose (the reference's ShapeNet renders, seed 002 §2.4) (TF-free).

Per model: the mesh is centred and fitted in the view sphere (bounding box centre at the origin, farthest vertex at
distance 0.5, so that every view sees the whole model: `fit_view_sphere`), then rendered from `views` cameras at
azimuth U[0, 360) and elevation U[-20, 40] degrees, distance 2, with the DPC camera (focal length 1.875 on an image
plane of width 1, i.e. a vertical field of view of 29.86 degrees) and a random number of point lights at random
positions. Per view: RGB on white, mask, depth (eye-space distance along the viewing axis, 0 on the background), the
4x4 camera-to-world extrinsic (OpenGL axes), the camera position and the DPC quaternion [w, x, y, z]
(`tfsynth.shapes.camera`, DPC's camera: projecting the model with it reproduces the mask).
Per model: ~100k points sampled on the faces, voxel-downsampled at 0.01 as the reference evaluation does.

Sources: 'procedural' (ProcSynthDB meshes from `tfsynth.shapes.procedural`, or with family='vehicles' one coherent
family of car-like meshes in a shared canonical frame from `tfsynth.shapes.vehicles`), 'shapenet' (a local
ShapeNetCore v1 or v2 folder and a synset; the DRC split files when given, else a seeded split by model id) or
'folder' (any mesh files: obj, ply, glb, off; only the readable ones are split, see `folder_split`). A model is a
pure function of (config, split, model key); rendering runs in TF-free workers (`tfsynth.render.pool`).
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import hashlib
import os
from typing import Optional

import numpy as np

from tfsynth.shapes import camera as dpc_camera
from tfsynth.shapes.geometry import voxel_downsample
from tfsynth.png import encode_png

MESH_EXTENSIONS = (".obj", ".ply", ".glb", ".off")
SPLITS = ("train", "validation", "test")
FAMILIES = ("procsynth", "vehicles")  # procedural mesh families (tfsynth.shapes.procedural / .vehicles)
VIEW_RADIUS = 0.5  # models are scaled into the sphere of this radius about their bounding-box centre


@dataclasses.dataclass(frozen=True)
class MultiviewConfig:
    source: str = "procedural"  # 'procedural' | 'shapenet' | 'folder'
    family: str = "procsynth"  # procedural meshes: 'procsynth' (ProcSynthDB objects) | 'vehicles' (car-like family)
    mesh_dir: str = ""  # ShapeNetCore root (shapenet) or a folder of meshes (folder)
    synset: str = "02958343"  # ShapeNet synset (02958343 cars, 03001627 chairs, 02691156 planes)
    split_dir: str = ""  # folder with the DRC split files <synset>_{train,val,test}.txt ('' = seeded split)
    split_fractions: tuple = (0.7, 0.1, 0.2)  # seeded split by model id when no split files
    num_models: tuple = (24, 4, 4)  # procedural models per split (train, validation, test)
    views: int = 5  # views per model
    image_size: int = 128  # rendered image size
    azimuth: tuple = (0.0, 360.0)  # degrees, uniform
    elevation: tuple = (-20.0, 40.0)  # degrees, uniform
    camera_distance: float = 2.0  # DPC camera distance
    focal_length: float = 1.875  # DPC focal length (image plane [-0.5, 0.5])
    lights: tuple = (1, 4)  # number of point lights, uniform inclusive
    light_distance: tuple = (2.0, 4.0)  # light distance from the centre
    light_intensity: tuple = (4.0, 12.0)  # candela
    ambient: float = 0.25  # ambient light
    gt_points: int = 100_000  # points sampled on the faces for the ground truth
    gt_voxel: float = 0.01  # voxel size of the ground-truth downsampling (0 = keep all)
    max_models: int = 0  # cap per split for shapenet / folder (0: all)
    seed: int = 0

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"unknown procedural family {self.family!r}; valid: {', '.join(FAMILIES)}")
        half = np.arctan(0.5 / self.focal_length)
        if VIEW_RADIUS > self.camera_distance * np.sin(half) + 1e-12:
            raise ValueError(f"camera_distance {self.camera_distance} with focal_length {self.focal_length} sees only "
                             f"a sphere of radius {self.camera_distance * np.sin(half):.3f}; models are fitted into "
                             f"radius {VIEW_RADIUS}: increase camera_distance or focal_length")

    @property
    def yfov(self) -> float:
        return float(2.0 * np.arctan(0.5 / self.focal_length))


# ---------------------------------------------------------------------------------------------------- model lists

def _seeded_split(model_id: str, seed: int, fractions) -> str:
    h = int.from_bytes(hashlib.sha256(f"{seed}:{model_id}".encode()).digest()[:8], "little") / 2 ** 64
    edges = np.cumsum(fractions) / np.sum(fractions)
    return SPLITS[int(np.searchsorted(edges, h, side="right").clip(0, 2))]


def _shapenet_mesh(root: str, synset: str, model_id: str) -> Optional[str]:
    for rel in ("models/model_normalized.obj", "model.obj"):
        path = os.path.join(root, synset, model_id, rel)
        if os.path.exists(path):
            return path
    return None


def list_models(config: MultiviewConfig, split: str) -> list[tuple[str, str]]:
    """[(model key, mesh path or '')] of one split, sorted; procedural keys are 'proc<index>'."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if config.source == "procedural":
        return [(f"proc{i:05d}", "") for i in range(config.num_models[SPLITS.index(split)])]
    if config.source == "shapenet":
        synset_dir = os.path.join(config.mesh_dir, config.synset)
        if not os.path.isdir(synset_dir):
            raise FileNotFoundError(f"{synset_dir}: no such ShapeNetCore synset folder (set mesh_dir to the root "
                                    f"that holds {config.synset}/)")
        if config.split_dir:
            name = {"train": "train", "validation": "val", "test": "test"}[split]
            split_file = os.path.join(config.split_dir, f"{config.synset}_{name}.txt")
            if not os.path.exists(split_file):
                raise FileNotFoundError(f"{split_file}: DRC split file missing")
            ids = [l.strip() for l in open(split_file) if l.strip()]
        else:
            ids = sorted(d for d in os.listdir(synset_dir) if os.path.isdir(os.path.join(synset_dir, d)))
            ids = [i for i in ids if _seeded_split(i, config.seed, config.split_fractions) == split]
        out = [(i, _shapenet_mesh(config.mesh_dir, config.synset, i)) for i in ids]
        out = [(i, p) for i, p in out if p]
    elif config.source == "folder":
        out = folder_split(config)[split]
    else:
        raise ValueError(f"unknown source {config.source!r}; valid: procedural, shapenet, folder")
    return out[: config.max_models or None]


def _split_hash(model_id: str, seed: int) -> float:
    return int.from_bytes(hashlib.sha256(f"{seed}:{model_id}".encode()).digest()[:8], "little") / 2 ** 64


@functools.lru_cache(maxsize=None)
def _unreadable_reason(path: str, mtime_ns: int, size: int) -> Optional[str]:
    """Why the mesh file cannot be rendered (None: it can); cached per file version."""
    try:
        vertices, _, _ = load_mesh(path)
        fit_view_sphere(vertices)
    except ValueError as err:
        return str(err).replace(f"{path}: ", "")
    return None


def folder_meshes(config: MultiviewConfig) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(key, path)] of the readable meshes, [(key, reason)] of the unreadable ones) of a 'folder' source, sorted
    by key (the path relative to mesh_dir)."""
    if not os.path.isdir(config.mesh_dir):
        raise FileNotFoundError(f"{config.mesh_dir}: no such mesh folder")
    files = sorted(f for f in glob.glob(os.path.join(config.mesh_dir, "**", "*"), recursive=True)
                   if f.lower().endswith(MESH_EXTENSIONS))
    readable, skipped = [], []
    for path in files:
        key = os.path.relpath(path, config.mesh_dir)
        stat = os.stat(path)
        reason = _unreadable_reason(path, stat.st_mtime_ns, stat.st_size)
        if reason:
            skipped.append((key, reason))
        else:
            readable.append((key, path))
    return readable, skipped


def split_counts(n: int, fractions) -> tuple[int, ...]:
    """Models per split (train, validation, test) for `n` readable models: validation and test get round(f n) each,
    at least 1 where their fraction is > 0; train gets the rest (at least 1 where its fraction is > 0)."""
    f = np.asarray(fractions, np.float64) / np.sum(fractions)
    val, test = (max(1, int(round(f[i] * n))) if f[i] > 0 else 0 for i in (1, 2))
    return n - val - test, val, test


def folder_split(config: MultiviewConfig) -> dict[str, list[tuple[str, str]]]:
    """The split of a mesh folder: only readable meshes are split. They are ordered by a seeded hash of their key
    and cut by `split_counts` (train first), so every split with a fraction > 0 gets at least one mesh; a folder
    too small for that raises ValueError in one line with the counts (3 readable meshes are enough for the default
    fractions). The split depends on the folder's readable files and the seed only, not on the worker count."""
    readable, skipped = folder_meshes(config)
    counts = split_counts(len(readable), config.split_fractions)
    wanted = [name for name, frac in zip(SPLITS, config.split_fractions) if frac > 0]
    if min(c for c, frac in zip(counts, config.split_fractions) if frac > 0) < 1 or counts[0] < 0:
        raise ValueError(f"mesh folder {config.mesh_dir}: {len(readable)} readable meshes ({len(skipped)} unreadable "
                         f"of {len(readable) + len(skipped)}) cannot give {', '.join(wanted)} at least one each; "
                         f"needs {len(wanted)} readable meshes")
    ordered = sorted(readable, key=lambda item: (_split_hash(item[0], config.seed), item[0]))
    out, start = {}, 0
    for name, count in zip(SPLITS, counts):
        out[name] = sorted(ordered[start:start + count])
        start += count
    return out


# ------------------------------------------------------------------------------------------------------- meshes

def _rng(config: MultiviewConfig, split: str, key: str, stream: int) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")
    return np.random.default_rng(np.random.SeedSequence([config.seed, SPLITS.index(split), digest, stream]))


def fit_view_sphere(vertices) -> np.ndarray:
    """Bounding box centred at the origin, scaled so that the farthest vertex is at distance VIEW_RADIUS (0.5).

    Whatever the camera's azimuth and elevation, the camera looks at the origin, so the model stays inside the
    view cone when the sphere does: VIEW_RADIUS <= camera_distance * sin(yfov / 2) (2 * 0.2577 = 0.515 for the DPC
    camera; `MultiviewConfig` checks it). Fitting the longest side to 1 (`fit_unit_cube`) does not: a wide mesh
    reaches 0.71 (square) to 0.87 (cube corners) from the centre and was cut by the image border."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    centred = v - (lo + hi) / 2
    radius = float(np.max(np.linalg.norm(centred, axis=1))) if len(v) else 0.0
    if not np.isfinite(radius) or radius <= 0:
        raise ValueError("degenerate mesh: zero or non-finite extent")
    return centred * (VIEW_RADIUS / radius)


def fit_unit_cube(vertices) -> np.ndarray:
    """Bounding box centred at the origin, longest side 1."""
    v = np.asarray(vertices, np.float64)
    lo, hi = v.min(0), v.max(0)
    extent = float(np.max(hi - lo))
    if not np.isfinite(extent) or extent <= 0:
        raise ValueError("degenerate mesh: zero or non-finite extent")
    return (v - (lo + hi) / 2) / extent


def load_mesh(path: str):
    """(vertices, faces, vertex colours (V, 3) in [0, 1] or None) of a mesh file; errors name the file."""
    import trimesh

    try:
        mesh = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # noqa: BLE001 - trimesh raises many kinds
        raise ValueError(f"{path}: cannot read mesh ({err})") from None
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError(f"{path}: no triangles")
    colors = None
    try:
        vc = mesh.visual.to_color().vertex_colors  # textures sampled at the vertices
        if vc is not None and len(vc) == len(mesh.vertices):
            colors = np.asarray(vc, np.float64)[:, :3] / 255.0
    except Exception:  # noqa: BLE001 - meshes without usable materials fall back to a base colour
        colors = None
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64), colors


def model_mesh(config: MultiviewConfig, split: str, key: str, path: str):
    if config.source == "procedural":
        from tfsynth.shapes.geometry import MeshError
        from tfsynth.shapes.procedural import ProcMeshConfig, generate_mesh
        from tfsynth.shapes.vehicles import VehicleConfig, generate_vehicle

        for attempt in range(20):
            try:
                if config.family == "vehicles":
                    mesh = generate_vehicle(VehicleConfig(), _rng(config, split, key, 100 + attempt))
                else:
                    mesh = generate_mesh(ProcMeshConfig(), _rng(config, split, key, 100 + attempt))
                return mesh.vertices, mesh.faces, mesh.vertex_colors
            except MeshError:
                continue
        raise RuntimeError(f"procedural model {split}/{key}: no usable mesh in 20 attempts")
    return load_mesh(path)


# ------------------------------------------------------------------------------------------------------ renders

def random_lights(rng: np.random.Generator, config: MultiviewConfig):
    from tfsynth.render import Light

    n = int(rng.integers(config.lights[0], config.lights[1] + 1))
    lights = []
    for _ in range(n):
        d = rng.normal(size=3)
        d[1] = abs(d[1])  # from above the horizon
        d /= np.linalg.norm(d)
        pos = d * rng.uniform(*config.light_distance)
        lights.append(Light("point", (1.0, 1.0, 1.0), float(rng.uniform(*config.light_intensity)),
                            position=tuple(pos), direction=tuple(-d)))
    return lights


def render_model(config: MultiviewConfig, split: str, key: str, path: str = "") -> dict:
    """One example: per-view arrays stacked on axis 0, plus the ground-truth cloud. Run in a TF-free process."""
    from tfsynth import render as render_module
    from tfsynth.render import Camera, ObjectPose, RenderMesh, View
    from tfsynth.shapes.geometry import sample_surface

    vertices, faces, colors = model_mesh(config, split, key, path)
    vertices = fit_view_sphere(vertices)
    rng = _rng(config, split, key, 0)
    base = tuple(rng.uniform(0.3, 0.9, 3)) + (1.0,) if colors is None else (1.0, 1.0, 1.0, 1.0)
    mesh = RenderMesh(vertices, faces, vertex_colors=colors, base_color=base, key=None)
    az = rng.uniform(*config.azimuth, config.views)
    el = rng.uniform(*config.elevation, config.views)
    s = config.image_size
    out = {k: [] for k in ("images", "masks", "depths", "extrinsics", "camera_positions", "quaternions")}
    for a, e in zip(az, el):
        q = dpc_camera.quaternion_from_view(a, e)
        pose = dpc_camera.camera_to_world(q, config.camera_distance)
        view = View(camera=Camera(pose=pose, yfov=config.yfov, znear=0.1, zfar=config.camera_distance + 5.0),
                    lights=random_lights(rng, config), pose=ObjectPose(), width=s, height=s,
                    ambient=(config.ambient,) * 3, background=(1.0, 1.0, 1.0, 0.0))
        r = render_module.render(mesh, view)
        alpha = r.mask[..., None].astype(np.float32)
        rgb = np.round(r.rgba[..., :3] * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
        out["images"].append(rgb)
        out["masks"].append(r.mask.astype(np.uint8))
        out["depths"].append(r.depth.astype(np.float32))
        out["extrinsics"].append(np.linalg.inv(pose).astype(np.float32))  # world-to-camera
        out["camera_positions"].append(pose[:3, 3].astype(np.float32))
        out["quaternions"].append(q.astype(np.float32))
    example = {k: np.stack(v) for k, v in out.items()}
    pts = sample_surface(vertices, faces, config.gt_points, _rng(config, split, key, 1))
    example["points"] = voxel_downsample(pts, config.gt_voxel) if config.gt_voxel > 0 else pts.astype(np.float32)
    example["azimuth"], example["elevation"] = az.astype(np.float32), el.astype(np.float32)
    example["model_id"] = key
    return example


def render_item(args: tuple) -> tuple[str, dict]:
    """Pool entry point: (config, split, key, path) -> (key, example with PNG-encoded images and masks)."""
    config, split, key, path = args
    ex = render_model(config, split, key, path)
    ex["images"] = [encode_png(im) for im in ex["images"]]
    ex["masks"] = [encode_png(m[..., None] * 255) for m in ex["masks"]]
    return key, ex


def beam_render(item: tuple, config: MultiviewConfig):
    """The builder's Beam step: (split, key, path) -> [(key, example)], rendered in the process's TF-free render pool;
    an unreadable mesh is skipped and counted. It lives here, not in the builder module, because `tfds build
    <folder>` imports a builder under its folder's bare name, which Beam's worker processes cannot import when they
    unpickle the step (`direct_num_workers=N`)."""
    from apache_beam.metrics import Metrics

    from tfsynth.render.pool import WorkerError, get_pool

    split, key, path = item
    try:
        key, ex = get_pool().call("tfsynth.multiview.generate:render_item", (config, split, key, path))
    except WorkerError as err:
        Metrics.counter("multiview_shapes", "skipped_models").inc()
        print(f"multiview_shapes: skipped {split}/{key}: {str(err).strip().splitlines()[-1]}", flush=True)
        return
    Metrics.counter("multiview_shapes", "models").inc()
    yield key, ex
