"""eval.linear_probe: the probe on synthetic features (separable -> ~100 %, random labels -> chance), the
per-seed training subsets (train.finetune's draw), model specs, and one tiny end-to-end run on digits/8px with an
untrained ResNet-18 backbone.keras plus the random-network baseline."""
import json

import numpy as np
import pytest

from tfsynth.transfer import cv, probe


def _blobs(rng, n_per_class, classes=10, dim=64, spread=0.3):
    centres = rng.normal(size=(classes, dim))
    labels = np.repeat(np.arange(classes), n_per_class)
    return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


def test_probe_scores_separable_features_high_and_random_labels_at_chance():
    rng = np.random.default_rng(0)
    x, y = _blobs(rng, 40)
    train, test = np.arange(len(y)) % 4 != 0, np.arange(len(y)) % 4 == 0
    result = probe.fit_probe(x[train], y[train], x[test], y[test])
    assert result["top1"] == 100.0 and result["converged"]
    # the same features with labels unrelated to them: chance is 10 %; 500 test examples, sd about 1.3 points
    noise_x, noise_y = rng.normal(size=(1500, 64)), rng.integers(0, 10, 1500)
    chance = probe.fit_probe(noise_x[:1000], noise_y[:1000], noise_x[1000:], noise_y[1000:])
    assert 4.0 < chance["top1"] < 16.0
    # standardisation is fitted on the training subset: a huge offset and scale on every feature changes nothing
    shifted = probe.fit_probe(1e3 * x[train] + 1e4, y[train], 1e3 * x[test] + 1e4, y[test])
    assert shifted["top1"] == 100.0
    with pytest.raises(ValueError, match="two classes"):
        probe.fit_probe(x[:5], np.zeros(5), x[5:10], y[5:10])


def test_training_subsets_are_the_finetuning_draws_and_runs_pair_by_seed():
    rng = np.random.default_rng(1)
    labels = np.concatenate([np.full(n, c) for c, n in enumerate([30, 25, 40])])[rng.permutation(95)]
    for seed in (1, 2):
        ten = probe.training_subset(labels, 10, seed)
        np.testing.assert_array_equal(ten, cv.per_class_sample(labels, 10, seed))
        assert np.bincount(labels[ten]).tolist() == [10, 10, 10]
        assert set(ten) <= set(probe.training_subset(labels, 20, seed))  # nested draws, as in fine-tuning
    assert len(probe.training_subset(labels, 0, 1)) == 95
    assert not np.array_equal(probe.training_subset(labels, 10, 1), probe.training_subset(labels, 10, 2))

    x, _ = _blobs(rng, 1, classes=3, dim=8)
    train_x, test_x = x[labels] + 0.1 * rng.normal(size=(95, 8)), x[[0, 1, 2]]
    calls = []

    def features(seed):
        calls.append(seed)
        return train_x, test_x

    runs = probe.probe_runs("m", "toy", features, labels, np.array([0, 1, 2]), [10, 0, 5], [3, 4])
    assert calls == [3, 4]  # features once per seed, reused for every regime
    assert [(r["images_per_class"], r["seed"], r["train_examples"]) for r in runs] == [
        (5, 3, 15), (5, 4, 15), (10, 3, 30), (10, 4, 30), (0, 3, 95), (0, 4, 95)]
    assert set(runs[0]) >= {"model", "target", "images_per_class", "seed", "top1"} and runs[0]["top1"] == 100.0


def test_model_specs(tmp_path):
    assert probe.parse_model("scratch") == probe.ModelSpec("scratch", random_arch="resnet18")
    spec = probe.parse_model("r50=random:resnet50")
    assert (spec.name, spec.random_arch, spec.kind) == ("r50", "resnet50", "scratch")
    with pytest.raises(ValueError, match="unknown architecture 'vgg16'"):
        probe.parse_model("x=random:vgg16")
    with pytest.raises(ValueError, match="does not exist"):
        probe.parse_model(f"x={tmp_path}/none.keras")
    (tmp_path / "fdb").mkdir()
    (tmp_path / "fdb" / "backbone.keras").write_bytes(b"")
    spec = probe.parse_model(str(tmp_path / "fdb" / "backbone.keras"))
    assert (spec.name, spec.kind) == ("fdb", "backbone")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """digits/8px and one untrained ResNet-18 classifier (FractalDB normalisation) as model.keras + backbone.keras."""
    import keras
    import tensorflow_datasets as tfds

    import tfds_builders.digits  # noqa: F401
    from tfsynth.models.classifier import backbone_from_classifier, build_classifier

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    tfds.builder("digits", config="8px", data_dir=data_dir).download_and_prepare()
    run = tmp_path_factory.mktemp("pretrain")
    keras.utils.set_random_seed(0)
    model = build_classifier(10, arch="resnet18", mean=(0.2, 0.2, 0.2), std=(0.5, 0.5, 0.5))
    model.save(str(run / "model.keras"))
    backbone_from_classifier(model).save(str(run / "backbone.keras"))
    return data_dir, run


