"""A Conv2D that computes a true convolution, to test question 002's claim that the flip does not
matter for learning: the only difference from Keras' Conv2D is that the kernel is rotated by 180
degrees before it slides, so its kernel is Conv2D's kernel flipped.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kexp")
class TrueConv2D(keras.layers.Conv2D):
    """Conv2D computing sum_{l,m} K(l, m) A(i - l, j - m) (the textbook convolution) instead of
    Keras' cross-correlation sum_{l,m} K(l, m) A(i + l, j + m)."""

    def convolution_op(self, inputs, kernel):
        return super().convolution_op(inputs, ops.flip(kernel, axis=(0, 1)))
