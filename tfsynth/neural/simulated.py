"""A small SIMULATED brain dataset in the layout of MajajHong2015 (objects x variation levels, V1/V4/IT sites).

Not data from any animal: it exists so the neural-predictivity pipeline can be run, tested and demonstrated
without the real recordings. Everything is a pure function of the config (seeds via numpy SeedSequence).

Stimuli (HvM-like): `n_objects` random star-shaped objects (radial contour 1 + sum_k a_k cos(k theta + phi_k),
k = 2..5), each filled with its own oriented grating and colour, pasted on low-pass noise backgrounds at
three variation levels (0: centred, no change; 3: moderate; 6: large jitter of position, scale, rotation).

Simulated sites (each a linear-nonlinear unit of an image-computable stage, plus Gaussian trial noise):
* V1: Gabor energy (4 orientations x 2 frequencies, quadrature pairs) under a small Gaussian receptive field;
* V4: rectified mixtures of pooled V1 energies under larger receptive fields (conjunctions of orientation
  and frequency, position-tolerant within the field);
* IT: object-identity tuning (random preferences over objects) scaled by a smooth tolerance to pose, plus a
  small V4-like component.
Trial responses = rate + N(0, noise^2 * var(rate)), `n_reps` repetitions per image.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfsynth.neural.data import BrainData

__all__ = ["SimulatedConfig", "render_stimuli", "simulate"]

_VARIATION = {  # level -> (max |shift| as a fraction of the image, scale range, max rotation in degrees)
    0: (0.0, (1.0, 1.0), 0.0),
    3: (0.15, (0.8, 1.2), 45.0),
    6: (0.3, (0.6, 1.4), 90.0),
}


@dataclasses.dataclass(frozen=True)
class SimulatedConfig:
    n_objects: int = 8
    images_per_condition: int = 12  # images per (object, variation level)
    variations: tuple[int, ...] = (0, 3, 6)
    image_size: int = 64
    n_reps: int = 10
    sites: tuple[tuple[str, int], ...] = (("V1", 40), ("V4", 40), ("IT", 60))
    noise: float = 1.2  # trial noise sd relative to the sd of the site's rate over images
    visual_degrees: float = 8.0
    seed: int = 0

    def __post_init__(self):
        unknown = set(self.variations) - set(_VARIATION)
        if unknown:
            raise ValueError(f"unknown variation level(s) {sorted(unknown)}; valid: {sorted(_VARIATION)}")
        kinds = {name for name, _ in self.sites}
        if not kinds <= {"V1", "V4", "IT"}:
            raise ValueError(f"simulated sites must be V1, V4 or IT, got {sorted(kinds)}")


def _rng(config: SimulatedConfig, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([config.seed, *key]))


def _lowpass_noise(rng, size, sigma):
    f = np.fft.fftfreq(size)
    fx, fy = np.meshgrid(f, f)
    spectrum = np.exp(-(fx ** 2 + fy ** 2) / (2 * sigma ** 2))
    field = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=(size, size))) * spectrum))
    return (field - field.mean()) / (field.std() + 1e-12)


def _object_params(config: SimulatedConfig):
    objects = []
    for obj in range(config.n_objects):
        rng = _rng(config, 1, obj)
        objects.append({
            "amps": rng.uniform(0.05, 0.3, 4), "phases": rng.uniform(0, 2 * np.pi, 4),
            "color": rng.uniform(0.2, 1.0, 3), "orientation": rng.uniform(0, np.pi),
            "frequency": rng.uniform(0.08, 0.25),
        })
    return objects


def render_stimuli(config: SimulatedConfig):
    """images (N, S, S, 3) uint8 and per-image metadata (object, variation, tx, ty, scale, rotation)."""
    size = config.image_size
    objects = _object_params(config)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images, meta = [], {k: [] for k in ("object", "variation", "tx", "ty", "scale", "rotation")}
    for obj, p in enumerate(objects):
        for var in config.variations:
            shift, (s_lo, s_hi), rot_max = _VARIATION[var]
            for i in range(config.images_per_condition):
                rng = _rng(config, 2, obj, var, i)
                tx, ty = rng.uniform(-shift, shift, 2) * size
                scale = rng.uniform(s_lo, s_hi)
                rot = np.deg2rad(rng.uniform(-rot_max, rot_max))
                background = 0.5 + 0.12 * _lowpass_noise(rng, size, 0.08)
                image = np.repeat(background[..., None], 3, axis=2)
                # object mask from the radial contour, in object coordinates
                cx, cy = size / 2 + tx, size / 2 + ty
                dx, dy = xx - cx, yy - cy
                ox = np.cos(-rot) * dx - np.sin(-rot) * dy
                oy = np.sin(-rot) * dx + np.cos(-rot) * dy
                radius = np.hypot(ox, oy) / (0.28 * size * scale)
                theta = np.arctan2(oy, ox)
                contour = 1 + sum(a * np.cos((k + 2) * theta + ph)
                                  for k, (a, ph) in enumerate(zip(p["amps"], p["phases"])))
                mask = np.clip((contour - radius) * 0.28 * size * scale, 0, 1)[..., None]  # 1-px anti-aliasing
                u = np.cos(p["orientation"]) * ox + np.sin(p["orientation"]) * oy
                grating = 0.5 + 0.5 * np.cos(2 * np.pi * p["frequency"] * u / scale)
                surface = p["color"][None, None, :] * (0.35 + 0.65 * grating[..., None])
                image = (1 - mask) * image + mask * surface
                images.append(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8))
                for key, value in zip(meta, (obj, var, tx / size, ty / size, scale, np.rad2deg(rot))):
                    meta[key].append(value)
    return np.stack(images), {k: np.asarray(v) for k, v in meta.items()}


def _gabor_energy(gray: np.ndarray) -> np.ndarray:
    """(N, S, S) -> (N, S, S, 8) quadrature-pair Gabor energy, 4 orientations x 2 frequencies (FFT convolution)."""
    n, size, _ = gray.shape
    f = np.fft.fftfreq(size)
    fx, fy = np.meshgrid(f, f)
    spectrum = np.fft.fft2(gray - gray.mean(axis=(1, 2), keepdims=True))
    maps = []
    for freq, bw in ((0.08, 0.04), (0.2, 0.08)):
        for ori in np.arange(4) * np.pi / 4:
            u = fx * np.cos(ori) + fy * np.sin(ori)
            v = -fx * np.sin(ori) + fy * np.cos(ori)
            # one-sided Gaussian pass-band = analytic (even + i odd) Gabor: |response| is the energy
            h = np.exp(-((u - freq) ** 2 + v ** 2) / (2 * bw ** 2))
            maps.append(np.abs(np.fft.ifft2(spectrum * h[None])))
    return np.stack(maps, axis=-1)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _standardize(x):
    return (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-12)


def _site_rates(config: SimulatedConfig, kind: str, count: int, index: int, energy, meta) -> np.ndarray:
    rng = _rng(config, 3, index)
    n, size = energy.shape[0], energy.shape[1]
    yy, xx = np.mgrid[0:size, 0:size] / size - 0.5
    if kind in ("V1", "V4"):
        rf_sd = (0.06, 0.12) if kind == "V1" else (0.15, 0.3)
        centers = rng.uniform(-0.2, 0.2, (count, 2))
        sds = rng.uniform(*rf_sd, count)
        rf = np.exp(-((xx[None] - centers[:, 0, None, None]) ** 2 + (yy[None] - centers[:, 1, None, None]) ** 2)
                    / (2 * sds[:, None, None] ** 2))
        rf /= rf.sum(axis=(1, 2), keepdims=True)
        pooled = np.einsum("nhwm,khw->nkm", energy, rf)  # (N, sites, maps)
        if kind == "V1":
            channel = rng.integers(0, energy.shape[-1], count)
            drive = _standardize(pooled[:, np.arange(count), channel])
        else:
            w = rng.normal(size=(count, energy.shape[-1])) * (rng.random((count, energy.shape[-1])) < 0.4)
            drive = _standardize(np.einsum("nkm,km->nk", _standardize(pooled.reshape(n, -1)).reshape(pooled.shape), w))
        return _softplus(1.5 * drive)
    # IT: object identity x pose tolerance + a little mid-level drive
    prefs = rng.normal(size=(count, config.n_objects))
    pose = np.stack([meta["tx"], meta["ty"], np.log(meta["scale"]), meta["rotation"] / 90.0], axis=1)
    pose_w = rng.normal(scale=0.4, size=(count, 4))
    tolerance = np.exp(-0.5 * (pose[:, None, :2] ** 2).sum(-1) / 0.3 ** 2)  # (N, 1): weaker far from the centre
    identity = prefs[:, meta["object"]].T * (0.6 + 0.4 * tolerance)
    mid = _standardize(energy.mean(axis=(1, 2))) @ rng.normal(scale=0.3, size=(energy.shape[-1], count))
    drive = _standardize(identity + pose @ pose_w.T + mid)
    return _softplus(1.5 * drive)


def simulate(config: SimulatedConfig = SimulatedConfig()) -> BrainData:
    """The simulated dataset as `BrainData` (flagged simulated=True), images sorted by stimulus_id."""
    images, meta = render_stimuli(config)
    gray = images.astype(np.float64).mean(axis=-1) / 255.0
    energy = _gabor_energy(gray)
    trials = {}
    for index, (region, count) in enumerate(config.sites):
        rates = _site_rates(config, region, count, index, energy, meta)
        noise_sd = config.noise * rates.std(axis=0)
        rng = _rng(config, 4, index)
        trials[region] = (rates[None] + rng.normal(size=(config.n_reps, *rates.shape)) * noise_sd).astype(np.float32)
    n = len(images)
    stimulus_id = np.array([f"sim_{i:05d}" for i in range(n)])
    objects = np.array([f"object{o:02d}" for o in meta["object"]])
    # Brain-Score's MajajHong split: variations 0 and 3 public (layer selection), 6 private (reported).
    selection = meta["variation"] != max(config.variations) if len(config.variations) > 1 else None
    meta_out = {**meta, "note": "SIMULATED data (tfsynth.neural.simulated), not recordings from any animal"}
    return BrainData(name="simulated", images=images, stimulus_id=stimulus_id, trials=trials, stratify=objects,
                     selection=selection, visual_degrees=config.visual_degrees, simulated=True, meta=meta_out)
