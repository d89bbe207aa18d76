"""Model builders. The conv layers are named conv1, conv2 so their kernels are found by name.

Every model starts with the layer the questions ask about: `Conv2D(32, (3, 3))` on a
28x28x1 MNIST image, whose kernel (3, 3, 1, 32) holds the 32 filters. Initial weights depend only
on `seed`, not on what else the process has built, because every initializer gets its own seed.
"""

from __future__ import annotations

import keras
from keras import layers

from kexp import config as config_module
from kexp.network import initializers, keras_initializers

INPUT_SHAPE = (*config_module.IMAGE_SHAPE, 1)  # one channel
MODEL_NAMES = config_module.MODEL_NAMES
DEFAULT_CONV2_FILTERS = config_module.DEFAULT_CONV2_FILTERS


class _Seeds:
    """Hands out distinct seeds derived from one, in a fixed order (None stays None)."""

    def __init__(self, seed: int | None):
        self.seed, self.count = seed, 0

    def next(self) -> int | None:
        if self.seed is None:
            return None
        self.count += 1
        return self.seed * 1000 + self.count


def _conv(name, filters, init, seeds, trainable):
    return layers.Conv2D(filters, config_module.KERNEL_SIZE, activation="relu", name=name,
                         kernel_initializer=keras_initializers.build_keras_initializer(
                             init, seeds.next()),
                         bias_initializer="zeros", trainable=trainable)


def _dense(name, units, activation, seeds):
    return layers.Dense(units, activation=activation, name=name,
                        kernel_initializer=keras.initializers.GlorotUniform(seeds.next()))


def build_model(name: str = config_module.DEFAULTS.model,
                init: str | initializers.InitializerSpec = config_module.DEFAULTS.init,
                init_conv2: str | initializers.InitializerSpec | None = None,
                conv2_filters: int | None = None,
                freeze: tuple[str, ...] | list[str] = (),
                learning_rate: float = config_module.DEFAULTS.learning_rate,
                seed: int | None = None,
                compile: bool = True) -> keras.Model:
    """Build (and by default compile) a named architecture, ready for plain `model.fit`.

    mnist_cnn: conv32-conv32-maxpool-dropout-dense128-dropout-dense10 (the classic Keras MNIST
    example the question quotes); convnet: conv32-maxpool-conv64-maxpool-dropout-dense10
    (keras-io's mnist_convnet); convnet_dense: convnet with mnist_cnn's dense128 head
    (conv32-maxpool-conv64-maxpool-dropout-dense128-dropout-dense10), the default: the most
    accurate of the three on 4,000 digits in the same time (see the README).

    `init` and `init_conv2` are specs such as "he_normal" or "random_normal:stddev=0.5", or specs
    parsed before (kexp.network.initializers.parse_spec, TrainConfig.init_specs), which are not
    parsed again.
    """
    if name not in MODEL_NAMES:
        raise config_module.ConfigError(f"Invalid value for `model`: {name!r}. "
                                        f"Expected one of: {', '.join(MODEL_NAMES)}.")
    unknown = [layer for layer in freeze if layer not in config_module.FREEZABLE_LAYERS]
    if unknown:
        raise config_module.ConfigError(f"Invalid value for `freeze`: {','.join(freeze)!r}. "
                                        "Expected layer names from: "
                                        f"{', '.join(config_module.FREEZABLE_LAYERS)}.")
    init_spec = initializers.parse_spec(init)
    init2_spec = initializers.parse_spec(init_conv2) if init_conv2 else init_spec
    conv2_filters = conv2_filters or DEFAULT_CONV2_FILTERS[name]
    seeds = _Seeds(seed)
    conv1 = _conv("conv1", config_module.CONV1_FILTERS, init_spec, seeds, "conv1" not in freeze)
    conv2 = _conv("conv2", conv2_filters, init2_spec, seeds, "conv2" not in freeze)
    front = {"conv1": conv1, "conv2": conv2,
             "pool1": layers.MaxPooling2D(config_module.POOL_SIZE, name="pool1")}
    stack = [front[stage] for stage in config_module.CONV_STAGES[name]]
    if name == "mnist_cnn":
        stack += [layers.MaxPooling2D(config_module.POOL_SIZE, name="pool"),
                  layers.Dropout(0.25, seed=seeds.next(), name="dropout1"),
                  layers.Flatten(name="flatten"), _dense("dense1", 128, "relu", seeds),
                  layers.Dropout(0.5, seed=seeds.next(), name="dropout2")]
    else:
        stack += [layers.MaxPooling2D(config_module.POOL_SIZE, name="pool2"),
                  layers.Flatten(name="flatten"),
                  layers.Dropout(0.5, seed=seeds.next(), name="dropout")]
        if name == "convnet_dense":
            stack += [_dense("dense1", 128, "relu", seeds),
                      layers.Dropout(0.3, seed=seeds.next(), name="dropout2")]
    stack.append(_dense("predictions", config_module.NUM_CLASSES, "softmax", seeds))
    model = keras.Sequential([keras.Input(INPUT_SHAPE, name="image"), *stack], name=name)
    if compile:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model

