"""Images from the official FractalDB renderer itself, as pixel hashes, for more categories, weights and draw types.

Runs fractal_renderer/ifs_function.py of hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch (read from a
snapshot of that repository OUTSIDE this one and imported from a scratch folder; nothing of it is committed) on the
official category CSVs of the same snapshot, at the FractalDB-1k settings (362 px, 200,000 points, padding 6),
and writes tests/data/conformance/fractaldb_official_renders.json: the first 16 hex digits of SHA-256 over each
flip-0 image array (gray: one channel, as the three are equal; colour: RGB as saved).

    python tools/conformance/fractaldb_renderer.py \\
        --repo /work/.mirror/hirokatsukataoka16+FractalDB-Pretrained-ResNet-PyTorch/repo

The official weight table (fractal_renderer/weights/weights_0.4.csv) is not in the repository, so the multipliers
of the weight variants used here are written out below from its description (step 0.4: one of a..f scaled by
0.2, 0.6, 1.4 or 1.8; row 2 is the identity) and recorded in the JSON; the test checks tfsynth's table against them.
Needs NumPy and Pillow only (the renderer's own imports).
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402

from tools.conformance._common import write_json  # noqa: E402

CSV_DIR = "data/csv_rate0.2_category1000"
# weight index -> multipliers of (a, b, c, d, e, f); rows of the official step-0.4 table
WEIGHTS = {0: (0.2, 1, 1, 1, 1, 1), 2: (1, 1, 1, 1, 1, 1), 7: (1, 1.4, 1, 1, 1, 1), 24: (1, 1, 1, 1, 1, 1.8)}
CATEGORIES = (0, 1, 2, 3, 57, 311, 500, 999)
DRAWS = {"point_gray": "gray", "point_color": "color"}
IMAGE_SIZE, PAD, ITERATIONS = 362, 6, 200_000


def _git(repo: Path, *args) -> bytes:
    return subprocess.run(["git", "--git-dir", str(repo), *args], capture_output=True, check=True).stdout


def sha16(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repo", required=True, help="git directory of a snapshot of the official repository")
    p.add_argument("--scratch", default="/work/scratch/fractaldb_ref",
                   help="where the renderer is put (outside the repo)")
    args = p.parse_args(argv)
    repo = Path(args.repo)
    if not (repo / "HEAD").is_file():
        p.error(f"--repo: {repo} is not a git directory")
    from PIL import Image

    commit = _git(repo, "rev-parse", "HEAD").decode().strip()
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "ifs_function.py").write_bytes(_git(repo, "show", "HEAD:fractal_renderer/ifs_function.py"))
    spec = importlib.util.spec_from_file_location("ifs_function", scratch / "ifs_function.py")
    official = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official)
    paths = {Path(n).name: n for n in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", CSV_DIR).decode().split()}
    renders = {}
    with tempfile.TemporaryDirectory(dir=scratch) as out:
        for category in CATEGORIES:
            name = "%05d" % category
            text = _git(repo, "show", f"HEAD:{paths[name + '.csv']}").decode()
            params = np.genfromtxt(io.StringIO(text), dtype=str, delimiter=",", ndmin=2)  # as make_fractaldb.py
            Path(out, name).mkdir(exist_ok=True)
            for weight_index, weight in WEIGHTS.items():
                for draw_type, colour in DRAWS.items():
                    count = "%02d" % weight_index
                    generator = official.ifs_function(prev_x=0.0, prev_y=0.0, save_root=out, fractal_name=name,
                                                      fractal_weight_count=count)
                    for param in params:
                        generator.set_param(*(float(v) for v in param[:7]), weight_a=weight[0], weight_b=weight[1],
                                            weight_c=weight[2], weight_d=weight[3], weight_e=weight[4],
                                            weight_f=weight[5])
                    generator.calculate(ITERATIONS)
                    generator.draw_point(IMAGE_SIZE, IMAGE_SIZE, PAD, PAD, colour, 0)
                    image = np.array(Image.open(Path(out, name, f"{name}_{count}_count_0_flip0.png")))
                    if colour == "gray":
                        assert (image == image[..., :1]).all()
                        image = image[..., 0]
                    renders[f"{name}/{draw_type}/w{weight_index:02d}"] = sha16(image)
                    print(name, draw_type, weight_index, renders[f"{name}/{draw_type}/w{weight_index:02d}"], flush=True)
    write_json("fractaldb_official_renders", {
        "reference": "hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch fractal_renderer/ifs_function.py "
                     "(calculate + draw_point, flip 0) on " + CSV_DIR,
        "commit": commit, "command": "tools/conformance/fractaldb_renderer.py",
        "image_size": IMAGE_SIZE, "pad": PAD, "iterations": ITERATIONS,
        "weights": {str(k): list(map(float, v)) for k, v in WEIGHTS.items()},
        "fingerprint": "sha256[:16] of the flip-0 image array (gray: H x W uint8; colour: H x W x 3 uint8)",
        "renders": renders})


if __name__ == "__main__":
    main()
