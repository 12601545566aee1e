"""A toy instance-segmentation dataset: rectangles and ellipses of random colours on a random background.

Like matterport's `samples/shapes`, but every image is a pure function of (seed, index) through
`numpy.random.SeedSequence`, so tests and demos see the same pixels on any machine. TF-free.
"""
from __future__ import annotations

import numpy as np

from tfsynth.models.mask_rcnn.utils import Dataset

SHAPE_CLASSES = ("rectangle", "ellipse")


def shape_scene(seed: int, index: int, height: int = 128, width: int = 128, max_shapes: int = 3,
                min_size: float = 0.15, max_size: float = 0.35):
    """(image uint8 [H, W, 3], masks bool [H, W, N], class_ids int32 [N]) of scene `index`.

    1..max_shapes shapes, each a random class, colour, centre and half-extent (a fraction of the image side
    in [min_size, max_size]); later shapes occlude earlier ones; shapes left with fewer than 16 visible pixels
    are dropped (at least one shape is always visible: the last one drawn).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    background = rng.integers(0, 256, 3)
    image = np.broadcast_to(background, (height, width, 3)).astype(np.uint8).copy()
    yy, xx = np.mgrid[0:height, 0:width]
    count = int(rng.integers(1, max_shapes + 1))
    masks, class_ids = [], []
    for _ in range(count):
        class_id = int(rng.integers(1, len(SHAPE_CLASSES) + 1))
        colour = rng.integers(0, 256, 3)
        while np.abs(colour.astype(int) - background).sum() < 120:  # keep shapes visible against the background
            colour = rng.integers(0, 256, 3)
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        hy, hx = rng.uniform(min_size, max_size) * height, rng.uniform(min_size, max_size) * width
        if SHAPE_CLASSES[class_id - 1] == "rectangle":
            mask = (np.abs(yy + 0.5 - cy) <= hy) & (np.abs(xx + 0.5 - cx) <= hx)
        else:
            mask = ((yy + 0.5 - cy) / hy) ** 2 + ((xx + 0.5 - cx) / hx) ** 2 <= 1.0
        for previous in masks:
            previous &= ~mask
        image[mask] = colour
        masks.append(mask)
        class_ids.append(class_id)
    keep = [i for i, m in enumerate(masks) if m.sum() >= 16]
    masks = np.stack([masks[i] for i in keep], axis=-1)
    return image, masks, np.asarray([class_ids[i] for i in keep], dtype=np.int32)


class ShapesDataset(Dataset):
    """`count` shape scenes of `height` x `width`, registered as source "shapes"."""

    def load_shapes(self, count: int, height: int = 128, width: int = 128, seed: int = 0, first_index: int = 0):
        for class_id, name in enumerate(SHAPE_CLASSES, start=1):
            self.add_class("shapes", class_id, name)
        for i in range(count):
            self.add_image("shapes", image_id=first_index + i, path=None, height=height, width=width, seed=seed)

    def _scene(self, image_id):
        info = self.image_info[image_id]
        return shape_scene(info["seed"], info["id"], info["height"], info["width"])

    def load_image(self, image_id):
        return self._scene(image_id)[0]

    def load_mask(self, image_id):
        _, masks, class_ids = self._scene(image_id)
        return masks, class_ids

    def image_reference(self, image_id):
        info = self.image_info[image_id]
        return f"shapes scene seed={info['seed']} index={info['id']}"
