"""Issue 17: a run owns its workdir (lock, job record, writability), configs are checked when made, damaged
checkpoints and model files are named. Cheap: the checking logic directly, CLI calls that stop before data work."""
import json
import os
import signal
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest

from tfsynth import workdir as wd
from tfsynth.cli import run_cli
from tfsynth.config_flags import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(main, argv, capsys, user_errors=()):
    """run_cli(main, argv) -> (exit status, stderr lines)."""
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, user_errors, argv=argv)
    return exit_info.value.code, capsys.readouterr().err.splitlines()


# --- a run owns its workdir ---------------------------------------------------------------------------------------

def test_second_run_into_a_locked_workdir_refuses_at_once_naming_the_holder_and_a_kill_frees_it(tmp_path):
    workdir = str(tmp_path / "run")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tfsynth.workdir import claim_workdir; "
         f"claim_workdir({workdir!r}, 'train.pretrain', command='first run'); print('ready', flush=True); "
         "time.sleep(600)"], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        second = subprocess.run([sys.executable, "-m", "train.pretrain", "--workdir", workdir, "--arch", "resnet18",
                                 "--epochs", "3", "--seed", "2"], cwd=REPO, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2
        assert second.stderr.splitlines() == [
            f"error: --workdir {workdir} is in use by pid {holder.pid} on {os.uname().nodename} since "
            f"{json.load(open(os.path.join(workdir, '.lock')))['started']} (first run); wait for that run to end or "
            "choose another --workdir"]
        assert second.stdout == ""
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the killed holder's lock: the workdir is free again (the stale .lock text does not matter).
    assert wd.claim_workdir(workdir, "train.pretrain", resume=True) == workdir
    wd.release(workdir)


def test_only_the_chief_of_a_multi_worker_cluster_claims_the_workdir(tmp_path, monkeypatch):
    import argparse

    from tfsynth.config_flags import job_workdir

    cluster = {"worker": ["a:1", "b:1"]}
    args = argparse.Namespace(config="x", workdir=str(tmp_path / "w"), resume=False, _runs_subdir="x",
                              _job="train.pretrain", strategy="multi_worker_mirrored")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 1}}))
    # held() is process-wide: other in-process tests may hold their own workdirs, so look at this one only
    assert wd.is_non_chief_worker() and job_workdir(args) == args.workdir and args.workdir not in wd.held()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert not wd.is_non_chief_worker()
    job_workdir(args)
    assert args.workdir in wd.held()
    wd.release(args.workdir)


def test_resume_into_another_jobs_workdir_refuses(tmp_path, capsys):
    from train import shape_pose

    workdir = str(tmp_path / "pretrain_run")
    wd.claim_workdir(workdir, "train.pretrain")
    wd.release(workdir)
    assert open(os.path.join(workdir, wd.JOB_NAME)).read() == "train.pretrain\n"
    code, err = _run(shape_pose.main, ["--config", "tiny", "--workdir", workdir, "--resume"], capsys)
    assert code == 2 and err == [f"error: --workdir {workdir} holds a run of train.pretrain, not train.shape_pose; "
                                 "--resume continues only a run of the same job: choose another --workdir"]
    assert sorted(os.listdir(workdir)) == [".lock", ".tfsynth_job"]  # nothing of the shape_pose run written

    # A workdir written before job records existed: its config.json tells (a PretrainConfig lacks DPC fields).
    from tfsynth.training.pretrain_configs import PretrainConfig

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "config.json").write_text(json.dumps(PretrainConfig().to_dict()))
    code, err = _run(shape_pose.main, ["--config", "tiny", "--workdir", str(legacy), "--resume"], capsys)
    assert code == 2 and "holds a run of another job" in err[0] and len(err) == 1


@pytest.mark.parametrize("job,argv", [
    ("train.pretrain", ["--arch", "resnet18"]),
    ("train.finetune", ["--init", "scratch", "--arch", "resnet18"]),
    ("train.shape_pose", ["--config", "tiny"]),
    ("train.aist", ["--config", "tiny"]),
    ("eval.neural.__main__", ["--model", "MODEL"]),
    ("eval.aist", ["--model", "m=MODEL", "--test", "t=tfds:a/b", "--real", "MODEL"]),
    ("experiments.aist_shape_pose", ["--config", "tiny"]),
])
def test_unwritable_workdir_is_one_line_before_any_data_work(job, argv, tmp_path, capsys):
    import importlib

    model = tmp_path / "m.keras"
    model.write_bytes(b"x")
    argv = [str(model) if a == "MODEL" else a for a in argv]
    # An empty --data_dir: without the early check the job would stop later at the missing data instead.
    extra = [] if job.startswith("eval.") else ["--data_dir", str(tmp_path / "empty")]
    code, err = _run(importlib.import_module(job).main, argv + extra + ["--workdir", "/proc/x"], capsys)
    assert code == 2
    assert err == ["error: --workdir /proc/x: cannot create or write it (No such file or directory)"]


