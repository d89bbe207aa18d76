"""An experiment's settings: plain data, validated at once, saved to and read from JSON.

This is the one place defaults live; the CLI and the Makefile read them from here. `validate()`
runs before any data is loaded or run folder is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from kexp import initializers

MODEL_NAMES = ("mnist_cnn", "convnet")  # built by kexp.models; kept here so validation is fast
FREEZABLE_LAYERS = ("conv1", "conv2")


class ConfigError(ValueError):
    """A setting outside what kexp accepts; the message names the value and the valid ones."""


def _invalid(name: str, value, expected: str) -> ConfigError:
    return ConfigError(f"Invalid value for `{name}`: {value!r}. Expected {expected}.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class TrainConfig:
    """Everything needed to repeat a training run."""

    model: str = "mnist_cnn"
    init: str = "glorot_uniform"  # Keras' default for Conv2D
    init_conv2: str | None = None  # None: the same as `init`
    conv2_filters: int | None = None  # None: the architecture's own (32 or 64)
    freeze: list[str] = field(default_factory=list)  # layers whose kernels stay as initialized
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam
    seed: int = 0
    data: str = "auto"
    train_samples: int | None = None  # None: all training samples of the source
    test_samples: int | None = None
    snapshot_every_epochs: int = 1
    snapshot_every_batches: int = 0  # >0: also snapshot conv kernels every K batches of epoch 1
    deterministic: bool = False  # TensorFlow op determinism (bit-identical final kernels)
    tensorboard: bool = False  # also write Keras TensorBoard logs into <run>/tensorboard
    runs_dir: str = "runs"

    def validate(self) -> "TrainConfig":
        """Check every field; raise ConfigError naming the first bad value."""
        if self.model not in MODEL_NAMES:
            raise _invalid("model", self.model, f"one of: {', '.join(MODEL_NAMES)}")
        initializers.parse_spec(self.init)
        if self.init_conv2 is not None:
            try:
                initializers.parse_spec(self.init_conv2)
            except initializers.InitializerError as error:
                raise ConfigError(str(error).replace("`init`", "`init_conv2`")) from error
        for name in ("epochs", "batch_size", "snapshot_every_epochs"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise _invalid(name, value, "a whole number >= 1")
        for name in ("conv2_filters", "train_samples", "test_samples"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise _invalid(name, value, "a whole number >= 1, or nothing for the default")
        if not _is_int(self.snapshot_every_batches) or self.snapshot_every_batches < 0:
            raise _invalid("snapshot_every_batches", self.snapshot_every_batches,
                           "a whole number >= 0 (0: only per epoch)")
        if (not isinstance(self.learning_rate, (int, float)) or isinstance(self.learning_rate, bool)
                or not 0 <= self.learning_rate < float("inf")):
            raise _invalid("learning_rate", self.learning_rate,
                           "a number >= 0 (0 trains nothing: a control run)")
        if not _is_int(self.seed) or self.seed < 0:
            raise _invalid("seed", self.seed, "a whole number >= 0")
        unknown = [layer for layer in self.freeze if layer not in FREEZABLE_LAYERS]
        if unknown:
            raise _invalid("freeze", ",".join(self.freeze),
                           f"layer names from: {', '.join(FREEZABLE_LAYERS)}")
        if not isinstance(self.data, str) or not self.data.strip():
            raise _invalid("data", self.data, "auto, mnist, mnist-5k, or a path")
        return self

    @property
    def init_conv2_or_default(self) -> str:
        return self.init_conv2 or self.init

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown settings: {', '.join(unknown)}. "
                              f"Expected only: {', '.join(sorted(known))}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json_file(cls, path: Path) -> "TrainConfig":
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
        return cls.from_dict(payload.get("config", payload))


DEFAULTS = TrainConfig()
