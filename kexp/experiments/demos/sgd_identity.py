"""Question 000 itself: 16. is the kernel a patch chosen from the image, or random numbers
that backpropagation changes? With plain SGD it is both and neither: the trained filter is its
random start plus a weighted sum of image patches, and this demo rebuilds that sum exactly.

For conv1 on the image, dL/dW[f] = sum over digits and positions of the 3x3 patch there times
dL/dz[f] at that position (z: conv1's output before its ReLU). Plain SGD (no momentum, constant
rate) moves W by -lr times that every step, so after training
    W_final[f] - W_initial[f] = -lr * sum over patches of weight[patch, f] * patch,
where a patch is (digit, y, x) and its weight is the sum of dL/dz[f] there over the steps that saw
it. The demo trains a small model in float64 while recording those weights, rebuilds every
filter's change from the patches and weights alone, and compares it with the real change.
"""

from __future__ import annotations

import math

import numpy as np

from kexp.digits import data
from kexp.experiments.demos.common import DATA, SEED, DemoContext, import_keras, new_figure

IDENTITY_DIGITS = 2000  # the first of the 4,000 bundled training digits
IDENTITY_EPOCHS = 2  # every patch is seen twice: its weight adds up over both steps
IDENTITY_BATCH = 32
IDENTITY_LEARNING_RATE = 0.05  # plain SGD: no momentum, constant
CONV1_FILTERS, KERNEL = 32, 3
TOP_PATCHES = 100  # the patches whose share of the change is reported
SHOWN_FILTERS = 4  # filters drawn: those that moved most
SHOWN_PATCHES = 9  # patches drawn per sign


def identity_training(digits: int = IDENTITY_DIGITS, epochs: int = IDENTITY_EPOCHS,
                      batch_size: int = IDENTITY_BATCH,
                      learning_rate: float = IDENTITY_LEARNING_RATE, seed: int = SEED) -> dict:
    """Train conv1 (32 3x3 filters) -> ReLU -> 2x2 max-pool -> dense 10 in float64 with plain SGD,
    accumulating each patch's total weight (the sum of dL/dz over the steps that saw it) in
    float64. Returns the images, labels, conv1's kernel before and after, and the weights
    (digits, 26, 26, filters)."""
    keras = import_keras()
    import tensorflow as tf

    dataset = data.load(DATA)
    images = dataset.x_train[:digits].astype(np.float64) / 255.0
    labels = dataset.y_train[:digits]
    keras.utils.set_random_seed(seed)
    conv1 = keras.layers.Conv2D(CONV1_FILTERS, KERNEL, name="conv1", dtype="float64",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))
    head = keras.Sequential([keras.layers.ReLU(dtype="float64"),
                             keras.layers.MaxPooling2D(2, dtype="float64"),
                             keras.layers.Flatten(dtype="float64"),
                             keras.layers.Dense(10, dtype="float64", kernel_initializer=keras
                                                .initializers.GlorotUniform(seed + 1))])
    side = images.shape[1] - KERNEL + 1
    head.build((None, side, side, CONV1_FILTERS))
    conv1.build((None, *images.shape[1:], 1))
    variables = conv1.trainable_variables + head.trainable_variables
    initial = conv1.kernel.numpy().copy()

    @tf.function
    def step(batch_images, batch_labels):
        with tf.GradientTape() as tape:
            before_relu = conv1(batch_images)
            tape.watch(before_relu)
            logits = head(before_relu)
            loss = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(
                batch_labels, logits, from_logits=True))
        output_gradient, *gradients = tape.gradient(loss, [before_relu, *variables])
        for variable, gradient in zip(variables, gradients):
            variable.assign_sub(learning_rate * gradient)
        return output_gradient

    weights = np.zeros((digits, side, side, CONV1_FILTERS))
    steps = 0
    for epoch in range(epochs):
        order = np.random.default_rng([seed, epoch]).permutation(digits)
        for start in range(0, digits, batch_size):
            chosen = order[start:start + batch_size]
            weights[chosen] += step(tf.constant(images[chosen, ..., None]),
                                    tf.constant(labels[chosen])).numpy()
            steps += 1
    return {"images": images, "labels": labels, "initial": initial[:, :, 0],
            "final": conv1.kernel.numpy()[:, :, 0], "weights": weights, "steps": steps,
            "learning_rate": learning_rate}


