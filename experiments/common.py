"""Bookkeeping shared by the experiment modules (TF-free): atomic result files, CPU time, the git commit."""
from __future__ import annotations

import json
import os
import resource
import subprocess
import time

import numpy as np

from tfsynth.atomic import atomic_write, atomic_write_text

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_json(path: str, obj, indent: int = 2) -> None:
    """Atomic: a file that exists is complete (stage markers rely on it)."""
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def savez(path: str, **arrays) -> None:
    """Atomic `np.savez_compressed`."""
    atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its waited-for children (render workers) so far."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def git_commit() -> dict:
    """{"commit": HEAD or "unknown", "dirty": tracked files differ from HEAD}."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"commit": git("rev-parse", "HEAD") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def stage_marker(workdir: str, stage: str) -> str:
    """The marker file of a finished stage: `<workdir>/stages/<stage>.json`."""
    return os.path.join(workdir, "stages", f"{stage}.json")


def _report_stale(workdir: str, stages: list[str]) -> bool:
    """The report is derived: it is redone when another stage finished after it (e.g. one added or redone)."""
    report = stage_marker(workdir, "report")
    others = [stage_marker(workdir, s) for s in stages if s != "report"]
    return any(os.path.exists(p) and os.path.getmtime(p) > os.path.getmtime(report) for p in others)


def run_stages(workdir: str, config, stages: list[str], run_stage, only=None) -> dict:
    """Runs each stage of `stages` whose marker file (`stage_marker`) does not exist yet (or only those in `only`),
    in order; a finished "report" stage is redone when another stage finished after it.

    `run_stage(stage)` runs it and returns its info dict, which is written to the marker with the stage's CPU and
    wall seconds. The config is checked against (and recorded in) the workdir first, so a workdir holds one config's
    run. Returns {stage: marker dict}."""
    os.makedirs(os.path.join(workdir, "stages"), exist_ok=True)
    config_path = os.path.join(workdir, "experiment_config.json")
    if os.path.exists(config_path) and read_json(config_path) != config.to_dict():
        raise ValueError(f"{workdir} holds a run of another config ({config_path}); choose another --workdir")
    write_json(config_path, config.to_dict())
    done = {}
    for stage in stages:
        path = stage_marker(workdir, stage)
        if only and stage not in only:
            continue
        if os.path.exists(path) and not (stage == "report" and _report_stale(workdir, stages)):
            print(f"[{stage}] done earlier: {path}", flush=True)
            done[stage] = read_json(path)
            continue
        print(f"[{stage}] running ...", flush=True)
        cpu0, wall0 = cpu_seconds(), time.time()
        info = run_stage(stage)
        info.update(cpu_s=round(cpu_seconds() - cpu0, 1), wall_s=round(time.time() - wall0, 1))
        write_json(path, info)
        print(f"[{stage}] done: {info['cpu_s']:.0f} CPU-s, {info['wall_s']:.0f} s", flush=True)
        done[stage] = info
    return done


def check_workdir(workdir: str) -> str:
    """The absolute workdir; one inside the repository (other than under runs/, which git ignores) is refused, so
    that a run's datasets and checkpoints never land in the tree."""
    workdir = os.path.abspath(workdir)
    if os.path.commonpath([workdir, REPO]) == REPO and not workdir.startswith(os.path.join(REPO, "runs") + os.sep):
        raise ValueError(f"--workdir {workdir} is inside the repository; use a folder outside it (or under runs/)")
    return workdir


def publish_report(workdir: str, dest: str, results_name: str = "results.json") -> None:
    """Copies `<workdir>/report` (Markdown, JSON, plots) to `dest` (e.g. docs/results/<experiment>_<config>)."""
    import shutil

    report = os.path.join(workdir, "report")
    if not os.path.exists(os.path.join(report, results_name)):
        raise ValueError(f"--publish: no report in {report} yet (run the report stage first)")
    os.makedirs(dest, exist_ok=True)
    shutil.copytree(report, dest, dirs_exist_ok=True)
    print(f"Published the report to {dest}", flush=True)
