"""experiments.shape_pose: the whole `tiny` chain end to end in a fresh process (data, baselines, DPC training with
known and learned poses, evaluation, report), its resumability and --publish; the chance level of the pose scores;
the input-blind baselines; clear errors for bad flags."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import shape_pose as sp
from tfsynth.dpc import geometry as geo
from tfsynth.dpc import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=1800):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "experiments.shape_pose", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("shape_pose") / "work"
    proc = _run("--config", "tiny", "--workdir", workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc.stdout


@pytest.mark.slow
def test_tiny_chain_writes_every_result(tiny_run):
    workdir, _ = tiny_run
    config = sp.tiny()
    for stage in sp.stage_names(config):
        marker = json.loads((workdir / "stages" / f"{stage}.json").read_text())
        assert marker["cpu_s"] > 0 and marker["wall_s"] > 0, stage
    report = workdir / "report"
    res = json.loads((report / "results.json").read_text())
    for key in ("config", "command", "git", "settings", "data", "runs", "summary", "baselines", "chance",
                "comparisons", "learning_curves", "cpu_s", "wall_s", "cpu_s_total"):
        assert key in res, key
    assert res["command"] == f"python -m experiments.shape_pose --config tiny --workdir {workdir}"
    assert len(res["git"]["commit"]) == 40
    assert set(res["cpu_s"]) == set(sp.stage_names(config)) - {"report"}
    assert res["data"]["splits"]["train"]["models"] == 16 and res["data"]["splits"]["test"]["models"] == 4
    assert [(r["setting"], r["seed"]) for r in res["runs"]] == [("known_pose", 1), ("learned_pose", 1)]
    known, learned = res["runs"]
    assert {"setting", "seed", "chamfer", "untrained_chamfer"} <= set(known) and "pose_acc30" not in known
    assert {"pose_acc30", "median_angle_deg", "chamfer_icp", "untrained_pose_acc30"} <= set(learned)
    assert 0 <= learned["pose_acc30"] <= 1 and 0 <= learned["median_angle_deg"] <= 180
    for run in res["runs"]:
        assert 0 < run["chamfer"] < 100 and run["chamfer"] == pytest.approx(run["precision"] + run["coverage"],
                                                                             abs=2e-4)
        assert run["steps"] == 60
    # 60 steps with known cameras already move the shapes far from the untrained network's (measured 6.8 vs 17.5)
    assert known["chamfer"] < 0.7 * known["untrained_chamfer"]
    base = res["baselines"]
    for key in ("mean_shape", "best_single_shape"):
        assert 0 < base[key]["chamfer"] < 100 and base[key]["chamfer"] == pytest.approx(
            base[key]["precision"] + base[key]["coverage"])
    assert base["mean_shape"]["threshold"] in config.baseline_thresholds
    assert base["ground_truth_subsampled"]["chamfer"] < base["best_single_shape"]["chamfer"]
    assert 0 <= base["best_constant_pose"]["accuracy"] <= 1 and len(base["best_constant_pose"]["quaternion"]) == 4
    assert res["chance"]["pose_acc30"] == pytest.approx(0.0075, abs=5e-5)
    assert res["chance"]["median_angle_deg"] == pytest.approx(132.35, abs=0.01)
    curves = res["learning_curves"]
    assert set(curves) == {"known_pose-s1", "learned_pose-s1"}
    assert [h["step"] for h in curves["known_pose-s1"]["train"]] == [10, 20, 30, 40, 50, 60]
    assert [v["step"] for v in curves["learned_pose-s1"]["validation"]] == [30, 60]
    text = (report / "results.md").read_text()
    for heading in ("## Results on the held-out models", "## Per seed", "## Learning curves",
                    "## Predicted point clouds beside the ground truth", "## Pose errors", "## CPU time per stage"):
        assert heading in text, heading
    assert "0.0075" in text and "132.3" in text
    for png in ("curves.png", "point_clouds.png", "pose_errors.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"({png})" in text


@pytest.mark.slow
def test_evaluation_numbers_agree_with_the_saved_predictions(tiny_run):
    """The pose scores in results.json are those of the saved per-view errors; the figure's known-pose clouds are the
    network's own predictions (view 0 of the first held-out models)."""
    workdir, _ = tiny_run
    res = json.loads((workdir / "report" / "results.json").read_text())
    learned = res["runs"][1]
    with np.load(workdir / "eval" / "learned_pose-s1.npz") as e:
        errors = np.deg2rad(e["pose_errors_deg"])
    assert errors.shape == (4, 5)
    table = metrics.pose_table(errors)
    assert learned["pose_acc30"] == pytest.approx(table["accuracy"], abs=1e-4)
    assert learned["median_angle_deg"] == pytest.approx(table["median_error_deg"], abs=1e-3)
    with np.load(workdir / "eval" / "known_pose-s1.npz") as e, np.load(
            workdir / "eval" / "predictions_known_pose-s1.npz") as p:
        np.testing.assert_allclose(e["figure_points"], p["points"][:2, 0].astype(np.float32))


