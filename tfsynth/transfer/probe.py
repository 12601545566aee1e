"""Frozen-feature linear probe: logistic regression on a network's pooled features (the standard measure of what
a representation holds, beside full fine-tuning); `run(...)` is everything `python -m eval.linear_probe` does.

Models (`parse_model`):

    NAME=PATH.keras        backbone.keras / model.keras of train.pretrain or train.finetune (any .keras model
                           holding a torchvision-named ResNet); NAME defaults to the file's directory name
    NAME=random:ARCH       a randomly initialised ARCH (resnet18..152), drawn afresh for every probe seed with
                           `keras.utils.set_random_seed(seed)`: the random-features baseline (kind 'scratch')
    scratch                short for scratch=random:resnet18

Features: the ResNet's global-average-pooled output ('avgpool', the input of its fc; what backbone.keras
returns), for centre crops of `crop_size` (after an optional shorter-side `resize`, as train.finetune evaluates)
of every image of the train and test splits, in file order. Pixels go through the model's own 'normalize' layer
(backbone.keras and model.keras carry the mean/std they were trained with); random networks and models without
one use `mean`/`std` (default ImageNet's, as train.finetune). Features are computed once per model (random
networks: once per seed) and reused for every data regime.

Probe (`fit_probe`): for each images-per-class count K and seed, the training subset is
`cv.per_class_sample(train labels, K, seed)` (K = 0: the whole split), the same draw train.finetune makes for
`--images_per_class K --seed seed`, so probe and fine-tuning numbers, and different models, pair by seed. The
features are standardised (scikit-learn StandardScaler fitted on that subset only) and a multinomial
LogisticRegression (lbfgs, L2, C fixed at 1.0 = scikit-learn's default unless `C` is given, no inner search:
at 10 images per class an inner cross-validation would be too noisy to choose anything) is fitted; the reported
number is its test-split top-1 in percent. Runs that stop at `max_iter` are flagged (`converged: false`).
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import time
import warnings
from typing import Optional, Sequence

import numpy as np

from tfsynth.atomic import atomic_write_text
from tfsynth.transfer import cv, table
from tfsynth.imagenet import IMAGENET_MEAN, IMAGENET_STD

RESNETS = tuple(f"resnet{d}" for d in (18, 34, 50, 101, 152))
DEFAULT_MAX_ITER = 10_000


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    path: Optional[str] = None  # .keras file
    random_arch: Optional[str] = None  # random network of this architecture (seeded by the probe seed)

    @property
    def kind(self) -> str:
        """'scratch' for random networks (the paired baseline), 'backbone' for saved models."""
        return "scratch" if self.random_arch else "backbone"

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind,
                "path": os.path.abspath(self.path) if self.path else None, "random_arch": self.random_arch}


def parse_model(item: str) -> ModelSpec:
    """'[NAME=]PATH.keras', '[NAME=]random:ARCH' or 'scratch' (see the module docstring); checks files exist."""
    if item == "scratch":
        return ModelSpec("scratch", random_arch="resnet18")
    name, sep, value = item.partition("=")
    if not sep:
        name, value = "", item
    if not value:
        raise ValueError(f"--model {item!r}: expected NAME=PATH.keras, NAME=random:ARCH or scratch")
    match = re.match(r"^random:(.*)$", value)
    if match:
        if match[1] not in RESNETS:
            raise ValueError(f"--model {item!r}: unknown architecture {match[1]!r}; valid: {', '.join(RESNETS)}")
        return ModelSpec(name or "scratch", random_arch=match[1])
    if not os.path.isfile(value):
        raise ValueError(f"--model {item!r}: {value} does not exist")
    return ModelSpec(name or os.path.basename(os.path.dirname(os.path.abspath(value))) or value, path=value)


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray, *,
              C: float = 1.0, max_iter: int = DEFAULT_MAX_ITER) -> dict:
    """Standardise (fitted on train_x), fit LogisticRegression(lbfgs, C), score test top-1 in percent.

    Returns {'top1', 'n_iter', 'converged'}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    train_x = np.asarray(train_x, np.float64)
    test_x = np.asarray(test_x, np.float64)
    if len(np.unique(train_y)) < 2:
        raise ValueError("a linear probe needs at least two classes in its training subset")
    scaler = StandardScaler().fit(train_x)
    classifier = LogisticRegression(C=C, solver="lbfgs", max_iter=max_iter)
    # One BLAS thread: these matrices are small, and on a busy 2-core machine OpenBLAS threads made a fit 13x slower.
    with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(scaler.transform(train_x), train_y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    predicted = classifier.predict(scaler.transform(test_x))
    return {"top1": float(100.0 * np.mean(predicted == np.asarray(test_y))),
            "n_iter": int(np.max(classifier.n_iter_)), "converged": converged}


def training_subset(train_y: np.ndarray, images_per_class: int, seed: int) -> np.ndarray:
    """Indices of the probe's training examples: train.finetune's `--images_per_class` draw (0: all)."""
    if images_per_class == 0:
        return np.arange(len(train_y))
    return cv.per_class_sample(train_y, images_per_class, seed)


def probe_runs(model: str, target: str, features, train_y: np.ndarray, test_y: np.ndarray,
               images_per_class: Sequence[int], seeds: Sequence[int], *, C: float = 1.0,
               max_iter: int = DEFAULT_MAX_ITER) -> list[dict]:
    """One run per (images per class, seed); `features(seed)` -> (train features, test features)."""
    runs = []
    for seed in seeds:
        train_x, test_x = features(seed)
        for k in images_per_class:
            idx = training_subset(train_y, k, seed)
            result = fit_probe(train_x[idx], train_y[idx], test_x, test_y, C=C, max_iter=max_iter)
            runs.append({"model": model, "target": target, "images_per_class": int(k), "seed": int(seed),
                         "top1": result["top1"], "train_examples": int(len(idx)), "test_examples": int(len(test_y)),
                         "n_iter": result["n_iter"], "converged": result["converged"]})
    return sorted(runs, key=lambda r: (r["images_per_class"] == 0, r["images_per_class"], r["seed"]))


def records(runs: Sequence[dict], models: dict[str, dict]) -> list[table.RunRecord]:
    """Probe runs as transfer-table records (top-1 as a fraction; random networks are the 'scratch' rows)."""
    return [table.RunRecord(source=r["model"], source_kind=models[r["model"]]["kind"],
                            arch=models[r["model"]]["arch"], downstream=r["target"], seed=r["seed"],
                            top1=r["top1"] / 100.0, path=models[r["model"]]["path"] or
                            f"random:{models[r['model']]['arch']}", images_per_class=r["images_per_class"],
                            train_examples=r["train_examples"] if r["images_per_class"] == 0 else None,
                            num_classes=models[r["model"]].get("num_classes"))
            for r in runs]


def markdown(runs: Sequence[dict], models: dict[str, dict], settings: dict) -> str:
    """Top-1 per model x regime (mean ± 95 % CI over seeds) and paired differences to the random network."""
    t = table.build_table(records(runs, models))
    seeds = sorted({r["seed"] for r in runs})
    caption = (f"Linear probe: test top-1 (%) of logistic regression (lbfgs, C {settings['C']:g}, standardised "
               f"features) on the frozen pooled features, {settings['crop_size']} px centre crops; trained on N "
               f"images per class drawn per seed (the fine-tuning draw) or the whole split; mean ± 95 % CI over "
               f"seeds (Student t) ({len(runs)} probes; seeds {', '.join(map(str, seeds))}).")
    paired = ("Paired difference to the random network (percentage points): probe top-1 minus the random "
              "network's with the same seed (the same training images), mean ± 95 % CI over the pairs.")
    return table.markdown(t, caption, paired_caption=paired, row_header="model")


# --- features (Keras) ---------------------------------------------------------------------------------------------

def feature_extractor(model, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """(keras.Model images [0, 255] -> pooled features (B, C), (mean, std) used): the model's own 'normalize'
    layer if it has one, else `mean`/`std`; then its ResNet up to 'avgpool'."""
    import keras

    from tfsynth.models.classifier import normalization_layer
    from tfsynth.transfer.heads import network_of, normalization_of

    net = network_of(model)
    if "avgpool" not in {layer.name for layer in net.layers}:
        raise ValueError(f"model {model.name!r} has no 'avgpool' layer: the probe reads a ResNet's pooled features")
    pooled = keras.Model(net.input, net.get_layer("avgpool").output, name=f"{net.name}_pooled")
    normalization = normalization_of(model)
    if normalization is not None:
        normalize = model.get_layer("normalize")
    else:
        normalization = (tuple(float(v) for v in mean), tuple(float(v) for v in std))
        normalize = normalization_layer(mean, std)
    images = keras.Input(shape=(None, None, 3), name="image")
    features = keras.layers.Activation("linear", dtype="float32", name="features")(pooled(normalize(images)))
    return keras.Model(images, features, name="probe_features"), normalization


def load_model(spec: ModelSpec, seed: int, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD):
    """The Keras model of `spec` (random networks: built with `seed`, normalising with `mean`/`std`)."""
    import keras

    if spec.random_arch:
        from tfsynth.models.classifier import build_classifier

        keras.utils.set_random_seed(seed)
        return build_classifier(1, arch=spec.random_arch, mean=mean, std=std, name=f"random_{spec.random_arch}")
    import tfsynth.models.reference_nets  # noqa: F401 - registers custom layers of saved reference nets
    import tfsynth.training.optim  # noqa: F401 - registers TorchSGD (model.keras files keep their optimizer)

    try:
        return keras.models.load_model(spec.path, compile=False)
    except Exception as e:  # noqa: BLE001 - name the file whatever went wrong
        raise ValueError(f"--model {spec.name}: cannot load {spec.path}: {type(e).__name__}: {e}") from None


def extract(extractor, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 (N, C), labels int64 (N,)) of a dataset of (uint8 images, labels) batches."""
    feats, labels = [], []
    for images, batch_labels in dataset:
        feats.append(np.asarray(extractor(images, training=False), np.float32))
        labels.append(batch_labels.numpy())
    return np.concatenate(feats), np.concatenate(labels)


def arch_of(model) -> str:
    from tfsynth.models import reference_nets
    from tfsynth.transfer.heads import infer_arch, network_of

    return infer_arch(reference_nets.to_torchvision_state_dict(network_of(model)))


def run(models: Sequence[str], data: str, out: str, *, images_per_class: Sequence[int] = (10, 50, 0),
        seeds: Sequence[int] = (1, 2, 3, 4, 5), train_split: str = "train", eval_split: str = "test",
        crop_size: int = 28, resize: int = 0, batch_size: int = 256, C: float = 1.0,
        max_iter: int = DEFAULT_MAX_ITER, mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD, data_dir: Optional[str] = None, auto_build: bool = False,
        log=print) -> dict:
    """Probes every model on `data`; writes probe.json and probe.md into `out`; returns
    {'runs', 'models', 'settings', 'summary', 'markdown', 'paths'}."""
    specs = [parse_model(m) for m in models]
    if not specs:
        raise ValueError("give at least one --model")
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"--model names must differ, got {names}")
    if any(k < 0 for k in images_per_class) or not images_per_class:
        raise ValueError(f"--images_per_class takes counts >= 0 (0 = the whole split), got {list(images_per_class)}")
    if not seeds:
        raise ValueError("--seeds: give at least one seed")
    if crop_size < 1 or (resize and resize < crop_size):
        raise ValueError(f"--crop_size {crop_size} must be >= 1 and at most --resize {resize} (if given)")
    if C <= 0:
        raise ValueError(f"--C must be > 0, got {C}")

    import keras

    from tfsynth.input import datasets, pipeline
    from tfsynth.transfer.finetune import mixture_labels

    start = time.time()
    train_mix = datasets.load_mixture(data, train_split, data_dir=data_dir, auto_build=auto_build)
    eval_mix = datasets.load_mixture(data, eval_split, data_dir=data_dir)
    for source in train_mix.sources:  # a crop larger than the images fails deep inside tf.data otherwise
        height, width = source.builder.info.features["image"].shape[:2]
        if not resize and height and width and crop_size > min(height, width):
            raise ValueError(f"--crop_size {crop_size} is larger than the {height} x {width} images of {data} "
                             "(pass --resize to enlarge them first)")
    train_labels = np.concatenate(mixture_labels(train_mix))
    for k in sorted(set(images_per_class)):  # too few images of a class: say so before any forward pass
        for seed in seeds:
            training_subset(train_labels, k, seed)
    settings = {"data": data, "train_split": train_split, "eval_split": eval_split, "crop_size": crop_size,
                "resize": resize, "C": C, "max_iter": max_iter, "solver": "lbfgs", "standardize": True,
                "images_per_class": [int(k) for k in images_per_class], "seeds": [int(s) for s in seeds],
                "train_examples": int(len(train_labels)), "test_examples": int(eval_mix.num_examples),
                "num_classes": int(train_mix.num_classes)}

    def datasets_():
        return (pipeline.eval_dataset(train_mix, batch_size=batch_size, crop_size=crop_size, resize=resize),
                pipeline.eval_dataset(eval_mix, batch_size=batch_size, crop_size=crop_size, resize=resize))

    runs, model_info = [], {}
    test_labels = None
    for spec in specs:
        info = {**spec.as_dict(), "num_classes": settings["num_classes"]}
        cache = {}

        def features(seed, spec=spec, info=info, cache=cache):
            nonlocal test_labels
            key = seed if spec.random_arch else None
            if key not in cache:
                t0 = time.time()
                model = load_model(spec, seed, mean, std)
                extractor, normalization = feature_extractor(model, mean, std)
                info.update(arch=spec.random_arch or arch_of(model), mean=list(normalization[0]),
                            std=list(normalization[1]))
                train_ds, test_ds = datasets_()
                train_x, train_y = extract(extractor, train_ds)
                test_x, test_y = extract(extractor, test_ds)
                if not np.array_equal(train_y, train_labels):
                    raise RuntimeError(f"{spec.name}: the train split's labels came in another order than "
                                       "train.finetune's (the per-class draws would not pair)")
                if test_labels is None:
                    test_labels = test_y
                info["feature_dim"] = int(train_x.shape[1])
                info.setdefault("extract_s", 0.0)
                info["extract_s"] = round(info["extract_s"] + time.time() - t0, 1)
                cache.clear()  # one model's features at a time (random networks: one seed's)
                cache[key] = (train_x, test_x, test_y)
                del model, extractor
                keras.backend.clear_session()
            return cache[key][:2]

        features(seeds[0])  # loads the model (and the test labels) before the probes
        model_runs = probe_runs(spec.name, data, features, train_labels, test_labels, images_per_class, seeds,
                                C=C, max_iter=max_iter)
        runs += model_runs
        model_info[spec.name] = info
        unconverged = sum(not r["converged"] for r in model_runs)
        log(f"{spec.name}: {info['feature_dim']}-d {info['arch']} features of {len(train_labels)} + "
            f"{len(test_labels)} images; {len(model_runs)} probes"
            + (f", {unconverged} stopped at max_iter {max_iter}" if unconverged else "")
            + f" [{time.time() - start:.0f} s]")

    md = markdown(runs, model_info, settings)
    summary = table.summary(records(runs, model_info))
    report = {"runs": runs, "models": model_info, "settings": settings, "summary": summary}
    os.makedirs(out, exist_ok=True)
    paths = {"probe.json": os.path.join(out, "probe.json"), "probe.md": os.path.join(out, "probe.md")}
    for name, text in (("probe.json", json.dumps(report, indent=2, allow_nan=False)), ("probe.md", md)):
        atomic_write_text(paths[name], text)
    return {**report, "markdown": md, "paths": paths}

