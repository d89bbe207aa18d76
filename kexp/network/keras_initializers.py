"""Keras initializer objects for every spec: Keras' built-ins, and kexp's own ones.

`build_keras_initializer` turns a spec (parsed by kexp.network.initializers, which knows the
names, parameters and theory without Keras) into a fresh Keras initializer.

kexp's own initializers: question 000 asks whether a kernel is "a patch from the image", and
answers that filters can be designed in advance ([-1 1 -1] finds peaks). `ImagePatches` and
`DesignedFilters` make both ideas trainable (or frozen with `--freeze conv1`) so they can be
compared with random starts. They follow Keras' contract: arguments checked in `__init__`,
symmetric `get_config`, registered so a saved `model.keras` loads again
(kexp.network.saving.load_model imports this module for that).

How the 32 hand-designed filters differ: filter k is the 3x3 base filter under symmetry k % 8 of
the square (rotation by 90 degrees * (k % 4), mirrored left-right when (k // 4) is odd), with sign
+ when (k // 8) is even and - when odd. Orientation-free bases (laplacian, gaussian) thus give
+base and -base. Every base has unit norm times `gain`; for a layer with C_in > 1 input channels
slice (c, k) uses variant (k + c) % 16 divided by sqrt(C_in).
"""

from __future__ import annotations

import functools
import math

import keras
import numpy as np

from kexp.digits import data
from kexp.filters import analysis, convolution
from kexp.network import initializers
from kexp.validation import check_whole

SYMMETRIES = 8  # the dihedral group of the square: 4 rotations, each optionally mirrored
VARIANTS = 2 * SYMMETRIES  # and both signs
PATCH_DATA_DEFAULT, PATCH_DATA_SOURCES = (
    initializers.CUSTOM_INITIALIZERS["image_patches"]["data"])
PATCH_MIN_STD = 0.1  # skip patches of near-constant background (pixel std, values in [0, 1])


def _peak_2d() -> np.ndarray:
    """The [-1 1 -1] peak idea across x, repeated down three rows: a bright vertical line (a
    ridge, like a pen stroke) between darker neighbours responds most."""
    return np.tile(convolution.PEAK_FILTER, (3, 1))


DESIGNED_BASES = {
    "sobel_x": lambda params: analysis.SOBEL_X,
    "sobel_y": lambda params: analysis.SOBEL_Y,
    # A bright point above its 4 neighbours gives a positive response: the 2-D point peak.
    "laplacian": lambda params: np.array([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]]),
    "gaussian": lambda params: convolution.gaussian_kernel(3, params["sigma"]),
    "peak": lambda params: _peak_2d(),
}


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"Invalid value for `{name}`: {value!r}. Expected a positive number.")
    return float(value)


def _check_shape(shape, name: str) -> tuple[int, int, int, int]:
    shape = tuple(int(dim) for dim in shape)
    if len(shape) != 4 or shape[:2] != (3, 3):
        raise ValueError(f"Invalid value for `shape` of the {name} initializer: {shape}. "
                         "Expected a Conv2D kernel (3, 3, C_in, C_out).")
    return shape


