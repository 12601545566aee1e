"""experiments.aist_shape_pose (the AIST shape & pose chain) and eval.aist (its evaluation): config validation,
stage layout, real-segmentation loading, and the tiny experiment end to end (slow)."""
import csv
import json
import os

import numpy as np
import pytest

from eval import aist as eval_aist
from experiments import aist_shape_pose as experiment
from experiments import common


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


def test_stages_and_what_each_reads():
    cfg = experiment.tiny()
    assert experiment.stage_names(cfg) == ["data", "aist-stylized2", "stylize-stylized2", "aist-stylized3",
                                           "stylize-stylized3", "dpc-baseline", "dpc-stylized2", "dpc-stylized3",
                                           "report"]
    assert experiment.needs(cfg, "dpc-baseline") == ["data"]
    assert experiment.needs(cfg, "dpc-stylized3") == ["data", "stylize-stylized3"]
    assert experiment.needs(cfg, "report") == experiment.stage_names(cfg)[:-1]


def test_a_stage_whose_inputs_are_missing_is_one_line(tmp_path, capsys):
    from tfsynth.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(experiment.main, user_errors=(ValueError,),
                argv=["--config", "tiny", "--workdir", str(tmp_path / "w"), "--stage", "dpc-stylized2"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: dpc-stylized2: stages not done yet: data, stylize-stylized2\n"
    with pytest.raises(SystemExit) as exit_info:  # inside the repository (not under runs/): refused before any work
        run_cli(experiment.main, user_errors=(ValueError,),
                argv=["--config", "tiny", "--workdir", os.path.join(common.REPO, "aist_exp_test_wd")])
    assert exit_info.value.code == 2 and "is inside the repository" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(common.REPO, "aist_exp_test_wd"))


def test_eval_aist_flags_are_checked_before_any_work(tmp_path, capsys):
    from tfsynth.cli import run_cli

    base = ["--real", "x", "--workdir", str(tmp_path / "out")]
    for argv, message in (
            (["--model", "baseline", "--test", "original=tfds:a/b"], "--model expects NAME=VALUE, got 'baseline'"),
            (["--model", "a=d", "--model", "a=e", "--test", "o=tfds:a/b"], "--model: name 'a' is repeated"),
            (["--model", "a=d", "--test", "o=folder"], "--test: expected NAME=tfds:name/config[:split], got 'folder'"),
            (["--model", "a=d", "--test", "o=tfds:a/b", "--align_models", "0"], "--align_models 0: must be >= 1")):
        with pytest.raises(SystemExit) as exit_info:
            run_cli(eval_aist.main, user_errors=(ValueError,), argv=argv + base)
        assert exit_info.value.code == 2 and capsys.readouterr().err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()
    assert eval_aist.with_test_split("tfds:a/b") == "tfds:a/b:test"
    assert eval_aist.with_test_split("tfds:a/b:validation") == "tfds:a/b:validation"


def test_real_segmentations_from_rgba_folder(tmp_path):
    from tfsynth.aist import standin
    from tfsynth.dpc import data as dpc_data

    folder = experiment.resolve_real("standin:3", str(tmp_path / "real"), 32, seed=1)
    images, masks = eval_aist.load_real_segmentations(folder)
    ref = standin.standin_image(1, 0, 32)
    assert images.shape == (3, 32, 32, 3) and masks.shape == (3, 32, 32)
    np.testing.assert_array_equal(masks[0], ref[..., 3] > 127)
    assert (images[0][ref[..., 3] == 0] == 255).all()  # composited on white for DPC
    with pytest.raises(experiment.ConfigError, match="standin:N"):
        experiment.resolve_real("standin:many", str(tmp_path / "x"), 32, 0)
    with pytest.raises(dpc_data.SourceError):
        eval_aist.load_real_segmentations(str(tmp_path / "no_such_folder"))


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
    images, masks = eval_aist.load_real_segmentations("tfds:aist_exp_test_real:test", str(tmp_path))
    assert images.shape == (3, 24, 24, 3) and masks.shape == (3, 24, 24)
    refs = [standin.standin_image(5, i, 24) for i in range(3)]
    assert sorted(int(m.sum()) for m in masks) == sorted(int((r[..., 3] > 127).sum()) for r in refs)
    assert all((im[m == 0] == 255).all() for im, m in zip(images, masks))


@pytest.mark.slow
def test_tiny_experiment_end_to_end(tmp_path):
    """The whole chain of `python -m experiments.aist_shape_pose --config tiny` (source build, AIST run, stylised
    dataset, DPC models, evaluation by eval.aist), shortened for CI: one AIST run instead of two, 15 DPC steps, 6 real
    stand-ins; then `python -m eval.aist` on its models reproduces the table, and a rerun does nothing."""
    wd = str(tmp_path / "exp")
    args = ["--config", "tiny", "--workdir", wd, "--real_test", "standin:6", "--dpc_steps", "15", "--aist_runs",
            "stylized2=tiny_less_constrained"]
    done = experiment.main(args)
    assert list(done) == ["data", "aist-stylized2", "stylize-stylized2", "dpc-baseline", "dpc-stylized2", "report"]
    out = os.path.join(wd, "report")
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
    assert len(saved["rows"]) == 4 and saved["experiment"] == "aist_shape_pose"
    assert saved["test_sets"] == {"original": "tfds:multiview_shapes/procedural_tiny:test",
                                  "stylized2": "tfds:aist_stylized/stylized2:test"}
    agreement = saved["aist"]["stylized2"]["mask_agreement"]
    assert sorted(agreement) == ["test", "train", "validation"]
    assert 0.0 <= agreement["test"]["mean_iou"] <= 1.0 and agreement["train"]["views"] == 6 * 3
    assert saved["aist"]["stylized2"]["seconds_per_step"] > 0 and saved["aist"]["stylized2"]["preset"] == (
        "tiny_less_constrained")
    assert set(saved["dpc"]) == set(experiments) and len(saved["alignment_quaternions"]) == 2
    assert saved["dpc"]["baseline"]["last_logged"]["step"] == 15
    assert saved["settings"]["dpc_steps"] == 15 and set(saved["cpu_s"]) == set(done) - {"report"}

    # eval.aist alone, on the experiment's models and data: the same table (one definition of the evaluation).
    ev = str(tmp_path / "eval")
    alone = eval_aist.main(["--model", f"baseline={wd}/dpc/baseline", "--model", f"stylized2={wd}/dpc/stylized2",
                            "--test", "original=tfds:multiview_shapes/procedural_tiny",
                            "--test", "stylized2=tfds:aist_stylized/stylized2", "--real", f"{wd}/real/test",
                            "--data_dir", f"{wd}/tfds", "--align_models", "4", "--workdir", ev])
    assert alone["rows"] == saved["rows"] and alone["real_disagreement"] == saved["real_disagreement"]
    assert open(os.path.join(ev, "table.md")).read() == open(os.path.join(out, "table.md")).read()

    # A rerun finds every stage done (markers and report untouched).
    stamp = os.path.getmtime(os.path.join(out, "results.json"))
    again = experiment.main(args)
    assert again == json.loads(json.dumps(done)) and os.path.getmtime(os.path.join(out, "results.json")) == stamp
    # Another config in the same workdir is refused.
    with pytest.raises(ValueError, match="holds a run of another config"):
        experiment.main(args + ["--seed", "1"])
