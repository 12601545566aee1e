"""Noise-textured ellipsoid scenes with exact label maps (Holm 2022, "Synthesising Abstract Deep Computer
Vision Pretraining Data"), rendered by an analytic ray-ellipsoid tracer. TF-free.

* `config`: `SceneConfig` -- every parameter of the scene distribution and the renderer in one place.
* `sampling`: (config, index) -> `Scene` (objects and their parameters), the elongation transform.
* `render`: `Scene` -> radiance image, class label map, instance map (nearest surface per pixel).
* `dataset`: (config, index) -> example dict (what the `noise_scenes` TFDS builder encodes).
"""
