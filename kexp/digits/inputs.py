"""What `fit` reads: the digits a run uses, split into training, a validation slice and test
digits, and the training batches of every epoch, reshuffled and augmented from (seed, epoch,
batch) alone, so a resumed run reads exactly what the uninterrupted one would have."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from kexp.config import TrainConfig
from kexp.digits import augment, data


def epoch_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int,
                  first_epoch: int, epochs: int, augmentation: dict | None = None):
    """A tf.data pipeline over epochs first_epoch..epochs-1 whose order in epoch e is a
    permutation seeded by (seed, e): a new order every epoch (a seeded `fit(shuffle=True)`
    repeats one, tensorflow#35682) and the same orders again when a run is resumed.
    `augmentation` (kexp.digits.augment.random_affine's keyword arguments) transforms each batch
    from a seed folded from (seed, epoch, batch), so a resumed run replays the same augmented
    batches."""
    count = len(images)
    images_tensor = tf.constant(images)
    labels_tensor = tf.constant(labels)

    def one_epoch(epoch):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64),
                                                         seed=epoch_seed)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(lambda index, batch: (
            tf.random.experimental.stateless_fold_in(epoch_seed, index), batch))

    def gather(batch_seed, batch):
        batch_images = tf.gather(images_tensor, batch)
        if augmentation:
            batch_images = augment.random_affine(batch_images, batch_seed, **augmentation)
        return batch_images, tf.gather(labels_tensor, batch)

    return (tf.data.Dataset.range(first_epoch, epochs)
            .flat_map(one_epoch)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def augmentation_settings(config: TrainConfig) -> dict | None:
    """kexp.digits.augment.random_affine's settings for `config`, or None when augmentation is
    off."""
    if not config.augment:
        return None
    return {"rotation_degrees": config.rotation_degrees, "shift_fraction": config.shift_fraction,
            "zoom_fraction": config.zoom_fraction}


@dataclass
class PreparedData:
    """The digits a run uses: training, a validation slice of the training digits (seen by the
    progress bar and history.csv), and test digits evaluated once, after training."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def prepare_data(config: TrainConfig) -> tuple[PreparedData, dict]:
    """Load, trim and split the data as `config` says; returns it and what config.json records,
    including which training digits went to validation."""
    dataset = data.load(config.data)
    summary = dataset.summary()
    x_pool, y_pool = data.subsample(dataset.x_train, dataset.y_train, config.train_samples,
                                    config.seed)
    x_test, y_test = data.subsample(dataset.x_test, dataset.y_test, config.test_samples,
                                    config.seed)
    validation_count = round(config.validation_fraction * len(x_pool))
    train_index, validation_index = data.validation_split(y_pool, validation_count, config.seed)
    if len(train_index) == 0:
        raise data.DataError(f"Invalid value for `validation_fraction`: "
                             f"{config.validation_fraction}. It leaves no training digits of "
                             f"{len(x_pool)}; use a smaller fraction or more --train-samples.")
    prepared = PreparedData(x_pool[train_index], y_pool[train_index], x_pool[validation_index],
                            y_pool[validation_index], x_test, y_test)
    summary.update(
        used_train_samples=len(train_index), used_validation_samples=len(validation_index),
        used_test_samples=len(x_test),
        validation=("none" if not len(validation_index) else
                    f"{len(validation_index)} of the {len(x_pool)} training digits kept for "
                    "val_* metrics (stratified; indices into the training digits below)"),
        validation_indices=validation_index.tolist(),
        test="the source's test digits, evaluated once after training (never during it)")
    return prepared, summary


def steps_per_epoch(config: TrainConfig, prepared: PreparedData) -> int:
    """Batches in one epoch of `prepared`'s training digits."""
    return math.ceil(len(prepared.x_train) / config.batch_size)


@dataclass
class InputPipelines:
    """What `fit` reads: training batches over the planned epochs, the validation batches (None
    without validation) and the steps of one epoch."""

    train_batches: object
    validation_batches: object
    steps_per_epoch: int


def input_pipelines(config: TrainConfig, prepared: PreparedData,
                    first_epoch: int = 0) -> InputPipelines:
    """The tf.data pipelines of a run (also what `make bench` times a plain fit on)."""
    train_batches = epoch_batches(data.to_model_inputs(prepared.x_train), prepared.y_train,
                                  config.batch_size, config.seed, first_epoch, config.epochs,
                                  augmentation_settings(config))
    validation_batches = None
    if len(prepared.x_validation):
        validation_batches = tf.data.Dataset.from_tensor_slices(
            (data.to_model_inputs(prepared.x_validation), prepared.y_validation)
        ).batch(config.batch_size).cache()
    return InputPipelines(train_batches, validation_batches, steps_per_epoch(config, prepared))
