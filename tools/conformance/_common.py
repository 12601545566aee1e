"""Shared by the reference scripts: repository paths, fixture writing, version records (NumPy only)."""
from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data" / "conformance"


def write_npz(name: str, arrays: dict) -> Path:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"{name}.npz"
    np.savez_compressed(path, **{k: np.array(v, order="C") for k, v in arrays.items()})  # scalars stay 0-d
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size / 1024:.0f} KiB)")
    return path


def write_json(name: str, record: dict) -> Path:
    record = dict(record)
    record.setdefault("python", platform.python_version())
    record.setdefault("numpy", np.__version__)
    record.setdefault("command", " ".join([os.path.basename(sys.executable)] + sys.argv))
    path = FIXTURES / f"{name}.json"
    path.write_text(_dumps(record) + "\n")
    print(f"wrote {path.relative_to(REPO)}")
    return path


def _dumps(obj, level=0) -> str:
    """JSON with one key per line and lists of scalars kept on one line (short, diffable fixture records)."""
    pad = " " * (level + 1)
    if isinstance(obj, dict):
        items = [f"{pad}{json.dumps(str(k))}: {_dumps(v, level + 1)}" for k, v in sorted(obj.items())]
        return "{\n" + ",\n".join(items) + "\n" + " " * level + "}" if items else "{}"
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in obj):
        items = [pad + _dumps(v, level + 1) for v in obj]
        return "[\n" + ",\n".join(items) + "\n" + " " * level + "]"
    return json.dumps(obj)


def weights_checksum(state_dict: dict) -> float:
    """A float64 sum over every float tensor (sorted keys): the tests check their regenerated weights with it."""
    return float(sum(float(np.asarray(v, np.float64).sum()) for k, v in sorted(state_dict.items())
                     if np.asarray(v).dtype.kind == "f"))
