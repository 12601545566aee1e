"""`python -m train.finetune`: flags and source errors, and a real (tiny) cross-validated search with its final run,
TensorBoard hparams and resume."""
import csv
import io
import json
import os
import subprocess
import sys

import pytest

from train import finetune as job

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "train.finetune", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_config_and_source_flags():
    args = job.build_parser().parse_args(["--config", "digits_demo", "--init", "scratch", "--lr", "0.02",
                                          "--grid_lr", "0.1,0.2", "--cv_folds", "3"])
    config = job.config_from_args(args)
    assert config.data == "digits/32px" and config.lr == 0.02 and config.grid_lr == (0.1, 0.2)
    assert config.cv_folds == 3 and config.crop_size == 28
    recipe = job.config_from_args(job.build_parser().parse_args([]))
    assert (recipe.lr, recipe.momentum, recipe.weight_decay, recipe.batch_size, recipe.epochs) == (
        0.01, 0.9, 1e-4, 256, 90)
    assert (recipe.lr_milestones, recipe.resize, recipe.crop_size) == ((30, 60), 256, 224)
    assert recipe.mean == (0.485, 0.456, 0.406) and recipe.std == (0.229, 0.224, 0.225)
    source = job.source_from_args(args, config)
    assert (source.kind, source.arch, source.label) == ("scratch", "resnet50", "scratch")


@pytest.mark.parametrize("args, message", [
    (["--config", "digits_demo"], "give exactly one pre-trained source"),
    (["--init", "scratch", "--backbone", "b.keras"], "give exactly one pre-trained source"),
    (["--reference", "vgg16"], "--reference vgg16 needs --weights PATH"),
    (["--init", "scratch", "--cv_folds", "1"], "--cv_folds must be 0 (no search) or >= 2"),
    (["--init", "scratch", "--resize", "100"], "--resize 100 is smaller than --crop_size 224"),
    (["--init", "scratch", "--arch", "resnet7"], "unknown --arch 'resnet7'"),
])
def test_bad_flags_exit_with_a_clear_message(args, message):
    proc = _cli(*args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: {message}" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_backbone_file_is_named(tmp_path):
    proc = _cli("--config", "digits_demo", "--backbone", str(tmp_path / "none.keras"), "--workdir",
                str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"error: --backbone file {tmp_path / 'none.keras'} does not exist" in proc.stderr


def _tags(directory):
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return set(acc.Tags()["tensors"])


@pytest.mark.slow
def test_cv_search_then_final_run_and_resume(tmp_path, capsys):
    import tensorflow_datasets as tfds

    import tfds_builders.digits  # noqa: F401

    data_dir = str(tmp_path / "tfds")
    tfds.builder("digits", config="8px", data_dir=data_dir).download_and_prepare()
    workdir = tmp_path / "cv-run"
    args = ["--config", "digits_demo", "--data", "digits/8px", "--data_dir", data_dir, "--init", "scratch",
            "--arch", "resnet18", "--resize", "16", "--crop_size", "16", "--train_split", "train[:60]",
            "--eval_split", "test[:40]", "--batch_size", "10", "--epochs", "1", "--lr_milestones", "1",
            "--cv_folds", "2", "--grid_lr", "0.001,0.05", "--grid_wd", "0.0001", "--no-deterministic",
            "--workdir", str(workdir)]
    results = job.main(args)
    out = capsys.readouterr().out
    assert "CV search: 2 grid points x 2 folds of 60 examples" in out

    with open(workdir / "cv" / "cv_results.json") as f:
        cv_results = json.load(f)
    trials = cv_results["trials"]
    assert [(t["lr"], t["fold"]) for t in trials] == [(0.001, 0), (0.001, 1), (0.05, 0), (0.05, 1)]
    assert cv_results["fold_sizes"] == [30, 30] and all(t["train_examples"] == 30 for t in trials)
    means = {s["lr"]: s["mean_top1"] for s in cv_results["summary"]}
    for trial in trials:  # each trial scored on its held-out fold: the trial's own results.json
        with open(os.path.join(trial["workdir"], "results.json")) as f:
            trial_results = json.load(f)
        assert trial_results["transfer"]["role"] == "cv_trial" and trial_results["data"]["eval_examples"] == 30
        assert trial_results["transfer"]["top1"] == trial["top1"]
        assert not os.path.exists(os.path.join(trial["workdir"], "checkpoints"))  # deleted once finished
    best = max(means, key=lambda lr: (means[lr], -lr))  # ties go to the earlier grid point
    assert cv_results["best"]["lr"] == best
    rows = list(csv.DictReader(io.StringIO((workdir / "cv" / "cv_results.csv").read_text())))
    assert len(rows) == 4 and rows[0]["fold"] == "0"

    entry = results["transfer"]
    assert entry["role"] == "final" and entry["lr"] == best and entry["cv"]["best"]["lr"] == best
    assert results["config"]["lr"] == best and results["data"]["train_examples"] == 60
    assert results["data"]["eval_examples"] == 40 and os.path.exists(workdir / "model.keras")

    # TensorBoard: one hparams experiment for the sweep, a session per trial and per grid-point summary.
    assert "_hparams_/experiment" in _tags(str(workdir / "cv" / "logs"))
    assert {"_hparams_/session_start_info", "final_top1"} <= _tags(
        str(workdir / "cv" / "lr0.05_wd0.0001" / "fold1" / "logs"))
    assert {"_hparams_/session_start_info", "cv_mean_top1", "cv_std_top1"} <= _tags(
        str(workdir / "cv" / "lr0.05_wd0.0001" / "summary"))
    assert "_hparams_/session_start_info" in _tags(str(workdir / "logs"))

    # Without --resume the workdir is refused; with it, finished trials and the finished run are reused.
    with pytest.raises(FileExistsError, match="--resume"):
        job.main(args)
    again = job.main(args + ["--resume"])
    out = capsys.readouterr().out
    assert out.count("done before") == 4 and again["epochs_this_run"] == []
    assert again["transfer"]["top1"] == pytest.approx(entry["top1"])
