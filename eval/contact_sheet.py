"""Contact sheet of a dataset: the first C classes (rows) x their first K instances (columns), as a PNG and as a
TensorBoard image, to see at a glance that classes differ and instances vary.

    python -m eval.contact_sheet --data proc_synth_db/tiny --out runs/sheets/proc_synth_db_tiny.png
    python -m eval.contact_sheet --data morph_synth_db/1k --classes 10 --instances 10 --out sheet.png --logdir runs/tb

Any dataset with 'image' and 'label' features works (fractal_db, flat_world_db, ...). A missing dataset is built
first (Beam DirectRunner) unless --no-auto_build.
"""
from __future__ import annotations

import argparse
import os
import time

from tfsynth.cli import run_cli
from tfsynth.config_flags import new_parser


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser("python -m eval.contact_sheet", __doc__)
    parser.add_argument("--data", required=True, help="one dataset: name[/config], e.g. proc_synth_db/tiny")
    parser.add_argument("--out", required=True, help="PNG file to write")
    parser.add_argument("--classes", type=int, default=8, help="rows: the first N classes")
    parser.add_argument("--instances", type=int, default=8, help="columns: the first K examples of each class")
    parser.add_argument("--split", default="train")
    parser.add_argument("--data_dir", default=None, help="TFDS data directory (default: TFDS default)")
    parser.add_argument("--logdir", default=None, help="also write the sheet as a TensorBoard image summary here")
    parser.add_argument("--auto_build", default=True, action=argparse.BooleanOptionalAction,
                        help="build the dataset first if it is missing")
    return parser


def collect(builder, split: str, classes: int, instances: int) -> list[list]:
    """rows[c] = the first `instances` images of label c (file order), for c < classes."""
    import tensorflow_datasets as tfds

    rows = [[] for _ in range(min(classes, builder.info.features["label"].num_classes))]
    missing = len(rows) * instances
    ds = builder.as_dataset(split=split, shuffle_files=False,
                            decoders=tfds.decode.PartialDecoding({"image": True, "label": True}))
    for ex in tfds.as_numpy(ds):
        label = int(ex["label"])
        if label < len(rows) and len(rows[label]) < instances:
            rows[label].append(ex["image"])
            missing -= 1
            if missing == 0:
                break
    return rows


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.classes < 1 or args.instances < 1:
        raise SystemExit("error: --classes and --instances must be >= 1")
    from tfsynth.workdir import check_writable_dir

    check_writable_dir(os.path.dirname(os.path.abspath(args.out)), "--out")  # before the dataset is read or built
    from PIL import Image

    from tfsynth.input.datasets import parse_data_spec, prepared_builder, resolve_source
    from tfsynth.synth3d.sheet import contact_sheet

    start = time.time()
    sources = parse_data_spec(args.data)
    if len(sources) != 1:
        raise SystemExit(f"error: --data must name one dataset, got {args.data!r}")
    source = resolve_source(sources[0])
    builder = prepared_builder(source, data_dir=args.data_dir, auto_build=args.auto_build)
    rows = collect(builder, args.split, args.classes, args.instances)
    sheet = contact_sheet(rows)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    Image.fromarray(sheet).save(args.out)
    if args.logdir:
        import tensorflow as tf

        with tf.summary.create_file_writer(args.logdir).as_default():
            tf.summary.image(f"contact_sheet/{source.name}_{source.config}", sheet[None], step=0)
    result = {"out": os.path.abspath(args.out), "rows": len(rows), "columns": max(len(r) for r in rows),
              "shape": list(sheet.shape), "seconds": round(time.time() - start, 1)}
    print(f"Contact sheet of {source.name}/{source.config} ({result['rows']} classes x {result['columns']} "
          f"instances) -> {result['out']}"
          + (f"; TensorBoard: tensorboard --logdir {args.logdir}" if args.logdir else ""))
    return result


if __name__ == "__main__":
    run_cli(main, user_errors=(ValueError,))  # DataSpecError and bad images: a message, no traceback
