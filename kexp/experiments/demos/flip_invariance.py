"""Question 002's flip, in training: 13. a Conv2D (cross-correlation) and a TrueConv2D (convolution)
started from flipped kernels and fed the same batches learn exactly flipped kernels, step by step.

This training is written out by hand (train_on_batch, both nets in lockstep) because the claim is
about every step, not only the end."""

from __future__ import annotations

import numpy as np

from kexp.digits import data
from kexp.filters import convolution
from kexp.experiments.demos.common import (DATA, SEED, DemoContext, import_keras, new_figure,
                                           seeded_sequential)

FLIP_FILTERS = 4
FLIP_STEPS = 40
FLIP_BATCH = 32
FLIP_LEARNING_RATE = 0.05
FLIP_TEST_IMAGES = 256
FLIP_POOL = 4  # max-pooling window between the conv layer and the classifier


def flip_training_pair(steps: int = FLIP_STEPS, batch_size: int = FLIP_BATCH,
                       filters: int = FLIP_FILTERS, seed: int = SEED,
                       learning_rate: float = FLIP_LEARNING_RATE) -> dict:
    """Train a Conv2D net and the same net with a true-convolution layer started from the
    flipped kernels, on the same batches; record losses and kernels after every step."""
    keras = import_keras()
    from kexp.network.layers import TrueConv2D

    dataset = data.load(DATA)
    images = data.to_model_inputs(dataset.x_train[:steps * batch_size])
    labels = dataset.y_train[:steps * batch_size]

    def build(conv_class):
        return seeded_sequential(seed, images.shape[1:], [
            conv_class(filters, 3, activation="relu", name="conv",
                       kernel_initializer=keras.initializers.GlorotUniform(seed)),
            keras.layers.MaxPooling2D(FLIP_POOL), keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="dense",
                               kernel_initializer=keras.initializers.GlorotUniform(seed + 1))],
            keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy")

    correlating, convolving = build(keras.layers.Conv2D), build(TrueConv2D)
    kernel = correlating.get_layer("conv").kernel.numpy()
    convolving.get_layer("conv").kernel.assign(convolution.flip_kernel(kernel))
    losses = np.zeros((steps, 2))
    kernel_gap = np.zeros(steps + 1)
    kernels = [np.zeros((steps + 1, *kernel.shape)) for _ in range(2)]

    def record(step):
        first = correlating.get_layer("conv").kernel.numpy()
        second = convolving.get_layer("conv").kernel.numpy()
        kernels[0][step], kernels[1][step] = first, second
        kernel_gap[step] = np.abs(first - convolution.flip_kernel(second)).max()

    record(0)
    for step in range(steps):
        x = images[step * batch_size:(step + 1) * batch_size]
        y = labels[step * batch_size:(step + 1) * batch_size]
        losses[step] = [float(correlating.train_on_batch(x, y)),
                        float(convolving.train_on_batch(x, y))]
        record(step + 1)
    test = data.to_model_inputs(dataset.x_test[:FLIP_TEST_IMAGES])
    outputs_gap = float(np.abs(correlating.predict(test, verbose=0)
                               - convolving.predict(test, verbose=0)).max())
    return {"losses": losses, "kernel_gap": kernel_gap, "kernels": kernels,
            "max_loss_gap": float(np.abs(losses[:, 0] - losses[:, 1]).max()),
            "max_kernel_gap": float(kernel_gap.max()), "max_output_gap": outputs_gap,
            "kernel_movement": float(np.abs(kernels[0][-1] - kernels[0][0]).max())}


def demo_flip_invariance(ctx: DemoContext) -> dict:
    """13. The flip does not matter for learning: a true-convolution layer learns the flipped
    kernels along the same trajectory."""
    from kexp.views import plots

    result = flip_training_pair()
    figure = new_figure(15, 4)
    axes = figure.subplots(1, 3, width_ratios=[1.2, 1.2, 1])
    steps = np.arange(1, len(result["losses"]) + 1)
    axes[0].plot(steps, result["losses"][:, 0], color="tab:blue", lw=3, alpha=0.5,
                 label="Conv2D (cross-correlation)")
    axes[0].plot(steps, result["losses"][:, 1], "k--", lw=1, label="TrueConv2D (flips kernel)")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("batch loss")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"loss: max difference {result['max_loss_gap']:.1e}", fontsize=10)
    movement = np.abs(result["kernels"][0] - result["kernels"][0][0]).max(axis=(1, 2, 3, 4))
    axes[1].plot(np.arange(len(movement)), movement, color="tab:purple",
                 label="how far the Conv2D kernel moved (max |K_t - K_0|)")
    exact = "exactly 0 at every step, drawn at 1e-12" if result["max_kernel_gap"] == 0 else (
        "+1e-12 for the log scale")
    axes[1].plot(np.arange(len(movement)), result["kernel_gap"] + 1e-12, color="tab:red",
                 label=f"max |K_conv2d - flip(K_true)| ({exact})")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("training step")
    axes[1].legend(fontsize=8)
    axes[1].set_title(f"kernels: max gap {result['max_kernel_gap']:.1e}", fontsize=10)
    final = [plots.filter_tiles(result["kernels"][0][-1]),
             plots.filter_tiles(result["kernels"][1][-1])]
    both = np.concatenate([final[0], final[1]])
    plots.draw_tiles(axes[2], both, plots.symmetric_limit(both),
                     "final kernels: top Conv2D,\nbottom TrueConv2D (= top rotated 180 deg)",
                     cols=len(final[0]))
    figure.suptitle(f"13. Same data, same seed, {len(steps)} SGD steps: the true convolution "
                    "learns exactly the flipped kernels", fontsize=11)
    ctx.save(figure, "13_flip_invariance")
    summary = {key: result[key] for key in ("max_loss_gap", "max_kernel_gap", "max_output_gap",
                                            "kernel_movement")}
    summary["summary"] = (f"over {len(steps)} steps: max loss difference "
                          f"{result['max_loss_gap']:.1e}, max |K_conv2d - flip(K_true)| "
                          f"{result['max_kernel_gap']:.1e} while the kernels moved by up to "
                          f"{result['kernel_movement']:.3f}; max output difference "
                          f"{result['max_output_gap']:.1e}")
    return summary
