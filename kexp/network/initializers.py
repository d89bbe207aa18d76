"""Initializer names and specs, and the theory of each one. No Keras.

The question kexp answers starts here: a Conv2D filter's numbers are first drawn from an
initializer. This module knows every Keras built-in by its Keras name (plus kexp's own), parses
specs such as ``random_normal:stddev=0.5``, and states exactly which distribution each spec draws
from for a given kernel shape (bounds, standard deviation, CDF), which plots and tests compare
against measured kernels. The Keras objects are built in kexp.network.keras_initializers, so the
CLI, config validation and the plots never pay for TensorFlow.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

import numpy as np

from kexp.errors import KexpError

# The factor Keras divides a truncated normal's sigma by, so that the distribution truncated at
# +-2 sigma has the intended standard deviation (keras/src/initializers/random_initializers.py).
TRUNCATION_STD_FACTOR = 0.87962566103423978

MAX_FLOAT32 = float(np.finfo(np.float32).max)  # larger numbers become inf in float32 weights
_POSITIVE = "a positive number"
_NUMBER = "a number"

# name -> {parameter: (default, kind)}; kind is _NUMBER, _POSITIVE or a tuple of allowed strings.
KERAS_INITIALIZERS: dict[str, dict[str, tuple]] = {
    "glorot_uniform": {},
    "glorot_normal": {},
    "he_normal": {},
    "he_uniform": {},
    "lecun_normal": {},
    "lecun_uniform": {},
    "random_normal": {"mean": (0.0, _NUMBER), "stddev": (0.05, _POSITIVE)},
    "random_uniform": {"minval": (-0.05, _NUMBER), "maxval": (0.05, _NUMBER)},
    "truncated_normal": {"mean": (0.0, _NUMBER), "stddev": (0.05, _POSITIVE)},
    "orthogonal": {"gain": (1.0, _POSITIVE)},
    "variance_scaling": {
        "scale": (1.0, _POSITIVE),
        "mode": ("fan_in", ("fan_in", "fan_out", "fan_avg")),
        "distribution": ("truncated_normal", ("truncated_normal", "untruncated_normal", "uniform")),
    },
    "zeros": {},
    "ones": {},
}

# kexp's own initializers (built in kexp.network.keras_initializers): name -> parameters as above.
# image_patches: 3x3 patches of real training images; the others: hand-designed filters.
CUSTOM_INITIALIZERS: dict[str, dict[str, tuple]] = {
    "image_patches": {"gain": (1.0, _POSITIVE),
                      "data": ("mnist-5k", ("mnist-5k", "auto", "mnist"))},
    "sobel_x": {"gain": (1.0, _POSITIVE)},
    "sobel_y": {"gain": (1.0, _POSITIVE)},
    "laplacian": {"gain": (1.0, _POSITIVE)},
    "gaussian": {"gain": (1.0, _POSITIVE), "sigma": (1.0, _POSITIVE)},
    "peak": {"gain": (1.0, _POSITIVE)},
}

# The fixed VarianceScaling settings behind the named Keras shortcuts.
_VARIANCE_SCALING_ALIASES = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
}

CONSTANT_INITIALIZERS = ("zeros", "ones")


class InitializerError(KexpError):
    """An initializer spec that names no known initializer or has bad parameters."""


def initializer_names() -> list[str]:
    return [*KERAS_INITIALIZERS, *CUSTOM_INITIALIZERS]


@dataclass(frozen=True)
class InitializerSpec:
    """A parsed ``name[:key=value,...]`` spec with every parameter filled in."""

    name: str
    params: dict = field(default_factory=dict)

    def __str__(self) -> str:
        given = ",".join(f"{key}={value}" for key, value in self.params.items())
        return f"{self.name}:{given}" if given else self.name


def _schema(name: str) -> dict[str, tuple]:
    return KERAS_INITIALIZERS.get(name, CUSTOM_INITIALIZERS.get(name))


def _convert(name: str, key: str, text: str, kind) -> float | str:
    if isinstance(kind, tuple):
        if text not in kind:
            raise InitializerError(f"Invalid value for `{name}:{key}`: '{text}'. "
                                   f"Expected one of: {', '.join(kind)}.")
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not abs(value) <= MAX_FLOAT32 or (kind == _POSITIVE and value <= 0):
        raise InitializerError(f"Invalid value for `{name}:{key}`: '{text}'. Expected {kind} "
                               f"(at most {MAX_FLOAT32:.4g} in size: the weights are float32).")
    return value


def parse_spec(spec: str | InitializerSpec) -> InitializerSpec:
    """Parse ``name`` or ``name:key=value,key=value`` and check it completely, before any
    model or run folder exists. A spec parsed before is returned as it is, so a caller can hand
    on either and a spec is parsed once on its way from the command line to the model."""
    if isinstance(spec, InitializerSpec):
        return spec
    if not isinstance(spec, str):
        raise InitializerError(f"Invalid value for `init`: {spec!r}. Expected a name such as "
                               f"'glorot_uniform' (one of: {', '.join(initializer_names())}).")
    name, _, param_text = spec.partition(":")
    schema = _schema(name)
    if schema is None:
        close = difflib.get_close_matches(name.strip().lower(), initializer_names(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise InitializerError(f"Invalid value for `init`: '{spec}'. "
                               f"Expected one of: {', '.join(initializer_names())}.{hint}")
    params = {key: default for key, (default, _kind) in schema.items()}
    given = set()
    for item in filter(None, param_text.split(",")) if param_text else []:
        key, sep, value = item.partition("=")
        if not sep or key not in schema:
            allowed = ", ".join(f"{k}=..." for k in schema) or "no parameters"
            raise InitializerError(f"Invalid parameter for `{name}`: '{item}'. "
                                   f"Expected {allowed} (for example "
                                   f"'random_normal:stddev=0.5').")
        if key in given:
            raise InitializerError(f"Invalid parameter for `{name}`: '{key}' is given twice in "
                                   f"'{spec}'. Expected each parameter at most once.")
        given.add(key)
        params[key] = _convert(name, key, value, schema[key][1])
    if name == "random_uniform" and params["minval"] >= params["maxval"]:
        raise InitializerError(f"Invalid value for `random_uniform`: minval={params['minval']} "
                               f"must be below maxval={params['maxval']}.")
    return InitializerSpec(name, params)


def patch_data_unavailable(source: str, error: Exception) -> InitializerError:
    """The error for image_patches whose `data` does not load here: the fix is the
    initializer's own parameter, not --data (which the run may not even use)."""
    reason = str(error.__cause__ or error).splitlines()[0]
    default, choices = CUSTOM_INITIALIZERS["image_patches"]["data"]
    return InitializerError(
        f"Invalid value for `image_patches:data`: '{source}': its digits cannot be loaded here "
        f"({reason}). Expected one of {', '.join(choices)} that loads, e.g. "
        f"--init image_patches:data={default} (5,000 real MNIST digits, no network needed).")


