"""What each filter responds to, from saved kernels and numpy alone: feature maps, receptive
fields and the input patches that excite a filter most.

A kernel's numbers do not say what the filter does, and conv2's 3x3x32 kernels cannot be read at
all. Its behaviour can: the maps it makes of real digits, and the patches of those digits it
answers most strongly (Zeiler & Fergus). A run's snapshots keep kernels and biases, and config.json
names the model, whose layers up to conv2 (kexp.config.CONV_STAGES) are replayed here, so
`make visualize` redraws these views without TensorFlow. kexp.probes.keras_views computes the
same views for any Keras model, and the optimal inputs, which need gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kexp import config as config_module
from kexp import shell_commands
from kexp.digits import data
from kexp.storage import atomic, files, runs

PROBES_PER_CLASS = 10  # test digits per class the views use (100 for 10 classes)
PROBE_SEED = 0  # fixed, so every run of the same test digits shows the same probes
TOP_K = 9  # strongest patches shown per filter


@dataclass(frozen=True)
class Stage:
    """One layer between the image and a conv layer's output, as geometry: a convolution or a
    pooling window of `size` pixels moved by `stride`, with 'valid' or 'same' padding."""

    kind: str  # "conv" or "pool"
    name: str  # layer path
    size: int
    stride: int = 1
    padding: str = "valid"


@dataclass(frozen=True)
class Field:
    """The input window one output unit of a layer sees: `size` pixels square, its top-left
    corner at `start + jump * (row, col)` for the unit at (row, col); start < 0 where 'same'
    padding reaches outside the image."""

    size: int
    jump: int
    start: int


def run_stages(model_name: str, kernels: dict[str, np.ndarray]) -> list[Stage]:
    """The stages from the image to conv2 of one of kexp's models (CONV_STAGES), with each
    convolution's size read from its kernel."""
    if model_name not in config_module.CONV_STAGES:
        raise config_module.ConfigError(
            f"Invalid value for `model`: {model_name!r}. Expected one of: "
            f"{', '.join(config_module.CONV_STAGES)}.")
    pool = config_module.POOL_SIZE
    return [Stage("pool", name, pool, pool) if name.startswith("pool")
            else Stage("conv", name, kernels[name].shape[0]) for name in
            config_module.CONV_STAGES[model_name]]


