"""The eval.neural job: models x brain regions -> per-region predictivity (PLS) and RSA tables.

For each model: (1) optional PCA per layer fitted on a separate image set; (2) every layer scored on the
selection images (PLS predictivity, RSA); (3) each region's best layer scored with raw activations on the
report images, with the split-half ceiling of those images; (4) tables, plots, JSON in the workdir.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import time
from typing import Optional, Sequence

import numpy as np

from tfsynth.neural import mapping, report
from tfsynth.neural.data import BrainData
from tfsynth.neural.pca import LayerPCA
from tfsynth.neural.screen import present
from tfsynth.neural.simulated import SimulatedConfig, render_stimuli

__all__ = ["NeuralConfig", "run", "parse_models", "demo_config"]


@dataclasses.dataclass
class NeuralConfig:
    models: list  # [(name, path)]
    brain: str = "simulated"  # 'simulated', 'majaj_hong_2015', 'nsd/subj01', ...
    data_dir: Optional[str] = None  # TFDS data_dir of the brain builders
    regions: tuple = ()  # () = all regions of the dataset
    layers: tuple = ()  # () = every residual block output
    image_size: int = 224  # model input size (px)
    model_degrees: float = 8.0  # visual angle the model's input spans (Brain-Score default: 8 deg)
    batch_size: int = 32
    preprocess: str = "none"  # none (project models normalise inside) | torch | caffe
    pca_components: int = 1000  # PCA for layer selection (0: off)
    pca_images: str = ""  # '' (no PCA) | 'simulated' | image dir | .npy/.npz | TFDS 'name[/config][:split]'
    pca_num_images: int = 1000
    selection_fraction: float = 0.5  # when the dataset defines no selection/report split
    n_splits: int = 10
    train_size: float = 0.9
    n_components: int = 25
    kfold: bool = False
    seed: int = 1
    rsa: bool = True
    rsa_method: str = "spearman"
    max_feature_gb: float = 4.0  # activations held at once; layers are processed in groups under it
    workdir: str = "runs/neural"
    simulated: SimulatedConfig = dataclasses.field(default_factory=SimulatedConfig)

    def options(self) -> mapping.PLSOptions:
        return mapping.PLSOptions(n_splits=self.n_splits, train_size=self.train_size,
                                  n_components=self.n_components, seed=self.seed, kfold=self.kfold,
                                  rsa_method=self.rsa_method)


def demo_config(models, workdir: str = "runs/neural_demo") -> NeuralConfig:
    """The `make demo` tour: simulated V1/V4/IT at 64 px, PCA fitted on separate simulated images (< 60 s)."""
    return NeuralConfig(models=models, brain="simulated", image_size=64, batch_size=64, pca_images="simulated",
                        pca_components=1000, pca_num_images=96, workdir=workdir)


def parse_models(specs: Sequence[str]) -> list:
    """'[name=]path' specs (globs allowed) -> [(name, path)]; names default to the file's parent directory."""
    out = []
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        paths = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
        if not paths:
            raise SystemExit(f"--model {spec!r}: no file matches")
        for p in paths:
            if not os.path.exists(p):
                raise SystemExit(f"--model {spec!r}: {p} does not exist (train one with `python -m train.pretrain`)")
            label = name if name and len(paths) == 1 else (
                os.path.basename(os.path.dirname(os.path.abspath(p))) or os.path.splitext(os.path.basename(p))[0])
            out.append((label, p))
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        out = [(f"{n}:{os.path.basename(p)}" if names.count(n) > 1 else n, p) for n, p in out]
    return out


def _recipe(config: NeuralConfig, stratified: bool) -> str:
    kind = (("Stratified" if stratified else "")
            + ("KFold" if config.kfold else f"ShuffleSplit(train {config.train_size})"))
    return (f"PLSRegression({config.n_components}, scale=False), {config.n_splits} x {kind}, seed {config.seed}; "
            "Pearson r per neuroid on held-out images, median over neuroids, mean over splits (error: std/sqrt(n)); "
            "split-half ceiling (Spearman-Brown); ceiled r^2/c (Brain-Score) and (r/c)^2 (Brain-Score 2019-2025)")


