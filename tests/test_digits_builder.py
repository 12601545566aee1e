"""The digits downstream dataset: TF-free upsampling and seeded split, and a real TFDS build of `digits/32px`."""

import numpy as np
import pytest

from tfsynth.transfer import digits


def test_interpolation_matrix_is_pixel_centre_bilinear():
    w = digits.interpolation_matrix(8, 32)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    np.testing.assert_array_equal(digits.interpolation_matrix(8, 8), np.eye(8))
    # Output pixel 2 of an x4 upsampling sits at source coordinate (2 + 0.5) / 4 - 0.5 = 0.125.
    np.testing.assert_allclose(w[2, :2], [0.875, 0.125])
    np.testing.assert_allclose(w[0, 0], 1.0)  # clamped at the edge
    np.testing.assert_allclose(w[-1, -1], 1.0)


def test_upsample_scales_and_replicates_to_rgb():
    images, _ = digits.load_raw()
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 16
    same = digits.upsample(images[:5], 8)
    assert same.dtype == np.uint8 and same.shape == (5, 8, 8, 3)
    np.testing.assert_array_equal(same[..., 0], np.rint(images[:5] * 255 / 16).astype(np.uint8))
    np.testing.assert_array_equal(same[..., 0], same[..., 2])
    big = digits.upsample(images[:5], 32)
    assert big.shape == (5, 32, 32, 3)
    # Each 4x4 block's centre pixels average the nearest sources; a block of a uniform source area is uniform.
    flat = digits.upsample(np.full((1, 8, 8), 10.0), 32)
    assert np.all(flat == round(10 * 255 / 16))
    assert abs(float(big[..., 0].mean()) - float(same[..., 0].mean())) < 2.0  # bilinear keeps the mean


def test_split_is_stratified_disjoint_complete_and_seeded():
    _, labels = digits.load_raw()
    split = digits.stratified_split(labels, 0.2, seed=0)
    train, test = split["train"], split["test"]
    assert len(train) == 1438 and len(test) == 359
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(1797))
    for c in range(10):
        assert (labels[test] == c).sum() == round((labels == c).sum() * 0.2)
    again = digits.stratified_split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(again["test"], test)
    other = digits.stratified_split(labels, 0.2, seed=1)
    assert not np.array_equal(other["test"], test)


def test_bad_config_and_split():
    with pytest.raises(ValueError, match="test_fraction"):
        digits.DigitsConfig(test_fraction=1.0)
    with pytest.raises(ValueError, match="unknown split 'validation'"):
        next(digits.examples(digits.DigitsConfig(), "validation"))


def test_tfds_build_matches_the_generator(tmp_path):
    import tensorflow_datasets as tfds

    import tfds_builders.digits  # noqa: F401 - registers the builder
    from tfds_builders.digits import Builder

    assert [c.name for c in Builder.BUILDER_CONFIGS] == ["8px", "32px", "64px"]
    assert Builder.DEFAULT_BUILDER_CONFIG_NAME == "32px"
    builder = tfds.builder("digits", data_dir=str(tmp_path))
    builder.download_and_prepare()
    assert builder.info.config_name == "32px"
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 1438, "test": 359}
    assert builder.info.features["label"].names == [str(d) for d in range(10)]

    images, labels = digits.load_raw()
    expected = digits.split_indices(digits.DigitsConfig())
    for split in ("train", "test"):
        seen = {}
        for ex in tfds.as_numpy(builder.as_dataset(split=split)):
            seen[int(ex["index"])] = ex
        assert sorted(seen) == expected[split].tolist()
        for index in expected[split][:20]:
            ex = seen[int(index)]
            assert ex["image"].shape == (32, 32, 3) and ex["label"] == labels[index]
            np.testing.assert_array_equal(ex["image"], digits.upsample(images[index:index + 1], 32)[0])
