"""tf.data input, streaming evaluation (= scikit-learn) and optimiser pieces of the segmentation job."""
import math
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, jaccard_score)

from tests.test_coco_seg20 import tiny_seg_data_dir
from tfsynth.input.datasets import DataSpecError
from tfsynth.segmentation import metrics, pipeline
from tfsynth.segmentation.evaluation import Evaluator
from tfsynth.segmentation.optim import GroupLRSGD, PolySchedule


@pytest.fixture(scope="module")
def coco_train():
    return pipeline.load_data("coco_seg20/tiny", "train", data_dir=tiny_seg_data_dir())


@pytest.fixture(scope="module")
def coco_val():
    return pipeline.load_data("coco_seg20/tiny", "validation", data_dir=tiny_seg_data_dir())


@pytest.mark.parametrize("h, w, size", [(480, 640, 520), (640, 480, 520), (375, 500, 260), (333, 500, 1040),
                                        (64, 64, 32), (7, 1000, 3)])
def test_resized_size_is_torchvision_resize(h, w, size):
    short, long = min(h, w), max(h, w)
    new_long = int(size * long / short)  # torchvision _compute_resized_output_size
    expected = (size, new_long) if h <= w else (new_long, size)
    got = pipeline.resized_size(tf.constant(h), tf.constant(w), tf.constant(size))
    assert (int(got[0]), int(got[1])) == expected


def test_resize_keeps_labels_and_dtype():
    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    label = tf.constant(rng.choice([0, 3, 7, 255], (30, 40, 1)).astype(np.uint8))
    img, lab = pipeline.resize_shorter_side(image, label, 15)
    assert img.shape == (15, 20, 3) and lab.shape == (15, 20, 1) and img.dtype == tf.uint8
    assert set(np.unique(lab.numpy())) <= {0, 3, 7, 255}  # nearest: no invented classes
    # Half-pixel-centre nearest, as PIL's NEAREST (torchvision's transforms run on PIL images): 2x -> odd pixels.
    np.testing.assert_array_equal(lab.numpy(), label.numpy()[1::2, 1::2])
    same_img, same_lab = pipeline.resize_shorter_side(image, label, 30)
    np.testing.assert_array_equal(same_img.numpy(), image.numpy())


def test_train_transform_crop_pads_with_ignore_and_flips():
    image = tf.constant(np.arange(20 * 10 * 3, dtype=np.int64).reshape(20, 10, 3) % 251, tf.uint8)
    label = tf.constant(np.ones((20, 10, 1), np.uint8))
    key = tf.constant([1, 2], tf.int64)
    img, lab = pipeline.train_transform(image, label, key, min_size=10, max_size=10, hflip_prob=0.0, crop_size=16)
    assert img.shape == (16, 16, 3) and lab.shape == (16, 16, 1)
    assert np.isin(lab.numpy(), [1, 255]).all() and (lab.numpy() == 255).sum() == 16 * 6  # padded right by 6
    again = pipeline.train_transform(image, label, key, min_size=10, max_size=10, hflip_prob=0.0, crop_size=16)
    np.testing.assert_array_equal(img.numpy(), again[0].numpy())
    flipped, _ = pipeline.train_transform(image, label, key, min_size=10, max_size=10, hflip_prob=1.0, crop_size=0)
    np.testing.assert_array_equal(flipped.numpy(), image.numpy()[:, ::-1])


def test_train_stream_is_reproducible_and_resumable(coco_train):
    kw = dict(batch_size=2, seed=3, epochs=2, min_size=16, max_size=24, hflip_prob=0.5, crop_size=0)
    full, steps = pipeline.train_dataset(coco_train, **kw)
    assert steps == 2  # ceil(3 / 2): the last batch is partial, as a PyTorch DataLoader with drop_last=False
    batches = [(x.numpy(), y["out"].numpy()) for x, y in full]
    assert len(batches) == 4 and batches[1][0].shape[0] == 1
    again = [(x.numpy(), y["out"].numpy()) for x, y in pipeline.train_dataset(coco_train, **kw)[0]]
    resumed = [(x.numpy(), y["out"].numpy()) for x, y in pipeline.train_dataset(coco_train, initial_epoch=1, **kw)[0]]
    for (a, b), (c, d) in zip(batches, again):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    for (a, b), (c, d) in zip(batches[2:], resumed):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches[:2], batches[2:]))  # epochs differ
    x, y = batches[0]
    assert x.dtype == np.uint8 and y.dtype == np.uint8 and y.shape[:3] == x.shape[:3]
    assert 16 <= min(x.shape[1:3])
    aux = next(iter(pipeline.train_dataset(coco_train, aux=True, **kw)[0]))[1]
    assert set(aux) == {"out", "aux"}


def test_eval_dataset_pads_labels_with_ignore(coco_val):
    batches = list(pipeline.eval_dataset(coco_val, batch_size=2, eval_size=20))
    assert len(batches) == 1
    images, labels = (t.numpy() for t in batches[0])
    assert images.shape[0] == 2 and labels.shape == images.shape[:3] + (1,)
    examples = [(a.numpy(), b.numpy()) for a, b in pipeline.eval_examples(coco_val, 20)]
    for i, (img, lab) in enumerate(examples):
        assert min(img.shape[:2]) == 20
        np.testing.assert_array_equal(labels[i, :lab.shape[0], :lab.shape[1]], lab)
        assert (labels[i, lab.shape[0]:] == 255).all() and (labels[i, :, lab.shape[1]:] == 255).all()
        assert (images[i, lab.shape[0]:] == 0).all()


