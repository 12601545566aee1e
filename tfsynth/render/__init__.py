"""TF-free offscreen rendering of triangle meshes (pyrender + EGL) and the worker pool that runs it.

    from tfsynth.render import Camera, Light, ObjectPose, RenderMesh, View
    from tfsynth.shapes.geometry import look_at
    view = View(camera=Camera(pose=look_at((0, 0, 3))), lights=[Light("directional", intensity=3.0)],
                pose=ObjectPose(rotation=(1, 0, 0, 0)), width=128, height=128)
    out = tfsynth.render.render(RenderMesh(vertices, faces), view)   # .rgba (H,W,4) uint8, .depth, .mask

`render` imports pyrender (OpenGL) on first use; call it only in processes that never import TensorFlow, e.g.
inside functions run by `tfsynth.render.pool.get_pool().map(...)`. Importing this package itself is safe anywhere.
See `tfsynth.render.scene` for the conventions (quaternions [w, x, y, z], OpenGL camera frame, light units).
"""
from tfsynth.render.scene import LIGHT_KINDS, Camera, Light, ObjectPose, RenderMesh, RenderOutput, View


def render(mesh: RenderMesh, view: View) -> RenderOutput:
    """Renders `mesh` under `view` with pyrender (imported lazily: TF-free processes only)."""
    from tfsynth.render import pyrender_backend

    return pyrender_backend.render(mesh, view)


__all__ = ["LIGHT_KINDS", "Camera", "Light", "ObjectPose", "RenderMesh", "RenderOutput", "View", "render"]
