"""experiments.beyond_flatland: the whole chain at `tiny` scale, its report, and stage-by-stage resumption."""
import json
import os
import subprocess
import sys

import pytest

from experiments import beyond_flatland as bf

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_configs_and_specs():
    small = bf.small()
    assert set(small.sources) == set(bf.SOURCES) and len(small.sources) == 7
    assert len(small.seeds) >= 5 and {r.images_per_class for r in small.regimes} == {0, 10}
    assert [len(r.seeds or small.seeds) for r in small.regimes] == [5, 3]
    assert set(small.probe_images_per_class) == {0, 10, 50}
    # mixtures at equal total class count (the small builders have 100 classes each)
    assert bf.data_spec("all3", "small") == "proc_synth_db/small:33,morph_synth_db/small:33,fractal_db/small:33"
    assert bf.data_spec("procsynth+fractal", "small") == "proc_synth_db/small:50,fractal_db/small:50"
    assert bf.data_spec("flatworld", "small") == "flat_world_db/small"
    assert bf.datasets_of(bf.tiny())[-1] == "digits/32px"
    # every source sees about the same number of pre-training examples; milestones at 2/3 and 5/6
    pc = bf.pretrain_config(small, "fractal", 3600)
    assert pc.epochs == 9 and pc.lr_milestones == (6, 8) and pc.arch == "resnet18" and pc.resize == 40
    assert bf.pretrain_config(small, "procsynth", 1800).epochs == 18
    # the follow-up changes only the pre-training length (and runs 5 seeds at full data)
    long = bf.small_long()
    assert long.sources == ("fractal", "procsynth", "flatworld") and long.pretrain_examples == 4 * 32_000
    assert [len(r.seeds or long.seeds) for r in long.regimes] == [5, 5]
    assert (long.pretrain, long.finetune, long.target) == (small.pretrain, small.finetune, small.target)
    assert bf.pretrain_config(long, "procsynth", 1800).epochs == 71
    assert "4x longer pre-training" in bf._shrunk_text("small_long") and "ResNet-18" in bf._shrunk_text("small_long")


@pytest.mark.slow
def test_tiny_chain_runs_reports_and_resumes(tmp_path):
    workdir = str(tmp_path / "bf")
    cmd = [sys.executable, "-m", "experiments.beyond_flatland", "--config", "tiny", "--workdir", workdir]
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert first.returncode == 0, first.stderr[-3000:]
    results = json.load(open(os.path.join(workdir, "report", "results.json")))
    config = bf.tiny()
    n_runs = (len(config.sources) + 1) * len(config.regimes) * len(config.seeds)
    assert len(results["runs"]) == n_runs
    for run in results["runs"]:
        assert {"source", "target", "images_per_class", "seed", "top1"} <= set(run)
        assert 0 <= run["top1"] <= 100
    assert {r["images_per_class"] for r in results["runs"]} == {0, 3}
    assert results["git_commit"] and results["command"].startswith("python -m experiments.beyond_flatland")
    paired = results["transfer_summary"]["paired"]  # eval.transfer's paired differences to scratch
    assert {(p["source"], p["images_per_class"]) for p in paired} == {
        (s, r.images_per_class) for s in config.sources for r in config.regimes}
    assert all(p["n_pairs"] == len(config.seeds) for p in paired)
    assert len(results["probe_runs"]) == n_runs and results["probe_summary"]["paired"]
    for name in ("results.md", "accuracy_vs_images.png", "probe_vs_images.png", "filters.png"):
        assert os.path.exists(os.path.join(workdir, "report", name)), name
    # low data really is low data: 3 images per class of 10 classes, i.e. one batch of 16 per epoch
    low = json.load(open(os.path.join(bf.finetune_dir(workdir, "scratch", config.regimes[1], 1), "results.json")))
    assert low["transfer"]["images_per_class"] == 3 and low["optimizer_steps"] == 2  # 2 epochs x 1 step
    # a rerun finds every stage done and retrains nothing
    stamp = os.path.getmtime(os.path.join(workdir, "pretrain", config.sources[0], "results.json"))
    second = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "--- pre-training on" not in second.stdout and "--- fine-tuning" not in second.stdout
    assert os.path.getmtime(os.path.join(workdir, "pretrain", config.sources[0], "results.json")) == stamp
