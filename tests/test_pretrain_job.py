"""End-to-end runs of `python -m train.pretrain` on a real fractal_db/tiny (small ResNet, small crops)."""
import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import tfsynth.training.optim  # noqa: F401 - registers TorchSGD / MultiStepSchedule for loading model.keras
from tests.tiny_tfds import tiny_data_dir
from train import pretrain as job
from tests.tolerance import assert_close_scaled

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--arch", "resnet18", "--crop_size", "32", "--batch_size", "16", "--eval_batch_size", "16",
         "--lr", "0.01", "--lr_milestones", "1"]


def _tags(directory):
    acc = event_accumulator.EventAccumulator(directory, size_guidance={event_accumulator.TENSORS: 0})
    acc.Reload()
    return set(acc.Tags()["tensors"])


def _files(workdir):
    return sorted(os.path.relpath(os.path.join(d, f), workdir) for d, _, fs in os.walk(workdir) for f in fs)


def test_two_epochs_write_logs_checkpoint_and_loadable_models(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    # In-process: --no-deterministic keeps op determinism (process-global, irreversible) off for other tests.
    results = job.main(["--data_dir", tiny_data_dir(), "--workdir", workdir, "--epochs", "2", "--no-deterministic",
                        *SMALL])
    out = capsys.readouterr().out
    assert f"tensorboard --logdir {workdir}/logs" in out and "Final held-out accuracy (train[75%:]" in out

    assert results["epochs_completed"] == 2 and results["epochs_this_run"] == [0, 1]
    assert results["data"]["num_classes"] == 4 and results["data"]["steps_per_epoch"] == 3
    assert [h["epoch"] for h in results["history"]] == [0, 1]
    assert [h["learning_rate"] for h in results["history"]] == pytest.approx([0.01, 0.001])  # MultiStepLR([1])
    assert set(results["final_eval"]) == {"loss", "top1", "top5"}
    assert results["config"]["arch"] == "resnet18" and results["config"]["data"] == "fractal_db/tiny"
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f) == results

    files = _files(workdir)
    assert [f for f in files if f.startswith("checkpoints")] == ["checkpoints/ckpt-epoch0001.keras",
                                                                  "checkpoints/ckpt-epoch0002.keras"]  # keep 2
    assert not [f for f in files if ".tmp" in f]
    assert {"model.keras", "backbone.keras", "results.json", "config.json", "history.csv"} <= set(files)

    logs = os.path.join(workdir, "logs")
    assert {"epoch_loss", "epoch_top1", "epoch_top5", "epoch_learning_rate", "train/first_batch",
            "samples/fractal_db_tiny"} <= _tags(os.path.join(logs, "train"))
    assert {"epoch_loss", "epoch_top1", "epoch_top5"} <= _tags(os.path.join(logs, "validation"))
    assert "_hparams_/session_start_info" in _tags(logs)

    model = keras.models.load_model(os.path.join(workdir, "model.keras"))  # with its TorchSGD state
    assert int(model.optimizer.iterations.numpy()) == 6
    backbone = keras.models.load_model(os.path.join(workdir, "backbone.keras"))
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3)).astype(np.uint8)
    features = backbone.predict(images, verbose=0)
    assert features.shape == (3, 512)
    fc = model.get_layer("resnet18").get_layer("fc")
    assert_close_scaled(features @ fc.kernel.numpy() + fc.bias.numpy(), model.predict(images, verbose=0), rel=1e-4)

    with pytest.raises(FileExistsError, match="--resume"):
        job.main(["--data_dir", tiny_data_dir(), "--workdir", workdir, "--epochs", "2", *SMALL])


def test_bad_data_spec_exits_with_a_clear_message():
    proc = subprocess.run([sys.executable, "-m", "train.pretrain", "--data", "fractal_db/nope"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "error: unknown config 'nope' of dataset 'fractal_db'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sigkill_after_first_checkpoint_then_resume(tmp_path):
    workdir = str(tmp_path / "run")
    args = [sys.executable, "-m", "train.pretrain", "--data_dir", tiny_data_dir(), "--workdir", workdir,
            "--epochs", "6", "--eval_split", "", *SMALL]
    first_ckpt = os.path.join(workdir, "checkpoints", "ckpt-epoch0001.keras")
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while not os.path.exists(first_ckpt) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert os.path.exists(first_ckpt), "no checkpoint of epoch 1 appeared"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not os.path.exists(os.path.join(workdir, "results.json"))
    assert not os.path.exists(os.path.join(workdir, "model.keras"))
    killed_at = max(int(f[len("ckpt-epoch"):-len(".keras")]) for f in os.listdir(os.path.join(workdir, "checkpoints"))
                    if f.startswith("ckpt-epoch"))
    assert 1 <= killed_at < 6

    done = subprocess.run(args + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Resuming from {workdir}/checkpoints/ckpt-epoch{killed_at:04d}.keras (epoch {killed_at} of 6" in done.stdout
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["epochs_completed"] == 6 and results["resumed_from_epoch"] == killed_at
    assert results["epochs_this_run"] == list(range(killed_at, 6))  # continued, not restarted
    assert [h["epoch"] for h in results["history"]] == list(range(6))  # one row per epoch across both runs
    assert [h["learning_rate"] for h in results["history"]] == pytest.approx([0.01] + [0.001] * 5)
    model = keras.models.load_model(os.path.join(workdir, "model.keras"))
    assert int(model.optimizer.iterations.numpy()) == 6 * 3

    # The same run without interruption: same data stream, same updates, bitwise the same model.
    straight = str(tmp_path / "straight")
    proc = subprocess.run(args[:args.index("--workdir") + 1] + [straight] + args[args.index("--workdir") + 2:],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(straight, "results.json")) as f:
        assert json.load(f)["history"] == results["history"]
    reference = keras.models.load_model(os.path.join(straight, "model.keras"))
    for a, b in zip(reference.weights, model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