def receptive_fields(stages: list[Stage], image_side: int) -> dict[str, Field]:
    """The receptive field of every conv stage: each window of size k adds (k - 1) input jumps
    to the field, each stride multiplies the jump, and 'same' padding moves the start back by
    the padding it adds (TensorFlow's rule: the smaller half before)."""
    size, jump, start, side = 1, 1, 0, image_side
    fields = {}
    for stage in stages:
        if stage.padding == "same":
            out_side = -(-side // stage.stride)
            start -= max((out_side - 1) * stage.stride + stage.size - side, 0) // 2 * jump
        else:
            out_side = (side - stage.size) // stage.stride + 1
        size += (stage.size - 1) * jump
        jump *= stage.stride
        side = out_side
        if stage.kind == "conv":
            fields[stage.name] = Field(size, jump, start)
    return fields


def conv2d(inputs: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """ReLU of Keras' Conv2D ('valid', stride 1: a cross-correlation) in float64:
    (n, h, w, c_in) x (kh, kw, c_in, c_out) -> (n, h - kh + 1, w - kw + 1, c_out)."""
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(inputs, (kh, kw), axis=(1, 2))
    outputs = np.einsum("nhwcij,ijcf->nhwf", windows, kernel.astype(np.float64), optimize=True)
    if bias is not None:
        outputs += bias
    return np.maximum(outputs, 0.0)


def max_pool(maps: np.ndarray, size: int) -> np.ndarray:
    """Keras' MaxPooling2D(size) ('valid', stride = size): rows and columns that do not fill
    a window are dropped."""
    h, w = maps.shape[1] // size * size, maps.shape[2] // size * size
    pooled = maps[:, 0:h:size, 0:w:size]
    for row in range(size):
        for col in range(size):
            pooled = np.maximum(pooled, maps[:, row:h:size, col:w:size])
    return pooled


def snapshot_feature_maps(model_name: str, kernels: dict[str, np.ndarray],
                          biases: dict[str, np.ndarray], images: np.ndarray
                          ) -> dict[str, np.ndarray]:
    """Every conv layer's output (ReLU applied, as in the model) for `images` (n, 28, 28, 1)
    in [0, 1], replayed from a snapshot of one of kexp's models, by layer name."""
    maps, current = {}, np.asarray(images, dtype=np.float64)
    for stage in run_stages(model_name, kernels):
        if stage.kind == "pool":
            current = max_pool(current, stage.size)
        else:
            current = conv2d(current, kernels[stage.name], biases.get(stage.name))
            maps[stage.name] = current
    return maps


def run_snapshot_maps(run_dir: Path, snapshot: Path, images: np.ndarray
                      ) -> dict[str, np.ndarray] | None:
    """Every conv layer's maps of `images` from one snapshot file of a run (whose model
    config.json names); None when the snapshot has no biases (kexp kept only kernels then)."""
    kernels, biases = runs.load_kernels(snapshot), runs.load_biases(snapshot)
    if set(biases) != set(kernels):
        return None
    model_name = runs.read_config(run_dir).model
    return snapshot_feature_maps(model_name, kernels, biases, images)


@dataclass
class TopPatches:
    """The k input patches that excite each filter of one layer most, at most one per image,
    so they show k digits' strokes rather than one stroke shifted by a pixel k times."""

    patches: np.ndarray  # (filters, k, size, size, channels): input pixels, NaN off the image
    scores: np.ndarray  # (filters, k): the filter's output at the patch
    images: np.ndarray  # (filters, k): which image each patch comes from
    corners: np.ndarray  # (filters, k, 2): the patch's top-left (row, col) in the image


def strongest_patches(images: np.ndarray, maps: np.ndarray, field: Field, k: int = TOP_K
                      ) -> TopPatches:
    """For each filter of `maps` (n, h, w, filters), the `k` images whose strongest response is
    largest and the receptive-field patch of `images` (n, H, W, channels) under it."""
    count, height, width, filters = maps.shape
    k = min(k, count)
    flat = maps.reshape(count, height * width, filters)
    best_position = flat.argmax(axis=1)  # (n, filters)
    best_score = np.take_along_axis(flat, best_position[:, None, :], axis=1)[:, 0]
    order = np.argsort(-best_score, axis=0, kind="stable")[:k].T  # (filters, k)
    filter_index = np.arange(filters)[:, None]
    rows, cols = np.divmod(best_position[order, filter_index], width)
    corners = np.stack([field.start + field.jump * rows, field.start + field.jump * cols], -1)
    margin = max(0, -field.start) + field.size
    padded = np.pad(np.asarray(images, dtype=np.float64),
                    ((0, 0), (margin, margin), (margin, margin), (0, 0)), constant_values=np.nan)
    offsets = np.arange(field.size)
    tops = (corners[..., 0] + margin)[..., None, None] + offsets[:, None]
    lefts = (corners[..., 1] + margin)[..., None, None] + offsets[None, :]
    patches = padded[order[..., None, None], tops, lefts]  # (filters, k, size, size, channels)
    return TopPatches(patches, best_score[order, filter_index], order, corners)


def probe_indices(labels: np.ndarray, per_class: int = PROBES_PER_CLASS) -> np.ndarray:
    """Indices of `per_class` digits of each class (fewer where a class has fewer), drawn with
    a fixed seed and ordered class by class: the first of each class is the feature-map digit."""
    order = np.random.default_rng(PROBE_SEED).permutation(len(labels))
    chosen = [order[labels[order] == label][:per_class] for label in np.unique(labels)]
    return np.concatenate(chosen) if chosen else np.array([], dtype=int)


def write_probe_digits(run_dir: Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Choose the probe digits from a run's test digits (uint8 (n, 28, 28) and labels) and write
    them to views/probe_digits.npz, so the views are redrawn without loading the data again."""
    chosen = probe_indices(labels)
    folder = Path(run_dir) / runs.VIEWS_DIR
    folder.mkdir(exist_ok=True)
    return atomic.write_npz_atomic(folder / runs.PROBE_DIGITS_FILE, {
        "images": images[chosen], "labels": labels[chosen], "indices": chosen})


def view_file(run_dir: Path) -> str:
    """What a damaged views file should be, and the command that writes it again."""
    return f"a views file written by kexp (written again by: " \
           f"{shell_commands.explain_command(run_dir)})"


def read_probe_digits(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A run's probe digits as model inputs (n, 28, 28, 1) in [0, 1], and their labels; a
    damaged file raises RunError naming it and what rewrites it."""
    path = Path(run_dir) / runs.VIEWS_DIR / runs.PROBE_DIGITS_FILE
    expected = view_file(run_dir)
    arrays = files.check_arrays(
        files.read_npz(path, runs.RunError, expected), {
            "images": ("u", ("digits", *config_module.IMAGE_SHAPE)), "labels": ("iu", ("digits",))},
        path, runs.RunError, expected)
    return data.to_model_inputs(arrays["images"]), arrays["labels"]


def has_probe_digits(run_dir: Path) -> bool:
    return os.path.lexists(Path(run_dir) / runs.VIEWS_DIR / runs.PROBE_DIGITS_FILE)


def first_of_each_class(labels: np.ndarray) -> np.ndarray:
    """Index of the first digit of each class in `labels`, in class order."""
    return np.array([int(np.flatnonzero(labels == label)[0]) for label in np.unique(labels)])


OPTIMAL_INPUT_STATES = ("before", "after")


def optimal_input_key(kind: str, when: str, layer: str) -> str:
    """Key of one array in optimal_inputs.npz: kind "images" (filters, h, w, channels) or
    "activation" (filters,), when "before" or "after": "images/after/conv2"."""
    return f"{kind}/{when}/{layer}"


def read_optimal_inputs(run_dir: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """views/optimal_inputs.npz as {when: {layer: {"images": ..., "activation": ...}}}; {} when
    the run has none (it was trained before kexp computed them: `kexp explain` adds them)."""
    path = Path(run_dir) / runs.VIEWS_DIR / runs.OPTIMAL_INPUTS_FILE
    if not os.path.lexists(path):
        return {}
    expected = view_file(run_dir)
    arrays = files.read_npz(path, runs.RunError, expected)
    layers = list(dict.fromkeys(key.split("/", 2)[-1] for key in arrays))  # in model order
    rules = {optimal_input_key(kind, when, layer): ("f", shape)
             for layer in layers for when in OPTIMAL_INPUT_STATES
             for kind, shape in (("images", (f"{layer} filters", None, None, None)),
                                 ("activation", (f"{layer} filters",)))}
    files.check_arrays(arrays, rules, path, runs.RunError, expected)
    if set(rules) != set(arrays):
        raise runs.RunError(f"Cannot read '{path}': it holds arrays named "
                            f"{sorted(set(arrays) - set(rules))}. Expected {expected}.")
    return {when: {layer: {kind: arrays[optimal_input_key(kind, when, layer)]
                           for kind in ("images", "activation")} for layer in layers}
            for when in OPTIMAL_INPUT_STATES}
