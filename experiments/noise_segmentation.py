"""Seed 001 (Holm 2022), Table 2 at laptop scale: an FCN-ResNet-50 trained on Perlin-noise scenes and on sparse-
convolution scenes, each scored on both held-out sets, against trivial baselines on the same images.

    python -m experiments.noise_segmentation --config small --workdir /work/runs/noise_seg_small   # 27 CPU-min
    python -m experiments.noise_segmentation --config tiny --workdir /tmp/noise_seg_tiny           # ~1 min (tests)

Stages, in order; each is done when its marker `<workdir>/stages/<stage>.json` exists (written atomically, last,
with the stage's CPU and wall time), so rerunning the command skips finished stages (a training stage that was
interrupted continues from its last epoch checkpoint: `train.segment`'s resume):

  data                  `noise_scenes/<noise>_<size>` for every noise, built into <workdir>/tfds (Beam, in-process)
  train-<noise>-s<seed> `tfsynth.segmentation.training.run` (the job behind `python -m train.segment`) with the
                        synthetic dataset as its only stage, in <workdir>/train/<noise>-s<seed>/
  eval-<noise>-s<seed>  the final model on the validation split of every noise (the same scenes in each: the
                        datasets share their seed), one confusion matrix per image -> <workdir>/eval/*.npz
  baselines             on the same images: all background; the best per-pixel hue rule and the best per-pixel
                        colour rule (Bayes lookup tables over quantised hue / HSV, fitted on the training images)
  ceiling               diagnosis: the true label maps through the FCN's output-stride-8 bottleneck (pooled to
                        1/8, upsampled bilinearly): about the best an FCN can score at this resolution
  report                results.md, results.json and plots in `results_dir` (config) or <workdir>/results; redone
                        whenever another stage finished after it

Intervals: 95 % percentile bootstrap over the held-out images (the same resampled images for every model, test
set and baseline, so differences are paired); a score is computed from the summed confusion matrix of the
resampled images of each training seed and averaged over the seeds. The per-seed values are listed too.
Configs are functions (`small`, `tiny`) returning an `ExperimentConfig`; nothing here trains or scores by itself:
training, the model and the metrics are the project's (`train.segment`, `tfsynth.segmentation`).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
from typing import Callable, Optional

import numpy as np

from experiments.common import stage_marker, run_stages, git_commit, read_json, savez, write_json
from tfsynth import markdown
from tfsynth.atomic import atomic_write_text
from tfsynth.segmentation import metrics
from tfsynth.workdir import RESULTS_NAME

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASS_NAMES = ("background", "class_1", "class_2", "class_3")
NUM_CLASSES = len(CLASS_NAMES)
# Label colours: each class's mean hue at HSL(h, 1, 0.5) (150, 250, 350 degrees), background black, as Figure 3.
CLASS_COLOURS = np.array([(0, 0, 0), (0, 255, 128), (43, 0, 255), (255, 0, 43)], np.uint8)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Everything the experiment varies; the remaining training hyper-parameters are `SegmentConfig`'s defaults."""

    name: str
    noises: tuple = ("perlin", "sc")  # one held-out set per noise (and one training set, see train_noises)
    train_noises: tuple = ()  # the noises an FCN is trained on (() = every noise)
    dataset_size: str = "small"  # noise_scenes config suffix: <noise>_small (900 + 100 at 256 px), <noise>_tiny
    train_examples: int = 0  # train on the first N training scenes (0 = all)
    image_size: int = 64  # shorter side the scenes are resized to, for training and evaluation
    seeds: tuple = (1, 2)  # training seeds (initialisation, data order, flips)
    epochs: int = 2
    batch_size: int = 8
    lr: float = 0.01
    momentum: float = 0.9
    lr_schedule: str = "poly"
    hflip_prob: float = 0.5
    weight_decay: float = 1e-4
    eval_batch_size: int = 20
    hue_bins: int = 36  # baselines: hue rule over (hue bin, saturated?), colour rule over hue x sat x value bins
    saturation_bins: int = 8
    value_bins: int = 8
    grey_saturation: float = 0.25  # hue rule: pixels below this saturation fall in one 'grey' cell
    bootstrap: int = 1000  # resamples of the held-out images
    num_overlays: int = 4  # held-out images shown per overlay figure
    verbose: int = 2  # Keras fit verbosity of the training stages (2: one line per epoch)
    results_dir: str = ""  # where the report goes ('' = <workdir>/results); relative paths: to the repository

    def __post_init__(self):
        if not self.noises or len(set(self.noises)) != len(self.noises):
            raise ValueError(f"noises must be distinct and non-empty, got {self.noises}")
        if not set(self.train_noises) <= set(self.noises):
            raise ValueError(f"train_noises {self.train_noises} must be among noises {self.noises}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct and non-empty, got {self.seeds}")
        if min(self.image_size, self.epochs, self.batch_size, self.bootstrap) < 1:
            raise ValueError("image_size, epochs, batch_size and bootstrap must be >= 1")

    @property
    def trained(self) -> tuple:
        return self.train_noises or self.noises

    def dataset(self, noise: str) -> str:
        return f"noise_scenes/{noise}_{self.dataset_size}"

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def small() -> ExperimentConfig:
    """The laptop run (27 CPU-minutes measured on 2 shared cores): perlin_small / sc_small (900 + 100 scenes rendered at
    256 px) resized to 64 px, 3 epochs, one training seed per noise (intervals: bootstrap over held-out images).
    The seed: 9,000 + 1,000 at 512 px resized to 520, 10 epochs of SGD lr 0.01 without momentum (11,250 steps);
    here SGD momentum 0.9 with a poly schedule and flips, to learn in 339 steps. A pilot at 2 epochs reached
    44.7 % held-out macro IoU after its first epoch (0.25 CPU-s per training image at 64 px)."""
    return ExperimentConfig(name="small", seeds=(1,), epochs=3, results_dir="docs/results/noise_segmentation_small")


