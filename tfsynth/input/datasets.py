"""`--data` specs: parse, validate against the registered TFDS builders, build if missing, load and mix.

A spec names one or more TFDS datasets and how many of their classes to use::

    fractal_db/tiny                              every class of one dataset
    fractal_db/1k:500,proc_synth_db/1k:500       the first 500 classes (label < 500) of each

The sources are mapped into one label space in the order written: source i's labels are offset by the sum of the
class counts of the sources before it (Table 2 of "Beyond Flatland": 500 + 500, 333 + 333 + 333, ...).

Every dataset must have an 'image' feature (tfds Image, 1 or 3 channels, PNG/JPEG encoded) and a ClassLabel 'label'.
Images are kept encoded here (cheap to shuffle); `tfsynth.input.pipeline` decodes them after mixing.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import os
import pkgutil
import re
import warnings
from typing import Optional

import tensorflow as tf
import tensorflow_datasets as tfds

_SOURCE_RE = re.compile(r"^(?P<name>[a-z0-9_]+)(?:/(?P<config>[A-Za-z0-9_.\-]+))?(?::(?P<classes>[^:,/]+))?$")


class DataSpecError(ValueError):
    """A --data spec that cannot be parsed or names an unknown dataset / config / class count."""


@dataclasses.dataclass(frozen=True)
class DataSource:
    """One comma-separated item of a --data spec."""

    name: str
    config: Optional[str] = None  # None: the builder's default config (or a builder without configs)
    num_classes: Optional[int] = None  # None: all classes

    def __str__(self) -> str:
        text = self.name if self.config is None else f"{self.name}/{self.config}"
        return text if self.num_classes is None else f"{text}:{self.num_classes}"


def parse_data_spec(spec: str) -> list[DataSource]:
    """Parses the syntax of a spec (`name[/config][:K],...`); does not look at the registry."""
    if not spec or not spec.strip():
        raise DataSpecError("empty --data spec; expected e.g. 'fractal_db/tiny' or "
                            "'fractal_db/1k:500,proc_synth_db/1k:500'")
    sources = []
    for item in spec.split(","):
        item = item.strip()
        match = _SOURCE_RE.match(item)
        if not match:
            raise DataSpecError(
                f"cannot parse {item!r} in --data {spec!r}; expected 'name[/config][:num_classes]', "
                "e.g. 'fractal_db/1k:500'")
        classes = match["classes"]
        if classes is not None:
            if not classes.isdigit() or int(classes) < 1:
                raise DataSpecError(f"number of classes in {item!r} must be a positive integer, got {classes!r}")
            classes = int(classes)
        sources.append(DataSource(match["name"], match["config"], classes))
    return sources


def import_tfds_builders() -> dict[str, str]:
    """Imports `tfds_builders.<name>` for every builder package present; returns {name: error} for failures."""
    import tfds_builders

    failures = {}
    for module in pkgutil.iter_modules(tfds_builders.__path__):
        if not module.ispkg:
            continue
        try:
            importlib.import_module(f"tfds_builders.{module.name}")
        except Exception as e:  # noqa: BLE001 - one broken builder must not hide the others; reported on use
            failures[module.name] = f"{type(e).__name__}: {e}"
    return failures


def project_builder_names() -> list[str]:
    """Names of the TFDS builders this project defines (registered from the tfds_builders package)."""
    import_tfds_builders()
    names = []
    for name in tfds.list_builders(with_community_datasets=False):
        try:
            cls = tfds.builder_cls(name)
        except Exception:  # noqa: BLE001 - a registry entry that fails to load is simply not ours
            continue
        if cls.__module__.startswith("tfds_builders."):
            names.append(name)
    return sorted(names)


def unknown_dataset_message(name: str, flag: str = "--data",
                            note: str = "any registered TFDS dataset works too") -> Optional[str]:
    """None if the dataset part of `name` ('name', 'name/config', 'name/config:split') is a registered TFDS dataset;
    otherwise one line naming `flag`, this project's datasets and the closest registered names (difflib) instead of
    TFDS's catalogue of hundreds of names."""
    import difflib

    failures = import_tfds_builders()
    base = name.split(":")[0].split("/")[0]
    registered = tfds.list_builders(with_community_datasets=False)
    if base in registered:
        return None
    ours = project_builder_names()
    close = difflib.get_close_matches(base, sorted(set(ours) | set(registered)), n=5, cutoff=0.6)
    msg = (f"unknown dataset {base!r} in {flag}. Datasets of this project: {', '.join(ours) or '(none)'}"
           + (f"; closest registered names: {', '.join(close)}" if close else "")
           + f" ({note})")
    if base in failures:
        msg += f". tfds_builders.{base} exists but failed to import: {failures[base]}"
    return msg


def _builder_cls(name: str):
    from tfsynth.input import online

    msg = unknown_dataset_message(name, "--data", "any other registered TFDS dataset with 'image' and 'label' "
                                                  "features works too; rendered while training, never stored: "
                                                  + ", ".join(online.ONLINE_DATASETS))
    if msg is not None:
        raise DataSpecError(msg)
    return tfds.builder_cls(name)


