"""tf.data pipelines for pre-training: a reproducible, resumable training stream and a centre-crop eval set.

Training stream (one pass per epoch, like a PyTorch DataLoader with shuffle=True, drop_last=True)::

    Dataset.range(initial_epoch, epochs).flat_map(one_epoch)

`one_epoch(epoch)` depends only on (seed, epoch) through stateless random ops, so a run resumed at epoch e sees
exactly the batches an uninterrupted run sees from epoch e on:
  1. sources are interleaved in a random order (a stateless shuffle of the source ids, so every example of every
     source appears once per epoch);
  2. the encoded examples are shuffled with a buffer of `shuffle_buffer` examples (a full uniform shuffle when the
     buffer holds the whole split; TFDS also stores examples in a hashed, class-mixed order);
  3. each image is decoded, converted to 3 channels, optionally resized (shorter side) and randomly cropped with
     a seed folded from (seed, epoch, position in the epoch);
  4. batches drop the remainder; an epoch is exactly `steps_per_epoch` batches.
An online source (`tfsynth.input.online`, e.g. `fractal_db_online/1k`) renders its work units in an order drawn
from (seed, epoch) before step 1, so it too depends on (seed, epoch) only.
The `Dataset.shuffle` op also mixes in TensorFlow's global seed; `keras.utils.set_random_seed(seed)` (done by the
training job) fixes it.
"""
from __future__ import annotations

import tensorflow as tf

from tfsynth.input import augment
from tfsynth.input.datasets import DataSpecError, Mixture

AUTOTUNE = tf.data.AUTOTUNE


def steps_per_epoch(num_examples: int, batch_size: int, what: str = "training data") -> int:
    """Number of full batches (drop_last=True); errors clearly when an epoch would have no step."""
    steps = num_examples // batch_size
    if steps == 0:
        raise DataSpecError(f"{what} has {num_examples} examples, fewer than one batch of {batch_size}: an epoch would "
                         "have 0 steps. Lower --batch_size or use more data.")
    return steps


def check_crop_size(mixture: Mixture, crop_size: int, resize: int = 0) -> None:
    """DataSpecError (one line naming --crop_size) when crops of `crop_size` cannot fit the images: larger than the
    `resize`d shorter side, or (no resize) than the fixed height/width that a source's 'image' feature declares."""
    if resize > 0:
        if crop_size > resize:
            raise DataSpecError(f"--crop_size {crop_size} is larger than the images after --resize {resize}; "
                                f"the crop must be at most {resize}")
        return
    for s in mixture.sources:
        height, width = s.builder.info.features["image"].shape[:2]
        smallest = min(d for d in (height, width) if d) if (height or width) else None
        if smallest is not None and crop_size > smallest:
            raise DataSpecError(f"--crop_size {crop_size} is larger than the {height}x{width} images of "
                                f"{s.source.name}/{s.source.config}; the crop must be at most {smallest}")


def _epoch_keys(seed: int, epoch: tf.Tensor):
    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(epoch, tf.int64)])
    fold = tf.random.experimental.stateless_fold_in
    return fold(key, 0), fold(key, 1), fold(key, 2)


def _choice_dataset(counts: list[int], key: tf.Tensor) -> tf.data.Dataset:
    ids = tf.concat([tf.fill([n], tf.constant(i, tf.int64)) for i, n in enumerate(counts)], axis=0)
    return tf.data.Dataset.from_tensor_slices(tf.random.experimental.stateless_shuffle(ids, seed=key))


def train_dataset(mixture: Mixture, *, batch_size: int, crop_size: int, seed: int, epochs: int,
                  initial_epoch: int = 0, shuffle_buffer: int = 10_000,
                  resize: int = 0) -> tuple[tf.data.Dataset, int]:
    """Returns (dataset of (uint8 images [B, crop, crop, 3], int64 labels [B]) for epochs [initial_epoch, epochs),
    steps_per_epoch). `resize` > 0 first resizes each image's shorter side to it (torchvision `Resize`)."""
    steps = steps_per_epoch(mixture.num_examples, batch_size, f"--data {mixture.spec} split {mixture.split}")
    check_crop_size(mixture, crop_size, resize)
    stored = mixture.encoded_datasets()
    online = mixture.epoch_dataset_fns(seed)  # online sources render their units in an order from (seed, epoch)
    counts = [s.num_examples for s in mixture.sources]
    buffer = max(1, min(shuffle_buffer, mixture.num_examples))

    def one_epoch(epoch):
        shuffle_key, mix_key, crop_key = _epoch_keys(seed, epoch)
        sources = [ds if fn is None else fn(epoch) for ds, fn in zip(stored, online)]
        if len(sources) == 1:
            ds = sources[0]
        else:
            ds = tf.data.Dataset.choose_from_datasets(sources, _choice_dataset(counts, mix_key),
                                                      stop_on_empty_dataset=False)
        shuffle_seed = tf.random.stateless_uniform([], shuffle_key, minval=0, maxval=2**31 - 1, dtype=tf.int64)
        ds = augment.seeded_shuffle(ds, buffer, shuffle_seed)

        def decode_and_crop(index, example):
            encoded, label = example
            image = augment.decode_rgb(encoded)
            if resize:
                image = augment.resize_shorter(image, resize)
            image = augment.random_crop(image, crop_size, tf.random.experimental.stateless_fold_in(crop_key, index))
            return image, label

        ds = ds.enumerate().map(decode_and_crop, num_parallel_calls=AUTOTUNE)
        return ds.batch(batch_size, drop_remainder=True).take(steps)

    ds = tf.data.Dataset.range(initial_epoch, epochs).flat_map(one_epoch)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(AUTOTUNE), steps


def eval_dataset(mixture: Mixture, *, batch_size: int, crop_size: int, resize: int = 0) -> tf.data.Dataset:
    """Every example of the split once, in file order, centre-cropped (after `resize` as in `train_dataset`);
    the last batch may be smaller."""
    sources = mixture.encoded_datasets()
    ds = sources[0]
    for other in sources[1:]:
        ds = ds.concatenate(other)
    def decode_and_crop(encoded, label):
        image = augment.decode_rgb(encoded)
        if resize:
            image = augment.resize_shorter(image, resize)
        return augment.center_crop(image, crop_size), label

    ds = ds.map(decode_and_crop, num_parallel_calls=AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.batch(batch_size).with_options(options).prefetch(AUTOTUNE)
