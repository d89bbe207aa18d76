"""Questions 001/002 on what a convolution layer computes: 9. a 5x5 image and 32 3x3 kernels with
'valid' padding give 32 maps of 3x3; 11. the 1-D worked example c = a * b; 12. Keras' Conv2D is
cross-correlation, i.e. convolution with the kernel flipped."""

from __future__ import annotations

import numpy as np

from kexp.digits import data
from kexp.filters import convolution
from kexp.experiments.demos.common import (DATA, SEED, DemoContext, draw_matrix, import_keras,
                                           new_figure)
from kexp.experiments.demos.initialization import draw_conv1_kernels


def keras_conv2d(images: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None,
                 layer_class=None) -> np.ndarray:
    """The output of a Keras Conv2D (or `layer_class`) with the given kernel, 'valid' padding."""
    keras = import_keras()
    layer_class = layer_class or keras.layers.Conv2D
    layer = layer_class(kernel.shape[-1], kernel.shape[:2], use_bias=bias is not None)
    layer.build(images.shape)
    layer.set_weights([kernel] if bias is None else [kernel, bias])
    return np.asarray(layer(images.astype(np.float32)))


def demo_conv_shapes(ctx: DemoContext) -> dict:
    """9. A 5x5 image and 32 3x3 kernels with 'valid' padding give 32 maps of 3x3; Keras computes
    cross-correlation, the question's formula is a true convolution."""
    from kexp.views import plots

    digit = data.load(DATA).x_train[0].astype(np.float64) / 255.0
    image = digit[10:15, 10:15]
    kernel = draw_conv1_kernels("glorot_uniform", 1)[0]
    keras_out = keras_conv2d(image[None, :, :, None], kernel)
    correlation = convolution.conv2d_layer_reference(image[None, :, :, None], kernel)
    formula = convolution.convolve2d_layer_reference(image[None, :, :, None], kernel)[0]
    formula_flipped = convolution.convolve2d_layer_reference(
        image[None, :, :, None], convolution.flip_kernel(kernel))[0]
    result = {"image_shape": list(image.shape), "kernel_shape": list(kernel.shape),
              "output_shape": list(keras_out.shape),
              "max_diff_correlation": float(np.abs(keras_out[0] - correlation[0]).max()),
              "max_diff_question_formula": float(np.abs(keras_out[0] - formula).max()),
              "max_diff_question_formula_flipped":
                  float(np.abs(keras_out[0] - formula_flipped).max())}
    figure = new_figure(15, 3.4)
    axes = figure.subplots(1, 6)
    draw_matrix(axes[0], image, 1.0, "A: 5x5 crop of a digit")
    draw_matrix(axes[1], kernel[:, :, 0, 0], plots.symmetric_limit(kernel), "F_1 (of 32)")
    limit = plots.symmetric_limit(keras_out, formula)
    draw_matrix(axes[2], keras_out[0, :, :, 0], limit, "Keras Conv2D: B_1")
    draw_matrix(axes[3], correlation[0, :, :, 0], limit,
                f"numpy sum F(l,m)A(i+l,j+m)\nmax diff {result['max_diff_correlation']:.1e}")
    draw_matrix(axes[4], formula[:, :, 0], limit,
                f"question: sum F(l,m)A(i-l,j-m)\n"
                f"max diff {result['max_diff_question_formula']:.2f}")
    draw_matrix(axes[5], formula_flipped[:, :, 0], limit, f"question's formula, F flipped\n"
                f"max diff {result['max_diff_question_formula_flipped']:.1e}")
    figure.suptitle(f"9. A {image.shape} image and kernel {kernel.shape}, 'valid': Keras "
                    f"output {tuple(keras_out.shape)} = 32 maps of 3x3 (map 1 shown; "
                    "differences over all 32)", fontsize=11)
    ctx.save(figure, "09_conv_shapes")
    result["summary"] = (f"output {tuple(keras_out.shape)}; Keras vs numpy cross-correlation "
                         f"max diff {result['max_diff_correlation']:.1e}; vs the question's "
                         f"formula {result['max_diff_question_formula']:.3f} (a true convolution), "
                         f"{result['max_diff_question_formula_flipped']:.1e} once F is flipped")
    return result