@pytest.mark.slow
def test_rerun_skips_finished_stages_and_publishes(tiny_run, tmp_path):
    workdir, _ = tiny_run
    before = json.loads((workdir / "report" / "results.json").read_text())
    os.remove(workdir / "stages" / "report.json")
    stamp = os.path.getmtime(workdir / "train" / "learned_pose-s1" / "dpc.weights.h5")
    proc = _run("--config", "tiny", "--workdir", workdir, "--publish", tmp_path / "published", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for stage in ("data", "baselines", "train-known_pose-s1", "train-learned_pose-s1", "eval-learned_pose-s1"):
        assert f"[{stage}] done earlier" in proc.stdout, stage
    assert "[report] running" in proc.stdout
    assert os.path.getmtime(workdir / "train" / "learned_pose-s1" / "dpc.weights.h5") == stamp
    published = json.loads((tmp_path / "published" / "results.json").read_text())
    assert published["runs"] == before["runs"] and published["baselines"] == before["baselines"]
    assert "--publish" not in published["command"]
    assert (tmp_path / "published" / "point_clouds.png").exists()


# ----------------------------------------------------------------------------------------------------------------
# Chance level of the pose scores.

def test_chance_level_of_uniformly_random_rotations():
    # closed form: P(t < 30 deg) = (pi/6 - sin(pi/6)) / pi; the median solves (t - sin t) / pi = 1/2
    assert metrics.chance_pose_accuracy(30.0) == pytest.approx((np.pi / 6 - 0.5) / np.pi, rel=1e-12)
    assert metrics.chance_pose_accuracy(30.0) == pytest.approx(0.0075, abs=2e-5)
    median = np.deg2rad(metrics.chance_median_error_deg())
    assert (median - np.sin(median)) / np.pi == pytest.approx(0.5, abs=1e-10)
    assert metrics.chance_median_error_deg() == pytest.approx(132.35, abs=0.01)
    # the CDF integrates the density (1 - cos t) / pi
    t = np.linspace(0.0, np.pi, 200001)
    density = (1 - np.cos(t)) / np.pi
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(t))])
    np.testing.assert_allclose(cdf, metrics.random_rotation_angle_cdf(t), atol=1e-9)
    # Monte Carlo through the pose metric itself: uniformly random rotations scored against random ground truths
    rng = np.random.default_rng(0)
    n = 400_000
    errors = metrics.angular_error(geo.random_quaternions(rng, n), geo.random_quaternions(rng, n))
    table = metrics.pose_table(errors)
    p = metrics.chance_pose_accuracy(30.0)
    assert abs(table["accuracy"] - p) < 4 * np.sqrt(p * (1 - p) / n)
    assert table["median_error_deg"] == pytest.approx(metrics.chance_median_error_deg(), abs=0.5)
    # 126.5 degrees is the mean angle (pi/2 + 2/pi radians), not the median
    assert np.rad2deg(errors.mean()) == pytest.approx(np.rad2deg(np.pi / 2 + 2 / np.pi), abs=0.3)
    assert np.rad2deg(np.pi / 2 + 2 / np.pi) == pytest.approx(126.48, abs=0.01)


# ----------------------------------------------------------------------------------------------------------------
# Baselines.

def _sphere(radius, n, rng):
    d = rng.normal(size=(n, 3))
    return (radius * d / np.linalg.norm(d, axis=1, keepdims=True)).astype(np.float32)


def test_mean_shape_of_identical_clouds_is_that_shape():
    rng = np.random.default_rng(1)
    clouds = [_sphere(0.3, 5000, rng) for _ in range(4)]
    fit = sp.fit_mean_shape(clouds, 2000, 32, (0.2, 0.5, 0.9), rng)
    assert fit["cloud"].shape == (2000, 3)
    # every voxel of the shell is occupied by all four clouds: any threshold gives the same shell, within a voxel
    assert metrics.chamfer(fit["cloud"], clouds[0])["precision"] < 1 / 32
    assert set(fit["train_chamfer"]) == {"0.2", "0.5", "0.9"}


def test_mean_shape_threshold_and_best_single_shape_pick_the_middle_of_a_family():
    rng = np.random.default_rng(2)
    radii = (0.2, 0.25, 0.3, 0.35, 0.4)
    clouds = [_sphere(r, 4000, rng) for r in radii]
    single = sp.best_single_shape(clouds, 1000, rng)
    assert single["index"] == 2  # the radius-0.3 sphere is closest on average to the others
    fit = sp.fit_mean_shape(clouds, 2000, 32, (0.1, 0.2, 0.3, 0.5, 0.7), rng)
    radius = np.linalg.norm(fit["cloud"], axis=1)
    assert 0.25 < np.median(radius) < 0.35
    # the fitted threshold is the best one on these clouds (lowest mean Chamfer among those tried)
    assert fit["train_chamfer"][str(fit["threshold"])] == min(fit["train_chamfer"].values())
    # the test score is metrics.chamfer averaged over models, x 100
    tests = [_sphere(r, 3000, rng) for r in (0.28, 0.33)]
    score = sp.score_constant(fit["cloud"], tests)
    expected = np.mean([[metrics.chamfer(fit["cloud"], t)[k] for k in ("precision", "coverage")] for t in tests], 0)
    assert score["precision"] == pytest.approx(100 * expected[0]) and score["coverage"] == pytest.approx(
        100 * expected[1])
    assert score["chamfer"] == pytest.approx(100 * expected.sum())


