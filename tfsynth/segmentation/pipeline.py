"""tf.data input for semantic segmentation: TFDS datasets with an RGB 'image' and a LabeledImage 'label'.

Training stream (one pass per epoch; like a PyTorch DataLoader with shuffle=True, drop_last=False)::

    Dataset.range(initial_epoch, epochs).flat_map(one_epoch)

`one_epoch(epoch)` depends only on (seed, epoch) (stateless random ops), so a resumed run sees the batches an
uninterrupted run sees. Per example (torchvision's segmentation transforms, in this order):
  1. decode image (uint8 RGB) and label (uint8, 255 = ignore);
  2. RandomResize: shorter side -> s ~ U{min_size..max_size}, the longer one int(s * long / short); image
     bilinear with antialiasing (PIL's resize, as torchvision's on PIL images), label nearest;
  3. horizontal flip with probability `hflip_prob`;
  4. RandomCrop(crop_size), padding the bottom/right first where smaller (image 0, label 255), when crop_size > 0.
Whole images (crop_size 0) are batched with `padded_batch`: bottom/right padding, image 0 and label 255, as the
seed author's `collate_fn`. The model normalises the uint8 pixels itself.

Evaluation: every example once in file order, shorter side resized to `eval_size` (0 = as stored), padded batches.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow as tf
import tensorflow_datasets as tfds

from tfsynth.input import augment
from tfsynth.input.datasets import (DataSource, DataSpecError, beam_download_config, build_dataset, parse_data_spec,
                                    resolve_source)

AUTOTUNE = tf.data.AUTOTUNE
IGNORE_INDEX = 255


@dataclasses.dataclass
class SegmentationData:
    """One split of a segmentation dataset: its builder, classes and size."""

    source: DataSource
    split: str
    builder: tfds.core.DatasetBuilder
    num_classes: int
    class_names: list[str]
    num_examples: int

    @property
    def spec(self) -> str:
        return f"{self.source.name}/{self.source.config}" if self.source.config else self.source.name

    def as_dict(self) -> dict:
        return {"dataset": self.spec, "split": self.split, "num_classes": self.num_classes,
                "num_examples": self.num_examples, "class_names": self.class_names}


def _build(builder, source: DataSource, data_dir: Optional[str], manual_dir: Optional[str]) -> None:
    where = data_dir or tfds.core.constants.DATA_DIR
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS and not manual_dir:
        raise DataSpecError(f"dataset {source.name}/{source.config} is not built in {where} and needs its source "
                            f"files: pass --coco_dir (its manual_dir) with --auto_build, or run `tfds build "
                            f"{source.name} --imports tfds_builders.{source.name} --config {source.config} "
                            f"--manual_dir DIR" + (f" --data_dir {data_dir}" if data_dir else "") + "`")
    print(f"Building {source.name}/{source.config} in {where} (missing; --auto_build) ...", flush=True)
    config = beam_download_config()
    if manual_dir:
        config = dataclasses.replace(config, manual_dir=manual_dir)
    build_dataset(builder, config)  # a failed build: its last line only (DataSpecError)


def load_data(spec: str, split: str, data_dir: Optional[str] = None, auto_build: bool = False,
              manual_dir: Optional[str] = None) -> SegmentationData:
    """Resolves `name[/config]`, builds the dataset if missing and allowed, and checks its features."""
    from tfsynth.input import online

    sources = parse_data_spec(spec)
    if len(sources) != 1 or sources[0].num_classes is not None:
        raise DataSpecError(f"segmentation data must be one dataset 'name/config', got {spec!r}")
    if online.is_online_segmentation(sources[0].name):  # rendered while training (tfsynth.input.online)
        builder = online.OnlineScenesBuilder(sources[0].name, sources[0].config)
        source = dataclasses.replace(sources[0], config=builder.config_name)
        label = builder.info.features["label"]
        n = len(builder.indices(split))
        if n == 0:
            raise DataSpecError(f"split {split!r} of {source.name}/{source.config} is empty")
        return SegmentationData(source, split, builder, int(label.num_classes), list(label.names), n)
    source = resolve_source(sources[0])
    builder = tfds.builder(source.name, config=source.config, data_dir=data_dir)
    if not builder.is_prepared():
        if not auto_build:
            raise DataSpecError(
                f"dataset {source.name}/{source.config} is not built in {data_dir or tfds.core.constants.DATA_DIR}. "
                f"Build it with `tfds build {source.name} --config {source.config} "
                f"--imports tfds_builders.{source.name}"
                + (f" --data_dir {data_dir}" if data_dir else "") + "` or pass --auto_build.")
        _build(builder, source, data_dir, manual_dir)
    features = builder.info.features
    label = features["label"] if "label" in features else None
    if "image" not in features or not isinstance(label, tfds.features.LabeledImage):
        raise DataSpecError(f"dataset {source.name}/{source.config} needs an 'image' and a LabeledImage 'label' "
                            f"feature; it has {sorted(features.keys())}")
    if features["image"].shape[-1] != 3:
        raise DataSpecError(f"'image' of {source.name}/{source.config} has shape {features['image'].shape}; need RGB")
    try:
        n = int(builder.info.splits[split].num_examples)
    except (KeyError, ValueError, AssertionError) as e:
        raise DataSpecError(f"bad split {split!r} for {source.name}/{source.config} "
                            f"(splits: {list(builder.info.splits)}): {e}") from None
    if n == 0:
        raise DataSpecError(f"split {split!r} of {source.name}/{source.config} is empty")
    return SegmentationData(source, split, builder, int(label.num_classes), list(label.names), n)


def encoded_dataset(data: SegmentationData, try_autocache: bool = True) -> tf.data.Dataset:
    """(encoded image, encoded label) pairs of the split, in file order."""
    from tfsynth.input.online import OnlineScenesBuilder

    if isinstance(data.builder, OnlineScenesBuilder):
        return data.builder.dataset(data.split)
    decoders = tfds.decode.PartialDecoding({"image": True, "label": True},
                                           decoders={"image": tfds.decode.SkipDecoding(),
                                                     "label": tfds.decode.SkipDecoding()})
    ds = data.builder.as_dataset(split=data.split, shuffle_files=False, decoders=decoders,
                                 read_config=tfds.ReadConfig(add_tfds_id=False, try_autocache=try_autocache))
    return ds.map(lambda ex: (ex["image"], ex["label"]))


def decode(encoded_image: tf.Tensor, encoded_label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """-> uint8 image (H, W, 3) and uint8 label (H, W, 1); errors if their sizes differ."""
    image = tf.io.decode_image(encoded_image, channels=3, dtype=tf.uint8, expand_animations=False)
    label = tf.io.decode_png(encoded_label, channels=1, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    label.set_shape([None, None, 1])
    with tf.control_dependencies([tf.debugging.assert_equal(tf.shape(image)[:2], tf.shape(label)[:2],
                                                            message="image and label sizes differ")]):
        return tf.identity(image), tf.identity(label)


def resized_size(height: tf.Tensor, width: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """torchvision F.resize(img, size) for an int size: shorter side -> size, longer -> int(size * long / short)."""
    height, width, size = (tf.cast(v, tf.int64) for v in (height, width, size))
    short, long = tf.minimum(height, width), tf.maximum(height, width)
    new_long = (size * long) // short  # exact integer truncation of size * long / short
    new_h = tf.where(height <= width, size, new_long)
    new_w = tf.where(height <= width, new_long, size)
    return tf.cast(new_h, tf.int32), tf.cast(new_w, tf.int32)


def resize_shorter_side(image: tf.Tensor, label: tf.Tensor, size) -> tuple[tf.Tensor, tf.Tensor]:
    """Image bilinear (antialiased when shrinking, like PIL), label nearest; unchanged if the size already fits."""
    shape = tf.shape(image)
    new_h, new_w = resized_size(shape[0], shape[1], size)

    def resize():
        img = tf.image.resize(image, [new_h, new_w], method="bilinear", antialias=True)
        img = tf.cast(tf.clip_by_value(tf.round(img), 0.0, 255.0), tf.uint8)
        lab = tf.image.resize(label, [new_h, new_w], method="nearest")
        return img, tf.cast(lab, tf.uint8)

    same = tf.logical_and(tf.equal(new_h, shape[0]), tf.equal(new_w, shape[1]))
    img, lab = tf.cond(same, lambda: (image, label), resize)
    img.set_shape([None, None, 3])
    lab.set_shape([None, None, 1])
    return img, lab


def pad_to_at_least(image: tf.Tensor, label: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """torchvision's pad_if_smaller: pad bottom/right up to `size`, image with 0 and label with 255."""
    shape = tf.shape(image)
    pad_h, pad_w = tf.maximum(size - shape[0], 0), tf.maximum(size - shape[1], 0)
    paddings = [[0, pad_h], [0, pad_w], [0, 0]]
    return (tf.pad(image, paddings, constant_values=0),
            tf.pad(label, paddings, constant_values=IGNORE_INDEX))


