"""Convolution and cross-correlation written out by hand, in 1-D and 2-D: numpy only.

The questions argue about what a "convolution" layer computes. These loops are the
definitions themselves, with no library call in between, so they can referee numpy's and Keras'
results: a true convolution flips the kernel (c[n] = sum_m a[m] b[n - m]), a cross-correlation
slides it unflipped (y[n] = sum_k a[n + k] b[k]), and Keras' Conv2D does the second.
"""

from __future__ import annotations

import numpy as np

from kexp.errors import KexpError
from kexp.validation import check_whole

MODES = ("full", "valid")

# Question 000: ten numbers from MATLAB's rand(1,10), the peak filter, and the answer's printed
# result of conv(u, v, 'valid') (which does not follow from u; see peak_filter_response).
QUESTION_PEAK_SEQUENCE = np.array([0.8416, 0.7342, 0.5710, 0.1769, 0.9574,
                                   0.2653, 0.9246, 0.2238, 0.3736, 0.0875])
PEAK_FILTER = np.array([-1.0, 1.0, -1.0])
QUESTION_PEAK_RESPONSE = np.array([-0.1767, -0.4347, -0.3599, -0.2702,
                                   -0.5382, 0.2119, -0.9628, 0.1713])
QUESTION_PEAK_POSITIONS = (5, 7, 9)  # 1-based points the answer calls peaks

# Question 002: the 1-D worked example.
QUESTION_EXAMPLE_A = np.array([1.0, 0.5, 1.0, 1.0])
QUESTION_EXAMPLE_B = np.array([1.0, 0.5, 0.25])
QUESTION_EXAMPLE_C = np.array([1.0, 1.0, 1.5, 1.625, 0.75, 0.25])


class ConvolutionError(KexpError):
    """Arguments that no convolution is defined for (a bad mode, a kernel longer than its input)."""


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConvolutionError(f"Invalid value for `mode`: '{mode}'. "
                               f"Expected one of: {', '.join(MODES)}.")


def convolve_1d(signal, kernel, mode: str = "full") -> np.ndarray:
    """True convolution c[n] = sum_m signal[m] kernel[n - m] (the kernel is flipped), as
    MATLAB's conv and np.convolve define it. 'full' has len(signal)+len(kernel)-1 values; 'valid'
    keeps the n where the kernel lies wholly inside the signal."""
    _check_mode(mode)
    a, b = np.asarray(signal, dtype=float), np.asarray(kernel, dtype=float)
    full = np.zeros(len(a) + len(b) - 1)
    for n in range(len(full)):
        for m in range(len(a)):
            if 0 <= n - m < len(b):
                full[n] += a[m] * b[n - m]
    if mode == "full":
        return full
    if len(b) > len(a):
        raise ConvolutionError(f"Invalid value for `kernel`: length {len(b)}. Expected at most "
                               f"the signal's length {len(a)} for mode 'valid'.")
    return full[len(b) - 1:len(a)]


def correlate_1d(signal, kernel, mode: str = "valid") -> np.ndarray:
    """Cross-correlation y[n] = sum_k signal[n + k] kernel[k]: the kernel slides unflipped, which
    is what a Conv1D layer computes. 'full' pads the signal with len(kernel)-1 zeros each side."""
    _check_mode(mode)
    a, b = np.asarray(signal, dtype=float), np.asarray(kernel, dtype=float)
    if mode == "full":
        a = np.concatenate([np.zeros(len(b) - 1), a, np.zeros(len(b) - 1)])
    elif len(b) > len(a):
        raise ConvolutionError(f"Invalid value for `kernel`: length {len(b)}. Expected at most "
                               f"the signal's length {len(a)} for mode 'valid'.")
    out = np.zeros(len(a) - len(b) + 1)
    for n in range(len(out)):
        for k in range(len(b)):
            out[n] += a[n + k] * b[k]
    return out


