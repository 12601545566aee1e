"""The `if __name__ == "__main__"` part shared by the train/ and eval/ jobs (TF-free).

    if __name__ == "__main__":
        run_cli(main, user_errors=(ConfigError, FileExistsError, "tfsynth.input.datasets.DataSpecError"),
                onednn=True)

A user error (bad config, missing file, bad data spec, a workdir that cannot be used: tfsynth.workdir.WorkdirError,
always) prints one line `error: <message>` to stderr and exits 2;
any other exception propagates with its traceback. User errors may be named as "module.Class" so that a job does
not import a heavy module (TensorFlow) just to catch its exceptions: an exception of a class whose module was never
imported cannot have been raised. Jobs that report user errors from inside `main` (exit status 1, which in-process
callers see as SystemExit) use `exit_on`.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Optional, Sequence, Union

ErrorSpec = Union[type, str]
# User errors of every job: a model file that cannot be loaded (says what the file is).
ALWAYS_USER_ERRORS: tuple = ("tfsynth.models.files.ModelFileError",)


def _error_classes(user_errors: Sequence[ErrorSpec]) -> tuple:
    """The classes of `user_errors`; "module.Class" names count only once their module is imported."""
    classes = []
    for spec in user_errors:
        if isinstance(spec, type):
            classes.append(spec)
            continue
        module, _, name = spec.rpartition(".")
        if module in sys.modules:
            classes.append(getattr(sys.modules[module], name))
    return tuple(classes)


def enable_onednn() -> None:
    """Turns on TensorFlow's oneDNN CPU kernels unless the user chose (TF_ENABLE_ONEDNN_OPTS=0 keeps them off).

    This TensorFlow build leaves them off; they make CPU training steps of ResNets ~4x cheaper. Takes effect
    only before TensorFlow is imported.
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def run_cli(main: Callable, user_errors: Sequence[ErrorSpec] = (), *, onednn: bool = False,
            argv: Optional[Sequence[str]] = None):
    """`main(argv)` (argv None: the command line) with user errors as `error: ...` on stderr and exit status 2."""
    from tfsynth import workdir

    if onednn:
        enable_onednn()
    failed = True
    try:
        result = main(argv)
        failed = False
        return result
    except Exception as err:
        if not isinstance(err, _error_classes((workdir.WorkdirError, *ALWAYS_USER_ERRORS, *user_errors))):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    finally:
        # The workdir locks end with the job; a workdir the job created and left empty goes too.
        workdir.release_all(remove_if_unused=failed)


@contextlib.contextmanager
def exit_on(*user_errors: type):
    """Within the block, `user_errors` become SystemExit("error: <message>"): the message on stderr, exit status 1."""
    try:
        yield
    except user_errors as err:
        raise SystemExit(f"error: {err}")


def print_fit_summary(results: dict, epochs: int) -> None:
    """The last lines of a classifier training run (train.pretrain, train.finetune): final training accuracy and
    epochs / time of this run."""
    if results["final_train"]:
        tr = results["final_train"]
        print(f"Final training accuracy (last epoch, random crops): top-1 {tr['top1']:.4f}, loss {tr['loss']:.4f}")
    print(f"Epochs completed: {results['epochs_completed']}/{epochs}; "
          f"time this run: {results['wall_time_s_this_run']:.0f} s")


def keras_verbosity(verbose: Union[int, str] = "auto") -> Union[int, str]:
    """Keras' `verbose` for fit/evaluate: "auto" becomes a progress bar on a terminal and one line per epoch
    otherwise (a redirected log would fill with the bar's carriage returns and escape codes); an explicit value
    is kept."""
    if verbose != "auto":
        return verbose
    stream = sys.stdout
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2