def test_contact_sheet_checks_its_output_folder_before_reading_data(tmp_path, capsys):
    from eval import contact_sheet

    code, err = _run(contact_sheet.main, ["--data", "fractal_db/tiny", "--out", "/proc/x/sheet.png", "--no-auto_build",
                                          "--data_dir", str(tmp_path / "empty")], capsys)
    assert code == 2 and err == ["error: --out /proc/x: cannot create or write it (No such file or directory)"]


def test_failed_job_leaves_no_workdir_it_created_but_keeps_an_existing_one(tmp_path, capsys):
    def failing(argv=None):
        wd.claim_workdir(argv[0], "eval.neural")
        raise wd.WorkdirError("bad")

    new = str(tmp_path / "runs" / "job" / "new")
    assert _run(failing, [new], capsys)[0] == 2
    assert not (tmp_path / "runs").exists() and wd.held() == []  # nor the parents created for it
    existing = tmp_path / "existing"
    existing.mkdir()
    assert _run(failing, [str(existing)], capsys)[0] == 2
    assert existing.is_dir()


def test_resumed_history_keeps_its_line_endings_byte_for_byte(tmp_path):
    from tfsynth.training.callbacks import truncate_csv_history

    path = tmp_path / "history.csv"
    path.write_bytes(b"epoch,loss,top1\r\n0,1.0,0.1\r\n1,0.5,0.2\r\n2,0.4,0.3\r\n")  # as keras.callbacks.CSVLogger
    truncate_csv_history(str(path), 2)
    assert path.read_bytes() == b"epoch,loss,top1\r\n0,1.0,0.1\r\n1,0.5,0.2\r\n"


# --- validate before working --------------------------------------------------------------------------------------

@pytest.mark.parametrize("module,field,value,message", [
    ("tfsynth.training.pretrain_configs", "epochs", 0, "--epochs 0: must be >= 1"),
    ("tfsynth.training.pretrain_configs", "batch_size", 0, "--batch_size 0: must be >= 1"),
    ("tfsynth.training.pretrain_configs", "momentum", 1.5, "--momentum 1.5: must be in [0, 1)"),
    ("tfsynth.training.pretrain_configs", "arch", "resnet9", "--arch resnet9: must be one of {resnet18, "),
    ("tfsynth.transfer.configs", "lr_milestones", (0, 3), "--lr_milestones 0,3: every item must be >= 1"),
    ("tfsynth.dpc.configs", "steps", 0, "--steps 0: must be >= 1"),
    ("tfsynth.aist.configs", "ngf", 0, "--ngf 0: must be >= 1"),
    ("tfsynth.segmentation.configs", "ci_alpha", 0.0, "--ci_alpha 0.0: must be in (0, 1)"),
    ("experiments.aist_shape_pose", "align_models", 0, "--align_models 0: must be >= 1"),
])
def test_config_fields_are_checked_when_the_config_is_made(module, field, value, message):
    import importlib

    mod = importlib.import_module(module)
    for make in mod.CONFIGS.values():  # every named config is valid
        make()
    config = next(iter(mod.CONFIGS.values()))()
    with pytest.raises(ConfigError) as err:
        config.replace(**{field: value})
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_epochs_0_on_the_command_line_is_one_line(capsys):
    from train import pretrain

    code, err = _run(pretrain.main, ["--epochs", "0", "--workdir", "/proc/never_created"], capsys, (ConfigError,))
    assert code == 2 and err == ["error: --epochs 0: must be >= 1"]


def test_crop_larger_than_the_images_is_named_before_training():
    from tfsynth.input.datasets import DataSpecError
    from tfsynth.input.pipeline import check_crop_size

    info = types.SimpleNamespace(features={"image": types.SimpleNamespace(shape=(64, 64, 3))})
    source = types.SimpleNamespace(builder=types.SimpleNamespace(info=info),
                                   source=types.SimpleNamespace(name="fractal_db", config="tiny"))
    mixture = types.SimpleNamespace(sources=[source])
    check_crop_size(mixture, 64)
    with pytest.raises(DataSpecError, match=r"^--crop_size 65 is larger than the 64x64 images of fractal_db/tiny; "
                                            r"the crop must be at most 64$"):
        check_crop_size(mixture, 65)
    with pytest.raises(DataSpecError, match="--crop_size 300 is larger than the images after --resize 256"):
        check_crop_size(mixture, 300, resize=256)