def tiny() -> ExperimentConfig:
    """The whole chain in about a minute (tests): perlin_tiny / sc_tiny (12 + 4 at 64 px) at 32 px, one FCN (on
    perlin, one epoch, one seed) scored on both held-out sets. Its numbers carry no signal."""
    return ExperimentConfig(name="tiny", dataset_size="tiny", train_noises=("perlin",), image_size=32, seeds=(1,),
                            epochs=1, batch_size=4, lr=0.02, eval_batch_size=4, bootstrap=200, num_overlays=2,
                            verbose=0)


CONFIGS: dict[str, Callable[[], ExperimentConfig]] = {"small": small, "tiny": tiny}


# ----------------------------------------------------------------------------------------------------------------
# Bookkeeping: atomic files, stage markers, CPU time.

def stage_names(config: ExperimentConfig) -> list[str]:
    runs = [f"{noise}-s{seed}" for noise in config.trained for seed in config.seeds]
    return ["data", *(f"train-{r}" for r in runs), *(f"eval-{r}" for r in runs), "baselines", "ceiling", "report"]




# ----------------------------------------------------------------------------------------------------------------
# Data and stages that need TensorFlow (imported inside, so the report alone stays TF-free).

def segment_config(config: ExperimentConfig, noise: str, seed: int):
    """The `train.segment` config of one training run: the noise dataset as the only (pre-training) stage."""
    from tfsynth.segmentation.configs import SegmentConfig

    split = f"train[:{config.train_examples}]" if config.train_examples else "train"
    size = config.image_size
    return SegmentConfig(pretrain_data=(config.dataset(noise),), finetune_data="", train_split=split,
                         train_min_size=size, train_max_size=size, eval_size=size, hflip_prob=config.hflip_prob,
                         batch_size=config.batch_size, eval_batch_size=config.eval_batch_size,
                         pretrain_epochs=config.epochs, lr=config.lr, momentum=config.momentum,
                         lr_schedule=config.lr_schedule, weight_decay=config.weight_decay,
                         num_overlays=2, seed=seed)


def _data_dir(workdir: str) -> str:
    return os.path.join(workdir, "tfds")


def _train_dir(workdir: str, noise: str, seed: int) -> str:
    return os.path.join(workdir, "train", f"{noise}-s{seed}")


