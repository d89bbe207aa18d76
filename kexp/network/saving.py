"""Saving and loading whole Keras models: an atomic save, and a load in Keras' safe mode only.

`model.save` writes in place, so a crash or a full disk can leave a truncated file where a good
one was; here it writes a temporary sibling that is fsynced and renamed, like every file of a run
folder. Loading registers kexp's own classes first (its initializers and TrueConv2D), so a model
that uses them loads in a fresh process, and never turns safe mode off (a model file could
then run code while it loads).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import keras

# keras_initializers and layers are imported to register kexp's classes with Keras.
from kexp.network import keras_initializers, layers  # noqa: F401
from kexp.storage import atomic, files, runs


class ModelLoadError(runs.RunError):
    """A model file that kexp refuses or fails to load; the message says which and why."""


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> Path:
    """model.save to a temporary name beside `path`, fsync, then rename: a crash or a full disk
    never leaves a truncated model where a good one was."""
    return atomic.write_path_atomic(Path(path), model.save)


def load_model(path: str | os.PathLike) -> keras.Model:
    """`keras.saving.load_model` with safe mode on (never off): a file whose loading would run
    Python code, such as a `Lambda` layer's lambda, is refused with a clear ModelLoadError
    instead of Keras' advice to turn safe mode off."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"Invalid value for `model`: '{path}'. Expected an existing "
                             ".keras file.")
    files.file_size(path, ModelLoadError, "a .keras file")  # a directory, a device: refused
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(f"Cannot load '{path}': not a .keras zip archive (truncated or "
                             "corrupt). Expected a model saved by kexp or keras.Model.save.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001  a damaged archive fails in many ways inside Keras
        if "Lambda" in str(error) or "safe_mode" in str(error):
            raise ModelLoadError(
                f"Refused to load '{path}': it contains Python code (a `Lambda` layer) that "
                "would run while loading, and kexp loads models only in Keras' safe mode. "
                "Expected a model without Lambda layers, such as one saved by kexp.") from error
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelLoadError(f"Cannot load '{path}' as a Keras model: {first_line}") from error
