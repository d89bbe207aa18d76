"""Random rotation, shift and zoom of training batches, drawn statelessly from (seed, epoch, batch).

Keras' RandomRotation/RandomTranslation/RandomZoom layers draw from a stateful generator, so a
resumed run would see other augmentations than the uninterrupted one. Here each batch's
transforms depend only on its seed pair, so `--resume` replays the same batches bit for bit. The
three are composed into ONE affine map per image and applied with the op those Keras layers use
(ImageProjectiveTransformV3, bilinear, constant zero fill): one resampling instead of three.
"""

from __future__ import annotations

import math

import tensorflow as tf


def random_affine(images: tf.Tensor, seed_pair: tf.Tensor, rotation_degrees: float,
                  shift_fraction: float, zoom_fraction: float) -> tf.Tensor:
    """Rotate by U(-r, r) degrees, scale by U(1-z, 1+z) and shift by U(-s, s) of the image
    size, about the image centre; `images` is (batch, height, width, channels) float32."""
    count = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    draws = tf.random.stateless_uniform((count, 4), seed=seed_pair, minval=-1.0, maxval=1.0)
    angle = draws[:, 0] * (rotation_degrees * math.pi / 180.0)
    scale = 1.0 + draws[:, 1] * zoom_fraction  # input pixels per output pixel
    shift_x = draws[:, 2] * (shift_fraction * width)
    shift_y = draws[:, 3] * (shift_fraction * height)
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    # Output pixel (x, y) samples the input at  centre + scale * R(angle) (p - centre) + shift.
    a0, a1 = scale * tf.cos(angle), -scale * tf.sin(angle)
    b0, b1 = scale * tf.sin(angle), scale * tf.cos(angle)
    a2 = centre_x - a0 * centre_x - a1 * centre_y + shift_x
    b2 = centre_y - b0 * centre_x - b1 * centre_y + shift_y
    zeros = tf.zeros_like(a0)
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.constant([height, width]),
        fill_value=tf.constant(0.0), interpolation="BILINEAR", fill_mode="CONSTANT")
