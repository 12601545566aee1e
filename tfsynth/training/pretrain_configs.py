"""Pre-training experiments, one config each, every hyper-parameter in one place (big_vision style).

    python -m train.pretrain                                   # `default`: laptop demo on fractal_db/tiny
    python -m train.pretrain --config fractaldb_1k --workdir runs/fdb1k
    python -m train.pretrain --config fractaldb_1k --batch_size 64 --lr 0.025   # flags override fields

Recipe (FractalDB, Kataoka et al. ACCV 2020, official PyTorch code `pretraining/main.py` + `args.py`): ResNet-50
from scratch, SGD momentum 0.9, weight decay 1e-4 (coupled, PyTorch style: see tfsynth.training.optim), batch 256,
90 epochs, LR x0.1 at epochs 30 and 60, RandomCrop 224 of the 362 px images and no other augmentation,
Normalize(mean=0.2, std=0.5) on [0, 1] pixels, drop_last=True, seed 1. Base LR: the official code's default is
0.1 (`--lr` in args.py) while the paper's text says 0.01; we follow the code, pass `--lr 0.01` for the paper's.
The official code trains on the whole of FractalDB with no validation phase, hence `eval_split=''` there.

The Table 2 rows of "Beyond Flatland" (1000 classes in total, split evenly between the mixed datasets) are `COMBOS`,
used by `--combo` and by the `*_1k` configs of `TABLE2_CONFIGS`; the class counts are the builders' own. They need
the corresponding builders (`proc_synth_db`, `morph_synth_db`) to be present and built, and report a clear error
listing the valid datasets otherwise.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

from tfsynth import config_flags
from tfsynth.config_flags import ConfigError  # noqa: F401  (re-exported)
from tfsynth.training.config import STRATEGIES, TRAIN_RANGES, TrainConfig  # noqa: F401  (STRATEGIES re-exported)

PRETRAIN_RANGES = {**TRAIN_RANGES, "arch": "{resnet18, resnet34, resnet50, resnet101, resnet152}"}  # check_ranges


@dataclasses.dataclass(frozen=True)
class PretrainConfig(TrainConfig):
    """Every hyper-parameter of a pre-training run. Each field is also a command-line flag of train.pretrain.

    The fields, defaults and flag help are TrainConfig's (the pre-training recipe); `arch` is also checked."""

    RANGES = PRETRAIN_RANGES


def default() -> PretrainConfig:
    """Laptop demo (~3 min on 2 CPU cores): the FractalDB recipe shrunk to fractal_db/tiny (4 classes x 16 at 64 px).

        python -m train.pretrain

    Builds fractal_db/tiny if missing, trains on the first 75% of its examples with 56 px random crops and reports
    top-1 on the other 25% (centre crops) every epoch and at the end. Batch 16 instead of 256, so LR 0.005 (about
    the linear scaling of the code's 0.1 at 256; 0.01 makes early training blow up here), x0.1 at epochs 20 and 25.
    Deterministic: with seed 1 (and oneDNN on, as `python -m train.pretrain` runs it) the held-out top-1 goes from
    0.31 after epoch 1 to 0.75 after epoch 30.
    """
    return PretrainConfig(
        data="fractal_db/tiny", train_split="train[:75%]", eval_split="train[75%:]", auto_build=True,
        crop_size=56, shuffle_buffer=1_000, batch_size=16, eval_batch_size=16, epochs=30, lr=0.005,
        lr_milestones=(20, 25))


def fractaldb_1k() -> PretrainConfig:
    """FractalDB-1k pre-training exactly as the official code (see the module docstring).

        tfds build fractal_db --imports tfds_builders.fractal_db --config 1k
        python -m train.pretrain --config fractaldb_1k --workdir runs/fractaldb_1k --strategy mirrored
    """
    return PretrainConfig(data="fractal_db/1k")


