"""`BrainData`: stimuli + per-region trial responses, the in-memory form every brain dataset is scored from.

Filled from the `majaj_hong_2015` / `nsd` TFDS builders (eval.neural.data), or by
`tfsynth.neural.simulated` for the demo. TF-free.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from tfsynth.neural.ceiling import average_repetitions

__all__ = ["BrainData"]


@dataclasses.dataclass
class BrainData:
    """Images and neural responses, images sorted by stimulus_id (Brain-Score's order).

    images: (N, H, W, 3) uint8. trials[region]: (repetition, N, neuroids) float32, NaN = trial missing.
    stratify: (N,) labels for stratified splits (object identity) or None. selection: (N,) bool, True for
    the images used to choose layers (Brain-Score: the public set), False for the reported held-out ones; None
    = choose a stratified split. visual_degrees: the stimuli's width in degrees of visual angle.
    """

    name: str
    images: np.ndarray
    stimulus_id: np.ndarray
    trials: dict[str, np.ndarray]
    stratify: Optional[np.ndarray] = None
    selection: Optional[np.ndarray] = None
    visual_degrees: float = 8.0
    simulated: bool = False
    meta: dict = dataclasses.field(default_factory=dict)  # per-image arrays (variation, ...) and notes

    def __post_init__(self):
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[-1] != 3:
            raise ValueError(f"{self.name}: images must be (N, H, W, 3), got {self.images.shape}")
        if len(self.stimulus_id) != n:
            raise ValueError(f"{self.name}: {len(self.stimulus_id)} stimulus ids for {n} images")
        for region, t in self.trials.items():
            if t.ndim != 3 or t.shape[1] != n:
                raise ValueError(f"{self.name}: trials[{region!r}] must be (repetition, {n}, neuroids), got {t.shape}")
        for key, value in (("stratify", self.stratify), ("selection", self.selection)):
            if value is not None and len(value) != n:
                raise ValueError(f"{self.name}: {key} has {len(value)} entries for {n} images")

    @property
    def regions(self) -> list[str]:
        return list(self.trials)

    def __len__(self) -> int:
        return len(self.images)

    def responses(self, region: str) -> np.ndarray:
        """(N, neuroids) mean over repetitions (NaN-skipping), float64."""
        if region not in self.trials:
            raise KeyError(f"{self.name} has no region {region!r}; regions: {', '.join(self.regions)}")
        return average_repetitions(self.trials[region])

    def drop_unusable_neuroids(self) -> tuple["BrainData", dict]:
        """Drop neuroids without any trial for some image or constant over all images; returns (data, counts).

        The metric functions refuse such neuroids with an error; a batch job skips and counts them instead.
        """
        trials, dropped = {}, {}
        for region, t in self.trials.items():
            count = np.isfinite(t).sum(axis=0)  # (images, neuroids)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.nansum(t, axis=0) / count
            ok = (count > 0).all(axis=0) & (np.ptp(np.where(count > 0, mean, 0), axis=0) > 0)
            dropped[region] = int((~ok).sum())
            if not ok.any():
                raise ValueError(f"{self.name}: every {region} neuroid is constant or lacks trials for some image")
            trials[region] = t[:, :, ok]
        return dataclasses.replace(self, trials=trials), dropped

    def subset(self, index) -> "BrainData":
        index = np.asarray(index)
        pick = lambda v: None if v is None else np.asarray(v)[index]  # noqa: E731
        meta = {k: (np.asarray(v)[index] if isinstance(v, np.ndarray) and len(v) == len(self) else v)
                for k, v in self.meta.items()}
        return dataclasses.replace(self, images=self.images[index], stimulus_id=self.stimulus_id[index],
                                   trials={r: t[:, index] for r, t in self.trials.items()},
                                   stratify=pick(self.stratify), selection=pick(self.selection), meta=meta)

    def sorted_by_stimulus(self) -> "BrainData":
        order = np.argsort(self.stimulus_id, kind="stable")
        return self if np.array_equal(order, np.arange(len(self))) else self.subset(order)

    def summary(self) -> str:
        regions = ", ".join(f"{r} ({t.shape[2]} x {t.shape[0]} reps)" for r, t in self.trials.items())
        label = "SIMULATED " if self.simulated else ""
        return f"{label}brain data {self.name!r}: {len(self)} images at {self.visual_degrees:g} deg; {regions}"
