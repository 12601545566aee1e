"""Offscreen rendering with pyrender 0.1.45 (OpenGL through EGL). Import this ONLY in TF-free processes.

TensorFlow and Mesa's software OpenGL segfault when loaded in one process, so TFDS builders never import this
module: they hand work to `tfsynth.render.pool` workers, which do. Facts this module is built around:
* NumPy 2 removed `np.infty`, which pyrender 0.1.45 still uses: shimmed before the import.
* `PYOPENGL_PLATFORM=egl` (set here unless the environment chose another platform): headless on CPU (llvmpipe)
  and on NVIDIA GPUs.
* ONE `OffscreenRenderer` per process, resized as needed and never deleted (deleting one breaks the others).
* A pyrender Mesh binds its GPU buffers to the renderer; meshes with a `key` are kept in a small LRU cache and
  their pose's scale is applied by the node transform (no re-upload per instance).
"""
from __future__ import annotations

import collections
import os

import numpy as np

from tfsynth.render.scene import Light, RenderMesh, RenderOutput, View

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
if not hasattr(np, "infty"):
    np.infty = np.inf  # pyrender 0.1.45 + NumPy 2

import pyrender  # noqa: E402

_RENDERER = None
_MESH_CACHE: "collections.OrderedDict[str, pyrender.Mesh]" = collections.OrderedDict()
_MESH_CACHE_SIZE = 8


def _renderer(width: int, height: int):
    global _RENDERER
    if _RENDERER is None:
        _RENDERER = pyrender.OffscreenRenderer(width, height)
    elif (_RENDERER.viewport_width, _RENDERER.viewport_height) != (width, height):
        _RENDERER.viewport_width, _RENDERER.viewport_height = width, height
    return _RENDERER


def _colors(colors, n):
    colors = np.asarray(colors, np.float32)
    if colors.shape[1] == 3:
        colors = np.concatenate([colors, np.ones((n, 1), np.float32)], 1)
    return colors


def _primitive(mesh: RenderMesh, scale) -> "pyrender.Primitive":
    from tfsynth.shapes.geometry import vertex_normals

    scale = np.asarray(scale, np.float64)
    vertices = np.asarray(mesh.vertices, np.float64) * scale
    faces = np.asarray(mesh.faces, np.int64)
    material = pyrender.MetallicRoughnessMaterial(baseColorFactor=np.asarray(mesh.base_color, np.float32),
                                                  metallicFactor=mesh.metallic, roughnessFactor=mesh.roughness,
                                                  doubleSided=False)
    if mesh.face_colors is not None or not mesh.smooth:
        # Flat shading: every face gets its own three vertices and its face normal.
        tri = vertices[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-20)
        kwargs = {}
        if mesh.face_colors is not None:
            kwargs["color_0"] = np.repeat(_colors(mesh.face_colors, len(faces)), 3, axis=0)
        elif mesh.vertex_colors is not None:
            kwargs["color_0"] = _colors(mesh.vertex_colors, len(vertices))[faces.reshape(-1)]
        return pyrender.Primitive(positions=tri.reshape(-1, 3).astype(np.float32),
                                  normals=np.repeat(normals, 3, axis=0).astype(np.float32),
                                  material=material, **kwargs)
    kwargs = {}
    if mesh.vertex_colors is not None:
        kwargs["color_0"] = _colors(mesh.vertex_colors, len(vertices))
    return pyrender.Primitive(positions=vertices.astype(np.float32),
                              normals=vertex_normals(vertices, faces).astype(np.float32),
                              indices=faces.astype(np.uint32), material=material, **kwargs)


def _pyrender_mesh(mesh: RenderMesh, scale) -> "pyrender.Mesh":
    scaled = tuple(float(s) for s in scale) != (1.0, 1.0, 1.0)
    if mesh.key is None or scaled:
        return pyrender.Mesh([_primitive(mesh, scale)])
    cached = _MESH_CACHE.get(mesh.key)
    if cached is None:
        cached = _MESH_CACHE[mesh.key] = pyrender.Mesh([_primitive(mesh, scale)])
        while len(_MESH_CACHE) > _MESH_CACHE_SIZE:
            _MESH_CACHE.popitem(last=False)
    else:
        _MESH_CACHE.move_to_end(mesh.key)
    return cached


def _light(light: Light):
    color = np.asarray(light.color, np.float32)
    if light.kind == "directional":
        return pyrender.DirectionalLight(color=color, intensity=light.intensity)
    if light.kind == "point":
        return pyrender.PointLight(color=color, intensity=light.intensity)
    return pyrender.SpotLight(color=color, intensity=light.intensity, innerConeAngle=light.inner_cone,
                              outerConeAngle=light.outer_cone)


def _camera(view: View):
    cam = view.camera
    if cam.fx is not None:
        return pyrender.IntrinsicsCamera(cam.fx, cam.fy, cam.cx, cam.cy, znear=cam.znear, zfar=cam.zfar)
    return pyrender.PerspectiveCamera(yfov=cam.yfov, aspectRatio=view.width / view.height, znear=cam.znear,
                                      zfar=cam.zfar)