def train_transform(image, label, key, *, min_size: int, max_size: int, hflip_prob: float, crop_size: int):
    """RandomResize -> RandomHorizontalFlip -> RandomCrop with randomness from the stateless `key` (shape [2])."""
    fold = tf.random.experimental.stateless_fold_in
    size = tf.random.stateless_uniform([], fold(key, 0), minval=min_size, maxval=max_size + 1, dtype=tf.int32)
    image, label = resize_shorter_side(image, label, size)
    if hflip_prob > 0:
        flip = tf.random.stateless_uniform([], fold(key, 1)) < hflip_prob
        image, label = tf.cond(flip, lambda: (image[:, ::-1], label[:, ::-1]), lambda: (image, label))
    if crop_size > 0:
        image, label = pad_to_at_least(image, label, crop_size)
        both = tf.image.stateless_random_crop(tf.concat([image, label], axis=-1), [crop_size, crop_size, 4],
                                              seed=fold(key, 2))
        image, label = both[..., :3], both[..., 3:]
    return image, label


def _batch(ds: tf.data.Dataset, batch_size: int, fixed_size: bool) -> tf.data.Dataset:
    if fixed_size:
        return ds.batch(batch_size)
    return ds.padded_batch(batch_size, padded_shapes=([None, None, 3], [None, None, 1]),
                           padding_values=(tf.constant(0, tf.uint8), tf.constant(IGNORE_INDEX, tf.uint8)))


