"""experiments.noise_segmentation: the whole `tiny` chain end to end (data, training, evaluation, baselines, report)
in a fresh process, its resumability, and the NumPy pieces (per-image confusion matrices, vectorised scores,
the fitted colour rule) against the project's metrics."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import noise_segmentation as ns
from tfsynth.segmentation import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(workdir, results_dir, *extra):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "experiments.noise_segmentation", "--config", "tiny", "--workdir",
                           str(workdir), "--results_dir", str(results_dir), *extra], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("noise_seg")
    workdir, results = root / "work", root / "results"
    stdout = _run(workdir, results)
    return workdir, results, stdout


def test_tiny_chain_writes_every_result(tiny_run):
    workdir, results, stdout = tiny_run
    config = ns.tiny()
    for stage in ns.stage_names(config):
        marker = json.loads((workdir / "stages" / f"{stage}.json").read_text())
        assert marker["cpu_s"] > 0 and marker["wall_s"] > 0, stage
    res = json.loads((results / "results.json").read_text())
    for key in ("config", "command", "git", "fcn", "baselines", "fcn_minus_best_baseline", "cross_noise_gap",
                "fcn_beats_baselines", "cpu_s", "cpu_s_total", "training", "num_test_images", "learning_curves"):
        assert key in res, key
    assert res["command"].startswith("python -m experiments.noise_segmentation --config tiny")
    assert len(res["git"]["commit"]) == 40
    assert set(res["fcn"]) == {"perlin->perlin", "perlin->sc"}
    assert set(res["baselines"]) == {f"{r}:{t}->{te}" for r in ("hue", "colour") for t in ("perlin", "sc")
                                     for te in ("perlin", "sc")} | {"background->perlin", "background->sc"}
    cell = res["fcn"]["perlin->perlin"]
    assert set(cell["per_seed"]) == {"1"} and len(cell["per_class_iou"]) == 4
    for m in metrics.METRICS:
        lo, hi = cell["ci95"][m]
        assert lo <= cell["mean"][m] + 1e-12 and cell["mean"][m] <= hi + 1e-12, m
    # All background: accuracy = background share, recall 1 for class 0 only -> macro accuracy 1/4 exactly.
    assert res["baselines"]["background->perlin"]["mean"]["macro_accuracy"] == pytest.approx(0.25)
    assert set(res["cross_noise_gap"]) == {"perlin->sc"}
    assert res["num_test_images"] == 4
    assert set(res["stride8_ceiling"]) == {"32", "64"}
    assert set(cell["decomposition"]) == {"foreground_iou", "object_class_accuracy"}
    assert [e["epochs_completed"] for e in res["learning_curves"]["perlin-s1"]] == [0, 1]
    text = (results / "results.md").read_text()
    for heading in ("## Table 2", "## Trivial baselines", "## Cross-noise generalisation", "## Per-class IoU",
                    "## Overlays", "## Diagnosis", "## CPU time per stage"):
        assert heading in text
    for png in ("curves.png", "per_class_iou_perlin.png", "per_class_iou_sc.png", "overlays_perlin_on_perlin.png",
                "overlays_perlin_on_sc.png"):
        assert (results / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"({png})" in text


def test_evaluation_matches_the_training_jobs_own_validation(tiny_run):
    """The experiment's per-image matrices on the in-domain held-out set sum to the confusion matrix that
    train.segment recorded after its last epoch (same model, same images)."""
    workdir, _, _ = tiny_run
    run = workdir / "train" / "perlin-s1"
    (stage,) = json.loads((run / "config.json").read_text())["stages"]
    history = json.loads((run / stage / "history.json").read_text())
    cms = np.load(workdir / "eval" / "perlin-s1.npz")["cm_perlin"]
    assert cms.shape == (4, 4, 4)
    np.testing.assert_array_equal(cms.sum(axis=0), np.array(history[-1]["confusion_matrix"]))


def test_rerun_skips_finished_stages_and_redoes_a_missing_one(tiny_run, tmp_path):
    workdir, results, _ = tiny_run
    os.remove(workdir / "stages" / "report.json")
    out = tmp_path / "again"
    stdout = _run(workdir, out)
    assert "[train-perlin-s1] done earlier" in stdout and "[report] running" in stdout
    assert (json.loads((out / "results.json").read_text())["fcn"]
            == json.loads((results / "results.json").read_text())["fcn"])


def test_per_image_confusion_and_batch_scores_match_metrics():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=(5, 6, 7))  # class 3 never true
    labels[0, 0, :3] = 255
    preds = rng.integers(0, 4, size=(5, 6, 7))
    cms = ns.per_image_confusion(labels, preds)
    for i in range(5):
        np.testing.assert_array_equal(cms[i], metrics.confusion_matrix(labels[i], preds[i], 4))
    stack = np.stack([cms[:k + 1].sum(0) for k in range(5)] + [np.diag([5, 0, 3, 0])])
    batch = ns.batch_scores(stack)
    for b, matrix in enumerate(stack):
        expected = metrics.scores(matrix)
        for m in metrics.METRICS:
            assert batch[m][b] == pytest.approx(expected[m], rel=1e-12), (b, m)


def test_stride_ceiling_keeps_block_aligned_labels_and_blurs_finer_ones():
    blocks = np.kron(np.array([[[0, 1], [2, 3]]]), np.ones((8, 8), np.int64))  # (1, 16, 16), 8 x 8 blocks
    np.testing.assert_array_equal(ns.stride_ceiling(blocks), blocks)
    dot = np.zeros((1, 16, 16), np.int64)
    dot[0, 3:5, 3:5] = 2  # a 2 x 2 object is below the output resolution: it disappears
    assert not ns.stride_ceiling(dot).any()


def test_error_decomposition_separates_finding_from_naming():
    cm = np.array([[5, 1, 0, 0], [2, 3, 1, 0], [0, 0, 4, 0], [0, 0, 0, 0]])
    d = ns.error_decomposition(cm)
    assert d["foreground_iou"] == pytest.approx(8 / 11)  # 8 object pixels found, 2 missed, 1 spurious
    assert d["object_class_accuracy"] == pytest.approx(7 / 8)


def test_fitted_lookup_is_the_majority_class_per_cell():
    cells = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([1, 1, 2, 3, 3, 0])
    np.testing.assert_array_equal(ns.fit_lookup(cells, labels, num_cells=4), [1, 3, 0, 0])


def test_bad_config_fields_fail_clearly():
    with pytest.raises(ValueError, match="train_noises"):
        ns.ExperimentConfig(name="x", train_noises=("gabor",))