def fractaldb_100() -> PretrainConfig:
    """FractalDB-100 (first 100 official categories x 1,000 instances), same recipe.

        python -m train.pretrain --config fractaldb_100 --workdir runs/fractaldb_100
    """
    return PretrainConfig(data="fractal_db/100")


# Table 2 of "Beyond Flatland": the six pre-training sets, as (dataset, share of its classes) per source; the
# `--combo` flag and the `*_1k` configs below both read it.
COMBOS: dict[str, tuple] = {
    "fractal": (("fractal_db", 1.0),),
    "procsynth": (("proc_synth_db", 1.0),),
    "morphsynth": (("morph_synth_db", 1.0),),
    "procsynth+fractal": (("proc_synth_db", 0.5), ("fractal_db", 0.5)),
    "procsynth+morphsynth": (("proc_synth_db", 0.5), ("morph_synth_db", 0.5)),
    "all3": (("proc_synth_db", 1 / 3), ("morph_synth_db", 1 / 3), ("fractal_db", 1 / 3)),
}
COMBO_SCALES = ("1k", "small", "tiny")  # dataset configs every Table 2 builder has (class counts: the builders')


def builder_num_classes(dataset: str, config: str) -> int:
    """Number of classes of a builder config of this project, read from the builder (imports TensorFlow Datasets)."""
    import importlib

    import tensorflow_datasets as tfds

    try:
        importlib.import_module(f"tfds_builders.{dataset}")
    except Exception as e:  # noqa: BLE001 - any import failure of the builder is one line for the user
        raise ConfigError(f"the {dataset} builder (tfds_builders.{dataset}) failed to import: "
                          f"{type(e).__name__}: {e}") from e
    return tfds.builder_cls(dataset).builder_configs[config].num_classes


def combo_data_spec(name: str, scale: str = "1k") -> str:
    """The --data spec of a Table 2 combination at a dataset scale: e.g. ('all3', '1k') ->
    'proc_synth_db/1k:333,morph_synth_db/1k:333,fractal_db/1k:333'; ('procsynth+fractal', 'tiny') ->
    'proc_synth_db/tiny:2,fractal_db/tiny:2'. Each source keeps floor(share x its classes) >= 1 classes."""
    if name not in COMBOS:
        raise ConfigError(f"unknown --combo {name!r}; valid: {', '.join(COMBOS)}")
    if scale not in COMBO_SCALES:
        raise ConfigError(f"unknown --combo_scale {scale!r}; valid: {', '.join(COMBO_SCALES)}")
    return ",".join(f"{dataset}/{scale}:{max(1, int(share * builder_num_classes(dataset, scale) + 1e-9))}"
                    for dataset, share in COMBOS[name])


def _table2_config(combo: str) -> Callable[[], PretrainConfig]:
    def config() -> PretrainConfig:
        return PretrainConfig(data=combo_data_spec(combo, "1k"))

    config.__doc__ = f"Table 2: {combo} at 1k ({combo_data_spec.__name__}({combo!r}, '1k'))."
    return config


# The Table 2 rows as --config names (FractalDB alone is `fractaldb_1k`, the official recipe, above).
TABLE2_CONFIGS = {"procsynthdb_1k": "procsynth", "morphsynthdb_1k": "morphsynth",
                  "procsynth_fractal_1k": "procsynth+fractal", "procsynth_morphsynth_1k": "procsynth+morphsynth",
                  "procsynth_morphsynth_fractal_1k": "all3"}


CONFIGS: dict[str, Callable[[], PretrainConfig]] = {
    "default": default,
    "fractaldb_1k": fractaldb_1k,
    "fractaldb_100": fractaldb_100,
    **{name: _table2_config(combo) for name, combo in TABLE2_CONFIGS.items()},
}


def get_config(name: str, overrides: Optional[dict] = None) -> PretrainConfig:
    """The named config with `overrides` (field -> value) applied; unknown names/fields raise ConfigError."""
    return config_flags.get_config(CONFIGS, PretrainConfig, name, overrides)