def _targets(aux: bool):
    def split(images, labels):
        return images, ({"out": labels, "aux": labels} if aux else {"out": labels})
    return split


def train_dataset(data: SegmentationData, *, batch_size: int, seed: int, epochs: int, initial_epoch: int = 0,
                  min_size: int, max_size: int, hflip_prob: float = 0.0, crop_size: int = 0,
                  shuffle_buffer: int = 1_000, aux: bool = False) -> tuple[tf.data.Dataset, int]:
    """(dataset of (uint8 images (B, H, W, 3), {'out'[, 'aux']: uint8 labels (B, H, W, 1)}) for epochs
    [initial_epoch, epochs), steps per epoch = ceil(examples / batch_size))."""
    steps = math.ceil(data.num_examples / batch_size)
    from tfsynth.input.online import OnlineScenesBuilder

    encoded = encoded_dataset(data)
    online = isinstance(data.builder, OnlineScenesBuilder)  # renders its scenes in an order from (seed, epoch)
    buffer = max(1, min(shuffle_buffer, data.num_examples))
    transform = dict(min_size=min_size, max_size=max_size, hflip_prob=hflip_prob, crop_size=crop_size)

    def one_epoch(epoch):
        key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
        fold = tf.random.experimental.stateless_fold_in
        shuffle_seed = tf.random.stateless_uniform([], fold(key, 0), minval=0, maxval=2**31 - 1, dtype=tf.int64)
        source = data.builder.dataset(data.split, seed=seed, epoch=epoch) if online else encoded
        ds = augment.seeded_shuffle(source, buffer, shuffle_seed)

        def per_example(index, example):
            image, label = decode(*example)
            return train_transform(image, label, fold(fold(key, 1), index), **transform)

        ds = ds.enumerate().map(per_example, num_parallel_calls=AUTOTUNE)
        return _batch(ds, batch_size, crop_size > 0).take(steps)

    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch).map(_targets(aux))
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(AUTOTUNE), steps


def eval_examples(data: SegmentationData, eval_size: int, try_autocache: bool = True) -> tf.data.Dataset:
    """Unbatched (uint8 image, uint8 label) pairs, shorter side resized to `eval_size` (0: unchanged)."""
    def prepare(encoded_image, encoded_label):
        image, label = decode(encoded_image, encoded_label)
        return resize_shorter_side(image, label, eval_size) if eval_size > 0 else (image, label)

    return encoded_dataset(data, try_autocache).map(prepare, num_parallel_calls=AUTOTUNE)


def eval_dataset(data: SegmentationData, *, batch_size: int, eval_size: int) -> tf.data.Dataset:
    """Every example once, in file order, in padded batches (label padding 255 is ignored by the metrics)."""
    ds = _batch(eval_examples(data, eval_size), batch_size, fixed_size=False)
    options = tf.data.Options()
    options.deterministic = True
    return ds.with_options(options).prefetch(AUTOTUNE)
