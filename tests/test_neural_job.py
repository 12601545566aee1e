"""eval.neural end to end with real Keras models: a known-answer brain, the simulated demo, the CLI's errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from eval.neural.features import default_layers, extract_features, feature_model
from eval.neural.job import NeuralConfig, run
from tfsynth.models import resnet
from tfsynth.models.classifier import backbone_from_classifier, build_classifier
from tfsynth.neural.data import BrainData
from tfsynth.neural.simulated import SimulatedConfig, render_stimuli
from tests.tolerance import assert_close_scaled

REPO = Path(__file__).resolve().parents[1]
TARGET = "layer2.1.out"


@pytest.fixture(scope="module")
def toy_resnet(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = resnet.resnet18(num_classes=2, include_top=False, input_shape=(None, None, 3))
    path = tmp_path_factory.mktemp("models") / "resnet18.keras"
    model.save(path)
    return str(path)


def _known_answer_data(model_path) -> BrainData:
    """Responses = a linear map of TARGET's activations (its top 8 principal components) + trial noise."""
    images, meta = render_stimuli(SimulatedConfig(n_objects=6, images_per_condition=10, image_size=32))
    model = keras.models.load_model(model_path, compile=False)
    features = extract_features(model, images, [TARGET], batch_size=60, preprocess="torch")[TARGET]
    centred = features.astype(np.float64) - features.mean(0)
    u, _, _ = np.linalg.svd(centred, full_matrices=False)
    rng = np.random.default_rng(0)
    signal = u[:, :8] @ rng.normal(size=(8, 30))
    signal /= signal.std(0)
    trials = signal[None] + 0.8 * rng.normal(size=(8, *signal.shape))  # reliability of the mean: 1 / (1 + 0.64 / 8)
    trials = np.concatenate([trials, np.full((8, len(images), 1), 2.0)], axis=2)  # a dead site: skipped, counted
    n = len(images)
    return BrainData(name="known-answer", images=images, stimulus_id=np.array([f"s{i:04d}" for i in range(n)]),
                     trials={"R": trials.astype(np.float32)}, stratify=meta["object"].astype(str),
                     selection=np.arange(n) % 2 == 0, visual_degrees=8.0, simulated=True)


def test_known_answer_layer_is_selected_and_predictivity_reaches_the_ceiling(toy_resnet, tmp_path, capsys):
    data = _known_answer_data(toy_resnet)
    config = NeuralConfig(models=[("toy", toy_resnet)], brain="custom", image_size=32, preprocess="torch",
                          batch_size=60, workdir=str(tmp_path / "out"))
    results = run(config, data=data)
    row = results["rows"][0]
    assert results["skipped_neuroids"] == {"R": 1} and row["n_neuroids"] == 30
    assert row["layer"] == TARGET
    assert row["ceiling"] == pytest.approx(1 / (1 + 0.64 / 8), abs=0.03)
    assert row["ceiled_r2_over_c"] > 0.9  # r^2 / ceiling: the map is linear, only trial noise is left
    assert row["r"] ** 2 <= row["ceiling"] + 0.02
    scores = {r["layer"]: r["score"] for r in _layer_rows(tmp_path / "out")}
    assert max(scores, key=scores.get) == TARGET
    out = capsys.readouterr().out
    assert "SIMULATED brain data" in out and "| toy | R | layer2.1.out |" in out
    for name in ("neural_predictivity.md", "neural_predictivity.csv", "rsa.md", "layer_scores.csv", "results.json",
                 "tables/R.md", "plots/toy_depth.png"):
        assert (tmp_path / "out" / name).exists(), name
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["simulated"] is True and saved["models"]["toy"]["report"]["R"]["layer"] == TARGET


def _layer_rows(workdir):
    import csv

    with open(workdir / "layer_scores.csv") as f:
        return [dict(r, score=float(r["score"])) for r in csv.DictReader(f) if r["metric"] == "pls"]


def test_features_reach_into_nested_backbones_and_match_the_plain_resnet():
    keras.utils.set_random_seed(1)
    classifier = build_classifier(3, arch="resnet18", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    backbone = backbone_from_classifier(classifier)
    assert default_layers(backbone) == [f"layer{s}.{b}.out" for s in (1, 2, 3, 4) for b in (0, 1)]
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    nested = extract_features(backbone, images, ["layer1.0.out", "layer4.1.out"])
    inner = next(layer for layer in classifier.layers if layer.name == "resnet18")
    direct = feature_model(inner, ["layer1.0.out", "layer4.1.out"])((images / 255.0 - 0.5) / 0.25)
    assert_close_scaled(nested["layer4.1.out"], np.asarray(direct[1]).reshape(3, -1), rel=1e-4)
    with pytest.raises(ValueError, match="layer.*nope.*not found"):
        feature_model(backbone, ["nope"])


def test_demo_cli_prints_a_simulated_table(toy_resnet, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "eval.neural", "--demo", "--model", f"toy={toy_resnet}", "--preprocess", "torch",
           "--workdir", str(tmp_path / "demo")]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SIMULATED brain data" in result.stdout and "not real recordings" in result.stdout
    assert "PCA (1000 components max) fitted per layer on 96 separate images" in result.stdout
    for region in ("V1", "V4", "IT"):
        assert f"| toy | {region} | layer" in result.stdout
    assert (tmp_path / "demo" / "neural_predictivity.md").read_text().startswith("# Neural predictivity — SIMULATED")


def test_cli_errors_are_clear(tmp_path):
    from eval.neural.__main__ import main

    with pytest.raises(SystemExit, match="does not exist"):
        main(["--model", str(tmp_path / "missing.keras")])
    with pytest.raises(SystemExit, match="at least one --model"):
        main([])
    keras.utils.set_random_seed(0)
    path = tmp_path / "m.keras"
    resnet.resnet18(num_classes=2, include_top=False, input_shape=(None, None, 3)).save(path)
    with pytest.raises(SystemExit,
                       match=r"(?s)not built in .*tfds build nsd --imports tfds_builders.nsd --config subj01"):
        main(["--model", str(path), "--brain", "nsd/subj01", "--data_dir", str(tmp_path / "tfds"),
              "--workdir", str(tmp_path / "nsd")])
    with pytest.raises(SystemExit, match="simulated data has no region"):
        main(["--model", str(path), "--regions", "V9", "--workdir", str(tmp_path / "w")])