def resolve_source(source: DataSource) -> DataSource:
    """Checks the dataset and config names against the registry (or the online sources of
    `tfsynth.input.online`); fills in the default config."""
    from tfsynth.input import online

    if online.is_online(source.name):
        config = source.config or online.default_config(source.name)
        online.check_config(source.name, config)
        return dataclasses.replace(source, config=config)
    cls = _builder_cls(source.name)
    configs = dict(getattr(cls, "builder_configs", {}) or {})
    if not configs:
        if source.config is not None:
            raise DataSpecError(f"dataset {source.name!r} has no configs, but --data asks for {source.config!r}")
        return source
    if source.config is None:
        default = getattr(cls, "DEFAULT_BUILDER_CONFIG_NAME", None) or next(iter(configs))
        return dataclasses.replace(source, config=default)
    if source.config not in configs:
        raise DataSpecError(
            f"unknown config {source.config!r} of dataset {source.name!r} in --data. "
            f"Valid configs: {', '.join(configs)}")
    return source


def beam_download_config(manual_dir: Optional[str] = None) -> tfds.download.DownloadConfig:
    """A DownloadConfig running the Beam builders locally. The runner is named, so Beam does not try another one
    first, and `flags=[]` keeps Beam from parsing this job's own command line (it warned "Discarding unparseable
    args" for every flag of the job that triggered the build)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return tfds.download.DownloadConfig(beam_options=PipelineOptions(flags=[], runner="DirectRunner"),
                                        manual_dir=manual_dir)


_BEAM_CONTEXT = re.compile(r"\s*\[while running '[^']*'\]\s*$")


def build_dataset(builder, download_config=None) -> None:
    """`builder.download_and_prepare(download_config=...)` for a build that this project starts itself (--auto_build,
    experiments.aist_shape_pose); a failure (no, a missing or a junk --manual_dir, ...) is a DataSpecError with the
    last line of the 50-90-line Beam/TFDS error only, which names the problem."""
    try:
        builder.download_and_prepare(download_config=download_config)
    except Exception as err:  # noqa: BLE001 - Beam wraps the builder's error in its own types; keep its last line
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        last = _BEAM_CONTEXT.sub("", lines[-1]) if lines else type(err).__name__
        if len(lines) > 1 and lines[0].startswith("Manual directory"):  # TFDS: "... is empty", then instructions
            last = f"{lines[0]} {last}"
        name = builder.name + (f"/{builder.builder_config.name}" if builder.builder_config else "")
        raise DataSpecError(f"building {name} failed: {last}") from err


@contextlib.contextmanager
def _build_lock(builder):
    """An exclusive lock per dataset variant (`<data_dir>/.build-locks/<name>-<config>.lock`), so two processes that
    auto-build the same missing dataset (two experiment processes, parallel test workers) build it once; the kernel
    drops the lock of a killed process."""
    lock_dir = os.path.join(builder._data_dir_root, ".build-locks")  # noqa: SLF001 - TFDS has no public accessor
    os.makedirs(lock_dir, exist_ok=True)
    name = builder.name + (f"-{builder.builder_config.name}" if builder.builder_config else "")
    with open(os.path.join(lock_dir, name + ".lock"), "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def built_builder(source: DataSource, data_dir: Optional[str] = None, auto_build: bool = False):
    """The TFDS builder of a resolved source, built first (once, under the build lock) when missing and allowed;
    a missing dataset without `auto_build` is a DataSpecError naming the `tfds build` command."""
    builder = tfds.builder(source.name, config=source.config, data_dir=data_dir)
    if not builder.is_prepared():
        where = data_dir or tfds.core.constants.DATA_DIR
        if not auto_build:
            raise DataSpecError(
                f"dataset {source.name}/{source.config} is not built in {where}. Build it with "
                f"`tfds build {source.name} --config {source.config} --imports tfds_builders.{source.name}"
                + (f" --data_dir {data_dir}" if data_dir else "") + "` or pass --auto_build.")
        with _build_lock(builder):  # another process may be building it right now: wait, then use its build
            builder = tfds.builder(source.name, config=source.config, data_dir=data_dir)
            if not builder.is_prepared():
                print(f"Building {source.name}/{source.config} in {where} (missing; --auto_build) ...", flush=True)
                build_dataset(builder, beam_download_config())
    return builder


def prepared_builder(source: DataSource, data_dir: Optional[str] = None, auto_build: bool = False):
    """Returns the TFDS builder of a resolved classification source (image + label), built first when missing and
    allowed (`built_builder`)."""
    builder = built_builder(source, data_dir, auto_build)
    features = builder.info.features
    missing = [k for k in ("image", "label") if k not in features]
    if missing:
        raise DataSpecError(f"dataset {source.name}/{source.config} has no {missing} feature(s); "
                            f"it has {sorted(features.keys())}")
    if not isinstance(features["label"], tfds.features.ClassLabel):
        raise DataSpecError(f"'label' of {source.name}/{source.config} is not a ClassLabel")
    if features["image"].shape[-1] not in (1, 3):
        raise DataSpecError(f"'image' of {source.name}/{source.config} has shape {features['image'].shape}; "
                            "expected 1 or 3 channels")
    return builder


@dataclasses.dataclass
class MixtureSource:
    """A source as used by a Mixture: its builder, class count, label offset and example count in the split."""

    source: DataSource
    builder: tfds.core.DatasetBuilder
    num_classes: int
    label_offset: int
    num_examples: int

    def as_dict(self) -> dict:
        return {"name": self.source.name, "config": self.source.config, "num_classes": self.num_classes,
                "label_offset": self.label_offset, "num_examples": self.num_examples}


@dataclasses.dataclass
class Mixture:
    """The sources of a --data spec restricted to one split, in one label space."""

    spec: str
    split: str
    sources: list[MixtureSource]

    @property
    def num_classes(self) -> int:
        return sum(s.num_classes for s in self.sources)

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.sources)

    def encoded_datasets(self, try_autocache: bool = True) -> list[tf.data.Dataset]:
        """One dataset per source of (encoded image bytes, int64 label in the mixed label space), in file order.

        TFDS caches small datasets in memory when `try_autocache`; pass False to read only a few examples."""
        from tfsynth.input.online import OnlineBuilder

        return [s.builder.dataset(self.split, s.num_classes, s.label_offset) if isinstance(s.builder, OnlineBuilder)
                else _encoded_dataset(s.builder, self.split, s.num_classes, s.label_offset, try_autocache)
                for s in self.sources]

    def epoch_dataset_fns(self, seed: int) -> list:
        """Per source: None (a stored source: the training pipeline shuffles `encoded_datasets()` per epoch), or
        `fn(epoch) -> dataset` for an online source, whose units are rendered in an order drawn from (seed, epoch)."""
        from tfsynth.input.online import OnlineBuilder

        def epoch_fn(s):
            return lambda epoch: s.builder.dataset(self.split, s.num_classes, s.label_offset, seed=seed, epoch=epoch)

        return [epoch_fn(s) if isinstance(s.builder, OnlineBuilder) else None for s in self.sources]


def _encoded_dataset(builder, split: str, num_classes: int, label_offset: int,
                     try_autocache: bool = True) -> tf.data.Dataset:
    # Parse only 'image' (kept encoded) and 'label'; other features are never read.
    decoders = tfds.decode.PartialDecoding({"image": True, "label": True},
                                           decoders={"image": tfds.decode.SkipDecoding()})
    ds = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders,
                            read_config=tfds.ReadConfig(add_tfds_id=False, try_autocache=try_autocache))
    ds = ds.map(lambda ex: (ex["image"], tf.cast(ex["label"], tf.int64)))
    if num_classes < builder.info.features["label"].num_classes:
        ds = ds.filter(lambda image, label: label < num_classes)
    if label_offset:
        ds = ds.map(lambda image, label: (image, label + label_offset))
    return ds


def _count_examples(builder, split: str, num_classes: int) -> int:
    if num_classes == builder.info.features["label"].num_classes:
        return int(builder.info.splits[split].num_examples)
    ds = _encoded_dataset(builder, split, num_classes, 0)
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def load_mixture(spec: str, split: str, data_dir: Optional[str] = None, auto_build: bool = False) -> Mixture:
    """Parses and validates `spec`, builds missing datasets if `auto_build`, and counts the examples of `split`."""
    from tfsynth.input import online

    sources = [resolve_source(s) for s in parse_data_spec(spec)]
    mixed, offset = [], 0
    for source in sources:
        if online.is_online(source.name):
            builder = online.OnlineBuilder(source.name, source.config)
        else:
            builder = prepared_builder(source, data_dir=data_dir, auto_build=auto_build)
        available = builder.info.features["label"].num_classes
        k = available if source.num_classes is None else source.num_classes
        if k > available:
            raise DataSpecError(f"--data asks for {k} classes of {source.name}/{source.config}, "
                                f"which has only {available}")
        try:
            if isinstance(builder, online.OnlineBuilder):
                n = builder.count(split, k)
            else:
                n = _count_examples(builder, split, k)
        except (ValueError, KeyError, AssertionError) as e:
            if isinstance(e, DataSpecError):
                raise
            raise DataSpecError(f"bad split {split!r} for {source.name}/{source.config} "
                                f"(splits: {list(builder.info.splits)}): {e}") from None
        if n == 0:
            warnings.warn(f"{source} has no examples with label < {k} in split {split!r}")
        mixed.append(MixtureSource(dataclasses.replace(source, num_classes=k), builder, k, offset, n))
        offset += k
    return Mixture(spec=spec, split=split, sources=mixed)