class _OrderedLightsScene(pyrender.Scene):
    """A Scene whose lights are handed to the shader in the order of `View.lights`.

    pyrender numbers the lights of each kind in the iteration order of a Python set of nodes, i.e. by object id,
    and the shader adds their contributions in that order. Float addition is not associative, so the same view
    rendered in two processes could differ in the last bit of a few pixels: rare, but enough to break
    "same config, same bytes" over a million images.
    """

    @property
    def light_nodes(self):
        return sorted(super().light_nodes, key=lambda node: node.view_index)


class _ReusedScene:
    """One pyrender Scene per process, updated in place between renders.

    Building a fresh Scene per image costs about a tenth of a 224 px llvmpipe render: every `Node(matrix=...)`
    decomposes its matrix into a quaternion, and a new scene graph loses its cached node paths. Here nodes are
    placed with `Scene.set_pose` (which stores the matrix as given) and are only added or removed when the mesh,
    the camera or the number of lights of a kind changes; light colours, intensities and cones are set in place.
    The pixels are those of a fresh `_OrderedLightsScene` with the same content.
    """

    def __init__(self):
        self.scene = _OrderedLightsScene()
        self.mesh_node = None
        self.camera_node = None
        self.camera_key = None
        self.light_nodes = {kind: [] for kind in ("directional", "point", "spot")}

    def _place(self, node, pose):
        self.scene.add_node(node)
        self.scene.set_pose(node, np.asarray(pose, np.float64))
        return node

    def set_mesh(self, mesh: "pyrender.Mesh", pose: np.ndarray) -> None:
        if self.mesh_node is None or self.mesh_node.mesh is not mesh:
            if self.mesh_node is not None:
                self.scene.remove_node(self.mesh_node)
            self.mesh_node = self._place(pyrender.Node(mesh=mesh), pose)
        else:
            self.scene.set_pose(self.mesh_node, np.asarray(pose, np.float64))

    def set_camera(self, view: View) -> None:
        cam = view.camera
        key = (cam.fx, cam.fy, cam.cx, cam.cy, cam.yfov, cam.znear, cam.zfar, view.width / view.height)
        if key != self.camera_key:
            if self.camera_node is not None:
                self.scene.remove_node(self.camera_node)
            self.camera_node = self._place(pyrender.Node(camera=_camera(view)), cam.pose)
            self.scene.main_camera_node = self.camera_node
            self.camera_key = key
        else:
            self.scene.set_pose(self.camera_node, np.asarray(cam.pose, np.float64))

    def set_lights(self, lights) -> None:
        for kind, nodes in self.light_nodes.items():
            wanted = [(order, light) for order, light in enumerate(lights) if light.kind == kind]
            while len(nodes) > len(wanted):
                self.scene.remove_node(nodes.pop())
            for i, (order, light) in enumerate(wanted):
                if i == len(nodes):
                    nodes.append(self._place(pyrender.Node(light=_light(light)), light.pose()))
                    nodes[i].view_index = order
                    continue
                nodes[i].view_index = order
                target = nodes[i].light
                target.color = np.asarray(light.color, np.float32)
                target.intensity = light.intensity
                if kind == "spot":
                    target.innerConeAngle = 0.0  # the setter checks inner <= outer
                    target.outerConeAngle = light.outer_cone
                    target.innerConeAngle = light.inner_cone
                self.scene.set_pose(nodes[i], light.pose())


_SCENE: "_ReusedScene | None" = None


def render(mesh: RenderMesh, view: View) -> RenderOutput:
    """Renders one mesh under one view. Deterministic for the same inputs on the same OpenGL implementation."""
    global _SCENE
    if _SCENE is None:
        _SCENE = _ReusedScene()
    state = _SCENE
    state.scene.bg_color = np.asarray(view.background, np.float32)
    state.scene.ambient_light = np.asarray(view.ambient, np.float32)
    pose = view.pose
    if mesh.key is not None:
        # A cached (already uploaded) mesh: the anisotropic scale goes into the node transform. pyrender's mesh.vert
        # transforms normals by transpose(inverse(M)), which is correct for non-uniform scale.
        state.set_mesh(_pyrender_mesh(mesh, (1.0, 1.0, 1.0)), pose.matrix())
    else:
        rigid = type(pose)(rotation=pose.rotation, translation=pose.translation)  # scale goes into the vertices
        state.set_mesh(_pyrender_mesh(mesh, pose.scale), rigid.matrix())
    state.set_camera(view)
    state.set_lights(view.lights)
    flags = pyrender.RenderFlags.RGBA
    if view.shadows:
        flags |= pyrender.RenderFlags.SHADOWS_DIRECTIONAL | pyrender.RenderFlags.SHADOWS_SPOT
    color, depth = _renderer(view.width, view.height).render(state.scene, flags=flags)
    # pyrender returns the framebuffer flipped upside down as a strided view: one copy here makes the slicing,
    # masking and PNG encoding downstream several times cheaper.
    depth = np.ascontiguousarray(depth, np.float32)
    return RenderOutput(rgba=np.ascontiguousarray(color, np.uint8), depth=depth, mask=depth > 0)
