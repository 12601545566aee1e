"""The AIST shape & pose experiment (seed 002 ch. 6, Tables 6.2, Figures 6.5 / 7.1): baseline DPC on the original
renders vs DPC on each AIST-stylised copy, scored on every test set and on held-out real segmentations.

    python -m eval.aist --config tiny --workdir runs/aist_exp/tiny        # whole chain on CPU (minutes)
    python -m eval.aist --config cars --workdir runs/aist_exp/cars --source_manual_dir /data/ShapeNetCore.v2 \\
        --phi_weights resnet18_imagenet.npz                               # the seed's experiment (days on a GPU)
    python -m eval.aist --config cars --workdir runs/aist_exp/cars ...    # rerun: finished stages are skipped

Every field of the selected config (tfsynth/aist/experiment.py) is a flag that overrides it. Writes, under
<workdir>/eval/: table.md, table.csv (Table 6.2 layout), real_table.md, real_table.csv (normalised mask
disagreement), real_kde.png (Figure 6.5), reality_gap_kde.png (Figure 7.1) and results.json; the AIST runs under
<workdir>/aist/<name>/, the stylised datasets in <workdir>/tfds/aist_stylized/<name>/, the DPC runs under
<workdir>/dpc/<experiment>/ (TensorBoard logs in each).
"""
from __future__ import annotations

import argparse
import os
import time

from tfsynth.aist import experiment
from tfsynth.aist.experiment import ConfigError, ExperimentConfig
from tfsynth.cli import exit_on, run_cli
from tfsynth.config_flags import add_config_flags, config_from_args, new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.aist", __doc__)
    run = parser.add_argument_group("run")
    run.add_argument("--config", default="cars", choices=sorted(experiment.CONFIGS),
                     help="named experiment (default: cars, the seed's; tiny: CPU smoke run)")
    run.add_argument("--workdir", default=None, help="everything the experiment writes (default: "
                     "runs/aist_exp/<config>-<timestamp>); rerun with the same --workdir to resume")
    add_config_flags(parser, ExperimentConfig)
    return parser


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    with exit_on(ConfigError):
        config = config_from_args(args, experiment.CONFIGS, ExperimentConfig)
    workdir = args.workdir or os.path.join("runs", "aist_exp", f"{args.config}-{time.strftime('%Y%m%d-%H%M%S')}")
    from tfsynth.workdir import claim_workdir

    claim_workdir(workdir, "eval.aist", resume=True)  # a rerun continues; before any data work

    from tfsynth.aist import data as aist_data
    from tfsynth.aist.stylize import GeneratorError
    from tfsynth.dpc import data as dpc_data

    from tfsynth.input.datasets import DataSpecError

    with exit_on(aist_data.SourceError, dpc_data.SourceError, GeneratorError, ConfigError, FileNotFoundError,
                 DataSpecError):
        results = experiment.run(config, workdir)
    print(f"Tables and plots: {os.path.join(os.path.abspath(workdir), 'eval')}")
    return results


if __name__ == "__main__":
    run_cli(main)  # user errors leave main() as SystemExit("error: ...")
