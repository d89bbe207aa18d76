"""MNIST sources: the bundled real digits, the Keras-format npz and IDX readers, the auto
fallback, and validation errors that name the file and what is wrong."""

import gzip

import numpy as np
import pytest

from kexp.digits import data
from kexp.digits.data import DataError


def small_split(count=20, seed=0):
    """Tiny arrays in MNIST's shapes and dtypes, to exercise the file readers."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, count).astype(np.uint8))


def write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(payload))
    else:
        path.write_bytes(payload)


def write_idx_folder(folder, gz=False):
    folder.mkdir(exist_ok=True)
    (x_train, y_train), (x_test, y_test) = small_split(20, 1), small_split(8, 2)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    for key, stem in data.IDX_FILES.items():
        magic = data.IDX_IMAGES_MAGIC if key.startswith("x") else data.IDX_LABELS_MAGIC
        write_idx(folder / (stem + (".gz" if gz else "")), arrays[key], magic)
    return arrays


@pytest.fixture(scope="module")
def bundled():
    return data.load_bundled_mnist()


def test_bundled_digits_are_real_mnist_split_stratified(bundled):
    assert bundled.x_train.shape == (4000, 28, 28) and bundled.x_test.shape == (1000, 28, 28)
    assert bundled.x_train.dtype == np.uint8
    assert np.bincount(bundled.y_test).tolist() == [100] * 10
    assert np.bincount(bundled.y_train).tolist() == [400] * 10
    # real digits: dark background, bright strokes, roughly 19% of pixels lit
    lit = (bundled.x_train > 0).mean()
    assert 0.1 < lit < 0.3 and bundled.x_train.max() == 255
    assert bundled.source == "mnist-5k"


def test_bundled_split_is_reproducible(bundled):
    again = data.load_bundled_mnist()
    assert again.checksum() == bundled.checksum()


def test_auto_falls_back_loudly_when_keras_cannot_download(monkeypatch, capsys):
    def offline():
        raise DataError("keras.datasets.mnist.load_data() failed") from OSError("no network")

    monkeypatch.setattr(data, "load_keras_mnist", offline)
    dataset = data.load("auto")
    assert dataset.source == "mnist-5k"
    assert "OFFLINE SUBSET" in capsys.readouterr().err


def test_auto_uses_keras_when_it_works(monkeypatch, bundled):
    monkeypatch.setattr(data, "load_keras_mnist", lambda: bundled)
    assert data.load("auto") is bundled


def test_npz_round_trip(tmp_path):
    (x_train, y_train), (x_test, y_test) = small_split(12), small_split(6, 1)
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    dataset = data.load(str(path))
    assert np.array_equal(dataset.x_train, x_train) and np.array_equal(dataset.y_test, y_test)
    assert dataset.summary()["train_samples"] == 12 and len(dataset.summary()["sha256"]) == 64


def test_npz_with_object_arrays_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    (x, y) = small_split(4)
    np.savez(path, x_train=np.array([x, "payload"], dtype=object), y_train=y, x_test=x, y_test=y)
    with pytest.raises(DataError, match="object arrays.*refused"):
        data.load(str(path))


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.pop("y_test"), "missing arrays y_test"),
    (lambda a: a.update(x_train=a["x_train"].reshape(-1, 784)), r"shape \(12, 784\)"),
    (lambda a: a.update(y_train=a["y_train"] + 10), r"labels 10\.\.\d+; expected 0\.\.9"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype float32; expected uint8"),
    (lambda a: a.update(y_train=a["y_train"][:5]), "one label per image"),
])
def test_npz_contents_are_validated(tmp_path, mutate, message):
    (x_train, y_train), (x_test, y_test) = small_split(12), small_split(6, 1)
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    mutate(arrays)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as error:
        data.load(str(path))
    assert str(path) in str(error.value)


def test_corrupt_npz_names_the_file(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="corrupt.npz': not a valid .npz"):
        data.load(str(path))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    arrays = write_idx_folder(tmp_path / "idx", gz=gz)
    dataset = data.load(str(tmp_path / "idx"))
    assert np.array_equal(dataset.x_train, arrays["x_train"])
    assert np.array_equal(dataset.y_test, arrays["y_test"])


def test_idx_bad_magic_and_truncation_are_reported(tmp_path):
    folder = tmp_path / "idx"
    write_idx_folder(folder)
    images = folder / "train-images-idx3-ubyte"
    raw = images.read_bytes()
    images.write_bytes((0x0803 + 1).to_bytes(4, "big") + raw[4:])
    with pytest.raises(DataError, match="bad magic number 0x00000804; expected 0x00000803"):
        data.load(str(folder))
    images.write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.load(str(folder))


def test_idx_folder_missing_a_file(tmp_path):
    folder = tmp_path / "idx"
    write_idx_folder(folder)
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        data.load(str(folder))


def test_unknown_source_lists_the_choices(tmp_path):
    with pytest.raises(DataError, match=r"Invalid value for `data`: '.*nowhere'\. Expected one "
                       r"of: auto, mnist, mnist-5k, or an existing mnist.npz"):
        data.load(str(tmp_path / "nowhere"))


def test_model_inputs_are_scaled_floats_with_a_channel():
    (x, _) = small_split(3)
    inputs = data.to_model_inputs(x)
    assert inputs.shape == (3, 28, 28, 1) and inputs.dtype == np.float32
    assert inputs.max() <= 1.0 and np.allclose(inputs[..., 0] * 255, x)


def test_subsample_is_reproducible_and_bounded():
    (x, y) = small_split(50)
    first = data.subsample(x, y, 10, seed=4)
    again = data.subsample(x, y, 10, seed=4)
    assert len(first[0]) == 10 and np.array_equal(first[0], again[0])
    assert data.subsample(x, y, None, seed=4)[0] is x
