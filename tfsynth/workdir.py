"""A run owns its workdir (TF-free): one lock, one job record, one writability check, one resume-config check.

`claim_workdir(workdir, job, resume=...)` is called by every train/ job and every eval job that writes a workdir,
right after the flags parse and before any data work:

* it creates the workdir (or finds it unwritable: `WorkdirError`, one line, exit status 2 through `run_cli`);
* it takes an exclusive `fcntl.flock` on `<workdir>/.lock`, held until the process ends (or `release_all`), and
  writes the holder (pid, host, start time, command) into that file. A second run into the same workdir stops at
  once with one line naming the holder. The kernel drops the lock of a killed process, so a kill never leaves
  the workdir locked; the stale text left in `.lock` is only informative;
* it records the job in `<workdir>/.tfsynth_job` (e.g. `train.pretrain`) and refuses a workdir written by another
  job: `--resume` continues only a run of the same job, and no job overwrites another job's run.

`run_cli` releases the locks when the job returns or fails, and removes a workdir that this process created and
left holding nothing but its own bookkeeping (a job that failed before writing anything leaves no empty workdir).
"""
from __future__ import annotations

import json
import os
import shlex
import socket
import sys
import time
from typing import Iterable, Mapping, Optional

LOCK_NAME = ".lock"
JOB_NAME = ".tfsynth_job"
# A finished run's (or stage's, or report's) results: written last, so its presence marks the work as done.
RESULTS_NAME = "results.json"
_BOOKKEEPING = {LOCK_NAME, JOB_NAME}


class WorkdirError(Exception):
    """The workdir cannot be used: unwritable, in use by another run, or written by another job."""


class _Claim:
    def __init__(self, path: str, fd: int, created: list[str]):
        self.path, self.fd, self.created = path, fd, created  # created: directories made for it, deepest first


_HELD: dict[str, _Claim] = {}  # abspath -> claim held by this process


def _describe_holder(lock_path: str) -> str:
    try:
        with open(lock_path, encoding="utf-8") as f:
            info = json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return "another process"
    if not isinstance(info, dict) or "pid" not in info:
        return "another process"
    return (f"pid {info.get('pid')} on {info.get('host', '?')} since {info.get('started', '?')}"
            + (f" ({info['command']})" if info.get("command") else ""))


def check_writable_dir(path: str, flag: str = "--workdir") -> list[str]:
    """Creates directory `path` if needed and checks that a file can be written in it; returns the directories it
    created, deepest first (empty when `path` existed). Raises WorkdirError (one line naming `flag`) otherwise."""
    path = os.path.abspath(path)
    created, parent = [], path
    while not os.path.isdir(parent) and os.path.dirname(parent) != parent:
        created.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write-test-{os.getpid()}")
        with open(probe, "w", encoding="utf-8"):
            pass
        os.remove(probe)
    except OSError as err:
        raise WorkdirError(f"{flag} {path}: cannot create or write it ({err.strerror or err})") from None
    return created


