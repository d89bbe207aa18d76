"""The Conv2D layers of a Keras model at any depth, by layer path, and their kernels and biases
as numpy arrays: how kexp finds the filters in its own models and in anybody's (a callback
recording them, the views replaying them, the forces splitting their gradients)."""

from __future__ import annotations

import keras
import numpy as np


def conv_layers(model: keras.Model) -> dict[str, keras.layers.Conv2D]:
    """Every Conv2D layer of `model` at any depth, in order, by layer path: its name for a layer
    of `model` itself ("conv1"), and the names of the layers holding it, joined by "/", for one
    inside a nested block ("block/conv" for a Conv2D in a Sequential "block" used as a layer).

    The search goes down every layer that lists its layers in the public `.layers` attribute:
    a Sequential or functional sub-model, any keras.Model. (A custom layer that keeps a Conv2D in
    a plain attribute has no public list of its sublayers, so it is not searched.) A layer
    shared by two blocks is listed once, under its first path."""
    found: dict[str, keras.layers.Conv2D] = {}
    seen: set[int] = set()

    def visit(layers, prefix: str) -> None:
        for layer in layers:
            path = f"{prefix}{layer.name}"
            if isinstance(layer, keras.layers.Conv2D) and id(layer) not in seen:
                seen.add(id(layer))
                found[path] = layer
            elif isinstance(getattr(layer, "layers", None), (list, tuple)):
                visit(layer.layers, f"{path}/")

    visit(model.layers, "")
    return found


def conv_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Kernels of every Conv2D layer at any depth by layer path (see conv_layers), as float32
    numpy arrays."""
    return {path: np.asarray(keras.ops.convert_to_numpy(layer.kernel), dtype=np.float32)
            for path, layer in conv_layers(model).items()}


def conv_biases(model: keras.Model) -> dict[str, np.ndarray]:
    """Biases of every Conv2D layer that has one, by layer path, as float32 numpy arrays: with
    the kernels they are all a layer computes, so a feature map can be recomputed later."""
    return {path: np.asarray(keras.ops.convert_to_numpy(layer.bias), dtype=np.float32)
            for path, layer in conv_layers(model).items() if layer.use_bias}
