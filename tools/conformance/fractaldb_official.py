"""Fingerprints of the 1,000 official FractalDB-1k categories, from the authors' own CSV files.

The official search (param_search/ifs_search.py of hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch,
np.random.seed(1), filling rate 0.2) wrote data/csv_rate0.2_category1000/csv*/NNNNN.csv into that repository.
Point --repo at a snapshot of it OUTSIDE this repository (a git directory or a checkout); nothing of it is copied
here except one short hash per category:

    python tools/conformance/fractaldb_official.py \\
        --repo /work/.mirror/hirokatsukataoka16+FractalDB-Pretrained-ResNet-PyTorch/repo

Writes tests/data/conformance/fractaldb_official_1k.json: per category (in file-name order) the first 16 hex digits
of SHA-256 over (a) the file's bytes and (b) its rows parsed by NumPy as little-endian float64 (n_maps x 7, C
order). Plain NumPy only: the fingerprints do not depend on tfsynth.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tools.conformance._common import write_json  # noqa: E402

CSV_DIR = "data/csv_rate0.2_category1000"


def _files(repo: Path):
    """{file name: bytes} for every official CSV, from a git directory (HEAD) or a checkout."""
    if (repo / CSV_DIR).is_dir():
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        return {p.name: p.read_bytes() for p in sorted((repo / CSV_DIR).glob("csv*/*.csv"))}, commit or "unknown"
    git = ["git", "--git-dir", str(repo)]
    commit = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    names = subprocess.run(git + ["ls-tree", "-r", "--name-only", "HEAD", CSV_DIR], capture_output=True, text=True,
                           check=True).stdout.split()
    files = {}
    for name in names:
        if name.endswith(".csv"):
            files[Path(name).name] = subprocess.run(git + ["show", f"HEAD:{name}"], capture_output=True,
                                                    check=True).stdout
    return files, commit


def values_hash(params: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(params, dtype="<f8").tobytes()).hexdigest()[:16]


def text_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True, help="snapshot of the official repository (git dir or checkout)")
    args = p.parse_args(argv)
    repo = Path(args.repo)
    if not repo.exists():
        p.error(f"--repo: {repo} does not exist")
    files, commit = _files(repo)
    names = sorted(files)
    if names != ["%05d.csv" % i for i in range(1000)]:
        p.error(f"--repo: expected 00000.csv ... 00999.csv under {CSV_DIR}, found {len(names)} files")
    text, values, maps = [], [], []
    for name in names:
        params = np.loadtxt(io.BytesIO(files[name]), delimiter=",", ndmin=2, dtype=np.float64)
        assert params.shape[1] == 7, name
        text.append(text_hash(files[name]))
        values.append(values_hash(params))
        maps.append(int(params.shape[0]))
    write_json("fractaldb_official_1k", {
        "reference": "hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch " + CSV_DIR + "/csv*/NNNNN.csv",
        "commit": commit, "command": "tools/conformance/fractaldb_official.py",
        "fingerprint": "sha256[:16] of the file bytes (text) and of the rows as little-endian float64 (values)",
        "n_maps": maps, "text_sha256_16": text, "values_sha256_16": values})


if __name__ == "__main__":
    main()
