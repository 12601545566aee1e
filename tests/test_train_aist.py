"""train.aist end to end on tiny generated RGBA image folders: outputs, resume, TensorBoard, input errors."""
import csv
import json
import os

import numpy as np
import pytest
from PIL import Image

from train import aist as train_aist


def _write_domain(folder, n, seed, textured):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :40]
    for i in range(n):
        cy, cx, r = rng.uniform(14, 26), rng.uniform(14, 26), rng.uniform(7, 12)
        mask = ((yy - cy) / r) ** 2 + ((xx - cx) / (r * 1.3)) ** 2 < 1
        rgba = np.zeros((40, 40, 4), np.uint8)
        colour = rng.integers(40, 255, 3)
        rgb = colour + (rng.integers(-40, 40, (40, 40, 3)) if textured else 0)
        rgba[..., :3] = np.clip(rgb, 0, 255) * mask[..., None]
        rgba[..., 3] = mask * 255
        Image.fromarray(rgba).save(os.path.join(folder, f"{i:03d}.png"))


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    root = tmp_path_factory.mktemp("aist_domains")
    _write_domain(root / "x", 6, 0, textured=False)
    _write_domain(root / "y", 4, 1, textured=True)
    return str(root / "x"), str(root / "y")


def _args(x, y, workdir, *extra):
    return ["--config", "tiny", "--x_data", x, "--y_data", y, "--workdir", workdir, "--n_epochs", "1",
            "--n_epochs_decay", "1", *extra]


def test_tiny_run_writes_generators_logs_and_resumes(domains, tmp_path):
    import keras
    import tfsynth.models.cyclegan  # noqa: F401  (registers the custom layers)

    x, y = domains
    wd = str(tmp_path / "run")
    res = train_aist.main(_args(*domains, wd))
    assert res["epochs_done"] == 2 and res["steps_per_epoch"] == 3  # max(6, 4) // batch 2
    assert res["images_x"] == 6 and res["images_y"] == 4
    losses = res["final_epoch_losses"]
    for k in ("gan_G", "gan_F", "cycle_X", "cycle_Y", "idt_G", "idt_F", "alpha_G", "alpha_F", "resdist_G",
              "resdist_F", "g_total", "d_X", "d_Y", "mask_iou_G", "mask_iou_F"):
        assert np.isfinite(losses[k]), k
    assert 0.0 <= losses["mask_iou_G"] <= 1.0
    G = keras.saving.load_model(os.path.join(wd, "G.keras"))
    out = np.asarray(G(np.zeros((1, 32, 32, 4), np.float32)))
    assert out.shape == (1, 32, 32, 4) and np.abs(out).max() <= 1.0
    events = os.listdir(os.path.join(wd, "logs", "train"))
    assert any(e.startswith("events.out.tfevents") for e in events)
    with open(os.path.join(wd, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert float(rows[1]["lr"]) == pytest.approx(1e-3 * 0.5)  # linear decay: 1 - 1/(1+1)

    # A run in the same workdir without --resume is refused; with --resume and one more decay epoch it continues.
    with pytest.raises(SystemExit, match="already holds a run"):
        train_aist.main(_args(*domains, wd))
    res2 = train_aist.main(_args(x, y, wd, "--n_epochs_decay", "2", "--resume"))
    assert res2["epochs_done"] == 3
    with open(os.path.join(wd, "history.csv")) as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["1", "2", "3"]
    with open(os.path.join(wd, "results.json")) as f:
        assert json.load(f)["epochs_done"] == 3


def test_nonblack_mode_runs_on_rgb(domains, tmp_path):
    res = train_aist.main(_args(*domains, str(tmp_path / "rgb"), "--alpha_mode", "nonblack", "--n_epochs_decay",
                                "0", "--steps_per_epoch", "1"))
    assert res["epochs_done"] == 1 and np.isfinite(res["final_epoch_losses"]["alpha_G"])


def test_bad_sources_name_the_problem(domains, tmp_path):
    x, _ = domains
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="no PNG/JPEG images found"):
        train_aist.main(_args(x, str(empty), str(tmp_path / "r1")))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit, match="broken.png: not a decodable"):
        train_aist.main(_args(x, str(bad), str(tmp_path / "r2")))
    with pytest.raises(SystemExit, match="alpha_mode"):
        train_aist.main(_args(x, x, str(tmp_path / "r3"), "--alpha_mode", "sometimes"))


def test_epoch_data_is_a_function_of_seed_and_epoch(domains):
    from tfsynth.aist import configs, data

    cfg = configs.tiny()
    x, y = data.load_source(domains[0]), data.load_source(domains[1])
    a = [tuple(np.asarray(t) for t in b) for b in data.epoch_dataset(cfg, x, y, epoch=1)]
    b = [tuple(np.asarray(t) for t in b) for b in data.epoch_dataset(cfg, x, y, epoch=1)]
    c = [tuple(np.asarray(t) for t in b) for b in data.epoch_dataset(cfg, x, y, epoch=2)]
    assert all(np.array_equal(p, q) for u, v in zip(a, b) for p, q in zip(u, v))
    assert not all(np.array_equal(p, q) for u, v in zip(a, c) for p, q in zip(u, v))
    xb, yb = a[0]
    assert xb.shape == (2, 32, 32, 4) and xb.min() >= -1 and xb.max() <= 1
    # Every X image appears exactly once per epoch (6 images, 3 batches of 2).
    flat = np.concatenate([u[0] for u in a])
    assert len({np.round(im[..., :3].sum(), 3) for im in flat}) >= 5


def test_tfds_source_combines_multiview_images_and_masks(tmp_path):
    import tensorflow_datasets as tfds

    from tfsynth.aist import data

    class AistTestViews(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "images": tfds.features.Sequence(tfds.features.Image(shape=(8, 8, 3)), length=2),
                "masks": tfds.features.Sequence(tfds.features.Image(shape=(8, 8, 1)), length=2)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(3):
                img = np.full((2, 8, 8, 3), 40 * i + 10, np.uint8)
                mask = np.zeros((2, 8, 8, 1), np.uint8)
                mask[:, 2:6, 2:6] = 1
                yield i, {"images": img, "masks": mask}

    AistTestViews(data_dir=str(tmp_path)).download_and_prepare()
    src = data.load_source("tfds:aist_test_views:train:images+masks", data_dir=str(tmp_path))
    assert len(src) == 6  # 3 examples x 2 views
    rgba = np.asarray(src.decode(src.items[2]))
    assert rgba.shape == (8, 8, 4)
    assert (rgba[2:6, 2:6, 3] == 255).all() and rgba[0, 0, 3] == 0 and rgba[3, 3, 0] == 50
    with pytest.raises(data.SourceError, match="no feature 'silhouettes'"):
        data.load_source("tfds:aist_test_views:train:images+silhouettes", data_dir=str(tmp_path))