def test_resume_with_changed_fields_names_them_and_the_changeable_ones(tmp_path, capsys):
    from tfsynth.training.pretrain import RESUME_MAY_CHANGE
    from tfsynth.training.pretrain_configs import get_config

    saved = get_config("default", {"arch": "resnet18"})
    (tmp_path / "config.json").write_text(json.dumps(saved.to_dict()))
    changed = saved.replace(batch_size=8, epochs=40)
    with pytest.raises(wd.WorkdirError) as err:
        wd.check_resume_config(str(tmp_path), changed.to_dict(), RESUME_MAY_CHANGE)
    assert str(err.value) == (
        f"--resume: --batch_size 8 (run: 16) differ from {tmp_path}/config.json; only --auto_build, "
        "--epochs, --eval_batch_size, --eval_split, --keep_checkpoints, --lr_gamma, --lr_milestones, "
        "--validation_freq may change on resume")
    wd.check_resume_config(str(tmp_path), saved.replace(epochs=40).to_dict(), RESUME_MAY_CHANGE)
    assert capsys.readouterr().out == f"--resume: changed from {tmp_path}/config.json: epochs: 30 -> 40\n"
    # train.segment nests its config ({"config": ..., "stages": ...}).
    (tmp_path / "config.json").write_text(json.dumps({"config": saved.to_dict(), "stages": ["baseline"]}))
    with pytest.raises(wd.WorkdirError, match=r"^--resume: --batch_size 8 \(run: 16\) differ"):
        wd.check_resume_config(str(tmp_path), changed.to_dict(), RESUME_MAY_CHANGE, key="config")


# --- damaged files ------------------------------------------------------------------------------------------------

def _tiny_model():
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_truncated_newest_checkpoint_is_named_and_the_previous_one_used(tmp_path, capsys):
    from tfsynth.training.checkpoint import latest_intact_checkpoint, save_checkpoint

    model = _tiny_model()
    for epoch in (1, 2, 3):
        save_checkpoint(model, str(tmp_path), epoch, keep=2)
    newest = tmp_path / "ckpt-epoch0003.keras"
    assert sorted(os.listdir(tmp_path)) == ["ckpt-epoch0002.keras", "ckpt-epoch0003.keras"]
    newest.write_bytes(newest.read_bytes()[:200])  # truncated
    assert latest_intact_checkpoint(str(tmp_path)) == (2, str(tmp_path / "ckpt-epoch0002.keras"))
    out = capsys.readouterr().out
    assert f"checkpoint: {newest} (200 bytes) is a damaged zip archive (truncated?)" in out
    (tmp_path / "ckpt-epoch0002.keras").write_bytes(b"")
    with pytest.raises(wd.WorkdirError, match=r"no intact checkpoint in .*: .*0003.keras, .*0002.keras are damaged"):
        latest_intact_checkpoint(str(tmp_path))


def test_default_configs_keep_two_checkpoints():
    from tfsynth.segmentation.configs import SegmentConfig
    from tfsynth.training.pretrain_configs import PretrainConfig
    from tfsynth.transfer.configs import FinetuneConfig

    assert (PretrainConfig().keep_checkpoints == FinetuneConfig().keep_checkpoints
            == SegmentConfig().keep_checkpoints == 2)


