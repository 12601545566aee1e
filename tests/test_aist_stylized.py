"""aist_stylized: the stylising step against direct NumPy results, a real TFDS build whose annotations are copied
unchanged, the mask-agreement metadata, determinism, errors; the TF-free stand-in real images."""
import os

import numpy as np
import pytest

SIZE, VIEWS = 16, 2


def _fixed_generator(path, alpha_sign=1.0, channels=4):
    """A 1x1-conv 'generator' with fixed weights: RGB passes through, alpha is multiplied by alpha_sign."""
    import keras

    inputs = keras.Input((SIZE, SIZE, channels))
    conv = keras.layers.Conv2D(channels, 1, use_bias=False, name="fixed")
    out = conv(inputs)
    diag = np.ones(channels, np.float32)
    if channels == 4:
        diag[3] = alpha_sign
    conv.set_weights([np.diag(diag)[None, None]])
    keras.Model(inputs, out).save(path)
    return path


def _views(rng, n):
    images = np.full((n, SIZE, SIZE, 3), 255, np.uint8)
    masks = np.zeros((n, SIZE, SIZE, 1), np.uint8)
    for i in range(n):
        r0, c0 = rng.integers(1, 7, 2)
        masks[i, r0:r0 + 8, c0:c0 + 7] = 255
        images[i][masks[i, ..., 0] > 0] = rng.integers(0, 255, 3)
    return images, masks


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    root = tmp_path_factory.mktemp("gens")
    return {"identity": _fixed_generator(str(root / "identity.keras")),
            "inverted": _fixed_generator(str(root / "inverted.keras"), alpha_sign=-1.0),
            "rgb": _fixed_generator(str(root / "rgb.keras"), channels=3)}


def test_stylize_matches_direct_numpy(generators):
    from tfsynth.aist import stylize

    images, masks = _views(np.random.default_rng(0), 5)
    ident = stylize.load_generator(generators["identity"])
    assert stylize.generator_spec(ident) == (SIZE, 4, "channel")
    out = stylize.stylize(ident, images, masks, batch_size=2)
    # The identity keeps every pixel ([-1, 1] round trip), so alpha = mask and the IoU is 1.
    np.testing.assert_array_equal(out["images"], images)
    np.testing.assert_array_equal(out["alphas"], masks)
    np.testing.assert_allclose(out["iou"], 1.0)
    # Inverted alpha: output alpha = 1 - mask, IoU 0; 'original_mask' whitens outside the mask, 'none' is raw RGB.
    inv = stylize.load_generator(generators["inverted"])
    for composite in ("output_alpha", "original_mask", "none"):
        o = stylize.stylize(inv, images, masks, composite=composite)
        np.testing.assert_array_equal(o["alphas"][..., 0], np.where(masks[..., 0] > 0, 0, 255))
        np.testing.assert_allclose(o["iou"], 0.0)
        m = masks[..., 0] > 0
        if composite == "output_alpha":  # alpha 0 on the object: all white
            assert (o["images"] == 255).all()
        else:
            np.testing.assert_array_equal(o["images"][m], images[m])
            np.testing.assert_array_equal(o["images"][~m], 255)
    # A general IoU against a direct computation.
    alphas = np.zeros_like(masks)
    alphas[:, 4:12, 4:12] = 200
    a, b = masks[..., 0] > 0, alphas[..., 0] > 127
    direct = [(a[i] & b[i]).sum() / (a[i] | b[i]).sum() for i in range(len(a))]
    np.testing.assert_allclose(stylize.mask_iou(masks, alphas), direct)
    np.testing.assert_allclose(stylize.mask_iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4))), [1.0])
    # RGB generators use the seed's nonblack alpha: the white-on-black input is nonblack inside the object only.
    rgb = stylize.load_generator(generators["rgb"])
    assert stylize.generator_spec(rgb)[1:] == (3, "nonblack")
    o = stylize.stylize(rgb, images, masks)
    assert o["alphas"].shape == masks.shape and np.all(o["iou"] > 0.99)
    s = stylize.agreement_summary(np.concatenate([out["iou"], o["iou"]]))
    assert s["views"] == 10 and s["frac_iou_ge_0.9"] == 1.0


def test_generator_errors_name_the_file(tmp_path):
    from tfsynth.aist import stylize

    with pytest.raises(stylize.GeneratorError, match="nowhere/G.keras: no such generator"):
        stylize.load_generator(str(tmp_path / "nowhere" / "G.keras"))
    bad = tmp_path / "G.keras"
    bad.write_bytes(b"not a keras file")
    with pytest.raises(stylize.GeneratorError, match=r"G.keras \(16 bytes\) is a text file, not a Keras .keras model"):
        stylize.load_generator(str(tmp_path))
    assert stylize.find_generator("", "/runs", "constrained") == "/runs/constrained/G.keras"
    with pytest.raises(stylize.GeneratorError, match="manual_dir"):
        stylize.find_generator("", None, "")


