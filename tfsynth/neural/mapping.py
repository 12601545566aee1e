"""Model layers -> brain regions: score every layer on a selection split, report the best on held-out images.

Brain-Score's protocol (LayerSelection + the benchmark): layers are scored on the public images (MajajHong:
variations 0 and 3) with PCA-reduced activations, the best layer per region (argmax; ties go to the earlier
layer) is then scored with its raw activations on the private images (variation 6), and ceiled with the
split-half ceiling of those images. Without a given selection set the images are split once, stratified by
object, into `selection_fraction` for selection and the rest for the report.

Everything here works on arrays (features per layer, responses per region); extraction lives in eval.neural.
TF-free.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional, Sequence

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from tfsynth.neural import ceiling as ceiling_lib
from tfsynth.neural import rsa as rsa_lib
from tfsynth.neural.data import BrainData
from tfsynth.neural.metrics import FeatureGram, Predictivity, pls_predictivity

__all__ = ["selection_split", "score_layers", "rsa_layers", "best_layer", "RegionReport", "report_region",
           "PLSOptions"]


@dataclasses.dataclass(frozen=True)
class PLSOptions:
    n_splits: int = 10
    train_size: float = 0.9
    n_components: int = 25
    seed: int = 1
    kfold: bool = False
    rsa_test_size: float = 0.9
    rsa_method: str = "spearman"

    def pls_kwargs(self) -> dict:
        return dict(n_splits=self.n_splits, train_size=self.train_size, n_components=self.n_components,
                    seed=self.seed, kfold=self.kfold)

    def rsa_kwargs(self) -> dict:
        return dict(n_splits=self.n_splits, test_size=self.rsa_test_size, seed=self.seed, method=self.rsa_method)


def selection_split(data: BrainData, fraction: float = 0.5, seed: int = 1) -> tuple[np.ndarray, np.ndarray, str]:
    """(selection indices, report indices, description). Uses data.selection when the dataset defines one."""
    n = len(data)
    if data.selection is not None and data.selection.any() and (~data.selection).any():
        sel = np.nonzero(data.selection)[0]
        rep = np.nonzero(~data.selection)[0]
        return sel, rep, data.meta.get("selection_note", "dataset-defined selection / report split")
    if not 0 < fraction < 1:
        raise ValueError(f"selection_fraction must be in (0, 1), got {fraction}")
    if data.stratify is not None:
        splitter = StratifiedShuffleSplit(n_splits=1, train_size=fraction, random_state=seed)
        sel, rep = next(splitter.split(np.zeros(n), data.stratify))
        how = "stratified by object"
    else:
        sel, rep = next(ShuffleSplit(n_splits=1, train_size=fraction, random_state=seed).split(np.zeros(n)))
        how = "random"
    return np.sort(sel), np.sort(rep), f"{how} split (seed {seed}): {fraction:.0%} selection / rest report"


def score_layers(layer_features: Mapping[str, np.ndarray], responses: Mapping[str, np.ndarray], stratify,
                 options: PLSOptions = PLSOptions(),
                 progress: Optional[Callable[[str], None]] = None) -> dict[str, dict[str, Predictivity]]:
    """{region: {layer: Predictivity}}; one Gram matrix per layer serves every region and split.

    A layer the metric cannot score (e.g. fewer feature dimensions than PLS components) gets a NaN score with
    the reason in `.note` instead of stopping the run; `best_layer` never picks it.
    """
    out: dict[str, dict[str, Predictivity]] = {region: {} for region in responses}
    for layer, features in layer_features.items():
        g = features if isinstance(features, FeatureGram) else FeatureGram.from_features(features)
        for region, y in responses.items():
            try:
                out[region][layer] = pls_predictivity(g, y, stratify, **options.pls_kwargs())
            except ValueError as e:
                if "too few" in str(e) or "constant" in str(e) or "non-finite" in str(e):
                    raise  # a property of the brain data, the same for every layer: stop with the message
                out[region][layer] = Predictivity.failed(f"{layer}: {e}", options.n_components)
        if progress:
            progress(layer)
    return out


def rsa_layers(layer_features: Mapping[str, np.ndarray], responses: Mapping[str, np.ndarray], stratify,
               options: PLSOptions = PLSOptions()) -> dict[str, dict[str, rsa_lib.RSAResult]]:
    """{region: {layer: RSAResult}} with each layer's and region's RDM computed once."""
    brain = {region: rsa_lib.rdm(y) for region, y in responses.items()}
    out: dict[str, dict[str, rsa_lib.RSAResult]] = {region: {} for region in responses}
    for layer, features in layer_features.items():
        model = rsa_lib.rdm(features)
        for region in responses:
            out[region][layer] = rsa_lib.rdm_cv(("rdm", model), ("rdm", brain[region]), stratify,
                                                **options.rsa_kwargs())
    return out


def best_layer(scores: Mapping[str, object]) -> str:
    """The layer with the highest score (first in the given order on ties); NaN scores never win."""
    names = list(scores)
    values = np.array([getattr(scores[n], "score", scores[n]) for n in names], np.float64)
    if not np.isfinite(values).any():
        raise ValueError("no layer has a defined score")
    return names[int(np.nanargmax(values))]


@dataclasses.dataclass
class RegionReport:
    region: str
    layer: str
    layer_depth: int
    selection_score: float
    raw: Predictivity
    ceiling: ceiling_lib.Ceiling
    rsa_layer: Optional[str] = None
    rsa_layer_depth: Optional[int] = None
    rsa: Optional[rsa_lib.RSAResult] = None
    rsa_note: str = ""

    @property
    def ceiled(self) -> float:
        return float(ceiling_lib.ceiled_explained_variance(self.raw.score, self.ceiling.score))

    @property
    def ceiled_squared_ratio(self) -> float:
        return float(ceiling_lib.ceiled_squared_ratio(self.raw.score, self.ceiling.score))

    def row(self) -> dict:
        row = {"region": self.region, "layer": self.layer, "depth": self.layer_depth,
               "selection_r": self.selection_score, "r": self.raw.score, "r_err": self.raw.error,
               "ceiling": self.ceiling.score, "ceiled_r2_over_c": self.ceiled,
               "ceiled_r_over_c_sq": self.ceiled_squared_ratio, "n_neuroids": int(self.raw.r.shape[1])}
        if self.rsa is not None:
            row.update({"rsa_layer": self.rsa_layer, "rsa_depth": self.rsa_layer_depth, "rsa": self.rsa.score,
                        "rsa_err": self.rsa.error})
        elif self.rsa_note:
            row["rsa_note"] = self.rsa_note
        return row


def report_region(region: str, layers: Sequence[str], selection_scores: Mapping[str, Predictivity],
                  report_features: Mapping[str, np.ndarray], report_responses: np.ndarray,
                  report_trials: np.ndarray, report_stratify, options: PLSOptions = PLSOptions(),
                  selection_rsa: Optional[Mapping[str, rsa_lib.RSAResult]] = None,
                  cache: Optional[dict] = None) -> RegionReport:
    """Score the region's best selection layer (and best RSA layer) on the report images.

    cache: a dict shared between the regions of one model, so each layer's Gram matrix and RDM is computed once.
    """
    cache = {} if cache is None else cache
    layer = best_layer(selection_scores)
    if ("gram", layer) not in cache:
        cache[("gram", layer)] = FeatureGram.from_features(report_features[layer])
    raw = pls_predictivity(cache[("gram", layer)], report_responses, report_stratify, **options.pls_kwargs())
    ceil = ceiling_lib.split_half_ceiling(report_trials, n_splits=options.n_splits, seed=options.seed)
    out = RegionReport(region=region, layer=layer, layer_depth=list(layers).index(layer) + 1,
                       selection_score=selection_scores[layer].score, raw=raw, ceiling=ceil)
    if selection_rsa:
        rsa_layer = best_layer(selection_rsa)
        out.rsa_layer, out.rsa_layer_depth = rsa_layer, list(layers).index(rsa_layer) + 1
        try:
            if ("rdm", rsa_layer) not in cache:
                cache[("rdm", rsa_layer)] = rsa_lib.rdm(report_features[rsa_layer])
            out.rsa = rsa_lib.rdm_cv(("rdm", cache[("rdm", rsa_layer)]), report_responses, report_stratify,
                                     **options.rsa_kwargs())
        except ValueError as e:  # RSA is the auxiliary metric: report why it is missing, keep the PLS result
            out.rsa_note = f"RSA not computed on the report images: {e}"
    return out
