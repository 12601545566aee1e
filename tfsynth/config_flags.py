"""Experiment configs as dataclasses whose every field is also a command-line flag (TF-free).

A job registers named configs (`{name: () -> Config}`); `add_config_flags` turns the dataclass fields into
flags whose help is the field's trailing comment, and `config_from_args` applies the flags that were given.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import re
import typing
from typing import Any, Callable, Mapping, Optional, Sequence

from tfsynth.cli import exit_on


class ConfigError(ValueError):
    """An unknown config name or field, or an invalid value."""


_RANGE_RE = re.compile(r"^\s*(?:(>=|>|<=|<)\s*(\S+)|([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])|\{(.*)\})\s*$")


def _in_range(value, rule: str) -> bool:
    match = _RANGE_RE.match(rule)
    if match is None:
        raise ValueError(f"bad range rule {rule!r}")
    op, bound, lo_br, lo, hi, hi_br, choices = match.groups()
    if choices is not None:
        return str(value) in [c.strip() for c in choices.split(",")]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if op:
        b = float(bound)
        return {">=": value >= b, ">": value > b, "<=": value <= b, "<": value < b}[op]
    lo, hi = float(lo), float(hi)
    return ((value >= lo) if lo_br == "[" else (value > lo)) and ((value <= hi) if hi_br == "]" else (value < hi))


def check_ranges(config, rules: Mapping[str, str]) -> None:
    """Raises ConfigError naming the flag and its valid range for the first field of `config` outside its rule.

    `rules`: field -> '>= 1', '> 0', '[0, 1)', '(0, 1]', '{a, b}' (choices); a tuple field is checked per item.
    Config dataclasses call it from `__post_init__`, so every config is checked when it is made."""
    for name, rule in rules.items():
        value = getattr(config, name)
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if not _in_range(item, rule):
                what = "every item must be" if isinstance(value, tuple) else "must be"
                shown = ",".join(str(v) for v in value) if isinstance(value, tuple) else value
                rule_text = rule.strip()
                kind = {"{": "one of ", "[": "in ", "(": "in "}.get(rule_text[0], "")
                raise ConfigError(f"--{name} {shown}: {what} {kind}{rule_text}")


def after(name: str, default: Any):
    """The default of a field that a subclass adds to a config dataclass, placed after the (inherited) field `name`
    in `config_fields` order (flags, `to_dict`): `cv_folds: int = after("weight_decay", 0)  # help`."""
    return dataclasses.field(default=default, metadata={"after": name})


def config_fields(config) -> list[dataclasses.Field]:
    """The fields of a config dataclass (class or instance) in flag and `to_dict` order: declaration order (base
    classes first), except that a field declared with `after(name, ...)` follows the field `name`."""
    fields = list(dataclasses.fields(config))
    ordered = [f for f in fields if "after" not in f.metadata]
    for field in fields:
        if "after" in field.metadata:
            names = [f.name for f in ordered]
            ordered.insert(names.index(field.metadata["after"]) + 1, field)
    return ordered


class ConfigMixin:
    """`replace`, `to_dict` and the validation of a config dataclass: the base class of its (frozen) dataclass.

    A config class sets `RANGES` (field -> `check_ranges` rule) and may override `validate` (checks across fields,
    returns self); both run when a config is made, ranges first. A class whose messages need another order
    defines its own `__post_init__` (SegmentConfig)."""

    RANGES: Mapping[str, str] = {}

    def __post_init__(self):
        """Every field with a valid range is checked when the config is made (one line naming the flag)."""
        check_ranges(self, self.RANGES)
        self.validate()

    def validate(self):
        """Checks across fields (ConfigError); returns self."""
        return self

    def replace(self, **overrides):
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict:
        """{field: value} in `config_fields` order, tuples as lists (as in the workdir's config.json)."""
        values = dataclasses.asdict(self)
        return {f.name: list(values[f.name]) if isinstance(values[f.name], tuple) else values[f.name]
                for f in config_fields(self)}


def field_help(config_cls) -> dict[str, str]:
    """The trailing `# comment` of each field of `config_cls` (less a final `# noqa: ...`), used as its flag's help;
    a field declared again in a subclass takes the subclass's comment."""
    helps = {}
    for cls in reversed(config_cls.__mro__):
        if "__dataclass_fields__" not in vars(cls):
            continue
        source = inspect.getsource(cls)
        helps.update({m[1]: m[2].strip() for m in
                      re.finditer(r"^\s+(\w+): [^=\n]+=[^#\n]+#(.*?)(?:\s+#\s*noqa\b.*)?$", source, re.M)})
    return helps


def _tuple_parser(item_type):
    def parse(text: str):
        return tuple(item_type(x) for x in text.split(",") if x.strip())
    return parse


def add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    """One `--field` per dataclass field (default None = keep the named config's value)."""
    group = parser.add_argument_group("config fields (override the selected --config)")
    helps = field_help(config_cls)
    hints = typing.get_type_hints(config_cls)
    for field in config_fields(config_cls):
        hint = hints[field.name]
        kwargs = {"default": None, "help": helps.get(field.name, "").replace("%", "%%")}
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(hint) is tuple:
            kwargs["type"] = _tuple_parser(typing.get_args(hint)[0])
            kwargs["metavar"] = "A,B,..."
        else:
            kwargs["type"] = hint
        group.add_argument(f"--{field.name}", **kwargs)


def get_config(registry: Mapping[str, Callable], config_cls, name: str, overrides: Optional[dict] = None):
    """The named config with `overrides` (field -> value) applied; unknown names/fields raise ConfigError."""
    if name not in registry:
        raise ConfigError(f"unknown --config {name!r}; valid: {', '.join(registry)}")
    config = registry[name]()
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides or {}) - fields)
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown}; valid: {', '.join(sorted(fields))}")
    return dataclasses.replace(config, **(overrides or {}))


