"""Question 000's smoothing claim: 14. a CNN can learn Gaussian smoothing. One linear Conv2D filter
trained to map MNIST digits to their blurred versions ends up as the Gaussian itself."""

from __future__ import annotations

import math

import numpy as np

from kexp.digits import data
from kexp.filters import convolution
from kexp.experiments.demos.common import (DATA, SEED, DemoContext, draw_matrix,
                                           fit_watching_kernel, import_keras, new_figure,
                                           seeded_sequential)

BLUR_SIZE = 5
BLUR_SIGMA = 1.0
BLUR_IMAGES = 1000
BLUR_EPOCHS = 10
BLUR_LEARNING_RATE = 0.5  # SGD with momentum: Adam at 0.01 needs ~6x the steps on this
BLUR_MOMENTUM = 0.9       # ill-conditioned problem (digit pixels are strongly correlated)
BLUR_BATCH = 32


def learn_gaussian_blur(count: int = BLUR_IMAGES, epochs: int = BLUR_EPOCHS,
                        size: int = BLUR_SIZE, sigma: float = BLUR_SIGMA, seed: int = SEED,
                        learning_rate: float = BLUR_LEARNING_RATE) -> dict:
    """Train one linear Conv2D(1 filter, size x size, no bias) to map MNIST digits to their
    Gaussian-blurred versions (made with the numpy reference); compare the kernel to the truth."""
    keras = import_keras()
    truth = convolution.gaussian_kernel(size, sigma)
    images = data.to_model_inputs(data.load(DATA).x_train[:count])
    targets = convolution.correlate2d_valid_batch(images[..., 0], truth)[..., None]
    layer = keras.layers.Conv2D(1, size, use_bias=False, name="blur",
                                kernel_initializer=keras.initializers.GlorotUniform(seed))
    model = seeded_sequential(seed, images.shape[1:], [layer],
                              keras.optimizers.SGD(learning_rate, momentum=BLUR_MOMENTUM), "mse")
    initial, learned, history = fit_watching_kernel(
        model, "blur", images, targets.astype(np.float32), epochs, BLUR_BATCH)
    initial, learned = initial[:, :, 0, 0], learned[:, :, 0, 0]
    error = learned - truth
    return {"truth": truth, "initial": initial, "learned": learned,
            "max_abs_error": float(np.abs(error).max()),
            "relative_error": float(np.linalg.norm(error) / np.linalg.norm(truth)),
            "initial_relative_error": float(np.linalg.norm(initial - truth)
                                            / np.linalg.norm(truth)),
            "final_loss": float(history["loss"][-1]),
            "example": (images[0, :, :, 0], targets[0, :, :, 0],
                        np.asarray(model(images[:1]))[0, :, :, 0])}


def demo_gaussian_blur(ctx: DemoContext) -> dict:
    """14. A CNN can learn Gaussian smoothing: the learned kernel is the Gaussian."""
    from kexp.views import plots

    result = learn_gaussian_blur()
    figure = new_figure(15, 3.4)
    axes = figure.subplots(1, 6)
    limit = plots.symmetric_limit(result["truth"], result["learned"])
    draw_matrix(axes[0], result["initial"], plots.symmetric_limit(result["initial"]),
                "random start (own scale)")
    draw_matrix(axes[1], result["truth"], limit, f"true Gaussian {BLUR_SIZE}x{BLUR_SIZE}, "
                f"sigma {BLUR_SIGMA:g}")
    draw_matrix(axes[2], result["learned"], limit, "learned kernel")
    error = result["learned"] - result["truth"]
    exponent = -math.floor(math.log10(max(result["max_abs_error"], 1e-30)))
    scaled = error * 10.0**exponent
    draw_matrix(axes[3], scaled, plots.symmetric_limit(scaled),
                f"error x 1e{exponent} (own scale)\nmax |error| {result['max_abs_error']:.1e}")
    digit, target, output = result["example"]
    axes[4].imshow(digit, cmap="gray_r")
    axes[4].set_title("a training digit", fontsize=9)
    axes[5].imshow(np.hstack([target, output]), cmap="gray_r")
    axes[5].set_title("blurred: target | model", fontsize=9)
    for ax in axes[4:]:
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"14. Conv2D(1 filter, {BLUR_SIZE}x{BLUR_SIZE}, linear) trained on "
                    f"{BLUR_IMAGES} digits -> their Gaussian blur, {BLUR_EPOCHS} epochs: "
                    f"relative error {result['relative_error']:.1e}", fontsize=11)
    ctx.save(figure, "14_gaussian_blur")
    summary = {key: result[key] for key in ("max_abs_error", "relative_error",
                                            "initial_relative_error", "final_loss")}
    summary.update(truth=result["truth"].tolist(), learned=result["learned"].tolist())
    summary["summary"] = (f"learned 5x5 kernel vs true Gaussian: max |error| "
                          f"{result['max_abs_error']:.1e}, relative L2 error "
                          f"{result['relative_error']:.1e} (random start: "
                          f"{result['initial_relative_error']:.0%})")
    return summary