def shifted_kernel_terms(signal, kernel, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For output index n of the full convolution: the signal and the kernel flipped and shifted
    by n, on a common axis m = -(len(kernel)-1) .. len(signal)+len(kernel)-2 (the 'shifting'
    picture: c[n] is the sum of their product)."""
    a, b = np.asarray(signal, dtype=float), np.asarray(kernel, dtype=float)
    positions = np.arange(-(len(b) - 1), len(a) + len(b) - 1)
    signal_on_axis = np.array([a[m] if 0 <= m < len(a) else 0.0 for m in positions])
    kernel_on_axis = np.array([b[n - m] if 0 <= n - m < len(b) else 0.0 for m in positions])
    return positions, np.stack([signal_on_axis, kernel_on_axis])


def peak_filter_response(sequence=QUESTION_PEAK_SEQUENCE, kernel=PEAK_FILTER) -> np.ndarray:
    """MATLAB's conv(u, [-1 1 -1], 'valid'): entry k (0-based) is centred on point k+2
    (1-based). The filter is symmetric, so convolution and cross-correlation agree."""
    return convolve_1d(sequence, kernel, mode="valid")


def local_peaks(sequence) -> list[int]:
    """1-based positions of interior points larger than both neighbours."""
    u = np.asarray(sequence, dtype=float)
    return [i + 1 for i in range(1, len(u) - 1) if u[i] > u[i - 1] and u[i] > u[i + 1]]


def positive_response_positions(response, kernel_size: int = 3) -> list[int]:
    """1-based centre positions in the input where a 'valid' response is above zero."""
    offset = kernel_size // 2 + 1
    return [k + offset for k, value in enumerate(np.asarray(response)) if value > 0]


def correlate2d_valid(image, kernel) -> np.ndarray:
    """2-D cross-correlation with no padding: out[i, j] = sum_{l,m} K[l, m] A[i + l, j + m]."""
    a, k = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    kh, kw = k.shape
    out = np.zeros((a.shape[0] - kh + 1, a.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            for l in range(kh):
                for m in range(kw):
                    out[i, j] += k[l, m] * a[i + l, j + m]
    return out


def convolve2d_valid(image, kernel) -> np.ndarray:
    """The question's formula B(i, j) = sum_{l,m} F(l, m) A(i - l, j - m), a true 2-D
    convolution, at the positions where every A(i - l, j - m) exists: i = kh-1 .. H-1, stored
    from index 0."""
    a, f = np.asarray(image, dtype=float), np.asarray(kernel, dtype=float)
    kh, kw = f.shape
    out = np.zeros((a.shape[0] - kh + 1, a.shape[1] - kw + 1))
    for i in range(kh - 1, a.shape[0]):
        for j in range(kw - 1, a.shape[1]):
            for l in range(kh):
                for m in range(kw):
                    out[i - kh + 1, j - kw + 1] += f[l, m] * a[i - l, j - m]
    return out


def conv2d_layer_reference(images, kernel, bias=None) -> np.ndarray:
    """What a Keras Conv2D (padding 'valid', stride 1, no activation) should output, from the
    cross-correlation loops: images (N, H, W, C_in), kernel (kh, kw, C_in, C_out)."""
    return _layer_reference(images, kernel, bias, correlate2d_valid)


def convolve2d_layer_reference(images, kernel, bias=None) -> np.ndarray:
    """The same layer with the textbook convolution (the question's formula) in place of Keras'
    cross-correlation."""
    return _layer_reference(images, kernel, bias, convolve2d_valid)


def _layer_reference(images, kernel, bias, operation) -> np.ndarray:
    images, kernel = np.asarray(images, dtype=float), np.asarray(kernel, dtype=float)
    kh, kw, c_in, c_out = kernel.shape
    out = np.zeros((images.shape[0], images.shape[1] - kh + 1, images.shape[2] - kw + 1, c_out))
    for n in range(images.shape[0]):
        for k in range(c_out):
            for c in range(c_in):
                out[n, :, :, k] += operation(images[n, :, :, c], kernel[:, :, c, k])
    if bias is not None:
        out += np.asarray(bias, dtype=float)
    return out


def flip_kernel(kernel) -> np.ndarray:
    """Rotate the spatial axes by 180 degrees (the first two axes, Keras' layout)."""
    return np.asarray(kernel)[::-1, ::-1, ...].copy()


def gaussian_kernel(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    """A size x size Gaussian blur kernel sampled at integer offsets, summing to 1."""
    odd = ", odd (a kernel has a centre)"
    if check_whole("size", size, 1, note=odd, error=ConvolutionError) % 2 == 0:
        raise ConvolutionError(f"Invalid value for `size`: {size!r}. Expected a whole number "
                               f">= 1{odd}.")
    if not sigma > 0:
        raise ConvolutionError(f"Invalid value for `sigma`: {sigma!r}. Expected a positive number.")
    offsets = np.arange(size) - size // 2
    profile = np.exp(-offsets**2 / (2.0 * sigma**2))
    kernel = np.outer(profile, profile)
    return kernel / kernel.sum()


def correlate2d_valid_batch(images, kernel) -> np.ndarray:
    """correlate2d_valid for a batch (N, H, W) at numpy speed: the same sums, over sliding
    windows, for inputs too large for the loops (checked against them in the tests)."""
    kernel = np.asarray(kernel, dtype=float)
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(images, dtype=float),
                                                       kernel.shape, axis=(1, 2))
    return np.einsum("nijkl,kl->nij", windows, kernel)
