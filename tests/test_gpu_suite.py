"""benchmarks/gpu_suite.py --quick: every part of the accelerator suite runs on a CPU and writes its JSON."""
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_suite_runs_every_part_and_writes_json(tmp_path):
    out = tmp_path / "gpu_suite.json"
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", "--quick", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["quick"] and result["accelerators"]
    resnet = result["resnet50_training"]
    for variant in ("float32", "mixed_float16"):
        for impl in ("tfsynth", "keras_applications"):
            assert resnet[variant][impl]["images_per_s"] > 0
        assert resnet[variant]["ratio_tfsynth_over_keras"] > 0
    assert result["input_pipeline"]["images_per_s"] > 0 and "362 px" in result["input_pipeline"]["source"]
    best = max(v["tfsynth"]["images_per_s"] for v in resnet.values() if isinstance(v, dict))
    cores = best * result["input_pipeline"]["cpu_s_per_1k_images"] / 1000  # images/s x CPU-s per image
    assert result["input_pipeline"]["cores_to_feed_best_resnet50_rate"] == pytest.approx(cores, rel=0.02, abs=1e-4)
    for part, key in (("fcn_resnet50_step", "s_per_step"), ("dpc_step", "s_per_step"),
                      ("aist_step", "aist_constrained_s_per_step"), ("aist_step", "cyclegan_s_per_step")):
        assert result[part][key] > 0, part


def test_unwritable_output_folder_is_one_line_before_any_work(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", "--quick", "--out",
                           str(tmp_path / "missing" / "x.json")], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 2 and "is not writable" in proc.stderr.strip().splitlines()[-1]