def claim_workdir(workdir: str, job: str, *, resume: bool = False, config_keys: Optional[Iterable[str]] = None,
                  command: Optional[str] = None) -> str:
    """Creates, locks and tags `workdir` for `job` (e.g. 'train.pretrain'); returns its absolute path.

    `config_keys`: the field names of the job's config; a workdir without a job record (written before records
    existed) whose config.json lacks some of them counts as another job's. Re-entrant within one process."""
    import fcntl

    path = os.path.abspath(workdir)
    if path in _HELD:
        _check_job(path, job, resume, config_keys)
        return path
    created = check_writable_dir(path)
    lock_path = os.path.join(path, LOCK_NAME)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise WorkdirError(f"--workdir {path}: cannot write {LOCK_NAME} ({err.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise WorkdirError(f"--workdir {path} is in use by {_describe_holder(lock_path)}; wait for that run to "
                           "end or choose another --workdir") from None
    try:
        _check_job(path, job, resume, config_keys)
    except WorkdirError:
        os.close(fd)
        raise
    holder = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "command": command if command is not None else " ".join(shlex.quote(a) for a in sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
    job_path = os.path.join(path, JOB_NAME)
    if not os.path.exists(job_path):
        with open(job_path, "w", encoding="utf-8") as f:
            f.write(job + "\n")
    _HELD[path] = _Claim(path, fd, created)
    return path


def is_non_chief_worker() -> bool:
    """True for a non-chief task of a multi-worker cluster described by TF_CONFIG (chief: task 'chief', or worker 0
    when the cluster has no chief). Those processes write nothing into the workdir and do not claim it."""
    try:
        tf_config = json.loads(os.environ.get("TF_CONFIG", "") or "{}")
    except ValueError:
        return False
    task = tf_config.get("task") or {}
    if not task.get("type"):
        return False
    if task["type"] == "chief":
        return False
    has_chief = "chief" in (tf_config.get("cluster") or {})
    return not (task["type"] == "worker" and int(task.get("index", 0)) == 0 and not has_chief)


def recorded_job(workdir: str) -> Optional[str]:
    """The job recorded in `workdir` (None when there is no record)."""
    try:
        with open(os.path.join(workdir, JOB_NAME), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _check_job(path: str, job: str, resume: bool, config_keys: Optional[Iterable[str]]) -> None:
    recorded = recorded_job(path)
    if recorded is None and config_keys is not None:
        config_path = os.path.join(path, "config.json")
        try:
            with open(config_path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and isinstance(saved.get("config"), dict):  # {"config": ..., "stages": ...}
            saved = saved["config"]
        if isinstance(saved, dict) and not set(config_keys) <= set(saved):
            recorded = "another job (its config.json lacks this job's fields)"
    if recorded is not None and recorded != job:
        what = "--resume continues only a run of the same job" if resume else "a job never writes over another's run"
        raise WorkdirError(f"--workdir {path} holds a run of {recorded}, not {job}; {what}: choose another --workdir")


def release(workdir: str, remove_if_unused: bool = False) -> None:
    """Drops this process's lock on `workdir`; with `remove_if_unused`, deletes the workdir if this process created
    it and it holds nothing but the lock and job record, and the parent directories created for it while empty."""
    import fcntl

    claim = _HELD.pop(os.path.abspath(workdir), None)
    if claim is None:
        return
    fcntl.flock(claim.fd, fcntl.LOCK_UN)
    os.close(claim.fd)
    if remove_if_unused and claim.created:
        try:
            if set(os.listdir(claim.path)) <= _BOOKKEEPING:
                for name in _BOOKKEEPING:
                    if os.path.exists(os.path.join(claim.path, name)):
                        os.remove(os.path.join(claim.path, name))
                for directory in claim.created:  # the workdir, then the parents created for it, while empty
                    os.rmdir(directory)
        except OSError:
            pass


def release_all(remove_if_unused: bool = False) -> None:
    for path in list(_HELD):
        release(path, remove_if_unused)


def held() -> list[str]:
    return sorted(_HELD)


def check_resume_config(workdir: str, config: Mapping, may_change: Iterable[str], key: Optional[str] = None) -> None:
    """Compares `config` with `<workdir>/config.json` (its entry `key` if given) of the run being resumed: fields
    outside `may_change` that differ raise WorkdirError listing them and the fields that may change; allowed changes
    are printed."""
    path = os.path.join(workdir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        if key is not None:
            saved = saved[key]
    except (OSError, ValueError, KeyError, TypeError):
        return
    config = json.loads(json.dumps(dict(config)))  # tuples become lists, as in the saved file
    may_change = set(may_change)
    differ = {k: (saved.get(k), v) for k, v in config.items() if k in saved and saved[k] != v}
    fixed = sorted(k for k in differ if k not in may_change)
    if fixed:
        raise WorkdirError(
            f"--resume: {', '.join(f'--{k} {differ[k][1]!r} (run: {differ[k][0]!r})' for k in fixed)} differ from "
            f"{path}; only {', '.join('--' + k for k in sorted(may_change))} may change on resume")
    if differ:
        print(f"--resume: changed from {path}: "
              + ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in differ.items()), flush=True)
