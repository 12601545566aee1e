"""eval.aist: config validation, real-segmentation loading, and the tiny experiment end to end (slow)."""
import csv
import json
import os

import numpy as np
import pytest

from tfsynth.aist import experiment


def test_config_validation_and_derived_configs():
    cfg = experiment.tiny()
    assert cfg.runs() == {"stylized2": "tiny", "stylized3": "tiny_less_constrained"}
    with pytest.raises(experiment.ConfigError, match="NAME=PRESET"):
        cfg.replace(aist_runs="stylized2")
    with pytest.raises(experiment.ConfigError, match="reserved or repeated"):
        cfg.replace(aist_runs="baseline=tiny")
    with pytest.raises(experiment.ConfigError, match="unknown train.aist preset 'constrianed'"):
        cfg.replace(aist_runs="s2=constrianed")
    with pytest.raises(experiment.ConfigError, match="alignment"):
        cfg.replace(alignment="procrustes")
    a = experiment.aist_config(cfg, "tiny_less_constrained", "X", "Y")
    assert (a.lambda_alpha_G, a.lambda_resdist_F, a.image_size, a.ngf) == (1.0, 1.25, 32, 8)
    assert (a.n_epochs, a.n_epochs_decay, a.steps_per_epoch, a.x_data, a.y_data) == (2, 2, 3, "X", "Y")
    full = experiment.aist_config(experiment.cars(), "constrained", "X", "Y")
    assert (full.image_size, full.ngf, full.n_blocks, full.n_epochs, full.batch_size) == (256, 64, 9, 100, 4)
    d = experiment.dpc_config(cfg, "tfds:a/b:train", "tfds:a/b:validation")
    assert (d.steps, d.batch_models, d.views_per_model, d.log_every, d.data) == (40, 3, 3, 25, "tfds:a/b:train")
    assert experiment.dpc_config(experiment.cars(), "x", "y").steps == 600000


def test_real_segmentations_from_rgba_folder(tmp_path):
    from tfsynth.aist import standin
    from tfsynth.dpc import data as dpc_data

    folder = experiment.resolve_real("standin:3", str(tmp_path / "real"), 32, seed=1)
    images, masks = experiment.load_real_segmentations(folder)
    ref = standin.standin_image(1, 0, 32)
    assert images.shape == (3, 32, 32, 3) and masks.shape == (3, 32, 32)
    np.testing.assert_array_equal(masks[0], ref[..., 3] > 127)
    assert (images[0][ref[..., 3] == 0] == 255).all()  # composited on white for DPC
    with pytest.raises(experiment.ConfigError, match="standin:N"):
        experiment.resolve_real("standin:many", str(tmp_path / "x"), 32, 0)
    with pytest.raises(dpc_data.SourceError):
        experiment.load_real_segmentations(str(tmp_path / "no_such_folder"))


def test_real_segmentations_from_tfds_rgba_image_feature(tmp_path):
    """The stanford_cars_clean layout: one RGBA 'image' per example, alpha = the segmentation."""
    import tensorflow_datasets as tfds

    from tfsynth.aist import standin

    class AistExpTestReal(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(24, 24, 4), encoding_format="png")}))

        def _split_generators(self, dl_manager):
            return {"test": self._generate_examples()}

        def _generate_examples(self):
            for i in range(3):
                yield i, {"image": standin.standin_image(5, i, 24)}

    AistExpTestReal(data_dir=str(tmp_path)).download_and_prepare()
    images, masks = experiment.load_real_segmentations("tfds:aist_exp_test_real:test", str(tmp_path))
    assert images.shape == (3, 24, 24, 3) and masks.shape == (3, 24, 24)
    refs = [standin.standin_image(5, i, 24) for i in range(3)]
    assert sorted(int(m.sum()) for m in masks) == sorted(int((r[..., 3] > 127).sum()) for r in refs)
    assert all((im[m == 0] == 255).all() for im, m in zip(images, masks))


@pytest.mark.slow
def test_tiny_experiment_end_to_end(tmp_path):
    """The whole chain of `python -m eval.aist --config tiny` (source build, AIST run, stylised dataset, DPC models,
    evaluation), shortened for CI: one AIST run instead of two, 15 DPC steps, 6 real stand-ins (~2 min here)."""
    from eval import aist as eval_aist

    wd = str(tmp_path / "exp")
    args = ["--config", "tiny", "--workdir", wd, "--real_test", "standin:6", "--dpc_steps", "15", "--aist_runs",
            "stylized2=tiny_less_constrained"]
    res = eval_aist.main(args)
    out = os.path.join(wd, "eval")
    for name in ("table.md", "table.csv", "real_table.md", "real_table.csv", "real_kde.png", "reality_gap_kde.png",
                 "results.json"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    with open(os.path.join(out, "table.csv")) as f:
        rows = list(csv.DictReader(f))
    experiments, datasets = ["baseline", "stylized2"], ["original", "stylized2"]
    assert [(r["experiment"], r["dataset"]) for r in rows] == [(e, d) for e in experiments for d in datasets]
    for r in rows:
        for k in ("precision", "coverage", "chamfer", "accuracy", "median_error_deg"):
            assert np.isfinite(float(r[k])), (r, k)
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and int(r["models"]) == 2 and int(r["views"]) == 3
        assert float(r["chamfer"]) == pytest.approx(float(r["precision"]) + float(r["coverage"]), rel=1e-6)
    with open(os.path.join(out, "real_table.csv")) as f:
        real = list(csv.DictReader(f))
    assert [r["experiment"] for r in real] == experiments
    for r in real:
        assert int(r["real_images"]) == 6 and int(r["synthetic_images"]) == 6
        assert all(np.isfinite(float(r[k])) and float(r[k]) >= 0 for k in ("real_mean", "synthetic_median"))
    table = open(os.path.join(out, "table.md")).read().splitlines()
    assert table[0].startswith("| Experiment | Dataset | Precision | Coverage | Chamfer") and len(table) == 2 + 4
    assert len(open(os.path.join(out, "real_table.md")).read().splitlines()) == 2 + 2
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    assert saved["rows"] == json.loads(json.dumps(res["rows"]))
    agreement = saved["aist"]["stylized2"]["mask_agreement"]
    assert sorted(agreement) == ["test", "train", "validation"]
    assert 0.0 <= agreement["test"]["mean_iou"] <= 1.0 and agreement["train"]["views"] == 6 * 3
    assert saved["aist"]["stylized2"]["seconds_per_step"] > 0 and saved["aist"]["stylized2"]["preset"] == (
        "tiny_less_constrained")
    assert set(saved["dpc"]) == set(experiments) and len(saved["alignment_quaternions"]) == 2
    assert saved["dpc"]["baseline"]["last_logged"]["step"] == 15
    # A rerun finds every stage done and only re-evaluates.
    again = eval_aist.main(args)
    assert again["rows"] == res["rows"]
    assert again["timings_s"]["aist_stylized2_s"] < 5 and again["timings_s"]["dpc_baseline_s"] < 5
