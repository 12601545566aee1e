"""ProcSynthDB base meshes: simple building blocks combined into one watertight object (TF-free).

A class mesh is drawn from a `numpy.random.Generator` in one of four styles ("Beyond Flatland" §3.1: building
blocks such as sphere, cylinder and cube, with various wireframes, smoothness and skin):

* ``parts``      2-6 primitives (sphere, box, cylinder, cone, frustum, capsule, torus, tetrahedron, octahedron),
                 each scaled anisotropically, rotated and placed on the surface of the object built so far, merged
                 by an exact boolean union (manifold3d). Circle resolution is drawn per class: 6 segments look
                 faceted, 32 look round.
* ``smooth``     a ``parts`` object whose edges are rounded: manifold3d's tangent smoothing (edges sharper than a
                 random angle stay sharp, the rest become G1) + uniform refinement + Taubin (lambda/mu) smoothing.
* ``wireframe``  the edges of a decimated ``parts`` object as tubes (cylinders) with spheres at the joints.
* ``skin``       a random tree skeleton, each bone a frustum between two joint spheres of different radii (a
                 "skin modifier"), unioned and smoothed into one organic surface.

Every mesh is checked (manifold status, one connected component, enough volume and faces, finite coordinates)
and normalised: bounding box centred on the origin, bounding-sphere radius 1. An unusable mesh raises
`MeshError`; callers retry with a derived seed and count the failure.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfsynth.shapes.geometry import MeshError, normalize_vertices, quaternion_to_matrix, random_quaternion

STYLES = ("parts", "smooth", "wireframe", "skin")
PRIMITIVES = ("sphere", "box", "cylinder", "cone", "frustum", "capsule", "torus", "tetrahedron", "octahedron")


@dataclasses.dataclass(frozen=True)
class ProcMeshConfig:
    """How ProcSynthDB class meshes are drawn."""

    styles: tuple = STYLES
    style_weights: tuple = (0.35, 0.3, 0.15, 0.2)  # probability of each style (same order as `styles`)
    primitives: tuple = PRIMITIVES
    min_parts: int = 2
    max_parts: int = 6
    segments: tuple = (6, 8, 12, 16, 24, 32)  # circle resolutions a class may use (faceted .. round)
    part_scale: tuple = (0.25, 0.9)  # per-axis scale range of a part (the first part is 1.0-sized)
    wire_faces: tuple = (24, 90)  # a wireframe uses the edges of the object decimated to this many faces
    wire_radius: tuple = (0.025, 0.05)  # tube radius range (relative to the object's radius 1)
    skin_joints: tuple = (4, 12)
    refine_length: float = 0.08  # edge length of the refined smooth surfaces (object radius 1)
    taubin_iterations: tuple = (0, 12)
    max_faces: int = 20_000  # decimate anything larger (render speed)
    min_faces: int = 16
    min_volume: float = 0.02  # after normalisation to radius 1 (a unit sphere has 4.19)

    def __post_init__(self):
        if len(self.styles) != len(self.style_weights) or not self.styles:
            raise ValueError("styles and style_weights must have the same non-zero length")
        unknown = set(self.styles) - set(STYLES)
        if unknown:
            raise ValueError(f"unknown mesh styles {sorted(unknown)}; valid: {', '.join(STYLES)}")
        unknown = set(self.primitives) - set(PRIMITIVES)
        if unknown:
            raise ValueError(f"unknown primitives {sorted(unknown)}; valid: {', '.join(PRIMITIVES)}")
        if not 1 <= self.min_parts <= self.max_parts:
            raise ValueError(f"need 1 <= min_parts <= max_parts, got {self.min_parts}, {self.max_parts}")


@dataclasses.dataclass
class Mesh:
    """A triangle mesh with optional per-vertex RGB colours in [0, 1]."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    vertex_colors: np.ndarray | None = None  # (V, 3) float64 in [0, 1]
    info: dict = dataclasses.field(default_factory=dict)

    def copy(self) -> "Mesh":
        colors = None if self.vertex_colors is None else self.vertex_colors.copy()
        return Mesh(self.vertices.copy(), self.faces.copy(), colors, dict(self.info))

    def to_trimesh(self):
        import trimesh

        return trimesh.Trimesh(self.vertices, self.faces, vertex_colors=None if self.vertex_colors is None else
                               np.clip(np.round(self.vertex_colors * 255), 0, 255).astype(np.uint8), process=False)


# ------------------------------------------------------------------------------------------------ manifold helpers

def _manifold():
    import manifold3d

    return manifold3d