def test_subsampling_floor():
    rng = np.random.default_rng(5)
    clouds = [_sphere(0.3, 500, rng), _sphere(0.2, 500, rng)]
    assert sp.subsampling_floor(clouds, 500, rng)["chamfer"] == 0.0  # every point kept: a perfect score
    sparse = sp.subsampling_floor(clouds, 50, rng)
    assert sparse["precision"] == 0.0 and sparse["coverage"] > 0  # kept points lie on the truth; gaps cost coverage


def test_voxel_helpers():
    rng = np.random.default_rng(3)
    pts = np.array([[-0.49, -0.49, -0.49], [0.49, 0.49, 0.49], [0.0, 0.0, 0.0]])
    occ = sp.occupancy(pts, 4)
    assert occ.sum() == 3 and occ[0, 0, 0] and occ[3, 3, 3] and occ[2, 2, 2]
    np.testing.assert_allclose(sp.mean_occupancy([pts, pts[:1]], 4)[[0, 3], [0, 3], [0, 3]], [1.0, 0.5])
    cloud = sp.cloud_from_voxels(occ, 3000, rng)
    assert np.array_equal(sp.occupancy(cloud, 4), occ)  # every point inside an occupied voxel, every voxel used
    with pytest.raises(ValueError, match="empty"):
        sp.cloud_from_voxels(np.zeros((4, 4, 4), bool), 10, rng)


def test_constant_pose_baselines():
    rng = np.random.default_rng(4)
    q0 = geo.quaternion_from_view(30.0, 10.0)
    train = np.repeat(q0[None], 20, axis=0)
    same = sp.constant_pose_baselines(train, train[:5], rng)
    assert same["best_constant_pose"]["accuracy"] == 1.0 and same["best_constant_pose"]["median_error_deg"] < 1e-3
    turned = np.stack([geo.quaternion_from_view(120.0, 10.0)] * 5)  # 90 degrees of azimuth away
    off = sp.constant_pose_baselines(train, turned, rng)
    assert off["best_constant_pose"]["accuracy"] == 0.0
    assert off["random_training_pose"]["median_error_deg"] == pytest.approx(90.0, abs=1e-3)
    # uniformly random training and test cameras: both floors fall to the uniform chance level
    uniform = sp.constant_pose_baselines(geo.random_quaternions(rng, 3000), geo.random_quaternions(rng, 3000), rng)
    assert uniform["random_training_pose"]["median_error_deg"] == pytest.approx(132.35, abs=3.0)
    assert uniform["random_training_pose"]["accuracy"] < 0.02


# ----------------------------------------------------------------------------------------------------------------
# Configs and flags.

def test_configs():
    small, tiny = sp.small(), sp.tiny()
    assert len(small.seeds) >= 3 and small.settings == ("known_pose", "learned_pose")
    known, learned = small.dpc_config("known_pose", 2), small.dpc_config("learned_pose", 2)
    assert not known.predict_pose and known.pose_candidates == 1 and known.steps == small.known_steps
    assert learned.predict_pose and learned.num_candidates == 4 and learned.student and learned.seed == 2
    assert learned.data == "tfds:multiview_shapes/vehicles:train"
    assert learned.val_data == "tfds:multiview_shapes/vehicles:validation"
    assert tiny.dataset == "multiview_shapes/vehicles_tiny"
    assert sp.stage_names(tiny) == ["data", "baselines", "train-known_pose-s1", "train-learned_pose-s1",
                                    "eval-known_pose-s1", "eval-learned_pose-s1", "report"]
    with pytest.raises(ValueError, match="unknown DPCConfig field"):
        sp.ExperimentConfig(name="x", dpc={"pixels": 3})
    with pytest.raises(ValueError, match="dpc: .*image_size"):
        sp.ExperimentConfig(name="x", dpc={"image_size": 30})
    with pytest.raises(ValueError, match="settings"):
        sp.ExperimentConfig(name="x", settings=("supervised",))


def test_bad_flags_fail_in_one_line(tmp_path):
    proc = _run("--config", "huge", "--workdir", tmp_path / "w", timeout=300)
    assert proc.returncode == 2 and "invalid choice: 'huge'" in proc.stderr
    proc = _run("--config", "tiny", "--workdir", tmp_path / "w", "--stage", "trian", timeout=300)
    assert proc.returncode == 2 and "--stage trian: unknown; stages: data, baselines" in proc.stderr
    proc = _run("--config", "tiny", "--workdir", os.path.join(REPO, "tfsynth", "w"), timeout=300)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: --workdir")
    assert "inside the repository" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "experiment_config.json").write_text(json.dumps(sp.small().to_dict()))
    proc = _run("--config", "tiny", "--workdir", tmp_path / "other", timeout=300)
    assert proc.returncode == 2 and "holds a run of another config" in proc.stderr and "Traceback" not in proc.stderr
