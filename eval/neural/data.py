"""Brain datasets for eval.neural: the TFDS builders (`majaj_hong_2015`, `nsd/subjNN`) or the simulated demo set."""
from __future__ import annotations

import numpy as np

from tfsynth.neural.data import BrainData
from tfsynth.neural.simulated import SimulatedConfig, simulate

__all__ = ["load_brain_data", "trials_from_examples"]


def trials_from_examples(repetitions: list[np.ndarray], responses: list[np.ndarray]) -> np.ndarray:
    """Per-image (repetition values, (R_i, neuroids) trials) -> (unique repetitions, images, neuroids), NaN-padded.

    Trials are placed by repetition *value*, as Brain-Score's split-half ceiling splits repetition values.
    """
    values = np.unique(np.concatenate([np.asarray(r) for r in repetitions])) if repetitions else np.array([])
    index = {v: i for i, v in enumerate(values.tolist())}
    n_neu = responses[0].shape[1]
    out = np.full((len(values), len(responses), n_neu), np.nan, np.float32)
    for img, (reps, trials) in enumerate(zip(repetitions, responses)):
        if trials.shape[1] != n_neu:
            raise ValueError(f"image {img}: {trials.shape[1]} neuroids, expected {n_neu}")
        for rep, row in zip(np.asarray(reps).tolist(), trials):
            out[index[rep], img] = row
    return out


def _load_tfds(spec: str, data_dir, regions):
    import tensorflow_datasets as tfds

    import tfds_builders.majaj_hong_2015  # noqa: F401  (registers the builders)
    import tfds_builders.nsd  # noqa: F401

    from tfsynth.input.datasets import unknown_dataset_message

    unknown = unknown_dataset_message(spec, "--brain", "brain data: 'simulated', 'majaj_hong_2015' or 'nsd/subj01' "
                                                       "(..subj08)")
    if unknown:
        raise SystemExit(unknown)
    try:
        builder = tfds.builder(spec, data_dir=data_dir)
    except Exception as e:  # unknown config: say which exist
        raise SystemExit(f"unknown brain dataset {spec!r} ({e}); use 'simulated', 'majaj_hong_2015' or "
                         "'nsd/subj01' (..subj08)") from None
    if not builder.is_prepared():
        name = spec.split("/")[0]
        raise SystemExit(f"brain dataset {spec!r} is not built in {builder.data_dir!r}. Build it from the "
                         f"original files first:\n  tfds build {name} --imports tfds_builders.{name} "
                         f"{'--config ' + spec.split('/')[1] + ' ' if '/' in spec else ''}--manual_dir DIR\n"
                         f"(see `tfds_builders/{name}/README.md` for what DIR must hold)")
    meta = dict(builder.info.metadata or {})
    all_regions = list(meta.get("regions", []))
    regions = list(regions) or all_regions
    unknown = sorted(set(regions) - set(all_regions))
    if unknown:
        raise SystemExit(f"{spec}: no region(s) {unknown}; available: {', '.join(all_regions)}")
    images, ids, strat, access, reps, resp = [], [], [], [], [], {r: [] for r in regions}
    extra = {"variation": []}
    for ex in tfds.as_numpy(builder.as_dataset(split="train", shuffle_files=False)):
        images.append(ex["image"])
        ids.append(ex["stimulus_id"].decode())
        strat.append(ex["object_name"].decode() if "object_name" in ex else "")
        access.append(ex["access"].decode() if "access" in ex else "")
        if "variation" in ex:
            extra["variation"].append(int(ex["variation"]))
        reps.append(ex["repetition"])
        for r in regions:
            resp[r].append(ex["responses"][r])
    if not images:
        raise SystemExit(f"{spec}: the dataset has no examples")
    trials = {r: trials_from_examples(reps, resp[r]) for r in regions}
    stratify = np.array(strat) if any(strat) else None
    access = np.array(access)
    selection = (access == "public") if (access == "public").any() and (access == "private").any() else None
    data = BrainData(name=spec, images=np.stack(images), stimulus_id=np.array(ids), trials=trials,
                     stratify=stratify, selection=selection, visual_degrees=float(meta.get("visual_degrees", 8.0)),
                     meta={k: np.array(v) for k, v in extra.items() if v})
    if selection is not None:
        data.meta["selection_note"] = "Brain-Score split: public images (variations 0, 3) select layers, " \
                                      "private images (variation 6) are reported"
    return data.sorted_by_stimulus()


def load_brain_data(spec: str, data_dir=None, regions=(), simulated_config: SimulatedConfig | None = None) -> BrainData:
    """'simulated' (tfsynth.neural.simulated) or a TFDS name[/config] of a brain builder."""
    if spec == "simulated":
        data = simulate(simulated_config or SimulatedConfig())
        if regions:
            unknown = sorted(set(regions) - set(data.regions))
            if unknown:
                raise SystemExit(f"simulated data has no region(s) {unknown}; available: {', '.join(data.regions)}")
            data.trials = {r: data.trials[r] for r in regions}
        data.meta["selection_note"] = "simulated variations 0, 3 select layers, variation 6 is reported " \
                                      "(Brain-Score's MajajHong public/private split)"
        return data
    return _load_tfds(spec, data_dir, regions)