def _affine(matrix3: np.ndarray, translation) -> np.ndarray:
    out = np.zeros((3, 4))
    out[:, :3] = matrix3
    out[:, 3] = translation
    return out


def to_manifold(vertices: np.ndarray, faces: np.ndarray):
    m3d = _manifold()
    mesh = m3d.Mesh(vert_properties=np.ascontiguousarray(vertices, np.float32),
                    tri_verts=np.ascontiguousarray(faces, np.uint32))
    solid = m3d.Manifold(mesh)
    if solid.status() != m3d.Error.NoError:
        raise MeshError(f"not a manifold: {solid.status()}")
    return solid


def from_manifold(solid) -> tuple[np.ndarray, np.ndarray]:
    mesh = solid.to_mesh()
    return np.asarray(mesh.vert_properties[:, :3], np.float64), np.asarray(mesh.tri_verts, np.int64)


def primitive(kind: str, rng: np.random.Generator, segments: int):
    """One building block, roughly of radius 1 around the origin."""
    m3d = _manifold()
    M = m3d.Manifold
    if kind == "sphere":
        return M.sphere(1.0, segments)
    if kind == "box":
        return M.cube((2.0, 2.0, 2.0), True)
    if kind == "cylinder":
        return M.cylinder(2.0, 1.0, 1.0, segments, True)
    if kind == "cone":
        return M.cylinder(2.0, 1.0, 0.0, segments, True)
    if kind == "frustum":
        return M.cylinder(2.0, 1.0, float(rng.uniform(0.3, 0.8)), segments, True)
    if kind == "capsule":
        r = float(rng.uniform(0.4, 0.7))
        return M.batch_hull([M.sphere(r, segments).translate((0, 0, -(1 - r))),
                             M.sphere(r, segments).translate((0, 0, 1 - r))])
    if kind == "torus":
        minor = float(rng.uniform(0.15, 0.4))
        section = m3d.CrossSection.circle(minor, max(segments // 2, 6)).translate((1.0 - minor, 0.0))
        return M.revolve(section, segments)
    if kind == "tetrahedron":
        return M.tetrahedron().scale((1 / np.sqrt(3),) * 3).translate((0, 0, 0))
    if kind == "octahedron":
        pts = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float64)
        return M.hull_points(pts)
    raise ValueError(f"unknown primitive {kind!r}; valid: {', '.join(PRIMITIVES)}")


def _random_on_surface(solid, rng: np.random.Generator) -> np.ndarray:
    from tfsynth.shapes.geometry import sample_surface

    vertices, faces = from_manifold(solid)
    return sample_surface(vertices, faces, 1, rng)[0]


def _check(solid, config: ProcMeshConfig, what: str):
    m3d = _manifold()
    if solid.status() != m3d.Error.NoError or solid.is_empty():
        raise MeshError(f"{what}: boolean result invalid ({solid.status()})")
    parts = len(solid.decompose())
    if parts != 1:
        raise MeshError(f"{what}: {parts} disconnected components")
    return solid


# ------------------------------------------------------------------------------------------------------- styles

def _parts(rng: np.random.Generator, config: ProcMeshConfig, segments: int):
    n_parts = int(rng.integers(config.min_parts, config.max_parts + 1))
    kinds = [str(config.primitives[i]) for i in rng.integers(0, len(config.primitives), n_parts)]
    solid = None
    for i, kind in enumerate(kinds):
        scale = np.ones(3) if i == 0 else rng.uniform(*config.part_scale, size=3)
        rot = quaternion_to_matrix(random_quaternion(rng))
        part = primitive(kind, rng, segments)
        if solid is None:
            solid = part.transform(_affine(rot @ np.diag(scale), (0, 0, 0)))
        else:
            anchor = _random_on_surface(solid, rng)
            solid = solid + part.transform(_affine(rot @ np.diag(scale), anchor))
    return _check(solid, config, "parts union"), {"parts": kinds}


def _smooth(solid, rng: np.random.Generator, config: ProcMeshConfig):
    sharp_angle = float(rng.uniform(20.0, 180.0))
    smoothness = float(rng.uniform(0.0, 1.0))
    solid = _normalized(solid).smooth_out(sharp_angle, smoothness).refine_to_length(config.refine_length)
    return solid, {"sharp_angle": sharp_angle, "smoothness": smoothness}


def _normalized(solid):
    vertices, _ = from_manifold(solid)
    _, centre, scale = normalize_vertices(vertices)
    return solid.translate(tuple(-centre)).scale((scale,) * 3)


def _tube(a: np.ndarray, b: np.ndarray, r_a: float, r_b: float, segments: int):
    """A frustum from point a (radius r_a) to point b (radius r_b)."""
    M = _manifold().Manifold
    axis = b - a
    length = float(np.linalg.norm(axis))
    z = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return M.cylinder(length, r_a, r_b, segments, False).transform(_affine(np.stack([x, y, z], 1), a))


def _wireframe(rng: np.random.Generator, config: ProcMeshConfig, segments: int):
    import trimesh

    solid, info = _parts(rng, config, segments)
    vertices, faces = from_manifold(_normalized(solid))
    target = int(rng.integers(config.wire_faces[0], config.wire_faces[1] + 1))
    mesh = trimesh.Trimesh(vertices, faces, process=True)
    if len(mesh.faces) > target:
        mesh = mesh.simplify_quadric_decimation(face_count=target)
    edges = mesh.edges_unique
    if len(edges) < 6:
        raise MeshError(f"wireframe: only {len(edges)} edges")
    radius = float(rng.uniform(*config.wire_radius))
    M = _manifold().Manifold
    tube_segments = max(6, min(segments, 12))
    pieces = [_tube(mesh.vertices[i], mesh.vertices[j], radius, radius, tube_segments)
              for i, j in edges if np.linalg.norm(mesh.vertices[i] - mesh.vertices[j]) > 1e-6]
    pieces += [M.sphere(radius * 1.25, tube_segments).translate(tuple(v)) for v in mesh.vertices]
    wire = M.batch_boolean(pieces, _manifold().OpType.Add)
    info.update(wire_edges=int(len(edges)), wire_radius=radius)
    return _check(wire, config, "wireframe union"), info


def _skin(rng: np.random.Generator, config: ProcMeshConfig, segments: int):
    M = _manifold().Manifold
    n = int(rng.integers(config.skin_joints[0], config.skin_joints[1] + 1))
    points = [np.zeros(3)]
    radii = [float(rng.uniform(0.15, 0.35))]
    bones = []
    for i in range(1, n):
        parent = int(rng.integers(0, i))
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        points.append(points[parent] + direction * rng.uniform(0.35, 0.8))
        radii.append(float(rng.uniform(0.06, 0.3)))
        bones.append((parent, i))
    seg = max(segments, 12)
    pieces = [M.sphere(r, seg).translate(tuple(p)) for p, r in zip(points, radii)]
    pieces += [_tube(points[a], points[b], radii[a], radii[b], seg) for a, b in bones]
    solid = _check(M.batch_boolean(pieces, _manifold().OpType.Add), config, "skin union")
    solid, info = _smooth(solid, rng, config)
    info.update(joints=n)
    return solid, info


# ------------------------------------------------------------------------------------------------------ public

def generate_mesh(config: ProcMeshConfig, rng: np.random.Generator) -> Mesh:
    """One ProcSynthDB class mesh (normalised to radius 1). Raises MeshError when the draw is unusable."""
    import trimesh

    style = str(config.styles[rng.choice(len(config.styles),
                                         p=np.asarray(config.style_weights) / np.sum(config.style_weights))])
    segments = int(config.segments[rng.integers(0, len(config.segments))])
    if style == "parts":
        solid, info = _parts(rng, config, segments)
    elif style == "smooth":
        solid, info = _parts(rng, config, max(segments, 12))
        solid, more = _smooth(solid, rng, config)
        info.update(more)
    elif style == "wireframe":
        solid, info = _wireframe(rng, config, segments)
    else:
        solid, info = _skin(rng, config, segments)
    vertices, faces = from_manifold(solid)
    if not np.all(np.isfinite(vertices)):
        raise MeshError(f"{style}: non-finite vertices")
    vertices, _, _ = normalize_vertices(vertices)
    taubin = (int(rng.integers(config.taubin_iterations[0], config.taubin_iterations[1] + 1))
              if style in ("smooth", "skin") else 0)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if taubin:
        trimesh.smoothing.filter_taubin(mesh, lamb=0.5, nu=0.53, iterations=taubin)
    if len(mesh.faces) > config.max_faces:
        mesh = mesh.simplify_quadric_decimation(face_count=config.max_faces)
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)
    vertices, _, _ = normalize_vertices(vertices)
    if len(faces) < config.min_faces:
        raise MeshError(f"{style}: only {len(faces)} faces")
    volume = float(trimesh.Trimesh(vertices, faces, process=False).volume)
    if not np.isfinite(volume) or volume < config.min_volume:
        raise MeshError(f"{style}: volume {volume:.4f} < {config.min_volume} after normalisation")
    info.update(style=style, segments=segments, taubin_iterations=taubin, volume=volume)
    return Mesh(vertices, faces, None, info)