def _arrays(config: ExperimentConfig, workdir: str, noise: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(N, S, S, 3) uint8 images and (N, S, S) uint8 labels of a split, resized as the FCN sees them."""
    from tfsynth.segmentation import pipeline

    data = pipeline.load_data(config.dataset(noise), split, data_dir=_data_dir(workdir))
    pairs = [(np.asarray(i), np.asarray(l)[..., 0])
             for i, l in pipeline.eval_examples(data, config.image_size, try_autocache=False)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def per_image_confusion(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """(N, K, K) int64 confusion matrices (rows true, columns predicted), one per image; label 255 ignored."""
    labels = np.asarray(labels, np.int64).reshape(len(labels), -1)
    predictions = np.asarray(predictions, np.int64).reshape(len(labels), -1)
    keep = labels != metrics.IGNORE_INDEX
    if labels[keep].size and (labels[keep].max() >= num_classes or predictions[keep].max() >= num_classes):
        raise ValueError(f"labels or predictions outside [0, {num_classes})")
    image = np.broadcast_to(np.arange(len(labels))[:, None], labels.shape)
    index = (image[keep] * num_classes + labels[keep]) * num_classes + predictions[keep]
    return np.bincount(index, minlength=len(labels) * num_classes ** 2).reshape(len(labels), num_classes, num_classes)


def stage_data(config: ExperimentConfig, workdir: str) -> dict:
    from tfsynth.segmentation import pipeline

    info = {}
    for noise in config.noises:
        for split in ("train", "validation"):
            data = pipeline.load_data(config.dataset(noise), split, data_dir=_data_dir(workdir), auto_build=True)
            info[f"{noise}/{split}"] = data.as_dict()
    return {"datasets": info}


def stage_train(config: ExperimentConfig, workdir: str, noise: str, seed: int) -> dict:
    import keras

    from tfsynth.segmentation import training

    keras.backend.clear_session()
    results = training.run(segment_config(config, noise, seed), _train_dir(workdir, noise, seed), resume=True,
                           data_dir=_data_dir(workdir), verbose=config.verbose)
    (stage,) = results["stages"].values()
    return {"train_dir": _train_dir(workdir, noise, seed), "model": stage["model"], "final": stage["final"],
            "optimizer_steps": stage["optimizer_steps"]}


def _model_path(workdir: str, noise: str, seed: int) -> str:
    return read_json(stage_marker(workdir, f"train-{noise}-s{seed}"))["model"]


def stage_eval(config: ExperimentConfig, workdir: str, noise: str, seed: int) -> dict:
    import keras

    import tfsynth.segmentation.training  # noqa: F401 - registers the custom layers/optimizer of saved models
    from tfsynth.segmentation.evaluation import Evaluator

    keras.backend.clear_session()
    model = keras.models.load_model(_model_path(workdir, noise, seed), compile=False)
    evaluator = Evaluator(model, NUM_CLASSES)
    arrays = {}
    for test in config.noises:
        images, labels = _arrays(config, workdir, test, "validation")
        b = config.eval_batch_size
        predictions = np.concatenate([evaluator.predict(images[i:i + b]) for i in range(0, len(images), b)])
        arrays[f"cm_{test}"] = per_image_confusion(labels, predictions)
        arrays[f"pred_{test}"] = predictions[:config.num_overlays].astype(np.uint8)
    path = os.path.join(workdir, "eval", f"{noise}-s{seed}.npz")
    savez(path, **arrays)
    return {"file": path}


def rgb_to_hsv(images: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float HSV in [0, 1] (hue 0 for greys), matplotlib's convention."""
    from matplotlib.colors import rgb_to_hsv as to_hsv

    return to_hsv(np.asarray(images, np.float32) / 255.0)


def hue_cells(images: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """Hue rule cells: hue bin (0..hue_bins-1) for saturated pixels, hue_bins for greys."""
    hsv = rgb_to_hsv(images)
    hue = np.minimum((hsv[..., 0] * config.hue_bins).astype(np.int64), config.hue_bins - 1)
    return np.where(hsv[..., 1] < config.grey_saturation, config.hue_bins, hue)


def colour_cells(images: np.ndarray, config: ExperimentConfig) -> np.ndarray:
    """Colour rule cells: hue x saturation x value bins."""
    hsv = rgb_to_hsv(images)
    bins = (config.hue_bins, config.saturation_bins, config.value_bins)
    h, s, v = (np.minimum((hsv[..., i] * n).astype(np.int64), n - 1) for i, n in enumerate(bins))
    return (h * bins[1] + s) * bins[2] + v


def fit_lookup(cells: np.ndarray, labels: np.ndarray, num_cells: int, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The Bayes rule over quantised colours: per cell, the most frequent training class (background if unseen)."""
    keep = labels != metrics.IGNORE_INDEX
    counts = np.bincount(cells[keep] * num_classes + labels[keep].astype(np.int64),
                         minlength=num_cells * num_classes).reshape(num_cells, num_classes)
    return counts.argmax(axis=1).astype(np.uint8)  # argmax of an all-zero row is 0 = background


def _upsample_bilinear(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation along `axis` to `size` samples, half-pixel centres, edges clamped (as
    tf.image.resize(method='bilinear') and torch's interpolate(align_corners=False) when enlarging)."""
    n = x.shape[axis]
    src = np.clip((np.arange(size) + 0.5) * n / size - 0.5, 0, n - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1] * x.ndim
    shape[axis] = size
    w = (src - i0).reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - w) + np.take(x, i1, axis=axis) * w


def stride_ceiling(labels: np.ndarray, stride: int = 8, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """The true label maps (N, S, S) pushed through the FCN's output bottleneck: one-hot labels averaged over
    stride x stride blocks (the resolution of the logits at output stride 8), upsampled bilinearly to S x S as
    the FCN upsamples its logits, argmax. About the best any stride-8 prediction can do at this resolution."""
    labels = np.asarray(labels, np.int64)
    n, h, w = labels.shape
    hb, wb = h // stride, w // stride
    onehot = np.eye(num_classes)[labels[:, :hb * stride, :wb * stride]]
    pooled = onehot.reshape(n, hb, stride, wb, stride, num_classes).mean(axis=(2, 4))
    return _upsample_bilinear(_upsample_bilinear(pooled, 1, h), 2, w).argmax(axis=-1)


def stage_ceiling(config: ExperimentConfig, workdir: str) -> dict:
    arrays, sizes = {}, (config.image_size, 2 * config.image_size)
    for size in sizes:
        sized = dataclasses.replace(config, image_size=size)
        _, labels = _arrays(sized, workdir, config.noises[0], "validation")  # every noise has the same label maps
        arrays[f"cm_{size}"] = per_image_confusion(labels, stride_ceiling(labels))
    path = os.path.join(workdir, "ceiling.npz")
    savez(path, **arrays)
    return {"file": path, "sizes": list(sizes)}


def stage_baselines(config: ExperimentConfig, workdir: str) -> dict:
    num_hue = config.hue_bins + 1
    num_colour = config.hue_bins * config.saturation_bins * config.value_bins
    tests = {t: _arrays(config, workdir, t, "validation") for t in config.noises}
    arrays, tables = {}, {}
    for test, (images, labels) in tests.items():
        arrays[f"cm_background_{test}"] = per_image_confusion(labels, np.zeros_like(labels))
    for train in config.noises:
        images, labels = _arrays(config, workdir, train, "train")
        if config.train_examples:
            images, labels = images[:config.train_examples], labels[:config.train_examples]
        hue_table = fit_lookup(hue_cells(images, config), labels, num_hue)
        colour_table = fit_lookup(colour_cells(images, config), labels, num_colour)
        arrays[f"table_hue_{train}"], arrays[f"table_colour_{train}"] = hue_table, colour_table
        for test, (test_images, test_labels) in tests.items():
            hue_pred = hue_table[hue_cells(test_images, config)]
            colour_pred = colour_table[colour_cells(test_images, config)]
            arrays[f"cm_hue_{train}_{test}"] = per_image_confusion(test_labels, hue_pred)
            arrays[f"cm_colour_{train}_{test}"] = per_image_confusion(test_labels, colour_pred)
            arrays[f"pred_colour_{train}_{test}"] = colour_pred[:config.num_overlays]
        tables[train] = {"hue_cells_used": int(np.unique(hue_cells(images, config)).size),
                         "colour_cells_used": int(np.unique(colour_cells(images, config)).size),
                         "train_images": int(len(images))}
    for test, (images, labels) in tests.items():
        arrays[f"images_{test}"] = images[:config.num_overlays]
        arrays[f"labels_{test}"] = labels[:config.num_overlays]
    path = os.path.join(workdir, "baselines.npz")
    savez(path, **arrays)
    return {"file": path, "fitted": tables}


# ----------------------------------------------------------------------------------------------------------------
# Scores, bootstrap intervals (NumPy only).

def batch_scores(matrices: np.ndarray) -> dict[str, np.ndarray]:
    """`metrics.scores(m)` (scikit-learn's defaults: IoU/F1 over classes in labels or predictions, balanced
    accuracy over classes in labels) for a stack of confusion matrices (B, K, K) at once."""
    cm = np.asarray(matrices, np.float64)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    total = cm.sum(axis=(1, 2))
    fp, fn = predicted - tp, support - tp
    present = (support > 0) | (predicted > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, tp / np.where(present, tp + fp + fn, 1), np.nan)
        f1 = np.where(present, 2 * tp / np.where(present, 2 * tp + fp + fn, 1), np.nan)
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)
        tp_l, fp_l, fn_l = tp.sum(1), fp.sum(1), fn.sum(1)
        return {"micro_accuracy": tp.sum(1) / total, "macro_accuracy": np.nanmean(recall, axis=1),
                "micro_iou": tp_l / (tp_l + fp_l + fn_l), "macro_iou": np.nanmean(iou, axis=1),
                "micro_f1": 2 * tp_l / (2 * tp_l + fp_l + fn_l), "macro_f1": np.nanmean(f1, axis=1)}


def error_decomposition(matrix: np.ndarray) -> dict:
    """Splits the errors of a confusion matrix (class 0 = background) into finding objects and naming them:
    foreground IoU (classes 1.. merged against background) and the class accuracy on the pixels that are
    objects in both the labels and the prediction."""
    cm = np.asarray(matrix, np.int64)
    objects = cm[1:, 1:]
    found, missed, spurious = int(objects.sum()), int(cm[1:, 0].sum()), int(cm[0, 1:].sum())
    return {"foreground_iou": found / max(found + missed + spurious, 1),
            "object_class_accuracy": float(np.trace(objects) / max(found, 1))}


def per_class_iou(matrix: np.ndarray) -> list[float]:
    return [float(v) for v in metrics.scores(matrix)["per_class"]["iou"]]


def summarise(per_seed_cms: dict, resamples: np.ndarray) -> dict:
    """Scores of one (model, test set): per seed, the mean over seeds and its bootstrap interval.

    per_seed_cms: {seed: (N, K, K) per-image matrices}; resamples: (B, N) image indices shared by everything."""
    per_seed, boot = {}, []
    for seed, cms in per_seed_cms.items():
        s = metrics.scores(cms.sum(axis=0))
        per_seed[str(seed)] = {m: s[m] for m in metrics.METRICS} | {"per_class_iou": per_class_iou(cms.sum(0)),
                                                                     **error_decomposition(cms.sum(0))}
        boot.append(batch_scores(cms[resamples].sum(axis=1)))
    mean = {m: float(np.mean([v[m] for v in per_seed.values()])) for m in metrics.METRICS}
    ci = {m: [float(np.nanpercentile(np.mean([b[m] for b in boot], axis=0), q)) for q in (2.5, 97.5)]
          for m in metrics.METRICS}
    classes = np.array([v["per_class_iou"] for v in per_seed.values()], np.float64)
    decomposition = {k: float(np.mean([v[k] for v in per_seed.values()]))
                     for k in ("foreground_iou", "object_class_accuracy")}
    return {"mean": mean, "ci95": ci, "per_seed": per_seed, "decomposition": decomposition,
            "per_class_iou": [float(v) for v in np.nanmean(classes, axis=0)],
            "boot": {m: np.mean([b[m] for b in boot], axis=0) for m in metrics.METRICS}}


def paired_difference(a: dict, b: dict, metric: str) -> dict:
    """a - b (means over seeds) with the percentile interval of the paired bootstrap differences."""
    diff = a["boot"][metric] - b["boot"][metric]
    return {"difference": a["mean"][metric] - b["mean"][metric],
            "ci95": [float(np.nanpercentile(diff, q)) for q in (2.5, 97.5)]}


# ----------------------------------------------------------------------------------------------------------------
# Report.

def _pct(v: float) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"


def _cell(s: dict, m: str) -> str:
    lo, hi = s["ci95"][m]
    return f"{_pct(s['mean'][m])} [{_pct(lo)}, {_pct(hi)}]"


def _diff_cell(d: dict) -> str:
    lo, hi = d["ci95"]
    return f"{100 * d['difference']:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _plot_curves(config: ExperimentConfig, workdir: str, path: str, references: dict) -> None:
    """Training / held-out loss and held-out macro IoU per epoch of every run; `references` (name -> macro IoU)
    are drawn as horizontal lines in the last panel."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 4))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    for noise in config.trained:
        for seed in config.seeds:
            run = _train_dir(workdir, noise, seed)
            (stage,) = read_json(os.path.join(run, "config.json"))["stages"]
            history = read_json(os.path.join(run, stage, "history.json"))
            epochs = [e["epochs_completed"] for e in history]
            label = f"{noise}, seed {seed}"
            trained = [e for e in history if e["train_loss"] is not None]
            axes[0].plot([e["epochs_completed"] for e in trained], [e["train_loss"] for e in trained], marker="o",
                         label=label)
            axes[1].plot(epochs, [e["val_loss"] for e in history], marker="o", label=label)
            axes[2].plot(epochs, [100 * e["macro_iou"] for e in history], marker="o", label=label)
    for (label, value), style in zip(references.items(), ("--", ":", "-.", (0, (1, 4)))):
        axes[2].axhline(100 * value, color="grey", linestyle=style, label=label)
    for ax, title in zip(axes, ("training loss (epoch mean)", "held-out loss", "held-out macro IoU [%]")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.set_xlabel("epochs completed")
        ax.grid(True, alpha=0.4)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_per_class(rows: list[tuple[str, list[float]]], path: str, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(rows)
    x = np.arange(NUM_CLASSES)
    for i, (name, values) in enumerate(rows):
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, [100 * np.nan_to_num(v) for v in values], width, label=name)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_ylabel("IoU [%]")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.4)
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_overlays(config: ExperimentConfig, workdir: str, base, train: str, test: str, path: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seed = config.seeds[0]
    fcn = np.load(os.path.join(workdir, "eval", f"{train}-s{seed}.npz"))[f"pred_{test}"]
    images, labels = base[f"images_{test}"], base[f"labels_{test}"]
    colour = base[f"pred_colour_{train}_{test}"]
    columns = [("image", images), ("ground truth", CLASS_COLOURS[labels]),
               (f"FCN (trained on {train}, seed {seed})", CLASS_COLOURS[fcn]),
               (f"colour rule (fitted on {train})", CLASS_COLOURS[colour])]
    n = len(images)
    fig = Figure(figsize=(2.6 * len(columns), 2.6 * n + 0.4))
    FigureCanvasAgg(fig)
    for r in range(n):
        for c, (title, pictures) in enumerate(columns):
            ax = fig.add_subplot(n, len(columns), r * len(columns) + c + 1)
            ax.imshow(pictures[r], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
    fig.suptitle(f"Held-out {test} scenes at {config.image_size} px; labels in each class's mean hue (background "
                 "black, class 1 green, 2 blue, 3 red)",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def _results_dir(config: ExperimentConfig, workdir: str, override: Optional[str]) -> str:
    out = override or config.results_dir or os.path.join(workdir, "results")
    return out if os.path.isabs(out) else os.path.join(REPO, out)


def stage_report(config: ExperimentConfig, workdir: str, out: str, command: str) -> dict:
    rng = np.random.default_rng(0)
    base = np.load(os.path.join(workdir, "baselines.npz"))
    n_images = base[f"cm_background_{config.noises[0]}"].shape[0]
    resamples = rng.integers(0, n_images, size=(config.bootstrap, n_images))
    fcn_cms = {(train, seed): np.load(os.path.join(workdir, "eval", f"{train}-s{seed}.npz"))
               for train in config.trained for seed in config.seeds}
    fcn, baselines = {}, {}
    for train in config.noises:
        for test in config.noises:
            if train in config.trained:
                fcn[(train, test)] = summarise({s: fcn_cms[(train, s)][f"cm_{test}"] for s in config.seeds},
                                               resamples)
            for rule in ("hue", "colour"):
                baselines[(rule, train, test)] = summarise({0: base[f"cm_{rule}_{train}_{test}"]}, resamples)
    for test in config.noises:
        baselines[("background", None, test)] = summarise({0: base[f"cm_background_{test}"]}, resamples)
    ceiling_npz = np.load(os.path.join(workdir, "ceiling.npz"))
    ceiling = {int(k[3:]): summarise({0: ceiling_npz[k]}, resamples) for k in ceiling_npz.files}
    curves = {}
    for train in config.trained:
        for seed in config.seeds:
            run_dir = _train_dir(workdir, train, seed)
            (stage,) = read_json(os.path.join(run_dir, "config.json"))["stages"]
            curves[f"{train}-s{seed}"] = [{k: e[k] for k in ("epochs_completed", "train_loss", "val_loss",
                                                              "macro_iou", "micro_accuracy")}
                                          for e in read_json(os.path.join(run_dir, stage, "history.json"))]

    def name(rule, train):
        return {"background": "all background", "hue": f"hue rule (fitted on {train})",
                "colour": f"colour rule (fitted on {train})"}[rule]

    # Margins: FCN (in-domain) minus the best baseline on the same test set, and the cross-noise gaps.
    margins, gaps = {}, {}
    for test in config.trained:
        candidates = {k: v for k, v in baselines.items() if k[2] == test and k[1] in (None, test)}
        for metric in ("macro_iou", "micro_accuracy", "macro_f1"):
            best = max(candidates, key=lambda k: candidates[k]["mean"][metric])
            margins.setdefault(test, {})[metric] = {"best_baseline": name(best[0], best[1]),
                                                    **paired_difference(fcn[(test, test)], candidates[best], metric)}
    for train in config.trained:
        for test in config.noises:
            if test != train:
                gaps[f"{train}->{test}"] = {m: paired_difference(fcn[(train, train)], fcn[(train, test)], m)
                                            for m in ("macro_iou", "micro_accuracy", "macro_f1")}
    beats = all(margins[t]["macro_iou"]["ci95"][0] > 0 for t in config.trained)

    os.makedirs(out, exist_ok=True)
    references = {f"hue rule on {t} (fitted on {t})": baselines[("hue", t, t)]["mean"]["macro_iou"]
                  for t in config.trained}
    references[f"stride-8 ceiling at {config.image_size} px"] = ceiling[config.image_size]["mean"]["macro_iou"]
    _plot_curves(config, workdir, os.path.join(out, "curves.png"), references)
    for test in config.noises:
        rows = [(f"FCN {train}", fcn[(train, test)]["per_class_iou"]) for train in config.trained]
        rows += [(name(r, t), baselines[(r, t, test)]["per_class_iou"]) for r, t, te in baselines
                 if te == test and t in (None, test)]
        _plot_per_class(rows, os.path.join(out, f"per_class_iou_{test}.png"), f"Per-class IoU on held-out {test}")
        for train in config.trained:
            _plot_overlays(config, workdir, base, train, test, os.path.join(out, f"overlays_{train}_on_{test}.png"))

    stages = {s: read_json(stage_marker(workdir, s)) for s in stage_names(config)[:-1]}
    cpu = {s: v["cpu_s"] for s, v in stages.items()}
    git = git_commit()
    strip = lambda s: {k: v for k, v in s.items() if k != "boot"}  # noqa: E731
    result = {
        "experiment": "noise_segmentation", "config": config.to_dict(), "command": command, "git": git,
        "num_test_images": int(n_images), "bootstrap_resamples": config.bootstrap,
        "interval": "95 % percentile bootstrap over held-out images (paired across models); mean over seeds",
        "class_names": list(CLASS_NAMES),
        "fcn": {f"{a}->{b}": strip(v) for (a, b), v in fcn.items()},
        "baselines": {(f"{r}->{te}" if t is None else f"{r}:{t}->{te}"): strip(v)
                      for (r, t, te), v in baselines.items()},
        "fcn_minus_best_baseline": margins, "cross_noise_gap": gaps, "fcn_beats_baselines": beats,
        "stride8_ceiling": {str(k): strip(v) for k, v in ceiling.items()}, "learning_curves": curves,
        "fitted_baselines": stages["baselines"]["fitted"],
        "training": {s: {k: v[k] for k in ("final", "optimizer_steps")} for s, v in stages.items()
                     if s.startswith("train-")},
        "cpu_s": cpu, "cpu_s_total": sum(cpu.values()),
        "wall_s": {s: v["wall_s"] for s, v in stages.items()},
    }
    _write_markdown(config, result, fcn, baselines, name, out)
    write_json(os.path.join(out, RESULTS_NAME), result)
    return {"results_dir": out, "fcn_beats_baselines": beats, "cpu_s_total": result["cpu_s_total"]}


def _summary(config, result, fcn, baselines) -> str:
    """The paragraph on top of results.md: the verdict against the baselines and what limits the FCN, from the
    numbers (nothing here is fixed text about the outcome)."""
    trained, margins = config.trained, result["fcn_minus_best_baseline"]
    verdict = ("beats every trivial baseline clearly" if result["fcn_beats_baselines"] else
               "does NOT clearly beat the trivial baselines")
    text = [f"The FCN-ResNet-50 {verdict} (in-domain macro IoU minus the best baseline's, paired 95 % bootstrap "
            "interval: " + "; ".join(f"{t}: {_diff_cell(margins[t]['macro_iou'])} points against the "
                                     f"{margins[t]['macro_iou']['best_baseline']}" for t in trained) + ")."]
    text.append("In-domain macro IoU: " + "; ".join(f"{t} {_pct(fcn[(t, t)]['mean']['macro_iou'])} % (micro "
                                                    f"accuracy {_pct(fcn[(t, t)]['mean']['micro_accuracy'])} %)"
                                                    for t in trained) + ".")
    curves = result["learning_curves"]
    per_epoch = "; ".join(f"{r}: " + " -> ".join(_pct(e["macro_iou"]) for e in c) for r, c in curves.items())
    gains = [c[-1]["macro_iou"] - c[-2]["macro_iou"] for c in curves.values() if len(c) > 1]
    steps = sorted({v["optimizer_steps"] for v in result["training"].values()})
    if gains:
        state = "still rising" if min(gains) > 0.01 else "flat"
        text.append(f"Held-out macro IoU per epoch ({per_epoch}) is {state} at the end (last epoch: "
                    f"{', '.join(f'{100 * g:+.1f}' for g in gains)} points, with the poly learning rate decaying to "
                    f"0) after {', '.join(map(str, steps))} optimizer steps, against the seed's 11,250.")
    ceiling = result["stride8_ceiling"][str(config.image_size)]["mean"]["macro_iou"]
    best = max(baselines[(r, t, t)]["mean"]["macro_iou"] for r in ("hue", "colour") for t in trained)
    text.append(f"At {config.image_size} px the label maps themselves, pushed through the FCN's stride-8 output, "
                f"score {_pct(ceiling)} % macro IoU ({100 * (ceiling - best):+.1f} points against the best fitted "
                "colour/hue rule), so the resolution " + ("leaves room for" if ceiling > best else "rules out")
                + " an FCN win at this size.")
    t = trained[0]
    f_d, h_d = fcn[(t, t)]["decomposition"], baselines[("hue", t, t)]["decomposition"]
    text.append(f"FCN trained on {t} against the hue rule: finding objects "
                f"(foreground IoU {_pct(f_d['foreground_iou'])} "
                f"vs the hue rule's {_pct(h_d['foreground_iou'])}) and naming them (class accuracy on found object "
                f"pixels {_pct(f_d['object_class_accuracy'])} vs {_pct(h_d['object_class_accuracy'])}).")
    return " ".join(text)


def _write_markdown(config, result, fcn, baselines, name, out) -> None:
    noises, seeds, trained = config.noises, config.seeds, config.trained
    titles = metrics.METRIC_TITLES

    def header(first: str = "Trained on", second: str = "Tested on") -> list[str]:
        return markdown.table_lines([first, second, *(titles[m] for m in metrics.METRICS)], [])

    lines = [f"# Seed 001 (Holm 2022), Table 2 at laptop scale: `{config.name}`", ""]
    lines += [_summary(config, result, fcn, baselines), ""]
    lines += ["Command (from the repository root):", "", f"    {result['command']}", "",
              f"Commit `{result['git']['commit']}`" + (" (with uncommitted changes)" if result["git"]["dirty"] else "")
              + f". Numbers: `{RESULTS_NAME}` (per seed, per class, bootstrap intervals).", ""]
    n_train = f"the first {config.train_examples}" if config.train_examples else "all"
    lines += ["## What was shrunk (against the seed)", "",
              "| | seed (Holm 2022) | here |", markdown.rule(3),
              f"| data | `perlin` / `sc`: 9,000 + 1,000 scenes at 512 px | `{noises[0]}_{config.dataset_size}` etc.: "
              f"{n_train} training + {result['num_test_images']} held-out scenes |",
              f"| resolution | shorter side resized to 520 | resized to {config.image_size} px |",
              f"| training | 10 epochs, SGD lr 0.01, no momentum, batch 8 (11,250 steps) | {config.epochs} epochs, "
              f"SGD lr {config.lr} momentum {config.momentum} ({config.lr_schedule} schedule), weight decay "
              f"{config.weight_decay}, batch {config.batch_size}, horizontal flips {config.hflip_prob} |",
              f"| runs | one per dataset | {len(seeds)} training seed(s) per dataset ({', '.join(map(str, seeds))}) |",
              "| intervals | normal approximation over 1,000 images | 95 % percentile bootstrap over the "
              f"{result['num_test_images']} held-out images ({config.bootstrap} resamples, the same for every row: "
              "paired), score of the summed confusion matrix per seed, averaged over seeds |",
              "", "Model, loss and metrics are the project's (`tfsynth.models.fcn`, `train.segment`'s job, "
              "`tfsynth.segmentation.metrics`: scikit-learn's definitions). The perlin and sc held-out sets hold the "
              "same scenes (same dataset seed), only the texture noise differs, so cross-noise comparisons are "
              "paired image by image.", ""]
    lines += ["## Table 2 (in-domain: trained and tested on the same noise)", "",
              "Mean over seeds [95 % bootstrap interval], percent.", "", *header()]
    for t in trained:
        lines.append(markdown.row([t, t, *(_cell(fcn[(t, t)], m) for m in metrics.METRICS)]))
    lines += ["", "Seed's Table 2 (full scale): perlin 97 / 94 / 95 / 89 / 97 / 94, sc 97 / 94 / 94 / 88 / 97 / 93.",
              ""]
    lines += ["## Trivial baselines on the same held-out images", "",
              "Hue rule: per-pixel lookup over "
              f"{config.hue_bins} hue bins plus one grey cell (saturation < {config.grey_saturation}); colour rule: "
              f"lookup over {config.hue_bins} x {config.saturation_bins} x {config.value_bins} HSV bins; each cell "
              "predicts the most frequent class of the training pixels in it (the best rule of that form on the "
              "training set).", "", *header("Baseline")]
    for (rule, train, test), s in baselines.items():
        lines.append(markdown.row([name(rule, train), test, *(_cell(s, m) for m in metrics.METRICS)]))
    lines += ["", "FCN minus the best baseline (in-domain FCN, baselines fitted on the same noise), paired bootstrap:",
              "", *markdown.table_lines(
                  ["Tested on", "metric", "best baseline", "FCN - baseline [95 %]"],
                  [[t, titles[metric], d["best_baseline"], f"{_diff_cell(d)} points"]
                   for t in trained for metric, d in result["fcn_minus_best_baseline"][t].items()])]
    lines += ["", "## Cross-noise generalisation", "", *header()]
    for a in trained:
        for b in noises:
            lines.append(markdown.row([a, b, *(_cell(fcn[(a, b)], m) for m in metrics.METRICS)]))
    lines += ["", "In-domain minus cross-noise (same model, same scenes, other texture noise):", "",
              *markdown.table_lines(
                  ["Model", "Macro IoU", "Micro Accuracy", "Macro F1"],
                  [[f"trained on {key.split('->')[0]}, tested on {key.split('->')[1]}",
                    *(_diff_cell(g[m]) for m in ("macro_iou", "micro_accuracy", "macro_f1"))]
                   for key, g in result["cross_noise_gap"].items()])]
    lines += ["", "## Per-class IoU (percent, mean over seeds)", "",
              *markdown.table_lines(["Model / rule", "Tested on", *CLASS_NAMES], [])]
    for (a, b), s in fcn.items():
        lines.append(markdown.row([f"FCN trained on {a}", b, *(_pct(v) for v in s["per_class_iou"])]))
    for (rule, train, test), s in baselines.items():
        lines.append(markdown.row([name(rule, train), test, *(_pct(v) for v in s["per_class_iou"])]))
    lines += [""] + [f"![per-class IoU on {t}](per_class_iou_{t}.png)" for t in noises] + [""]
    lines += ["## Per seed", "", *markdown.table_lines(
        ["Trained on", "Tested on", "seed", *(titles[m] for m in metrics.METRICS)],
        [[a, b, seed, *(_pct(v[m]) for m in metrics.METRICS)]
         for (a, b), s in fcn.items() for seed, v in s["per_seed"].items()])]
    lines += ["", "## Overlays (first held-out scenes: image, ground truth, FCN, colour rule)", ""]
    lines += [f"![{a} on {b}](overlays_{a}_on_{b}.png)" for a in trained for b in noises]
    lines += ["", "## Diagnosis: training length and resolution", "",
              "Held-out scores after each epoch (epoch 0: the initial model):", "",
              *markdown.table_lines(["Run", "epoch", "training loss", "held-out loss", "Macro IoU",
                                     "Micro Accuracy"], [])]
    for run_name, entries in result["learning_curves"].items():
        for e in entries:
            loss = "" if e["train_loss"] is None else f"{e['train_loss']:.3f}"
            lines.append(markdown.row([run_name, e["epochs_completed"], loss, f"{e['val_loss']:.3f}",
                                       _pct(e["macro_iou"]), _pct(e["micro_accuracy"])]))
    steps = sorted({v["optimizer_steps"] for v in result["training"].values()})
    lines += ["", f"Optimizer steps per run: {', '.join(map(str, steps))} (the seed: 11,250).", "",
              "Resolution ceiling: the true label maps pushed through the FCN's output bottleneck (one-hot labels "
              "averaged over 8 x 8 blocks, upsampled bilinearly as the FCN upsamples its logits, argmax), scored "
              "like a prediction. An FCN at this resolution cannot do much better than this row:", "",
              *header("Oracle", "size")]
    for size, c in result["stride8_ceiling"].items():
        lines.append(markdown.row(["stride-8 labels", f"{size} px", *(_cell(c, m) for m in metrics.METRICS)]))
    lines += ["", "Where the errors are: foreground IoU (classes 1-3 merged against background: finding the objects) "
              "and the class accuracy on pixels that are objects in both labels and prediction (naming them):", "",
              *markdown.table_lines(["Predictor", "Tested on", "foreground IoU", "object class accuracy"], [])]
    rows = [(f"FCN trained on {a}", b, s) for (a, b), s in fcn.items()]
    rows += [(name(r, t), te, s) for (r, t, te), s in baselines.items() if t in (None, te)]
    rows += [(f"stride-8 labels ({size} px)", "either", c) for size, c in result["stride8_ceiling"].items()]
    for who, test, s in rows:
        d = s["decomposition"]
        lines.append(markdown.row([who, test, _pct(d["foreground_iou"]), _pct(d["object_class_accuracy"])]))
    lines += ["", "## Learning curves", "", "![curves](curves.png)", "",
              "## CPU time per stage (user + system, this process and its children)", "",
              *markdown.table_lines(["Stage", "CPU [s]", "wall [s]"], [[s, f"{v:.0f}", f"{result['wall_s'][s]:.0f}"]
                                                                  for s, v in result["cpu_s"].items()])]
    lines += [f"| total | {result['cpu_s_total']:.0f} ({result['cpu_s_total'] / 60:.1f} CPU-min) | |", ""]
    atomic_write_text(os.path.join(out, "results.md"), "\n".join(lines))


# ----------------------------------------------------------------------------------------------------------------
# Driver.

def run(config: ExperimentConfig, workdir: str, *, results_dir: Optional[str] = None, command: str = "",
        only: Optional[list[str]] = None) -> dict:
    """Runs every unfinished stage in order; returns {stage: marker dict}."""
    workdir = os.path.abspath(workdir)
    out = _results_dir(config, workdir, results_dir)

    def run_stage(stage):
        kind, _, run_name = stage.partition("-")
        if stage == "data":
            return stage_data(config, workdir)
        if kind in ("train", "eval"):
            noise, _, seed = run_name.rpartition("-s")
            return (stage_train if kind == "train" else stage_eval)(config, workdir, noise, int(seed))
        if stage == "baselines":
            return stage_baselines(config, workdir)
        if stage == "ceiling":
            return stage_ceiling(config, workdir)
        return stage_report(config, workdir, out, command)

    done = run_stages(workdir, config, stage_names(config), run_stage, only)
    return done


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m experiments.noise_segmentation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, choices=sorted(CONFIGS), help="experiment size")
    parser.add_argument("--workdir", required=True, help="datasets, models, evaluations, stage markers")
    parser.add_argument("--results_dir", default=None,
                        help="report directory (default: the config's, small: docs/results/noise_segmentation_small)")
    parser.add_argument("--stage", action="append", default=None,
                        help="run only this stage (repeatable; default: every unfinished stage)")
    args = parser.parse_args(argv)
    config = CONFIGS[args.config]()
    if args.stage:
        unknown = sorted(set(args.stage) - set(stage_names(config)))
        if unknown:
            parser.error(f"--stage {', '.join(unknown)}: unknown; stages: {', '.join(stage_names(config))}")
    command = "python -m experiments.noise_segmentation " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    return run(config, args.workdir, results_dir=args.results_dir, command=command, only=args.stage)


if __name__ == "__main__":
    from tfsynth.cli import run_cli

    run_cli(main, user_errors=(ValueError, FileNotFoundError), onednn=True)