def _source_builder_cls():
    import tensorflow_datasets as tfds

    class AistStylizedTestSource(tfds.core.GeneratorBasedBuilder):
        """A multi-view source with the multiview_shapes layout (images, masks, cameras, points)."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            f32 = np.float32
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "images": tfds.features.Sequence(tfds.features.Image(shape=(SIZE, SIZE, 3)), length=VIEWS),
                "masks": tfds.features.Sequence(tfds.features.Image(shape=(SIZE, SIZE, 1)), length=VIEWS),
                "quaternions": tfds.features.Tensor(shape=(VIEWS, 4), dtype=f32),
                "extrinsics": tfds.features.Tensor(shape=(VIEWS, 4, 4), dtype=f32),
                "points": tfds.features.Tensor(shape=(None, 3), dtype=f32),
                "model_id": tfds.features.Text()}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(3, 0), "test": self._generate_examples(2, 1)}

        def _generate_examples(self, n, seed):
            rng = np.random.default_rng(seed)
            for i in range(n):
                images, masks = _views(rng, VIEWS)
                yield f"m{seed}{i}", {"images": images, "masks": masks,
                                      "quaternions": rng.normal(size=(VIEWS, 4)).astype(np.float32),
                                      "extrinsics": rng.normal(size=(VIEWS, 4, 4)).astype(np.float32),
                                      "points": rng.uniform(-0.5, 0.5, (50 + i, 3)).astype(np.float32),
                                      "model_id": f"m{seed}{i}"}
    return AistStylizedTestSource


def _examples(builder, split):
    import tensorflow_datasets as tfds

    return sorted(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)),
                  key=lambda ex: ex["model_id"])


def test_builder_copies_annotations_and_records_agreement(generators, tmp_path):
    from tfds_builders.aist_stylized.aist_stylized_dataset_builder import AISTStylizedConfig, Builder

    src_dir = str(tmp_path / "src")
    source = _source_builder_cls()(data_dir=src_dir)
    source.download_and_prepare()

    def build(gen, name, data_dir):
        cfg = AISTStylizedConfig(name=name, source="aist_stylized_test_source", source_data_dir=src_dir,
                                 generator=generators[gen])
        b = Builder(config=cfg, data_dir=data_dir)
        b.download_and_prepare()
        return b

    ident = build("identity", "ident", str(tmp_path / "a"))
    assert sorted(ident.info.splits) == ["test", "train"]  # the source has no validation split
    for split in ("train", "test"):
        src, out = _examples(source, split), _examples(ident, split)
        assert len(src) == len(out) == (3 if split == "train" else 2)
        for s, o in zip(src, out):
            for key in ("masks", "quaternions", "extrinsics", "points", "model_id", "images"):
                np.testing.assert_array_equal(o[key], s[key], err_msg=key)
            np.testing.assert_array_equal(o["alphas"], s["masks"])
    meta = dict(Builder(config=ident.builder_config, data_dir=str(tmp_path / "a")).info.metadata)  # from disk
    assert meta["mask_agreement"]["train"]["views"] == 3 * VIEWS
    assert meta["mask_agreement"]["test"]["mean_iou"] == pytest.approx(1.0)
    assert meta["generator"]["alpha_mode"] == "channel" and len(meta["generator"]["sha256"]) == 64
    assert meta["source"]["dataset"] == "aist_stylized_test_source"

    inv = build("inverted", "inv", str(tmp_path / "b"))
    assert dict(inv.info.metadata)["mask_agreement"]["train"]["mean_iou"] == pytest.approx(0.0)
    for s, o in zip(_examples(source, "train"), _examples(inv, "train")):
        np.testing.assert_array_equal(o["points"], s["points"])
        assert (o["images"] == 255).all()  # alpha 0 on the object -> white
    # Deterministic: a second build elsewhere gives the same examples.
    again = build("inverted", "inv", str(tmp_path / "c"))
    for x, y in zip(_examples(inv, "train"), _examples(again, "train")):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])

    missing = AISTStylizedConfig(name="missing", source="aist_stylized_test_source", source_data_dir=src_dir)
    with pytest.raises(ValueError, match="no generator given and no --manual_dir"):
        Builder(config=missing, data_dir=str(tmp_path / "d")).download_and_prepare()
    unbuilt = AISTStylizedConfig(name="unbuilt", source="aist_stylized_test_source",
                                 source_data_dir=str(tmp_path / "empty"), generator=generators["identity"])
    with pytest.raises(ValueError, match="is not built"):
        Builder(config=unbuilt, data_dir=str(tmp_path / "e")).download_and_prepare()


def test_standin_module_is_deterministic(tmp_path):  # TF-free: tests/test_tf_free.py
    from PIL import Image

    from tfsynth.aist import standin

    a, b = standin.standin_image(3, 5, 32), standin.standin_image(3, 5, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, standin.standin_image(3, 6, 32))
    alpha = a[..., 3]
    assert set(np.unique(alpha)) == {0, 255} and 0.05 < (alpha > 0).mean() < 0.95
    assert (a[alpha == 0, :3] == 0).all()  # transparent black background, as the cleaned real images
    paths = standin.write_standin_folder(str(tmp_path / "real"), 3, 32, seed=3)
    assert [os.path.basename(p) for p in paths] == ["standin_00000.png", "standin_00001.png", "standin_00002.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(paths[2])), standin.standin_image(3, 2, 32))
