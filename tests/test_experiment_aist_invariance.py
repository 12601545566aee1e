"""experiments.aist_invariance: the whole `tiny` chain end to end in a fresh process (data, baselines, three AIST
models, mask agreement, stylised sets, DPC per set, Table 6.2, report), resumability and --publish; the target
domain's determinism and its difference from X; the appearance and outline measures; clear errors for bad flags."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import aist_invariance as ai
from tfsynth.aist import target_domain

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=1800):
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "experiments.aist_invariance", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("aist_invariance") / "work"
    proc = _run("--config", "tiny", "--workdir", workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir, proc.stdout


@pytest.mark.slow
def test_tiny_chain_writes_every_result_and_reruns_nothing(tiny_run, tmp_path):
    workdir, _ = tiny_run
    config = ai.tiny()
    for stage in ai.stage_names(config):
        marker = json.loads((workdir / "stages" / f"{stage}.json").read_text())
        assert marker["cpu_s"] >= 0 and marker["wall_s"] > 0, stage
    report = workdir / "report"
    res = json.loads((report / "results.json").read_text())
    assert res["complete"] and res["missing_stages"] == []
    assert res["command"] == f"python -m experiments.aist_invariance --config tiny --workdir {workdir}"
    assert len(res["git"]["commit"]) == 40
    assert set(res["runs"]) == {"cyclegan-s1", "constrained-s1", "less_constrained-s1", "constrained_alpha10-s1"}
    for run in res["runs"].values():
        assert run["views"] == 20  # 4 held-out models x 5 views
        assert 0 <= run["mean_iou"] <= 1 and 0 <= run["appearance_tv_to_y"] <= 1
    assert res["aist"]["cyclegan-s1"]["alpha_mode"] == "nonblack"
    assert res["aist"]["constrained-s1"]["alpha_mode"] == "channel"
    assert all(r["steps"] == 6 for r in res["aist"].values())
    base = res["baselines"]
    assert base["identity"]["mean_iou"] == 1.0 and 0 < base["identity"]["appearance_tv_to_y"] <= 1
    assert base["y_object_fraction"] > base["x_object_fraction"]  # Y's outlines are larger: a reason to change them
    assert set(res["summary"]["per_model"]) == set(ai.MODELS)
    assert set(res["summary"]["paired"]) == {"constrained - cyclegan", "less_constrained - cyclegan"}
    assert set(res["summary"]["diagnostic"]) == {"cyclegan", "constrained", "constrained_alpha10"}
    rows = res["table"]
    assert [(r["experiment"], r["dataset"]) for r in rows] == [(e, d) for e in ai.train_sets(config)
                                                               for d in ai.train_sets(config)]
    for r in rows:
        assert r["chamfer"] == pytest.approx(r["precision"] + r["coverage"], abs=2e-3)
        assert 0 <= r["accuracy"] <= 1 and 0 <= r["median_error_deg"] <= 180
    text = (report / "results.md").read_text()
    for heading in ("## Mask agreement and appearance change", "## Panels", "## DPC on each training set",
                    "## Shrunk relative to the seed", "## CPU time per stage"):
        assert heading in text, heading
    for png in ("panels.png", "iou.png", "y_examples.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    # A rerun finds every stage done and only publishes.
    before = {p.name: p.stat().st_mtime for p in (workdir / "stages").iterdir()}
    out = tmp_path / "published"
    proc = _run("--config", "tiny", "--workdir", workdir, "--publish", out)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "running" not in proc.stdout
    assert {p.name: p.stat().st_mtime for p in (workdir / "stages").iterdir()} == before
    assert (out / "results.md").exists() and (out / "results.json").exists()


def test_target_domain_is_a_pure_function_of_seed_and_index_and_differs_from_x(tmp_path):
    a = target_domain.target_image(0, 3)
    assert a.shape == (64, 64, 4) and a.dtype == np.uint8
    assert np.array_equal(a, target_domain.target_image(0, 3))
    assert not np.array_equal(a, target_domain.target_image(0, 4))
    assert not np.array_equal(a, target_domain.target_image(1, 3))
    assert set(np.unique(a[..., 3])) == {0, 255}
    assert np.all(a[a[..., 3] == 0][:, :3].mean(0) < 90)  # dark background, unlike X's white one
    fractions = [(target_domain.target_image(0, i)[..., 3] > 0).mean() for i in range(12)]
    assert 0.3 < np.mean(fractions) < 0.7  # larger than X's cars (about a fifth of the frame)
    # Written files equal the function's images, in any order of writing.
    paths = target_domain.write_target_folder(str(tmp_path / "y"), 2, 3, 64, seed=0)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(paths[1])), target_domain.target_image(0, 3))
    with pytest.raises(ValueError, match="fill"):
        target_domain.target_image(0, 0, fill=0.0)


def test_measures():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    masks = np.ones((3, 8, 8), np.uint8)
    h = ai.colour_histogram(images, masks)
    assert h.shape == (512,) and h.sum() == pytest.approx(1.0)
    assert ai.tv_distance(h, h) == 0.0
    other = ai.colour_histogram(np.full_like(images, 255), masks)
    assert other[-1] == pytest.approx(1.0)
    assert ai.tv_distance(h, other) == pytest.approx(1.0 - h[-1])
    # Only object pixels count.
    masked = masks.copy()
    masked[:, :4] = 0
    assert ai.colour_histogram(images, masked).sum() == pytest.approx(1.0)
    a = np.zeros((2, 4, 4))
    b = np.zeros((2, 4, 4))
    a[0, :2], b[0, 1:3] = 1, 1
    assert ai.outline_iou(a, b).tolist() == [pytest.approx(1 / 3), 1.0]


def test_bad_flags_and_configs_fail_in_one_line(tmp_path):
    proc = _run("--config", "tiny", "--workdir", tmp_path / "w", "--stage", "nope")
    assert proc.returncode != 0 and "unknown; stages:" in proc.stderr
    with pytest.raises(ValueError, match="unknown AISTConfig field"):
        ai.ExperimentConfig(name="x", aist={"ngff": 3})
    with pytest.raises(ValueError, match="dpc_seed"):
        ai.ExperimentConfig(name="x", seeds=(1, 2), dpc_seed=3)
    with pytest.raises(ValueError, match="models"):
        ai.ExperimentConfig(name="x", models=("pix2pix",))
    with pytest.raises(ValueError, match="alpha_diagnostic"):
        ai.ExperimentConfig(name="x", alpha_diagnostic=-1.0)
    diag = ai.ExperimentConfig(name="x", alpha_diagnostic=10.0)
    acfg = diag.aist_config(diag.diagnostic_model, 1, "x", "y")
    assert (diag.diagnostic_model, acfg.lambda_alpha_G, acfg.lambda_alpha_F) == ("constrained_alpha10", 20.0, 20.0)
    assert acfg.lambda_resdist_G == 1.75 and ai.run_names(diag)[-1] == "constrained_alpha10-s1"
    proc = _run("--config", "tiny", "--workdir", os.path.join(REPO, "experiments_out"))
    assert proc.returncode != 0 and "inside the repository" in proc.stderr


def test_outline_of_rgb_outputs_is_not_near_black_and_of_rgba_outputs_is_alpha():
    raw = np.zeros((1, 4, 4, 3), np.uint8)
    raw[0, 1:3, 1:3] = (0, 0, 200)  # object
    raw[0, 0, 0] = (3, 1, 2)  # a tanh output is never exactly black: near-black is background
    alphas = np.zeros((1, 4, 4, 1), np.uint8)
    alphas[0, 0] = 255
    assert ai.output_outline(raw, alphas, "nonblack").sum() == 4
    assert ai.output_outline(raw, alphas, "nonblack")[0, 1:3, 1:3].all()
    channel = ai.output_outline(raw, alphas, "channel")
    assert channel[0, 0].all() and channel.sum() == 4