def variant(base: np.ndarray, index: int) -> np.ndarray:
    """Variant `index` (0..15) of a square filter: symmetry index % 8, sign by index // 8."""
    symmetry, sign = index % SYMMETRIES, 1.0 if (index // SYMMETRIES) % 2 == 0 else -1.0
    turned = np.rot90(base, symmetry % 4)
    return sign * (np.fliplr(turned) if symmetry // 4 else turned)


def tile_filters(base: np.ndarray, shape: tuple[int, int, int, int], gain: float) -> np.ndarray:
    """A (3, 3, C_in, C_out) kernel whose slices are the documented variants of `base`."""
    _, _, c_in, c_out = shape
    unit = base / np.linalg.norm(base)
    kernel = np.empty(shape)
    for k in range(c_out):
        for c in range(c_in):
            kernel[:, :, c, k] = variant(unit, (k + c) % VARIANTS)
    return gain * kernel / math.sqrt(c_in)


@keras.saving.register_keras_serializable(package="kexp")
class DesignedFilters(keras.initializers.Initializer):
    """Hand-designed 3x3 filters (sobel_x, sobel_y, laplacian, gaussian, peak), varied over the
    output filters as the module docstring says. Deterministic: no seed."""

    def __init__(self, name: str = "sobel_x", gain: float = 1.0, sigma: float = 1.0):
        if name not in DESIGNED_BASES:
            raise ValueError(f"Invalid value for `name`: {name!r}. "
                             f"Expected one of: {', '.join(DESIGNED_BASES)}.")
        self.name, self.gain = name, _check_positive("gain", gain)
        self.sigma = _check_positive("sigma", sigma)

    def base(self) -> np.ndarray:
        return np.asarray(DESIGNED_BASES[self.name]({"sigma": self.sigma}), dtype=float)

    def __call__(self, shape, dtype=None):
        shape = _check_shape(shape, self.name)
        kernel = tile_filters(self.base(), shape, self.gain)
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self) -> dict:
        return {"name": self.name, "gain": self.gain, "sigma": self.sigma}


@functools.lru_cache(maxsize=4)
def training_images(source: str) -> np.ndarray:
    """The training images (never the test split) that image_patches draws from, in [0, 1],
    loaded once per process (`training_images.cache_clear()` forgets them). A source that
    cannot load is reported as the initializer's own parameter: `--data` would not help."""
    try:
        dataset = data.load(source)
    except data.DataError as error:
        raise initializers.patch_data_unavailable(source, error) from error
    return dataset.x_train.astype(np.float64) / 255.0


def draw_patches(images: np.ndarray, count: int, rng: np.random.Generator,
                 size: int = 3) -> np.ndarray:
    """`count` size x size patches at random places of random images, skipping flat background
    (pixel std below PATCH_MIN_STD), each made zero-mean and unit-norm: (count, size, size)."""
    patches = []
    while len(patches) < count:
        image = images[rng.integers(len(images))]
        top, left = rng.integers(image.shape[0] - size + 1), rng.integers(image.shape[1] - size + 1)
        patch = image[top:top + size, left:left + size]
        if patch.std() < PATCH_MIN_STD:
            continue
        centred = patch - patch.mean()
        patches.append(centred / np.linalg.norm(centred))
    return np.stack(patches)


@keras.saving.register_keras_serializable(package="kexp")
class ImagePatches(keras.initializers.Initializer):
    """Each 3x3 filter is a patch cut from a real training image at a random place (seeded),
    with its mean removed and scaled to norm `gain` (divided by sqrt(C_in) for C_in > 1)."""

    def __init__(self, gain: float = 1.0, data: str = PATCH_DATA_DEFAULT,
                 seed: int | None = None):
        self.gain = _check_positive("gain", gain)
        if data not in PATCH_DATA_SOURCES:
            raise ValueError(f"Invalid value for `data`: {data!r}. "
                             f"Expected one of: {', '.join(PATCH_DATA_SOURCES)}.")
        check_whole("seed", seed, 0, none="None")
        self.data, self.seed = data, seed

    def __call__(self, shape, dtype=None):
        _, _, c_in, c_out = shape = _check_shape(shape, "image_patches")
        rng = np.random.default_rng(self.seed)
        patches = draw_patches(training_images(self.data), c_in * c_out, rng)
        kernel = np.transpose(patches.reshape(c_out, c_in, 3, 3), (2, 3, 1, 0))
        kernel = self.gain * kernel / math.sqrt(c_in)
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self) -> dict:
        return {"gain": self.gain, "data": self.data, "seed": self.seed}


def build_keras_initializer(spec: str | initializers.InitializerSpec, seed: int | None = None
                            ) -> keras.initializers.Initializer:
    """A fresh Keras initializer object for `spec` (a string is parsed, a parsed spec is used as
    it is): a new object per layer, so two layers never share a seed generator."""
    spec = initializers.parse_spec(spec)
    params = dict(spec.params)
    if spec.name == "image_patches":
        return ImagePatches(seed=seed, **params)
    if spec.name in DESIGNED_BASES:
        return DesignedFilters(spec.name, **params)
    if spec.name in initializers.CONSTANT_INITIALIZERS:
        return keras.initializers.get(spec.name)
    if spec.name == "variance_scaling":
        return keras.initializers.VarianceScaling(seed=seed, **params)
    return keras.initializers.get({"class_name": spec.name, "config": {**params, "seed": seed}})