def config_from_args(args: argparse.Namespace, registry: Mapping[str, Callable], config_cls):
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(config_cls)
                 if getattr(args, f.name) is not None}
    return get_config(registry, config_cls, args.config, overrides)


def new_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A job's parser: `prog` as the usage name, the module docstring (examples kept as written) as description."""
    return argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_job_flags(parser: argparse.ArgumentParser, registry: Mapping[str, Callable], config_cls, default: str,
                  default_help: str, runs_subdir: str, *, writes: str = "checkpoints, logs, outputs",
                  resume_help: str = "continue from the newest checkpoint in --workdir", workdir_tag: str = "",
                  strategies: Sequence[str] = (), add_run_flags: Optional[Callable] = None) -> None:
    """The common flags of a training job: a "run" group (--config, --workdir, --resume, [--strategy, --tpu,]
    --data_dir, then whatever `add_run_flags(group)` adds) and one flag per field of `config_cls`.

    `default_help` describes the default config; `writes` what --workdir holds; `workdir_tag` (e.g. "<source>")
    is a part of the default workdir name between config and timestamp (see `job_workdir`).
    """
    run = parser.add_argument_group("run")
    run.add_argument("--config", default=default, choices=sorted(registry),
                     help=f"named experiment config (default: {default_help})")
    tag = f"{workdir_tag}-" if workdir_tag else ""
    run.add_argument("--workdir", default=None,
                     help=f"{writes} (default: runs/{runs_subdir}/<config>-{tag}<timestamp>)")
    run.add_argument("--resume", action="store_true", help=resume_help)
    if strategies:
        run.add_argument("--strategy", default="default", choices=tuple(strategies), help="tf.distribute strategy")
        run.add_argument("--tpu", default=None, help="TPU name/address for --strategy tpu")
    run.add_argument("--data_dir", default=None, help="TFDS data directory (default: TFDS default)")
    if add_run_flags is not None:
        add_run_flags(run)
    add_config_flags(parser, config_cls)
    parser.set_defaults(_runs_subdir=runs_subdir, _job=parser.prog.split()[-1])


def job_parser(prog: str, doc: str, registry: Mapping[str, Callable], config_cls, default: str,
               default_help: str, runs_subdir: str, **flags) -> argparse.ArgumentParser:
    """The command line of a training job: `new_parser` + `add_job_flags` (keyword options passed on)."""
    parser = new_parser(prog, doc)
    add_job_flags(parser, registry, config_cls, default, default_help, runs_subdir, **flags)
    return parser


def job_workdir(args: argparse.Namespace, tag: str = "", config=None) -> str:
    """--workdir, or runs/<subdir>/<config>[-<tag>]-<timestamp>; --resume without --workdir exits with a message.

    The workdir is claimed for the job before any data work (tfsynth.workdir.claim_workdir: created, locked for
    this process, tagged with the job; unwritable, in use or another job's: WorkdirError). `config` (the job's
    config dataclass) lets a workdir written before job records existed be recognised by its config.json."""
    import time

    from tfsynth.workdir import claim_workdir, is_non_chief_worker

    if args.resume and not args.workdir:
        raise SystemExit("--resume needs the --workdir of the run to continue")
    name = "-".join(part for part in (args.config, tag, time.strftime("%Y%m%d-%H%M%S")) if part)
    workdir = args.workdir or os.path.join("runs", args._runs_subdir, name)
    if getattr(args, "strategy", None) == "multi_worker_mirrored" and is_non_chief_worker():
        return workdir  # only the chief writes (and owns) the workdir
    keys = [f.name for f in dataclasses.fields(config)] if config is not None else None
    claim_workdir(workdir, getattr(args, "_job", "a tfsynth job"), resume=args.resume, config_keys=keys)
    return workdir


def resolve_job(args: argparse.Namespace, registry: Mapping[str, Callable], config_cls):
    """(config, workdir) of a parsed `job_parser` command line; user errors exit with a one-line message."""
    with exit_on(ConfigError):
        config = config_from_args(args, registry, config_cls)
    return config, job_workdir(args, config=config)