def test_model_files_are_reported_as_what_they_are(tmp_path):
    from tfsynth.models.files import ModelFileError, check_keras_file

    good = tmp_path / "good.keras"
    _tiny_model().save(good)
    check_keras_file(str(good))
    cases = {
        "text.keras": (b"hello, not a model\n", "is a text file, not a Keras .keras model"),
        "empty.keras": (b"", "is empty (0 bytes)"),
        "cut.keras": (good.read_bytes()[:300], "is a damaged zip archive (truncated?)"),
        "weights.keras": (None, "is a NumPy .npz archive without config.json"),
        "legacy.keras": (b"\x89HDF\r\n\x1a\n" + bytes(100), "is an HDF5 file (a legacy Keras .h5 model? name it .h5)"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if content is None:
            np.savez(tmp_path / "weights.npz", a=np.zeros(3))
            os.replace(tmp_path / "weights.npz", path)
        else:
            path.write_bytes(content)
        with pytest.raises(ModelFileError) as err:
            check_keras_file(str(path), "--model x")
        assert str(err.value).startswith(f"--model x: {path}") and message in str(err.value), str(err.value)
        assert "File not found" not in str(err.value)
    assert zipfile.is_zipfile(tmp_path / "weights.keras")


def test_model_loading_jobs_name_a_corrupt_file_and_leave_no_empty_workdir(tmp_path, capsys):
    from eval import filters
    from eval.neural import __main__ as neural

    junk = tmp_path / "junk.keras"
    junk.write_text("not a model")
    code, err = _run(filters.main, ["--model", f"a={junk}", "--out", str(tmp_path / "filters")], capsys)
    assert code == 2 and len(err) == 1 and "is a text file, not a Keras .keras model" in err[0]
    assert not (tmp_path / "filters").exists()
    out = tmp_path / "neural"
    code, err = _run(neural.main, ["--model", f"a={junk}", "--workdir", str(out)], capsys)
    assert code == 2 and err == [f"error: --model a: {junk} (11 bytes) is a text file, not a Keras .keras model "
                                 "(a zip archive with config.json)"]
    assert not out.exists()


# --- parameter CSVs, unknown dataset names, failed builds -----------------------------------------------------------

def test_param_csv_whose_probabilities_do_not_sum_to_1_is_refused_naming_file_and_lines(tmp_path):
    from tfsynth.fractals.params_csv import read_params_csv

    path = tmp_path / "00000.csv"
    path.write_text("0.5,0,0,0.5,0,0,0.05\n\n0.5,0,0,0.5,0.5,0,0.05\n0.5,0,0,0.5,0,0.5,0.05\n")
    with pytest.raises(ValueError) as err:
        read_params_csv(path)
    assert str(err.value) == (f"{path}:1-4: the map probabilities p (7th column) sum to 0.15, not 1 (tolerance "
                              "1e-06); divide them by their sum")
    path.write_text("0.5,0,0,0.5,0,0,0.25\n0.5,0,0,0.5,0.5,0,0.25\n0.5,0,0,0.5,0,0.5,0.5\n")
    assert read_params_csv(path).shape == (3, 7)


def test_unknown_tfds_names_list_this_projects_datasets_and_the_closest_names(tmp_path):
    from eval.neural.data import _load_tfds
    from tfsynth.aist import data as aist_data
    from tfsynth.dpc import data as dpc_data

    for call, error in ((lambda: dpc_data.load_tfds("multiview_shape/tiny:train"), dpc_data.SourceError),
                        (lambda: aist_data.load_source("tfds:multiview_shape/tiny:train", str(tmp_path), 0),
                         aist_data.SourceError),
                        (lambda: _load_tfds("majaj_hong_2016", str(tmp_path), ()), SystemExit)):
        with pytest.raises(error) as err:
            call()
        message = str(err.value)
        assert "\n" not in message and len(message) < 600, message
        assert "Datasets of this project: aist_stylized, " in message and "closest registered names: " in message
    assert "majaj_hong_2015" in message.split("closest registered names: ")[1]


def test_a_failed_build_is_its_last_line(tmp_path):
    import tensorflow_datasets as tfds

    import tfds_builders.fractal_db  # noqa: F401
    from tfsynth.input.datasets import DataSpecError, build_dataset

    class Failing:
        name, builder_config = "multiview_shapes", types.SimpleNamespace(name="mesh_folder")

        def download_and_prepare(self, download_config=None):
            raise RuntimeError("Traceback (most recent call last):\n  File 'x.py', line 1\n    ...\n"
                               "AssertionError: Manual directory /nope does not exist. [while running 'Render']")

    with pytest.raises(DataSpecError) as err:
        build_dataset(Failing())
    assert str(err.value) == ("building multiview_shapes/mesh_folder failed: AssertionError: Manual directory /nope "
                              "does not exist.")
    junk = tmp_path / "junk"
    junk.mkdir()
    builder = tfds.builder("fractal_db/1k_csv", data_dir=str(tmp_path / "tfds"))
    with pytest.raises(DataSpecError, match=f"^building fractal_db/1k_csv failed: Manual directory {junk} does not "
                                            "exist or is empty.* Only for the `\\*_csv` configs: put one CSV"):
        build_dataset(builder, tfds.download.DownloadConfig(manual_dir=str(junk)))
    (junk / "notes.txt").write_text("not a parameter file")
    with pytest.raises(DataSpecError, match=f"^building fractal_db/1k_csv failed: {junk}: contains no \\*.csv"):
        build_dataset(builder, tfds.download.DownloadConfig(manual_dir=str(junk)))


def test_two_concurrent_auto_builds_of_one_dataset_build_it_once(tmp_path, monkeypatch):
    import threading

    import tfds_builders.digits  # noqa: F401
    from tfsynth.input import datasets

    builds, real_build = [], datasets.build_dataset

    def slow_build(builder, download_config=None):
        builds.append(threading.current_thread().name)
        threading.Event().wait(1.0)  # keep the lock held while the other thread arrives
        real_build(builder, download_config)

    monkeypatch.setattr(datasets, "build_dataset", slow_build)
    source = datasets.DataSource("digits", "8px")
    results, errors = [], []

    def load():
        try:
            results.append(datasets.prepared_builder(source, data_dir=str(tmp_path), auto_build=True))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=load, name=f"job{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len(builds) == 1 and len(results) == 2 and all(b.is_prepared() for b in results)