def patches_at(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Pixel (dy, dx) of every 3x3 patch: (digits, 26, 26)."""
    side = images.shape[1] - KERNEL + 1
    return images[:, dy:dy + side, dx:dx + side]


def rebuilt_change(images: np.ndarray, weights: np.ndarray, learning_rate: float) -> np.ndarray:
    """-lr * sum over patches of weight * patch: (3, 3, filters), from patches and weights
    alone."""
    flat_weights = weights.reshape(-1, weights.shape[-1])
    change = np.empty((KERNEL, KERNEL, weights.shape[-1]))
    for dy in range(KERNEL):
        for dx in range(KERNEL):
            change[dy, dx] = -learning_rate * (patches_at(images, dy, dx).reshape(-1)
                                               @ flat_weights)
    return change


def patch_matrix(images: np.ndarray) -> np.ndarray:
    """Every 3x3 patch as a row of 9 pixels: (digits * 26 * 26, 9), in (digit, y, x) order."""
    return np.stack([patches_at(images, dy, dx).reshape(-1) for dy in range(KERNEL)
                     for dx in range(KERNEL)], axis=1)


def patch(images: np.ndarray, flat_index: int) -> tuple[np.ndarray, int]:
    """The 3x3 patch at a flat (digit, y, x) index, and its digit's index."""
    side = images.shape[1] - KERNEL + 1
    digit, y, x = np.unravel_index(flat_index, (len(images), side, side))
    return images[digit, y:y + KERNEL, x:x + KERNEL], int(digit)


def patch_shares(patches: np.ndarray, weights: np.ndarray, learning_rate: float,
                 change: np.ndarray) -> np.ndarray:
    """Each patch's share of one filter's change: its contribution (-lr * weight * patch)
    projected on the change, over the change's squared norm. weights (patches,), change (3, 3);
    the shares add up to 1 exactly when the identity holds."""
    flat_change = change.reshape(-1)
    return -learning_rate * weights * (patches @ flat_change) / (flat_change @ flat_change)


def identity_numbers(trained: dict) -> dict:
    """What docs/claims.md quotes: the rebuild's relative error, how many patches add up to each
    filter's change, what share the 100 that pushed it furthest along its change explain, and
    how far all that pushed along went before the others cancelled it."""
    images, weights = trained["images"], trained["weights"]
    change = trained["final"] - trained["initial"]
    rebuilt = rebuilt_change(images, weights, trained["learning_rate"])
    patches = patch_matrix(images)
    flat_weights = weights.reshape(-1, weights.shape[-1])
    top, along = np.empty(CONV1_FILTERS), np.empty(CONV1_FILTERS)
    for f in range(CONV1_FILTERS):
        shares = patch_shares(patches, flat_weights[:, f], trained["learning_rate"],
                              change[..., f])
        top[f] = -np.partition(-shares, TOP_PATCHES)[:TOP_PATCHES].sum()
        along[f] = shares[shares > 0].sum()
    contributing = ((flat_weights != 0) & patches.any(axis=1)[:, None]).sum(axis=0)
    return {"relative_error": float(np.linalg.norm(rebuilt - change) / np.linalg.norm(change)),
            "max_filter_relative_error": float(np.max(
                np.linalg.norm((rebuilt - change).reshape(-1, change.shape[-1]), axis=0)
                / np.linalg.norm(change.reshape(-1, change.shape[-1]), axis=0))),
            "steps": trained["steps"], "patches": len(patches),
            "contributing_median": int(np.median(contributing)),
            "top_share_median": float(np.median(top)), "top_share_max": float(top.max()),
            "along_median": float(np.median(along)), "top_shares": top,
            "change": change, "rebuilt": rebuilt}


def identity_sentence(numbers: dict) -> str:
    """docs/claims.md's sentence with the demo's numbers (tests/test_sgd_identity.py checks
    that the page quotes it)."""
    return (f"after {numbers['steps']} SGD steps, the change of all 32 filters rebuilt from "
            f"patches and weights alone matches the real change to a relative error below "
            f"{10.0 ** math.ceil(math.log10(numbers['relative_error'])):.0e} (float64). Each "
            f"filter's change adds up a median of "
            f"{numbers['contributing_median']:,} non-blank patches (of "
            f"{numbers['patches']:,}). The {TOP_PATCHES} patches that pushed a filter furthest "
            f"along its change explain a median {numbers['top_share_median']:.0%} of it (at "
            f"most {numbers['top_share_max']:.0%}); all the patches that pushed along it add "
            f"up to {numbers['along_median']:.1f} times the change, and the ones that pushed "
            f"against it cancel the rest")


def _patch_mosaic(images, labels, flat_indices) -> tuple[np.ndarray, list[int]]:
    found = [patch(images, index) for index in flat_indices]
    return np.stack([pixels for pixels, _ in found]), [int(labels[d]) for _, d in found]


def demo_sgd_identity(ctx: DemoContext) -> dict:
    """16. A filter's change is a weighted sum of image patches: with plain SGD, exactly (is
    the kernel a patch chosen from the image, or random numbers backpropagation changes?)."""
    from kexp.views import plots  # matplotlib: only when the demo runs, as every demo's drawing

    trained = identity_training()
    numbers = identity_numbers(trained)
    images, labels, weights = trained["images"], trained["labels"], trained["weights"]
    change = numbers["change"]
    moved = np.linalg.norm(change.reshape(-1, CONV1_FILTERS), axis=0) / np.linalg.norm(
        trained["initial"].reshape(-1, CONV1_FILTERS), axis=0)
    shown = np.argsort(-moved)[:SHOWN_FILTERS]
    flat = weights.reshape(-1, CONV1_FILTERS)
    kernels = np.stack([trained[when][..., f] for f in shown for when in ("initial", "final")])
    limit = plots.symmetric_limit(kernels)
    mosaics, captions = {}, {}
    for sign, name in ((1, "positive"), (-1, "negative")):
        tiles, digit_labels = [], []
        for f in shown:
            order = np.argpartition(-sign * flat[:, f], SHOWN_PATCHES)[:SHOWN_PATCHES]
            order = order[np.argsort(-sign * flat[order, f])]
            found, found_labels = _patch_mosaic(images, labels, order)
            tiles.append(found)
            digit_labels.append(found_labels)
        mosaics[name] = plots.tile(np.concatenate(tiles), SHOWN_FILTERS, SHOWN_PATCHES, pad=2)
        captions[name] = digit_labels
    figure = new_figure(15, 1.4 + 0.75 * SHOWN_FILTERS)
    kernel_mosaic = plots.tile(kernels, SHOWN_FILTERS, 2, pad=2)
    axes = figure.subplots(1, 3, width_ratios=[kernel_mosaic.shape[1],
                                               mosaics["positive"].shape[1],
                                               mosaics["negative"].shape[1]])
    image = plots.draw_mosaic(axes[0], kernel_mosaic, limit, "before | after")
    axes[0].set_yticks(2 + 5 * np.arange(SHOWN_FILTERS) + 1,
                       [f"filter {f + 1}\n{TOP_PATCHES} patches explain "
                        f"{numbers['top_shares'][f]:.0%}" for f in shown], fontsize=8)
    figure.colorbar(image, ax=axes[0], location="bottom", label="weight")
    titles = {"positive": "largest positive total weight: the filter moved away from these",
              "negative": "largest negative total weight: the filter moved toward these"}
    for ax, name in zip(axes[1:], ("positive", "negative")):
        plots.draw_mosaic(ax, mosaics[name], 1.0, titles[name], cmap="Greys", low=0.0,
                            separator="#c6dbef")
        for row, digit_labels in enumerate(captions[name]):
            for col, label in enumerate(digit_labels):
                ax.text(2 + 5 * col - 0.4, 2 + 5 * row - 0.6, str(label), color="tab:red",
                        fontsize=7, va="bottom", ha="left")
    figure.suptitle(f"16. Each filter's change is a weighted sum of 3x3 image patches "
                    f"(red: the patch's digit): rebuilt from patches alone with relative error "
                    f"{numbers['relative_error']:.0e} after {numbers['steps']} plain SGD steps",
                    fontsize=11)
    ctx.save(figure, "16_sgd_identity")
    result = {key: value for key, value in numbers.items()
              if key not in ("change", "rebuilt")}
    result["shown_filters"] = (shown + 1).tolist()
    result["summary"] = identity_sentence(numbers)
    return result
