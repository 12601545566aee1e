"""The shared command-line plumbing of train/ and eval/: `tfsynth.cli.run_cli` (user errors -> `error: ...`, exit 2),
`tfsynth.config_flags.job_workdir`, and `--help` of every job (exit 0, TensorFlow not imported)."""
import argparse
import json
import os
import subprocess
import sys

import pytest

from tfsynth.cli import exit_on, run_cli
from tfsynth.config_flags import ConfigError, job_workdir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOBS = ["train.pretrain", "train.segment", "train.finetune", "train.aist", "train.shape_pose", "eval.aist",
        "eval.contact_sheet", "eval.filters", "eval.segmentation", "eval.shape_pose", "eval.transfer",
        "eval.neural.__main__"]


def _raise(err):
    def main(argv=None):
        raise err
    return main


def test_user_error_prints_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(_raise(ConfigError("unknown --config 'x'")), user_errors=(ConfigError, FileExistsError))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err == "error: unknown --config 'x'\n" and captured.out == ""
    with pytest.raises(SystemExit) as exit_info:  # subclasses count: FileNotFoundError is an OSError
        run_cli(_raise(FileNotFoundError("runs/x/model.keras does not exist")), user_errors=(OSError,))
    assert exit_info.value.code == 2 and capsys.readouterr().err == "error: runs/x/model.keras does not exist\n"


def test_other_exceptions_and_system_exit_propagate(capsys):
    with pytest.raises(RuntimeError, match="bug"):
        run_cli(_raise(RuntimeError("bug")), user_errors=(ValueError,))
    with pytest.raises(KeyError):
        run_cli(_raise(KeyError("k")))
    # Jobs that exit with their own message keep their status (SystemExit is not an Exception).
    with pytest.raises(SystemExit) as exit_info:
        run_cli(_raise(SystemExit("error: no PNG/JPEG images found")), user_errors=(ValueError,))
    assert exit_info.value.code == "error: no PNG/JPEG images found"
    assert capsys.readouterr().err == ""


def test_named_user_errors_resolve_only_from_imported_modules(capsys):
    # An imported module's class counts...
    with pytest.raises(SystemExit) as exit_info:
        run_cli(_raise(json.JSONDecodeError("bad", "{", 0)), user_errors=("json.JSONDecodeError",))
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith("error: bad: line 1 column 1")
    # ...a module that was never imported is not imported (it could not have raised anything).
    absent = "tests_cli_module_that_does_not_exist"
    with pytest.raises(ValueError, match="plain"):
        run_cli(_raise(ValueError("plain")), user_errors=(f"{absent}.Error",))
    assert absent not in sys.modules


def test_exit_on_turns_listed_errors_into_a_message_exit():
    with pytest.raises(SystemExit) as exit_info:
        with exit_on(ConfigError, FileExistsError):
            raise FileExistsError("runs/x already holds a run; use --resume")
    assert exit_info.value.code == "error: runs/x already holds a run; use --resume"  # printed, exit status 1
    with pytest.raises(KeyError):
        with exit_on(ConfigError):
            raise KeyError("k")


def test_main_gets_argv_and_its_result_is_returned():
    assert run_cli(lambda argv=None: {"argv": argv}, argv=["--x", "1"]) == {"argv": ["--x", "1"]}


def test_onednn_is_set_only_when_the_user_has_not_chosen(monkeypatch):
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    run_cli(lambda argv=None: None)
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
    run_cli(lambda argv=None: None, onednn=True)
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    run_cli(lambda argv=None: None, onednn=True)
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_job_workdir_default_name_and_resume_check(tmp_path, monkeypatch):
    from tfsynth import workdir

    monkeypatch.chdir(tmp_path)  # job_workdir creates and claims the workdir (tfsynth.workdir.claim_workdir)
    args = argparse.Namespace(config="tiny", workdir=None, resume=False, _runs_subdir="finetune")
    name = job_workdir(args, tag="scratch")
    assert name.startswith(os.path.join("runs", "finetune", "tiny-scratch-")) and len(os.path.basename(name)) == len(
        "tiny-scratch-20260101-000000")
    assert job_workdir(args).startswith(os.path.join("runs", "finetune", "tiny-2"))
    assert job_workdir(argparse.Namespace(config="tiny", workdir="w", resume=True, _runs_subdir="x")) == "w"
    with pytest.raises(SystemExit, match="--resume needs the --workdir"):
        job_workdir(argparse.Namespace(config="tiny", workdir=None, resume=True, _runs_subdir="x"))
    assert os.path.isfile(os.path.join("w", ".lock")) and os.path.join(str(tmp_path), "w") in workdir.held()
    workdir.release_all()


def test_help_of_every_job_exits_0_without_tensorflow():
    # One fresh interpreter for all jobs: each main(['--help']) must print its usage and exit 0, and none may
    # import TensorFlow or Keras to do so (--help stays fast).
    code = f"""
import contextlib, importlib, io, json, sys
report = {{}}
for name in {JOBS!r}:
    module = importlib.import_module(name)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            module.main(["--help"])
            code = "returned"
        except SystemExit as e:
            code = e.code
    report[name] = [code, out.getvalue().splitlines()[0] if out.getvalue() else ""]
report["heavy"] = sorted(m for m in ("tensorflow", "keras", "tensorflow_datasets") if m in sys.modules)
print(json.dumps(report))
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    assert report.pop("heavy") == []
    for name in JOBS:
        code, usage = report[name]
        prog = "python -m " + name.removesuffix(".__main__")
        assert code == 0 and usage.startswith(f"usage: {prog} "), (name, code, usage)


def test_keras_progress_is_one_line_per_epoch_unless_stdout_is_a_terminal(monkeypatch):
    import io

    from tfsynth.cli import keras_verbosity

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert keras_verbosity() == 2 and keras_verbosity(0) == 0 and keras_verbosity(1) == 1
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert keras_verbosity("auto") == 1
