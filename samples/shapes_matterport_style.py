"""A matterport-style Mask R-CNN script (the flow of matterport's samples/shapes/train_shapes.ipynb) that
imports only `mrcnn.*` (plus NumPy / matplotlib / Keras, as matterport's samples do).

    python samples/shapes_matterport_style.py MODEL_DIR [--backbone resnet50] [--figures DIR]

It trains the heads, then all layers, finds the last checkpoint, reloads it in inference mode, detects,
draws the detections and computes the VOC-style mAP@0.5 on the validation shapes. The default backbone is a
tiny 4-conv network (matterport's Config accepts a callable BACKBONE) so that the test that runs this file
(tests/test_mrcnn_script.py) stays cheap on a CPU; `--backbone resnet50` runs the ResNet-50 variant.
"""
import argparse
import math
import random

import keras
import numpy as np
import matplotlib.pyplot as plt

from mrcnn.config import Config
from mrcnn import utils
import mrcnn.model as modellib
from mrcnn import visualize
from mrcnn.model import log


def tiny_backbone(input_image, stage5=True, train_bn=None):
    """[C1, C2, C3, C4, C5] at strides 2, 4, 8, 16, 32 from five strided 3x3 convolutions."""
    x, outputs = input_image, []
    for i, filters in enumerate((8, 16, 16, 32, 32)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu", name=f"tiny_c{i + 1}")(x)
        outputs.append(x)
    return outputs


class ShapesConfig(Config):
    NAME = "shapes"
    GPU_COUNT = 1
    IMAGES_PER_GPU = 1
    NUM_CLASSES = 1 + 3  # background + square, circle, triangle
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    TRAIN_ROIS_PER_IMAGE = 8
    STEPS_PER_EPOCH = 1
    VALIDATION_STEPS = 1
    BACKBONE = staticmethod(tiny_backbone)
    COMPUTE_BACKBONE_SHAPE = staticmethod(
        lambda image_shape: np.array([[math.ceil(image_shape[0] / s), math.ceil(image_shape[1] / s)]
                                      for s in (4, 8, 16, 32, 64)]))
    TOP_DOWN_PYRAMID_SIZE = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 32
    PRE_NMS_LIMIT = 256
    RPN_TRAIN_ANCHORS_PER_IMAGE = 32
    MAX_GT_INSTANCES = 4
    MINI_MASK_SHAPE = (28, 28)
    MASK_POOL_SIZE = 7
    MASK_SHAPE = [14, 14]
    DETECTION_MAX_INSTANCES = 8
    DETECTION_MIN_CONFIDENCE = 0.0


class ShapesDataset(utils.Dataset):
    """Squares, circles and triangles on a plain background, drawn with NumPy (matterport draws with cv2)."""

    def load_shapes(self, count, height, width):
        self.add_class("shapes", 1, "square")
        self.add_class("shapes", 2, "circle")
        self.add_class("shapes", 3, "triangle")
        for i in range(count):
            bg_color, shapes = self.random_image(height, width)
            self.add_image("shapes", image_id=i, path=None, width=width, height=height,
                           bg_color=bg_color, shapes=shapes)

    def load_image(self, image_id):
        info = self.image_info[image_id]
        image = np.ones([info["height"], info["width"], 3], dtype=np.uint8) * np.array(info["bg_color"], np.uint8)
        for shape, color, dims in info["shapes"]:
            image[self.draw_shape(shape, dims, info["height"], info["width"])] = color
        return image

    def load_mask(self, image_id):
        info = self.image_info[image_id]
        shapes = info["shapes"]
        mask = np.stack([self.draw_shape(s, dims, info["height"], info["width"]) for s, _, dims in shapes], -1)
        # Handle occlusions: later shapes cover earlier ones.
        occlusion = np.logical_not(mask[:, :, -1])
        for i in range(len(shapes) - 2, -1, -1):
            mask[:, :, i] = mask[:, :, i] & occlusion
            occlusion = occlusion & np.logical_not(mask[:, :, i])
        class_ids = np.array([self.class_names.index(s[0]) for s in shapes])
        return mask.astype(bool), class_ids.astype(np.int32)

    def image_reference(self, image_id):
        return self.image_info[image_id]["shapes"]

    @staticmethod
    def draw_shape(shape, dims, height, width):
        y, x, s = dims
        yy, xx = np.mgrid[0:height, 0:width]
        if shape == "square":
            return (np.abs(yy - y) <= s) & (np.abs(xx - x) <= s)
        if shape == "circle":
            return (yy - y) ** 2 + (xx - x) ** 2 <= s ** 2
        top = y - s  # triangle: apex at the top, base at y + s / 2
        return (yy >= top) & (yy <= y + s / 2) & (np.abs(xx - x) <= (yy - top) / math.sqrt(3))

    def random_shape(self, height, width):
        shape = random.choice(["square", "circle", "triangle"])
        color = tuple(random.randint(0, 255) for _ in range(3))
        buffer = 8
        y = random.randint(buffer, height - buffer - 1)
        x = random.randint(buffer, width - buffer - 1)
        s = random.randint(buffer, height // 4)
        return shape, color, (y, x, s)

    def random_image(self, height, width):
        bg_color = np.array([random.randint(0, 255) for _ in range(3)])
        shapes, boxes = [], []
        for _ in range(random.randint(1, 3)):
            shape, color, dims = self.random_shape(height, width)
            shapes.append((shape, color, dims))
            y, x, s = dims
            boxes.append([y - s, x - s, y + s, x + s])
        # Drop shapes that overlap others too much, as matterport's sample does.
        keep_ixs = utils.non_max_suppression(np.array(boxes), np.arange(len(shapes)), 0.3)
        return bg_color, [s for i, s in enumerate(shapes) if i in keep_ixs]


def get_ax(rows=1, cols=1, size=4):
    _, ax = plt.subplots(rows, cols, figsize=(size * cols, size * rows))
    return ax


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--backbone", default="tiny", choices=["tiny", "resnet50"])
    parser.add_argument("--figures", default=None, help="directory for the figures (PNG)")
    parser.add_argument("--train-images", type=int, default=4)
    parser.add_argument("--val-images", type=int, default=2)
    args = parser.parse_args(argv)
    random.seed(0)
    np.random.seed(0)
    keras.utils.set_random_seed(0)
    if args.figures:
        visualize.save_figures(args.figures)

    class TrainConfig(ShapesConfig):
        if args.backbone == "resnet50":
            BACKBONE = "resnet50"
            COMPUTE_BACKBONE_SHAPE = None

    config = TrainConfig()
    config.display()

    dataset_train = ShapesDataset()
    dataset_train.load_shapes(args.train_images, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1])
    dataset_train.prepare()
    dataset_val = ShapesDataset()
    dataset_val.load_shapes(args.val_images, config.IMAGE_SHAPE[0], config.IMAGE_SHAPE[1])
    dataset_val.prepare()

    image_id = dataset_train.image_ids[0]
    image = dataset_train.load_image(image_id)
    mask, class_ids = dataset_train.load_mask(image_id)
    visualize.display_top_masks(image, mask, class_ids, dataset_train.class_names)

    model = modellib.MaskRCNN(mode="training", config=config, model_dir=args.model_dir)
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE, epochs=1, layers="heads")
    model.train(dataset_train, dataset_val, learning_rate=config.LEARNING_RATE / 10, epochs=2, layers="all")

    class InferenceConfig(TrainConfig):
        GPU_COUNT = 1
        IMAGES_PER_GPU = 1

    inference_config = InferenceConfig()
    model = modellib.MaskRCNN(mode="inference", config=inference_config, model_dir=args.model_dir)
    model_path = model.find_last()
    print("Loading weights from ", model_path)
    model.load_weights(model_path, by_name=True)

    image_id = random.choice(dataset_val.image_ids)
    original_image, image_meta, gt_class_id, gt_bbox, gt_mask = \
        modellib.load_image_gt(dataset_val, inference_config, image_id, use_mini_mask=False)
    log("original_image", original_image)
    log("image_meta", image_meta)
    log("gt_class_id", gt_class_id)
    log("gt_bbox", gt_bbox)
    log("gt_mask", gt_mask)
    visualize.display_instances(original_image, gt_bbox, gt_mask, gt_class_id, dataset_train.class_names,
                                figsize=(8, 8))

    results = model.detect([original_image], verbose=1)
    r = results[0]
    visualize.display_instances(original_image, r["rois"], r["masks"], r["class_ids"], dataset_val.class_names,
                                r["scores"], ax=get_ax())

    APs = []
    for image_id in dataset_val.image_ids:
        image, image_meta, gt_class_id, gt_bbox, gt_mask = \
            modellib.load_image_gt(dataset_val, inference_config, image_id, use_mini_mask=False)
        molded_images = np.expand_dims(modellib.mold_image(image, inference_config), 0)  # noqa: F841 - as matterport
        results = model.detect([image], verbose=0)
        r = results[0]
        AP, precisions, recalls, overlaps = \
            utils.compute_ap(gt_bbox, gt_class_id, gt_mask, r["rois"], r["class_ids"], r["scores"], r["masks"])
        APs.append(AP)
    visualize.plot_precision_recall(AP, precisions, recalls)
    print("mAP: ", np.mean(APs))
    return float(np.mean(APs)), model, dataset_val


if __name__ == "__main__":
    main()
