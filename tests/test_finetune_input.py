"""The fine-tuning recipe's `Resize(256)` (shorter side, bilinear) against PIL, which torchvision uses, and the
resize option of the training / evaluation pipelines on a real TFDS dataset."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfsynth.input import augment, pipeline


@pytest.mark.parametrize("h, w, size", [(64, 96, 32), (300, 200, 256), (32, 32, 256), (50, 30, 256)])
def test_resize_shorter_matches_pil_bilinear(h, w, size):
    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3)).astype(np.uint8)  # worst case: noise
    out = augment.resize_shorter(tf.constant(image), size).numpy()
    # torchvision Resize(size) on a PIL image: shorter side = size, longer = int(size * long / short), BILINEAR.
    oh, ow = (int(size * h / w), size) if w < h else (size, int(size * w / h))
    expected = np.asarray(Image.fromarray(image).resize((ow, oh), Image.BILINEAR))
    assert out.dtype == np.uint8 and out.shape == expected.shape
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= 1  # rounding only, up- and downsampling


def test_pipelines_resize_before_cropping(tmp_path):
    import tensorflow_datasets as tfds

    import tfds_builders.digits  # noqa: F401
    from tfsynth.input.datasets import load_mixture

    tfds.builder("digits", config="8px", data_dir=str(tmp_path)).download_and_prepare()
    mix = load_mixture("digits/8px", "test[:20]", data_dir=str(tmp_path))
    train, steps = pipeline.train_dataset(mix, batch_size=4, crop_size=20, seed=0, epochs=1, resize=24)
    images, labels = next(iter(train))
    assert steps == 5 and images.shape == (4, 20, 20, 3) and images.dtype == tf.uint8
    evaluated = next(iter(pipeline.eval_dataset(mix, batch_size=20, crop_size=20, resize=24)))[0].numpy()
    first = augment.decode_rgb(next(iter(mix.encoded_datasets()[0]))[0])
    expected = augment.resize_shorter(first, 24).numpy()[2:22, 2:22]
    np.testing.assert_array_equal(evaluated[0], expected)
    with pytest.raises(tf.errors.InvalidArgumentError, match="smaller than the crop size"):
        next(iter(pipeline.eval_dataset(mix, batch_size=2, crop_size=20)))  # 8 px images, no resize