def _log(msg: str, start: float) -> None:
    print(f"[{time.time() - start:6.1f}s] {msg}", flush=True)


def _load_images(spec: str, count: int, config: NeuralConfig) -> np.ndarray:
    """The separate image set for the PCA fit."""
    if spec == "simulated":
        sim = dataclasses.replace(config.simulated, seed=config.simulated.seed + 10_000,
                                  images_per_condition=max(1, -(-count // (config.simulated.n_objects
                                                                           * len(config.simulated.variations)))))
        return render_stimuli(sim)[0][:count]
    if spec.endswith((".npy", ".npz")):
        arr = np.load(spec)
        arr = arr[arr.files[0]] if hasattr(arr, "files") else arr
        return np.asarray(arr)[:count]
    if os.path.isdir(spec):
        from PIL import Image

        files = sorted(f for f in os.listdir(spec) if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp")))[:count]
        if not files:
            raise SystemExit(f"--pca_images {spec}: no .png/.jpg images in the directory")
        return np.stack([np.asarray(Image.open(os.path.join(spec, f)).convert("RGB")
                                    .resize((config.image_size, config.image_size), Image.BILINEAR)) for f in files])
    import tensorflow_datasets as tfds

    name, _, split = spec.partition(":")
    ds = tfds.load(name, split=split or "train", data_dir=config.data_dir, shuffle_files=False)
    images = [ex["image"] for ex in tfds.as_numpy(ds.take(count))]
    out = []
    from PIL import Image

    for im in images:
        im = im if im.shape[-1] == 3 else np.repeat(im[..., :1], 3, axis=-1)
        out.append(np.asarray(Image.fromarray(im).resize((config.image_size, config.image_size), Image.BILINEAR)))
    return np.stack(out)


def _layer_sizes(model, layers, image_size, preprocess, batch_size) -> dict:
    from eval.neural.features import extract_features

    # a full batch, so the traced forward pass is reused by the extraction passes
    probe = extract_features(model, np.zeros((batch_size, image_size, image_size, 3), np.uint8), layers,
                             batch_size=batch_size, preprocess=preprocess)
    return {name: value.shape[1] for name, value in probe.items()}


def _groups(layers, sizes, n_images, budget_gb) -> list:
    groups, current, used = [], [], 0.0
    for layer in layers:
        cost = n_images * sizes[layer] * 4 / 2**30
        if current and used + cost > budget_gb:
            groups.append(current)
            current, used = [], 0.0
        current.append(layer)
        used += cost
    return groups + ([current] if current else [])


def _evaluate_model(name, path, data: BrainData, config: NeuralConfig, sel, rep, start) -> dict:
    import keras

    from eval.neural.features import default_layers, extract_features
    from tfsynth.models.files import load_keras_model

    model = load_keras_model(path, f"--model {name}")
    _log(f"{name}: loaded {path}", start)
    layers = list(config.layers) or default_layers(model)
    sizes = _layer_sizes(model, layers, config.image_size, config.preprocess, config.batch_size)
    _log(f"{name}: {len(layers)} layers ({', '.join(layers[:2])} ... {layers[-1]}), "
         f"{min(sizes.values()):,}-{max(sizes.values()):,} units", start)
    options = config.options()
    inputs = present(data.images, data.visual_degrees, config.model_degrees, config.image_size)
    responses = {r: data.responses(r) for r in data.regions}
    strat = data.stratify

    pca_inputs = None
    if config.pca_images and config.pca_components > 0:
        pca_inputs = _load_images(config.pca_images, config.pca_num_images, config)
        if pca_inputs.shape[1:3] != (config.image_size, config.image_size):
            pca_inputs = present(pca_inputs, config.model_degrees, config.model_degrees, config.image_size)
    n_pca = 0 if pca_inputs is None else len(pca_inputs)
    # One forward pass over every image set when all activations fit the memory budget; else passes per layer group.
    one_pass = (n_pca + len(data)) * sum(sizes.values()) * 4 / 2**30 <= config.max_feature_gb
    cached = {}
    if one_pass:
        stack = inputs if pca_inputs is None else np.concatenate([pca_inputs, inputs])
        everything = extract_features(model, stack, layers, config.batch_size, config.preprocess)
        cached = {"pca": {l: f[:n_pca] for l, f in everything.items()},
                  "sel": {l: f[n_pca:][sel] for l, f in everything.items()},
                  "rep": {l: f[n_pca:][rep] for l, f in everything.items()}}
        del everything
        _log(f"{name}: activations of {n_pca + len(data)} images at {len(layers)} layers in one pass", start)

    pcas = {}
    if pca_inputs is not None:
        for group in ([layers] if one_pass else _groups(layers, sizes, n_pca, config.max_feature_gb)):
            feats = cached["pca"] if one_pass else extract_features(model, pca_inputs, group, config.batch_size,
                                                                    config.preprocess)
            for layer in group:
                pcas[layer] = LayerPCA(config.pca_components).fit(feats[layer])
        _log(f"{name}: PCA ({config.pca_components} components max) fitted per layer on {n_pca} separate "
             f"images ({config.pca_images})", start)

    sel_scores = {r: {} for r in data.regions}
    rsa_on = config.rsa
    sel_rsa = {r: {} for r in data.regions} if rsa_on else None
    sel_sizes = {l: (pcas[l].n_output if l in pcas else sizes[l]) for l in layers}
    sel_responses = {r: y[sel] for r, y in responses.items()}
    for group in ([layers] if one_pass else _groups(layers, sel_sizes, len(sel), config.max_feature_gb)):
        transforms = {l: pcas[l].transform for l in group if l in pcas}
        if one_pass:
            feats = {l: (transforms[l](cached["sel"][l]) if l in transforms else cached["sel"][l]) for l in group}
        else:
            feats = extract_features(model, inputs[sel], group, config.batch_size, config.preprocess,
                                     transforms=transforms)
        scored = mapping.score_layers(feats, sel_responses, None if strat is None else strat[sel], options)
        for r in data.regions:
            sel_scores[r].update(scored[r])
        if rsa_on:
            try:
                rsa = mapping.rsa_layers(feats, sel_responses, None if strat is None else strat[sel], options)
                for r in data.regions:
                    sel_rsa[r].update(rsa[r])
            except ValueError as e:  # the auxiliary metric: say why, keep going with PLS
                print(f"{name}: RSA skipped: {e}", flush=True)
                rsa_on, sel_rsa = False, None
        del feats
    _log(f"{name}: scored {len(layers)} layers x {len(data.regions)} regions on {len(sel)} selection images"
         f"{' (PCA features)' if pcas else ''}", start)
    failed = sorted({p.note for r in data.regions for p in sel_scores[r].values() if p.note})
    if failed:
        print(f"{name}: {len(failed)} layer score(s) could not be computed (NaN, never selected), e.g. {failed[0]}",
              flush=True)

    best = {r: mapping.best_layer(sel_scores[r]) for r in data.regions}
    needed = list(dict.fromkeys(list(best.values()) + ([mapping.best_layer(sel_rsa[r]) for r in data.regions]
                                                       if rsa_on else [])))
    needed = [l for l in layers if l in needed]
    report_feats = {l: cached["rep"][l] for l in needed} if one_pass else {}
    for group in ([] if one_pass else _groups(needed, sizes, len(rep), config.max_feature_gb)):
        report_feats.update(extract_features(model, inputs[rep], group, config.batch_size, config.preprocess))
    cached.clear()
    reports, cache = {}, {}
    for r in data.regions:
        reports[r] = mapping.report_region(
            r, layers, sel_scores[r], report_feats, responses[r][rep], data.trials[r][:, rep],
            None if strat is None else strat[rep], options, selection_rsa=sel_rsa[r] if rsa_on else None,
            cache=cache)
        if reports[r].rsa_note:
            print(f"{name} / {r}: {reports[r].rsa_note}", flush=True)
    _log(f"{name}: reported best layers {sorted(set(best.values()), key=layers.index)} on {len(rep)} held-out images",
         start)
    del model, report_feats
    keras.backend.clear_session()
    return {"layers": layers, "sizes": sizes, "selection": sel_scores, "selection_rsa": sel_rsa, "reports": reports}


def run(config: NeuralConfig, data: Optional[BrainData] = None) -> dict:
    """Evaluate every model of the config; write tables/plots/JSON into config.workdir; return the results.

    data: a ready `BrainData` (e.g. built in Python from your own recordings); default: load `config.brain`.
    """
    from eval.neural.data import load_brain_data

    start = time.time()
    if not config.models:
        raise SystemExit("no models given (--model PATH, repeatable)")
    from tfsynth.models.files import check_keras_file

    for name, path in config.models:  # a damaged or foreign file is reported before the brain data are loaded
        check_keras_file(path, f"--model {name}")
    if data is None:
        data = load_brain_data(config.brain, config.data_dir, config.regions, config.simulated)
    data, dropped = data.sorted_by_stimulus().drop_unusable_neuroids()
    _log(data.summary(), start)
    if any(dropped.values()):
        print("skipped neuroids (constant over all images, or no trial for some image): " +
              ", ".join(f"{r} {c}" for r, c in dropped.items() if c), flush=True)
    if data.simulated:
        print("NOTE: the brain data are SIMULATED (tfsynth.neural.simulated), not recordings; numbers only "
              "exercise the pipeline.", flush=True)
    sel, rep, how = mapping.selection_split(data, config.selection_fraction, config.seed)
    _log(f"layer selection on {len(sel)} images, report on {len(rep)} held-out images: {how}", start)
    os.makedirs(config.workdir, exist_ok=True)

    rows, layer_rows, per_model = [], [], {}
    for name, path in config.models:
        out = _evaluate_model(name, path, data, config, sel, rep, start)
        for region in data.regions:
            rows.append({"model": name, **out["reports"][region].row()})
            for depth, layer in enumerate(out["layers"], 1):
                s = out["selection"][region][layer]
                layer_rows.append({"model": name, "region": region, "layer": layer, "depth": depth, "metric": "pls",
                                   "score": s.score, "error": s.error})
                if out["selection_rsa"]:
                    q = out["selection_rsa"][region][layer]
                    layer_rows.append({"model": name, "region": region, "layer": layer, "depth": depth,
                                       "metric": "rsa", "score": q.score, "error": q.error})
        per_model[name] = {
            "path": path, "layers": out["layers"],
            "report": {r: {**out["reports"][r].row(), "raw": out["reports"][r].raw.to_dict(),
                           "ceiling_detail": out["reports"][r].ceiling.to_dict(),
                           "rsa_detail": out["reports"][r].rsa.to_dict() if out["reports"][r].rsa else None}
                       for r in data.regions}}

    label = f"SIMULATED brain data ({data.name}, not real recordings)" if data.simulated else f"brain data {data.name}"
    title = f"Neural predictivity — {label}"
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("models", "simulated")}
    results = {"title": title, "brain": data.name, "simulated": data.simulated, "regions": data.regions,
               "skipped_neuroids": dropped,
               "selection_images": len(sel), "report_images": len(rep), "split": how, "settings": settings,
               "recipe": _recipe(config, data.stratify is not None), "models": per_model}
    method = "Spearman rho" if config.rsa_method == "spearman" else "Kendall tau-a"
    rsa_title = f"RSA ({method} between RDM upper triangles, held-out images) — {label}"
    paths = report.write_reports(config.workdir, rows, layer_rows, results, title, data.regions, rsa_title)
    print()
    print(report.format_rows(rows, f"{title}\nlayers chosen on {len(sel)} selection images, scored on {len(rep)} "
                                   f"held-out images ({how})"))
    if any("rsa" in row for row in rows):
        print(f"\n{rsa_title}\n\n{report.markdown_table(rows, report.RSA_COLUMNS)}")
    print(f"\nTables, plots, JSON: {config.workdir}  ({paths['table']})", flush=True)
    _log("done", start)
    results["paths"] = paths
    results["rows"] = rows
    return results
