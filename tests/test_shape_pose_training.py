"""train.shape_pose on the tiny config: the silhouette loss falls; --resume; eval.shape_pose on the trained model."""
import csv
import json
import os

import numpy as np
import pytest

from tfsynth.dpc import configs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny config, 100 steps of 3 objects x 3 views from 12 procedural objects (fixed seed): ~40 s on 2 cores."""
    from train import shape_pose

    workdir = str(tmp_path_factory.mktemp("dpc") / "tiny")
    results = shape_pose.main(["--config", "tiny", "--workdir", workdir, "--steps", "100", "--data", "procedural:12",
                               "--batch_models", "3", "--views_per_model", "3", "--log_every", "20",
                               "--checkpoint_every", "50", "--seed", "0"])
    return workdir, results


def test_tiny_run_silhouette_loss_falls_clearly(trained):
    workdir, results = trained
    rows = list(csv.DictReader(open(os.path.join(workdir, "history.csv"))))
    assert [int(r["step"]) for r in rows] == [20, 40, 60, 80, 100]
    first, last = float(rows[0]["proj_loss"]), float(rows[-1]["proj_loss"])
    assert last < 0.7 * first, (first, last)  # measured: 116.0 -> 57.0
    assert float(rows[-1]["silhouette_mse"]) < float(rows[0]["silhouette_mse"])
    assert float(rows[-1]["sigma"]) < float(rows[0]["sigma"]) and float(rows[-1]["keep_prob"]) > float(
        rows[0]["keep_prob"])
    assert results["steps_done"] == 100
    assert os.path.exists(os.path.join(workdir, "dpc.weights.h5"))
    events = [f for d, _, fs in os.walk(os.path.join(workdir, "logs")) for f in fs if "tfevents" in f]
    assert len(events) == 2  # train + val writers
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(os.path.join(workdir, "logs", "train"), size_guidance={"tensors": 0})
    acc.Reload()
    tags = acc.Tags()["tensors"]
    assert "loss/proj_loss" in tags and "silhouettes/true_vs_predicted" in tags
    assert any(t.startswith("point_clouds") for t in tags)


def test_eval_on_trained_tiny_model(trained, tmp_path):
    """Table 6.2 row with the ICP global alignment, JSON for the AIST issue, and the §6.3 KDE plot."""
    from eval import shape_pose as eval_job
    from PIL import Image

    from tfsynth.dpc import synthetic

    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):  # 'real' segmentations: RGBA with the mask as alpha
        m = synthetic.make_model(seed=9, index=i, views=1, image_size=32)
        rgba = np.concatenate([m["images"][0], (m["masks"][0] * 255)[..., None]], -1).astype(np.uint8)
        Image.fromarray(rgba).save(real / f"{i}.png")
    workdir, _ = trained
    out = tmp_path / "eval"
    res = eval_job.main(["--experiment", f"tiny={workdir}", "--data", "test=procedural:3", "--real", str(real),
                         "--align_models", "3", "--save_predictions", "--out", str(out)])
    (row,) = res["rows"]
    assert row["experiment"] == "tiny" and row["dataset"] == "test" and row["models"] == 3
    assert 0 < row["precision"] < 100 and 0 < row["coverage"] < 100
    assert row["chamfer"] == pytest.approx(row["precision"] + row["coverage"])
    assert 0 <= row["accuracy"] <= 1 and 0 <= row["median_error_deg"] <= 180
    assert len(res["alignment_quaternions"]["tiny"]) == 4
    assert len(res["real_mask_disagreement"]["tiny"]["scores"]) == 3
    assert (out / "real_kde.png").stat().st_size > 1000
    assert "| tiny | test |" in (out / "table.md").read_text()
    assert json.loads((out / "results.json").read_text())["rows"][0]["dataset"] == "test"
    with np.load(out / "predictions_tiny_test.npz") as p:
        assert p["points"].shape == (3, 5, 2000, 3) and p["poses"].shape == (3, 5, 4)


def test_resume_continues_from_checkpoint(tmp_path):
    from tfsynth.dpc import training

    config = configs.tiny().replace(data="procedural:4", val_data="", steps=4, batch_models=2, views_per_model=2,
                                    num_points=200, log_every=2, checkpoint_every=2)
    workdir = str(tmp_path / "r")
    training.run(config.replace(steps=4), workdir)
    with pytest.raises(FileExistsError):
        training.run(config, workdir)
    res = training.run(config.replace(steps=6), workdir, resume=True)
    assert res["steps_done"] == 6
    rows = list(csv.DictReader(open(os.path.join(workdir, "history.csv"))))
    assert [int(r["step"]) for r in rows] == [2, 4, 6]


def test_known_poses_drive_the_projection_and_leave_the_pose_head_alone():
    """predict_pose=False (the reference's camera-supervised setting): one pose 'candidate', no student; the loss
    depends on the cameras passed in, and training moves the shape network but not the pose head's biases."""
    from tfsynth.dpc import data, training

    config = configs.tiny().replace(predict_pose=False, num_points=300, batch_models=2, views_per_model=2, steps=3)
    assert config.pose_candidates == 1 and config.net_kwargs()["num_candidates"] == 1
    assert not config.net_kwargs()["student"]
    trainer = training.DPCTrainer(config)
    assert "pose_student" not in trainer.model.output
    mset = data.load_source("procedural:2", image_size=32, views=2)
    images, masks, quats = data.gather_batch(mset, np.array([0, 1]), np.array([[0, 1], [0, 1]]))
    logs_true, extra = trainer.evaluate(images, masks, quats)
    assert "student_loss" not in logs_true and extra["proj"]["silhouette"].shape[0] == 4  # 4 views x 1 camera
    from tfsynth.models import dpc

    out = extra["out"]  # each object's shape (from its first view) seen from each view's true camera
    sigma, _ = trainer.schedules(trainer.step)
    expected = dpc.project(dpc.repeat_rows(out["points"][::2], 2), quats, trainer.projection, sigma,
                           dpc.repeat_rows(out["scale"][::2], 2))["silhouette"]
    np.testing.assert_allclose(extra["proj"]["silhouette"], expected, atol=1e-5)
    turned = np.stack([data.synthetic.geo.q_multiply(q, [np.cos(0.6), 0.0, np.sin(0.6), 0.0]) for q in quats])
    logs_turned, extra_turned = trainer.evaluate(images, masks, turned.astype(np.float32))
    assert np.abs(extra_turned["proj"]["silhouette"] - expected).max() > 1e-3
    assert logs_turned["proj_loss"] != pytest.approx(logs_true["proj_loss"], rel=1e-6)
    pose_bias = [w for w in trainer.model.trainable_weights if w.path.startswith("pose_out") and "bias" in w.path]
    decoder = [w for w in trainer.model.trainable_weights if w.path.startswith("point_decoder")][0]
    before = [np.array(w.numpy()) for w in pose_bias], np.array(decoder.numpy())
    for _ in range(3):
        trainer.train_step(images, masks, quats)
    assert pose_bias and all(np.array_equal(b, w.numpy()) for b, w in zip(before[0], pose_bias))
    assert not np.array_equal(before[1], decoder.numpy())


def test_bad_inputs_name_the_problem(tmp_path):
    from tfsynth.dpc import data

    with pytest.raises(configs.ConfigError, match="num_candidates"):
        configs.tiny().replace(num_candidates=0)
    with pytest.raises(data.SourceError, match="procedural:N"):
        data.load_source("procedural:x")
    bad = tmp_path / "npz"
    bad.mkdir()
    np.savez(bad / "m0.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    with pytest.raises(data.SourceError, match="m0.npz: missing array"):
        data.load_source(str(bad))
    # A saved set reads back unchanged (the hand-over format for restyled datasets).
    procedural = data.load_source("procedural:2", image_size=16, views=2)
    data.save_npz_folder(procedural, str(tmp_path / "good"))
    back = data.load_source(str(tmp_path / "good"))
    np.testing.assert_array_equal(back.images, procedural.images)
    np.testing.assert_array_equal(back.quaternions, procedural.quaternions)
    assert back.model_ids == ["proc00000", "proc00001"]