def demo_worked_example(ctx: DemoContext) -> dict:
    """11. The 1-D worked example, c = a * b, and the flip-and-shift picture behind it."""
    a, b = convolution.QUESTION_EXAMPLE_A, convolution.QUESTION_EXAMPLE_B
    c = convolution.convolve_1d(a, b)
    figure = new_figure(15, 5)
    axes = figure.subplots(2, 4, sharey=True).ravel()
    for n, ax in enumerate(axes[:len(c)]):
        positions, (signal, kernel) = convolution.shifted_kernel_terms(a, b, n)
        ax.bar(positions - 0.15, signal, width=0.3, color="tab:blue", label="a[m]")
        ax.bar(positions + 0.15, kernel, width=0.3, color="tab:orange", label="b[n-m]")
        terms = " + ".join(f"{s:g}*{k:g}" for s, k in zip(signal, kernel) if s and k)
        ax.set_title(f"n={n}: c[{n}] = {terms} = {c[n]:g}", fontsize=8)
        ax.set_xticks(positions)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7)
    axes[6].stem(np.arange(len(c)), c)
    axes[6].set_title(f"c = [{', '.join(f'{v:g}' for v in c)}]", fontsize=9)
    axes[7].axis("off")
    axes[7].text(0, 0.5, "a = [1, 0.5, 1, 1]\nb = [1, 0.5, 0.25]\n\nb is flipped, then shifted"
                 "\nby n; c[n] sums the\nproducts where they overlap", fontsize=10)
    figure.suptitle("11. Question 002's worked example: c[n] = sum_m a[m] b[n-m]", fontsize=11)
    ctx.save(figure, "11_worked_example")
    expected = convolution.QUESTION_EXAMPLE_C.tolist()
    return {"c": c.tolist(), "question_c": expected,
            "matches_question": bool(np.allclose(c, expected)),
            "summary": f"c = {c.tolist()}, the question's {expected}"}


def cross_correlation_check(seed: int = SEED) -> dict:
    """Keras Conv2D against the hand-written references on random multi-channel data."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(2, 7, 6, 3))
    kernel = rng.normal(size=(3, 3, 3, 4))
    bias = rng.normal(size=4)
    keras_out = keras_conv2d(images, kernel, bias)
    correlation = convolution.conv2d_layer_reference(images, kernel, bias)
    true_convolution = convolution.convolve2d_layer_reference(images, kernel, bias)
    flipped_convolution = convolution.convolve2d_layer_reference(
        images, convolution.flip_kernel(kernel), bias)
    return {"output_shape": list(keras_out.shape),
            "vs_cross_correlation": float(np.abs(keras_out - correlation).max()),
            "vs_convolution_flipped_kernel": float(np.abs(keras_out - flipped_convolution).max()),
            "vs_convolution_same_kernel": float(np.abs(keras_out - true_convolution).max()),
            "maps": (keras_out[0, :, :, 0], correlation[0, :, :, 0], true_convolution[0, :, :, 0])}


def demo_cross_correlation(ctx: DemoContext) -> dict:
    """12. Keras' Conv2D is cross-correlation = convolution with the kernel flipped."""
    from kexp.views import plots

    result = cross_correlation_check()
    maps = result.pop("maps")
    figure = new_figure(13, 3.6)
    axes = figure.subplots(1, 4, width_ratios=[1, 1, 1, 1.4])
    limit = plots.symmetric_limit(*maps)
    for ax, matrix, title in zip(axes, maps, ("Keras Conv2D", "cross-correlation (numpy)",
                                               "true convolution, same kernel")):
        draw_matrix(ax, matrix, limit, title, annotate=False)
    names = ["cross-correlation", "convolution,\nkernel flipped", "convolution,\nsame kernel"]
    values = [result["vs_cross_correlation"], result["vs_convolution_flipped_kernel"],
              result["vs_convolution_same_kernel"]]
    axes[3].bar(names, [max(v, 1e-16) for v in values],
                color=["tab:green", "tab:green", "tab:red"])
    axes[3].set_yscale("log")
    axes[3].set_ylabel("max |Keras - reference|")
    axes[3].tick_params(labelsize=8)
    for position, value in enumerate(values):
        axes[3].text(position, max(value, 1e-16), f"{value:.1e}", ha="center", va="bottom",
                     fontsize=8)
    figure.suptitle(f"12. Random images (2, 7, 6, 3), kernel (3, 3, 3, 4): Keras equals "
                    "cross-correlation and flipped-kernel convolution (map 1 of 4 shown)",
                    fontsize=11)
    ctx.save(figure, "12_cross_correlation")
    result["summary"] = (f"max |Keras - cross-correlation| = {values[0]:.1e}, |Keras - "
                         f"convolution with flipped kernel| = {values[1]:.1e}, |Keras - "
                         f"convolution with the same kernel| = {values[2]:.2f}")
    return result
