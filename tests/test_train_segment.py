"""End to end: `python -m train.segment --config tiny` (noise_scenes/perlin_tiny -> coco_seg20/tiny from the COCO
fixture, real FCN-ResNet-50 at 32 px) and `python -m eval.segmentation` on its workdir and on its models."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from eval import segmentation as eval_job
from tests.test_coco_seg20 import tiny_seg_data_dir
from tfsynth.segmentation import metrics
from train import segment as job

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ["baseline", "pretrain-perlin_tiny", "transfer-perlin_tiny"]


def _tags(directory):
    acc = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return acc


def _history(workdir, stage):
    with open(os.path.join(workdir, stage, "history.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("segment") / "run")
    start = time.time()
    results = job.main(["--config", "tiny", "--data_dir", tiny_seg_data_dir(), "--workdir", workdir])
    return workdir, results, time.time() - start


def test_tiny_run_trains_every_stage_and_writes_everything(tiny_run, capsys):
    workdir, results, seconds = tiny_run
    print(f"tiny train.segment run: {seconds:.0f} s")
    assert list(results["stages"]) == STAGES
    assert {s: results["stages"][s]["epochs_completed"] for s in STAGES} == dict(zip(STAGES, (1, 2, 1)))
    assert results["stages"]["pretrain-perlin_tiny"]["num_classes"] == 4
    assert results["stages"]["baseline"]["num_classes"] == 21
    assert results["stages"]["pretrain-perlin_tiny"]["optimizer_steps"] == 2 * 3  # 12 images, batch 4
    transfer = results["stages"]["transfer-perlin_tiny"]["transfer"]
    assert transfer["mode"] == "backbone" and transfer["layers_transferred"] == 106  # 53 convs + 53 BNs
    assert transfer["layers_reinitialised"] == ["classifier.0", "classifier.1", "classifier.4"]
    assert transfer["source"].endswith("pretrain-perlin_tiny/weights_torchvision.npz")

    for stage, epochs in zip(STAGES, ([0, 1], [0, 1, 2], [0, 1])):
        history = _history(workdir, stage)
        assert [e["epochs_completed"] for e in history] == epochs
        for entry in history:  # stored scores are the metrics of the stored confusion matrix
            scores = metrics.scores(entry["confusion_matrix"])
            assert all(entry[m] == pytest.approx(scores[m]) for m in metrics.METRICS)
            assert entry["num_images"] == (4 if stage.startswith("pretrain") else 2)
        assert history[-1]["train_loss"] > 0 and history[0]["train_loss"] is None
        files = os.listdir(os.path.join(workdir, stage))
        assert {"model.keras", "weights_torchvision.npz", "history.json", "stage.json", "results.json"} <= set(files)
        assert sorted(os.listdir(os.path.join(workdir, stage, "checkpoints"))) == [  # the newest two are kept
            f"ckpt-epoch{e:04d}.keras" for e in epochs[1:][-2:]]
        val = _tags(os.path.join(workdir, stage, "logs", "validation"))
        assert {"epoch_loss", *(f"epoch_{m}" for m in metrics.METRICS), "overlays/image_truth_prediction"} <= set(
            val.Tags()["tensors"])
        assert [e.step for e in val.Tensors("epoch_macro_f1")] == epochs
        train = _tags(os.path.join(workdir, stage, "logs", "train"))
        assert {"epoch_loss", "epoch_learning_rate"} <= set(train.Tags()["tensors"])
        assert any(t.startswith("samples/") for t in train.Tags()["tensors"])
    assert not [f for _, _, fs in os.walk(workdir) for f in fs if ".tmp" in f]

    report = os.path.join(workdir, "report")
    for name in ("table2.md", "table2.csv", "table3.md", "table3.csv", "figure4_f1.png", "figure5_f1.png",
                 "figure4_all_metrics.png", "figure5_all_metrics.png", "table3_per_class_iou.md", "report.json"):
        assert os.path.getsize(os.path.join(report, name)) > 0, name
    assert "| perlin_tiny |" in results["tables"]["table2"]
    assert "| baseline |" in results["tables"]["table3"] and "| perlin_tiny |" in results["tables"]["table3"]
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["tables"] == results["tables"]

    # The final model loads with its optimizer and predicts input-sized 21-class logits.
    model = keras.models.load_model(os.path.join(workdir, "transfer-perlin_tiny", "model.keras"))
    assert int(model.optimizer.iterations.numpy()) == 1
    out = model.predict(np.zeros((1, 40, 36, 3), np.uint8), verbose=0)
    assert out["out"].shape == (1, 40, 36, 21)

    # Closing-note numbers of this run (shown with -s).
    print(results["tables"]["table2"] + "\n" + results["tables"]["table3"])
    capsys.readouterr()


def test_eval_job_reproduces_the_run(tiny_run, tmp_path):
    workdir, results, _ = tiny_run
    report = eval_job.main(["--run", workdir, "--workdir", str(tmp_path / "rep")])
    assert report["tables"] == results["tables"]
    assert os.path.exists(tmp_path / "rep" / "figure5_f1.png")
    # Re-evaluating the saved model on the same split and sizes gives the run's last validation pass exactly.
    model = os.path.join(workdir, "transfer-perlin_tiny", "model.keras")
    out = eval_job.main(["--model", f"perlin={model}", "--data", "coco_seg20/tiny", "--data_dir", tiny_seg_data_dir(),
                         "--eval_size", "32", "--batch_size", "4", "--workdir", str(tmp_path / "models")])
    final = _history(workdir, "transfer-perlin_tiny")[-1]
    assert out["scores"]["perlin"]["confusion_matrix"] == final["confusion_matrix"]
    assert out["scores"]["perlin"]["loss"] == pytest.approx(final["val_loss"], rel=1e-5)
    assert "| perlin |" in out["tables"]["models"]
    everything = eval_job.main(["--model", model, "--data", "coco_seg20/tiny", "--data_dir", tiny_seg_data_dir(),
                                "--eval_size", "32", "--labels", "all", "--workdir", str(tmp_path / "all")])
    row = everything["scores"]["transfer-perlin_tiny"]
    expected = metrics.scores(final["confusion_matrix"], labels=range(21))
    assert row["macro_iou"] == pytest.approx(expected["macro_iou"]) and row["micro_accuracy"] == final["micro_accuracy"]
    with pytest.raises(ValueError, match="predicts 21 classes, noise_scenes/perlin_tiny has 4"):
        eval_job.main(["--model", model, "--data", "noise_scenes/perlin_tiny", "--data_dir", tiny_seg_data_dir()])


def test_eval_job_old_workdir_usage_is_one_line_naming_the_new_flags(tmp_path, capsys, monkeypatch):
    """`--workdir` is the output folder in every job; eval.segmentation's run is `--run` (it was `--workdir`, with
    `--out` the output): the old forms stop at once, exit 2, with one line saying what to use."""
    from tfsynth.cli import run_cli

    monkeypatch.chdir(tmp_path)
    for argv, message in (
            (["--workdir", "runs/seg", "--out", "rep"],
             "--out is gone; the output folder is --workdir, as in every job: use --run runs/seg --workdir rep"),
            (["--workdir", "runs/seg"],
             "--workdir is the output folder now, as in every job: give the train.segment run as --run runs/seg"),
            (["--model", "m.keras", "--out", "rep"],
             "--out is gone; the output folder is --workdir, as in every job: use --workdir rep"),
            ([], "give either --run (a train.segment run) or one or more --model"),
            (["--run", "runs/seg", "--model", "m.keras"],
             "give either --run (a train.segment run) or one or more --model")):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(eval_job.main, user_errors=(ValueError,), argv=argv)
        assert exit_info.value.code == 2 and capsys.readouterr().err == f"error: {message}\n", argv
    assert os.listdir(tmp_path) == []


def test_resume_skips_finished_stages_and_finishes_the_rest(tiny_run, tmp_path, capsys):
    workdir, results, _ = tiny_run
    copy = str(tmp_path / "run")
    shutil.copytree(workdir, copy)
    for name in ("results.json", "model.keras", "weights_torchvision.npz"):  # as if killed after the last epoch
        os.remove(os.path.join(copy, "transfer-perlin_tiny", name))
    os.remove(os.path.join(copy, "results.json"))
    with pytest.raises(FileExistsError, match="--resume"):
        job.main(["--config", "tiny", "--data_dir", tiny_seg_data_dir(), "--workdir", copy])
    again = job.main(["--config", "tiny", "--data_dir", tiny_seg_data_dir(), "--workdir", copy, "--resume"])
    out = capsys.readouterr().out
    assert "[baseline] finished earlier" in out and "[pretrain-perlin_tiny] finished earlier" in out
    assert "[transfer-perlin_tiny] resuming from" in out and "(epoch 1 of 1 done)" in out
    assert again["stages"]["transfer-perlin_tiny"]["epochs_this_run"] == []
    assert again["stages"]["transfer-perlin_tiny"]["transfer"] == results["stages"]["transfer-perlin_tiny"]["transfer"]
    assert again["tables"] == results["tables"]
    assert _history(copy, "transfer-perlin_tiny") == _history(workdir, "transfer-perlin_tiny")


@pytest.mark.slow
def test_torchvision_recipe_features_run(tmp_path):
    """Aux head (loss weight 0.5, x10 LR), poly schedule, RandomResize + flip + crop: one tiny stage. (Momentum is
    left out here: its optimizer state costs ~8 s to build; tests/test_segmentation_pipeline.py checks it.)"""
    from tfsynth.segmentation import configs, training

    config = configs.tiny().replace(pretrain_data=(), aux_loss=True, crop_size=24, hflip_prob=0.5, train_min_size=20,
                                    train_max_size=40, lr_schedule="poly", eval_before_training=False, num_overlays=0)
    results = training.run(config, str(tmp_path / "run"), data_dir=tiny_seg_data_dir(), verbose=0)
    assert list(results["stages"]) == ["baseline"] and "table3" in results["tables"]
    history = _history(str(tmp_path / "run"), "baseline")
    assert [e["epochs_completed"] for e in history] == [1] and history[0]["learning_rate"] == pytest.approx(0.02)
    model = keras.models.load_model(str(tmp_path / "run" / "baseline" / "model.keras"))
    assert set(model.output) == {"out", "aux"}
    factors = dict(zip((v.path for v in model.trainable_variables), model.optimizer._lr_factors))
    assert factors["aux_classifier.4/kernel"] == 10.0 and factors["classifier.4/kernel"] == 1.0


def test_bad_config_exits_with_a_clear_message():
    proc = subprocess.run([sys.executable, "-m", "train.segment", "--config", "tiny", "--transfer", "everything"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: transfer must be one of ('backbone', 'matching')" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sigkill_during_pretraining_then_resume(tmp_path):
    workdir = str(tmp_path / "run")
    args = [sys.executable, "-m", "train.segment", "--config", "tiny", "--data_dir", tiny_seg_data_dir(),
            "--workdir", workdir]
    first_ckpt = os.path.join(workdir, "pretrain-perlin_tiny", "checkpoints", "ckpt-epoch0001.keras")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 400
        while not os.path.exists(first_ckpt) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(first_ckpt), "no checkpoint of pre-training epoch 1 appeared"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not os.path.exists(os.path.join(workdir, "pretrain-perlin_tiny", "results.json"))
    done = subprocess.run(args + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[baseline] finished earlier" in done.stdout
    assert "[pretrain-perlin_tiny] resuming from" in done.stdout
    assert [e["epochs_completed"] for e in _history(workdir, "pretrain-perlin_tiny")] == [0, 1, 2]
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["stages"]["pretrain-perlin_tiny"]["optimizer_steps"] == 6
