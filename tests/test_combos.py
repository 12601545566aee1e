"""The six Table 2 pre-training sets (--combo) at tiny scale: spec mapping, and one epoch each end to end."""
import json
import os

import pytest

from tfsynth.training.pretrain_configs import COMBOS, ConfigError, combo_data_spec


def test_combo_specs_match_table_2():
    assert combo_data_spec("fractal") == "fractal_db/1k:1000"
    assert combo_data_spec("procsynth") == "proc_synth_db/1k:1000"
    assert combo_data_spec("morphsynth") == "morph_synth_db/1k:1000"
    assert combo_data_spec("procsynth+fractal") == "proc_synth_db/1k:500,fractal_db/1k:500"
    assert combo_data_spec("procsynth+morphsynth") == "proc_synth_db/1k:500,morph_synth_db/1k:500"
    assert combo_data_spec("all3") == "proc_synth_db/1k:333,morph_synth_db/1k:333,fractal_db/1k:333"
    assert combo_data_spec("all3", "tiny") == "proc_synth_db/tiny:1,morph_synth_db/tiny:1,fractal_db/tiny:1"
    with pytest.raises(ConfigError, match="unknown --combo 'nope'"):
        combo_data_spec("nope")


def test_combo_flag_sets_data_and_conflicts_with_data():
    from train import pretrain as job

    args = job.build_parser().parse_args(["--combo", "procsynth+fractal", "--combo_scale", "tiny"])
    assert job.config_from_args(args).data == "proc_synth_db/tiny:2,fractal_db/tiny:2"
    args = job.build_parser().parse_args(["--combo", "all3", "--data", "fractal_db/tiny"])
    with pytest.raises(ConfigError, match="either --combo or --data"):
        job.config_from_args(args)


@pytest.fixture(scope="module")
def data_dir():
    import tensorflow_datasets as tfds

    import tfds_builders.morph_synth_db  # noqa: F401
    import tfds_builders.proc_synth_db  # noqa: F401
    from tests.tiny_tfds import tiny_data_dir
    from tfsynth.input.datasets import beam_download_config

    directory = tiny_data_dir()  # fractal_db/tiny
    for name in ("proc_synth_db", "morph_synth_db"):
        builder = tfds.builder(name, config="tiny", data_dir=directory)
        if not builder.is_prepared():
            builder.download_and_prepare(download_config=beam_download_config())
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("combo", list(COMBOS))
def test_each_combo_pretrains_one_epoch(combo, data_dir, tmp_path):
    from train import pretrain as job

    workdir = str(tmp_path / combo.replace("+", "_"))
    results = job.main(["--data_dir", data_dir, "--combo", combo, "--combo_scale", "tiny", "--workdir", workdir,
                        "--epochs", "1", "--no-deterministic", "--arch", "resnet18", "--crop_size", "32",
                        "--batch_size", "8", "--eval_batch_size", "8", "--lr", "0.01", "--lr_milestones", "1"])
    expected = {"fractal": 4, "procsynth": 4, "morphsynth": 4, "procsynth+fractal": 4, "procsynth+morphsynth": 4,
                "all3": 3}[combo]
    assert results["data"]["num_classes"] == expected
    assert results["epochs_completed"] == 1 and results["final_eval"]["top1"] >= 0
    with open(os.path.join(workdir, "results.json")) as f:
        assert json.load(f)["config"]["data"] == combo_data_spec(combo, "tiny")
