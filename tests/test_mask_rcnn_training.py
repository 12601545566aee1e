"""Mask R-CNN training on CPU: a tiny config learns the toy shapes (the five losses fall), checkpoints resume."""
import os

import keras
import numpy as np
import pytest

from tfsynth.models.mask_rcnn import LOSS_NAMES, utils
from tfsynth.models.mask_rcnn.model import MaskRCNN
from tfsynth.models.mask_rcnn.shapes import SHAPE_CLASSES, ShapesDataset, shape_scene

from tests.test_mask_rcnn import _np, _weights, tiny_config


def _dataset(count, seed):
    ds = ShapesDataset()
    ds.load_shapes(count, height=128, width=128, seed=seed)
    ds.prepare()
    return ds


def test_shape_scenes_are_a_pure_function_of_seed_and_index():
    a, b = shape_scene(3, 7), shape_scene(3, 7)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    image, masks, class_ids = a
    assert image.shape == (128, 128, 3) and masks.shape[:2] == (128, 128) and masks.shape[2] == len(class_ids)
    assert set(class_ids) <= {1, 2} and masks.sum(axis=(0, 1)).min() >= 16
    assert masks.sum(axis=-1).max() == 1  # occlusion resolved: every pixel belongs to at most one shape
    assert not np.array_equal(image, shape_scene(3, 8)[0])
    ds = _dataset(2, seed=3)
    assert ds.class_names == ["BG", *SHAPE_CLASSES] and ds.num_classes == 3


def test_data_generator_batches_match_the_training_inputs():
    config = tiny_config(IMAGES_PER_GPU=2)
    batch = next(utils.data_generator(_dataset(3, seed=0), config, batch_size=2, seed=0))
    for array, (shape, dtype) in zip(batch, utils.batch_signature(config)):
        assert array.shape[1:] == shape[1:] and array.dtype == dtype and len(array) == 2
    images, metas, rpn_match, rpn_bbox, class_ids, boxes, masks = batch
    n = (class_ids[0] > 0).sum()
    assert n >= 1 and masks[0, :, :, :n].any(axis=(0, 1)).all() and not masks[0, :, :, n:].any()
    assert (rpn_match[0] == 1).sum() >= n and np.abs(rpn_bbox[0, :(rpn_match[0] == 1).sum()]).sum() > 0
    again = next(utils.data_generator(_dataset(3, seed=0), config, batch_size=2, seed=0))
    for x, y in zip(batch, again):
        np.testing.assert_array_equal(x, y)
    flip = lambda image, masks, rng: (image[:, ::-1].copy(), masks[:, ::-1].copy())  # noqa: E731
    flipped = next(utils.data_generator(_dataset(3, seed=0), config, batch_size=2, seed=0, augmentation=flip))
    np.testing.assert_array_equal(flipped[0], batch[0][:, :, ::-1])
    unflipped = next(utils.data_generator(_dataset(3, seed=0), config, batch_size=2, seed=0, augmentation=flip,
                                          no_augmentation_sources=["shapes"]))
    np.testing.assert_array_equal(unflipped[0], batch[0])


@pytest.mark.slow  # ~40 CPU-seconds, most of it tracing the training graph
def test_tiny_config_trains_heads_on_cpu_and_resumes_from_its_checkpoint(tmp_path):
    """ResNet-50 backbone (random init, frozen), 128 px, 2 images per batch, 3 epochs x 4 steps of the
    'heads' preset (RPN, FPN and heads): the epoch-mean loss falls and the RPN's class loss falls."""
    keras.utils.set_random_seed(0)
    config = tiny_config(IMAGES_PER_GPU=2, STEPS_PER_EPOCH=4, VALIDATION_STEPS=1)
    model = MaskRCNN("training", config, model_dir=str(tmp_path))
    history = model.train(_dataset(4, seed=1), _dataset(2, seed=2), learning_rate=0.01, epochs=3, layers="heads",
                          verbose=0, tensorboard=False, seed=0).history
    losses = history["loss"]
    print("tiny Mask R-CNN training losses per epoch:",
          {k: [round(v, 3) for v in vs] for k, vs in history.items()})
    assert set(LOSS_NAMES) <= set(history) and {f"val_{n}" for n in LOSS_NAMES} <= set(history)
    assert all(np.isfinite(v).all() for v in history.values())
    assert losses[-1] < 0.8 * losses[0]
    assert history["rpn_class_loss"][-1] < history["rpn_class_loss"][0]
    assert not model.keras_model.get_layer("res3a_branch2a").trainable  # 'heads' froze the backbone

    checkpoints = sorted(os.listdir(model.log_dir))
    assert checkpoints == [f"mask_rcnn_tiny_{e:04d}.h5" for e in (1, 2, 3)]
    last = model.find_last()
    assert last.endswith("mask_rcnn_tiny_0003.h5")
    resumed = MaskRCNN("training", config, model_dir=str(tmp_path))
    resumed.load_weights(last, by_name=True)
    assert resumed.epoch == 3 and resumed.log_dir == model.log_dir
    trained = _weights(model)
    for key, value in _weights(resumed).items():
        np.testing.assert_array_equal(value, trained[key], err_msg=key)


def test_recalibrated_batchnorm_statistics_are_the_batch_statistics_and_weights_stay(tmp_path):
    config = tiny_config(TRAIN_BN=None, IMAGES_PER_GPU=2)
    keras.utils.set_random_seed(0)
    model = MaskRCNN("training", config, model_dir=str(tmp_path))
    before = _weights(model)
    data = _dataset(4, seed=0)
    assert model.recalibrate_batchnorm(data, batches=1, seed=3) > 50  # every BN of ResNet-50 and the heads
    bn = model.keras_model.get_layer("bn_conv1")
    # bn_conv1's input for the same batch, computed independently: its statistics over (batch, H, W)
    probe = keras.Model(model.keras_model.inputs[0], bn.input)
    images = next(iter(model._tf_dataset(data, True, None, 3)))[0]
    x = np.asarray(probe(images, training=True), np.float64)
    np.testing.assert_allclose(_np(bn.moving_mean), x.mean(axis=(0, 1, 2)), rtol=1e-4,
                               atol=1e-5 * np.abs(x).max())
    np.testing.assert_allclose(_np(bn.moving_variance), x.var(axis=(0, 1, 2)), rtol=1e-3,
                               atol=1e-5 * x.var(axis=(0, 1, 2)).max())
    assert bn.momentum == 0.99  # restored
    after = _weights(model)
    changed = {k for k in before if not np.array_equal(before[k], after[k])}
    assert changed and all("moving_" in k for k in changed)
    frozen = MaskRCNN("training", tiny_config(TRAIN_BN=False), model_dir=str(tmp_path))
    assert frozen.recalibrate_batchnorm(data, batches=1) == 0  # frozen BN uses its moving statistics anyway