def compute_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras' fan_in/fan_out: a conv kernel (kh, kw, c_in, c_out) has fan_in = kh*kw*c_in and
    fan_out = kh*kw*c_out; a dense kernel (n_in, n_out) has n_in and n_out."""
    shape = tuple(int(dim) for dim in shape)
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive_field = math.prod(shape[:-2])
    return shape[-2] * receptive_field, shape[-1] * receptive_field


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf, otypes=[float])(np.asarray(x) / math.sqrt(2.0)))


@dataclass(frozen=True)
class Theory:
    """The exact distribution a spec draws each kernel entry from, for one kernel shape.

    kind: "uniform" (low, high), "normal" (mean, sigma), "truncated_normal" (mean, sigma,
    truncated at mean +- 2 sigma), "constant" (value), or "orthogonal" (no per-entry law: the
    flattened kernel has orthonormal rows or columns times gain).
    """

    kind: str
    mean: float = 0.0
    std: float = 0.0  # the standard deviation of the entries (after truncation)
    low: float = -math.inf  # support bounds; +-inf where unbounded
    high: float = math.inf
    sigma: float = 0.0  # the normal's sigma parameter before truncation
    description: str = ""

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.kind == "uniform":
            return np.clip((x - self.low) / (self.high - self.low), 0.0, 1.0)
        if self.kind == "normal":
            return _normal_cdf((x - self.mean) / self.sigma)
        if self.kind == "truncated_normal":
            lo, hi = _normal_cdf(-2.0), _normal_cdf(2.0)
            z = np.clip((x - self.mean) / self.sigma, -2.0, 2.0)
            return (_normal_cdf(z) - lo) / (hi - lo)
        if self.kind == "constant":
            return (x >= self.mean).astype(float)
        raise ValueError(f"The {self.kind} initializer has no per-entry distribution.")

    def pdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.kind == "uniform":
            inside = (x >= self.low) & (x <= self.high)
            return np.where(inside, 1.0 / (self.high - self.low), 0.0)
        if self.kind in ("normal", "truncated_normal"):
            z = (x - self.mean) / self.sigma
            density = np.exp(-0.5 * z**2) / (self.sigma * math.sqrt(2 * math.pi))
            if self.kind == "truncated_normal":
                mass = float(_normal_cdf(2.0) - _normal_cdf(-2.0))
                density = np.where(np.abs(z) <= 2.0, density / mass, 0.0)
            return density
        raise ValueError(f"The {self.kind} initializer has no density.")

    @property
    def has_density(self) -> bool:
        return self.kind in ("uniform", "normal", "truncated_normal")


def uniform_theory(low: float, high: float, description: str) -> Theory:
    """The Theory of U(low, high)."""
    return Theory("uniform", mean=(low + high) / 2, std=(high - low) / math.sqrt(12),
                  low=low, high=high, description=description)


def truncated_theory(mean: float, sigma: float, description: str) -> Theory:
    """The Theory of N(mean, sigma^2) truncated at +-2 sigma, as Keras draws it."""
    return Theory("truncated_normal", mean=mean, std=sigma * TRUNCATION_STD_FACTOR, sigma=sigma,
                  low=mean - 2 * sigma, high=mean + 2 * sigma, description=description)


def theory(spec: str | InitializerSpec, shape: tuple[int, ...]) -> Theory:
    """The distribution `spec` draws from for a kernel of `shape` (Keras layout)."""
    spec = parse_spec(spec)
    name, params = spec.name, spec.params
    fan_in, fan_out = compute_fans(shape)
    if name in _VARIANCE_SCALING_ALIASES or name == "variance_scaling":
        scale, mode, distribution = _VARIANCE_SCALING_ALIASES.get(
            name, (params.get("scale"), params.get("mode"), params.get("distribution")))
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
        variance = scale / max(1.0, n)
        fans = f"fan_in={fan_in}, fan_out={fan_out}"
        if distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return uniform_theory(-limit, limit, f"U(-{limit:.4g}, {limit:.4g}), limit = "
                            f"sqrt(3*{scale:g}/{mode}) ({fans})")
        if distribution == "untruncated_normal":
            std = math.sqrt(variance)
            return Theory("normal", std=std, sigma=std,
                          description=f"N(0, {std:.4g}^2) ({fans})")
        sigma = math.sqrt(variance) / TRUNCATION_STD_FACTOR
        return truncated_theory(0.0, sigma, f"truncated N(0, {sigma:.4g}^2) at +-2 sigma, std "
                          f"{math.sqrt(variance):.4g} = sqrt({scale:g}/{mode}) ({fans})")
    if name == "random_normal":
        return Theory("normal", mean=params["mean"], std=params["stddev"], sigma=params["stddev"],
                      description=f"N({params['mean']:g}, {params['stddev']:g}^2)")
    if name == "truncated_normal":
        return truncated_theory(params["mean"], params["stddev"],
                          f"N({params['mean']:g}, {params['stddev']:g}^2) truncated at +-2 sigma")
    if name == "random_uniform":
        return uniform_theory(params["minval"], params["maxval"],
                        f"U({params['minval']:g}, {params['maxval']:g})")
    if name in CONSTANT_INITIALIZERS:
        value = 0.0 if name == "zeros" else 1.0
        return Theory("constant", mean=value, std=0.0, low=value, high=value,
                      description=f"every entry = {value:g}")
    if name == "orthogonal":
        rows, cols = math.prod(shape[:-1]), shape[-1]
        gain = params["gain"]
        std = gain * math.sqrt(min(rows, cols) / (rows * cols))
        return Theory("orthogonal", std=std, low=-gain, high=gain,
                      description=f"orthogonal {rows}x{cols} matrix times gain {gain:g}")
    if name == "image_patches":
        return Theory("custom", description=f"3x3 patches of {params['data']} training images, "
                      f"zero mean, norm {params['gain']:g} (kexp.network.keras_initializers)")
    return Theory("custom", description=f"hand-designed {name} filter: 8 rotations/mirrors x 2 "
                  f"signs, norm {params['gain']:g} (kexp.network.keras_initializers)")


def question_formula_bounds(shape: tuple[int, ...]) -> tuple[float, float]:
    """The glorot_uniform bounds as one answer of the questions writes them, U(6/(n_in+n_out),
    -6/(n_in+n_out)): no square root and the bounds swapped. Kept to show it is wrong."""
    fan_in, fan_out = compute_fans(shape)
    return 6.0 / (fan_in + fan_out), -6.0 / (fan_in + fan_out)