def test_features_are_the_backbones_pooled_output(tiny):
    import keras

    _, run = tiny
    backbone = keras.models.load_model(str(run / "backbone.keras"), compile=False)
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3)).astype(np.float32)
    expected = np.asarray(backbone(images, training=False))
    for path in ("backbone.keras", "model.keras"):
        extractor, normalization = probe.feature_extractor(keras.models.load_model(str(run / path), compile=False))
        assert normalization == ((0.2, 0.2, 0.2), (0.5, 0.5, 0.5))  # the model's own, not ImageNet's
        got = np.asarray(extractor(images, training=False))
        assert got.shape == (4, 512)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    # random networks: drawn from the probe seed, normalised with the given mean/std
    one, again, two = (probe.load_model(probe.parse_model("scratch"), s) for s in (1, 1, 2))
    kernel = lambda m: np.asarray(m.get_layer("resnet18").get_layer("conv1").kernel)  # noqa: E731
    np.testing.assert_array_equal(kernel(one), kernel(again))
    assert not np.array_equal(kernel(one), kernel(two))
    assert probe.feature_extractor(one)[1] == (probe.IMAGENET_MEAN, probe.IMAGENET_STD)


def test_linear_probe_cli_on_tiny_digits(tiny, tmp_path, capsys):
    from eval import linear_probe as job

    data_dir, run = tiny
    common = ["--data", "digits/8px", "--data_dir", data_dir, "--train_split", "train[:300]", "--eval_split",
              "test[:100]", "--crop_size", "8", "--out", str(tmp_path / "out")]
    with pytest.raises(ValueError, match="--images_per_class 40: class .* has only"):
        job.main(["--model", "scratch", "--images_per_class", "40", *common])  # before any forward pass
    with pytest.raises(ValueError, match="--crop_size 9 is larger than the 8 x 8 images of digits/8px"):
        job.main(["--model", "scratch", *common, "--crop_size", "9"])
    report = job.main(["--model", f"pre={run / 'backbone.keras'}", "--model", "scratch", "--images_per_class", "5,0",
                       "--seeds", "1,2", *common])
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "out" / "probe.json").read_text())
    assert saved["runs"] == report["runs"] and len(saved["runs"]) == 2 * 2 * 2
    keys = {(r["model"], r["images_per_class"], r["seed"]) for r in saved["runs"]}
    assert keys == {(m, k, s) for m in ("pre", "scratch") for k in (5, 0) for s in (1, 2)}
    for r in saved["runs"]:
        assert r["target"] == "digits/8px" and 0.0 <= r["top1"] <= 100.0 and r["test_examples"] == 100
        assert r["train_examples"] == (50 if r["images_per_class"] == 5 else 300)
    top1 = {(r["model"], r["images_per_class"], r["seed"]): r["top1"] for r in saved["runs"]}
    assert top1[("pre", 0, 1)] == top1[("pre", 0, 2)]  # full data, deterministic features: the seed changes nothing
    assert saved["models"]["pre"]["mean"] == [0.2, 0.2, 0.2] and saved["models"]["scratch"]["kind"] == "scratch"
    assert saved["models"]["scratch"]["arch"] == "resnet18" and saved["models"]["pre"]["feature_dim"] == 512

    paired = {(p["source"], p["images_per_class"]): p for p in saved["summary"]["paired"]}
    assert sorted(paired) == [("pre", 0), ("pre", 5)]
    assert paired[("pre", 5)]["n_pairs"] == 2 and paired[("pre", 5)]["baseline"] == "scratch"
    assert paired[("pre", 5)]["diffs"] == pytest.approx([top1[("pre", 5, s)] - top1[("scratch", 5, s)]
                                                         for s in (1, 2)])
    md = (tmp_path / "out" / "probe.md").read_text()
    assert md == report["markdown"] and md in out
    lines = md.splitlines()
    assert lines[2] == "| model | digits/8px (5/class) | digits/8px (full) |"
    assert [line.split(" | ")[0] for line in lines[4:6]] == ["| scratch", "| pre"]
    assert lines[7].startswith("Paired difference to the random network") and lines[-1].startswith("| pre | ")