def test_load_data_errors(tmp_path):
    with pytest.raises(DataSpecError, match="not built.*tfds build coco_seg20 --config tiny"):
        pipeline.load_data("coco_seg20/tiny", "train", data_dir=str(tmp_path))
    with pytest.raises(DataSpecError, match="--coco_dir"):
        pipeline.load_data("coco_seg20/tiny", "train", data_dir=str(tmp_path), auto_build=True)
    with pytest.raises(DataSpecError, match="bad split 'test'"):
        pipeline.load_data("coco_seg20/tiny", "test", data_dir=tiny_seg_data_dir())
    with pytest.raises(DataSpecError, match="unknown config 'nope'"):
        pipeline.load_data("coco_seg20/nope", "train")
    with pytest.raises(DataSpecError, match="one dataset"):
        pipeline.load_data("coco_seg20/tiny,noise_scenes/perlin_tiny", "train")


def _pixel_model(num_classes, seed=0):
    """A small real segmentation model: normalisation + 1x1 conv, returns {'out': logits}."""
    keras.utils.set_random_seed(seed)
    images = keras.Input((None, None, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(images)
    logits = keras.layers.Conv2D(num_classes, 1, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(x)
    return keras.Model(images, {"out": logits})


def test_streaming_evaluation_equals_sklearn_on_flattened_labels(coco_val):
    model = _pixel_model(21)
    evaluator = Evaluator(model, 21)
    result = evaluator.evaluate(pipeline.eval_dataset(coco_val, batch_size=2, eval_size=24))
    # The same images one at a time (no padding), flattened, through scikit-learn.
    y, p, losses = [], [], []
    for image, label in pipeline.eval_examples(coco_val, 24):
        logits = model(image[None], training=False)["out"][0].numpy()
        lab = label.numpy()[..., 0].ravel()
        keep = lab != 255
        y.append(lab[keep])
        p.append(logits.argmax(-1).ravel()[keep])
        log_p = logits.reshape(-1, 21) - np.log(np.exp(logits.reshape(-1, 21)).sum(1, keepdims=True))
        losses.append(-log_p[keep, lab[keep]])
    y, p = np.concatenate(y), np.concatenate(p)
    assert result.num_images == 2 and result.num_pixels == y.size
    np.testing.assert_array_equal(result.confusion_matrix, confusion_matrix(y, p, labels=list(range(21))))
    assert result.loss == pytest.approx(np.concatenate(losses).mean(), rel=1e-5)
    scores = result.scores()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = {"micro_accuracy": accuracy_score(y, p), "macro_accuracy": balanced_accuracy_score(y, p),
                    "micro_iou": jaccard_score(y, p, average="micro"),
                    "macro_iou": jaccard_score(y, p, average="macro"),
                    "micro_f1": f1_score(y, p, average="micro"), "macro_f1": f1_score(y, p, average="macro")}
    for name in metrics.METRICS:
        assert scores[name] == pytest.approx(expected[name], abs=1e-12), name
    assert scores["ci"]["micro_accuracy"] == pytest.approx(metrics.proportion_ci(expected["micro_accuracy"], 2)[0])
    padded_pred = evaluator.predict(next(iter(pipeline.eval_dataset(coco_val, batch_size=2, eval_size=24)))[0])
    assert padded_pred.ndim == 3 and padded_pred.max() < 21


def test_labels_beyond_the_model_classes_are_an_error(coco_val):
    with pytest.raises(ValueError, match="classes >= num_classes 4"):
        Evaluator(_pixel_model(4), 4).evaluate(pipeline.eval_dataset(coco_val, batch_size=2, eval_size=16))


def test_poly_schedule_is_torch_polynomial_lr():
    s = PolySchedule(0.02, total_steps=10, power=0.9)
    for step in (0, 1, 5, 9, 10, 15):
        expected = 0.02 * (1 - min(step, 10) / 10) ** 0.9
        assert (float(s(step)) == pytest.approx(expected, rel=1e-6, abs=1e-12)
                and s.lr_at_step(step) == pytest.approx(expected))
    assert PolySchedule.from_config(s.get_config()).get_config() == s.get_config()


def test_group_lr_sgd_is_torch_sgd_with_param_groups():
    """Two steps of torch.optim.SGD(momentum 0.9, weight_decay 0.1) with a x10 group, computed by hand."""
    head = keras.Variable(np.array([1.0, -2.0], np.float32), name="kernel")
    other = keras.Variable(np.array([0.5], np.float32), name="kernel")
    head._path = "aux_classifier.4/kernel"  # what the FCN's aux head variables are called
    opt = GroupLRSGD(0.01, momentum=0.9, torch_weight_decay=0.1, lr_multipliers={"aux_classifier.": 10.0})
    assert opt.factor(head) == 10.0 and opt.factor(other) == 1.0
    grads = [np.array([0.3, 0.1], np.float32), np.array([-0.2], np.float32)]
    p = {"head": np.array([1.0, -2.0]), "other": np.array([0.5])}
    buf = {k: np.zeros_like(v) for k, v in p.items()}
    for _ in range(2):
        opt.apply_gradients([(tf.constant(grads[0]), head), (tf.constant(grads[1]), other)])
        for key, g, lr in (("head", grads[0], 0.1), ("other", grads[1], 0.01)):
            d = g + 0.1 * p[key]
            buf[key] = 0.9 * buf[key] + d
            p[key] = p[key] - lr * buf[key]
    np.testing.assert_allclose(head.numpy(), p["head"], rtol=1e-6)
    np.testing.assert_allclose(other.numpy(), p["other"], rtol=1e-6)
    config = opt.get_config()
    assert config["lr_multipliers"] == {"aux_classifier.": 10.0} and config["torch_weight_decay"] == 0.1
    assert math.isclose(GroupLRSGD.from_config(config).torch_weight_decay, 0.1)
