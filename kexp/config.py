"""An experiment's settings: plain data, validated at once, saved to and read from JSON.

This is the one place defaults live; the CLI and the Makefile read them from here. `validate()`
runs before any data is loaded or run folder is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from kexp.errors import KexpError
from kexp.network import initializers

# Built by kexp.network.models; named here so that validating a config does not import Keras.
MODEL_NAMES = ("mnist_cnn", "convnet", "convnet_dense")
# The layers from the image to conv2 of each model, in order: "convN" is a Conv2D with a ReLU
# ('valid' padding, stride 1), "poolN" a POOL_SIZE x POOL_SIZE max-pool with the same stride.
# kexp.network.models builds them; kexp.probes.filter_views replays them from saved kernels with numpy alone.
CONV_STAGES = {"mnist_cnn": ("conv1", "conv2"), "convnet": ("conv1", "pool1", "conv2"),
               "convnet_dense": ("conv1", "pool1", "conv2")}
POOL_SIZE = 2
FREEZABLE_LAYERS = ("conv1", "conv2")
SCHEDULES = ("cosine", "constant")


class ConfigError(KexpError):
    """A setting outside what kexp accepts; the message names the value and the valid ones."""


def _invalid(name: str, value, expected: str) -> ConfigError:
    return ConfigError(f"Invalid value for `{name}`: {value!r}. Expected {expected}.")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# The largest count TensorFlow's int32 shapes and steps take; a bigger epoch or batch count is a
# typo, not a plan. Seeds go to numpy's legacy seeding (keras.utils.set_random_seed): < 2**32.
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1
MAX_FLOAT32 = initializers.MAX_FLOAT32


def _check_whole(name: str, value, low: int, high: int = MAX_COUNT, none_ok: bool = False,
                 note: str = "") -> None:
    if none_ok and value is None:
        return
    if not _is_int(value) or not low <= value <= high:
        expected = f"a whole number >= {low}{note} (at most {high})"
        raise _invalid(name, value, expected + (", or nothing for the default" if none_ok else ""))


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to repeat a training run. Frozen: a config is a value, never shared
    state (argparse and every caller get their own)."""

    model: str = "convnet_dense"  # measured best in about a minute (README, "Training recipe")
    init: str = "glorot_uniform"  # Keras' default for Conv2D
    init_conv2: str | None = None  # None: the same as `init`
    conv2_filters: int | None = None  # None: the architecture's own (32 or 64)
    freeze: tuple[str, ...] = ()  # layers whose kernels stay as initialized
    epochs: int = 60
    batch_size: int = 128
    learning_rate: float = 3e-3  # Adam; the peak of the schedule
    schedule: str = "cosine"  # cosine: decay to 0 over all planned steps; constant: no decay
    warmup_epochs: int = 0  # linear warm-up from 0 to learning_rate before the decay
    augment: bool = True  # random rotation/shift/zoom of training batches only
    rotation_degrees: float = 10.0  # augmentation: rotate by up to +-this many degrees
    shift_fraction: float = 0.1  # augmentation: shift by up to this fraction of the image size
    zoom_fraction: float = 0.1  # augmentation: scale by a factor in 1 +- this
    validation_fraction: float = 0.1  # stratified slice of the training digits; 0: none
    seed: int = 0
    data: str = "auto"
    train_samples: int | None = None  # None: all training samples of the source
    test_samples: int | None = None
    snapshot_every_epochs: int = 1
    snapshot_every_batches: int = 0  # >0: also snapshot conv kernels every K batches of epoch 1
    deterministic: bool = False  # TensorFlow op determinism (bit-identical final kernels)
    tensorboard: bool = False  # also write Keras TensorBoard logs into <run>/tensorboard
    runs_dir: str = "runs"

    def __post_init__(self):
        # JSON and argparse hand over lists; a frozen config keeps an immutable tuple.
        if isinstance(self.freeze, list):
            object.__setattr__(self, "freeze", tuple(self.freeze))

    @functools.cached_property
    def init_specs(self) -> tuple[initializers.InitializerSpec, initializers.InitializerSpec]:
        """The parsed initializers of conv1 and conv2. Parsed once, when `validate` first asks
        (the config is frozen, so they never go stale); training hands them to the model."""
        init_spec = initializers.parse_spec(self.init)
        if self.init_conv2 is None:
            return init_spec, init_spec
        try:
            return init_spec, initializers.parse_spec(self.init_conv2)
        except initializers.InitializerError as error:
            raise ConfigError(str(error).replace("`init`", "`init_conv2`")) from error

    def validate(self) -> "TrainConfig":
        """Check every field; raise ConfigError (InitializerError for `init`) naming the first
        bad value."""
        if self.model not in MODEL_NAMES:
            raise _invalid("model", self.model, f"one of: {', '.join(MODEL_NAMES)}")
        self.init_specs  # noqa: B018  (parses and checks both initializer specs)
        if self.schedule not in SCHEDULES:
            raise _invalid("schedule", self.schedule, f"one of: {', '.join(SCHEDULES)}")
        if not isinstance(self.augment, bool):
            raise _invalid("augment", self.augment, "true or false")
        for name, upper in (("rotation_degrees", 180.0), ("shift_fraction", 1.0),
                            ("zoom_fraction", 0.9), ("validation_fraction", 0.5)):
            value = getattr(self, name)
            if (not isinstance(value, (int, float)) or isinstance(value, bool)
                    or not 0 <= value <= upper):
                raise _invalid(name, value, f"a number from 0 to {upper:g}")
        for name in ("epochs", "batch_size", "snapshot_every_epochs"):
            _check_whole(name, getattr(self, name), 1)
        _check_whole("warmup_epochs", self.warmup_epochs, 0)
        if self.schedule == "cosine" and 0 < self.epochs <= self.warmup_epochs:
            raise _invalid("warmup_epochs", self.warmup_epochs,
                           f"fewer than the {self.epochs} epochs planned")
        for name in ("conv2_filters", "train_samples", "test_samples"):
            _check_whole(name, getattr(self, name), 1, none_ok=True)
        _check_whole("snapshot_every_batches", self.snapshot_every_batches, 0,
                     note=" (0: only per epoch)")
        _check_whole("seed", self.seed, 0, MAX_SEED)
        if (not isinstance(self.learning_rate, (int, float)) or isinstance(self.learning_rate, bool)
                or not 0 <= self.learning_rate <= MAX_FLOAT32):
            raise _invalid("learning_rate", self.learning_rate,
                           f"a number from 0 (trains nothing: a control run) to {MAX_FLOAT32:.4g}")
        unknown = [layer for layer in self.freeze if layer not in FREEZABLE_LAYERS]
        if unknown or len(set(self.freeze)) != len(self.freeze):
            raise _invalid("freeze", ",".join(self.freeze),
                           f"layer names from: {', '.join(FREEZABLE_LAYERS)}, each once")
        if not isinstance(self.data, str) or not self.data.strip():
            raise _invalid("data", self.data, "auto, mnist, mnist-5k, or a path")
        if not isinstance(self.runs_dir, str) or not self.runs_dir.strip():
            raise _invalid("runs_dir", self.runs_dir,
                           "a folder path (kexp never writes runs into the current folder)")
        return self

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["freeze"] = list(self.freeze)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"Unknown settings: {', '.join(unknown)}. "
                              f"Expected only: {', '.join(sorted(known))}.")
        return cls(**values)


DEFAULTS = TrainConfig()  # immutable: read its fields, never change them

# The filters conv2 gets by default, by model (kexp.network.models builds them).
DEFAULT_CONV2_FILTERS = {"mnist_cnn": 32, "convnet": 64, "convnet_dense": 64}


def least_memory_bytes(config: TrainConfig) -> int:
    """A lower bound on the memory that training `config` needs: conv2's kernel and the layer
    after it (at least one weight per class for each flattened conv2 output), each with its
    gradient and Adam's two moments, and one batch of conv2 outputs with their gradient, in
    float32. What a huge --conv2-filters asks for, known before TensorFlow builds anything."""
    filters = config.conv2_filters or DEFAULT_CONV2_FILTERS[config.model]
    side = 28
    for stage in CONV_STAGES[config.model]:
        side = side - 2 if stage.startswith("conv") else side // POOL_SIZE
    weights = 3 * 3 * 32 * filters + (side // POOL_SIZE) ** 2 * filters * 10
    batch = min(config.batch_size, config.train_samples or 60_000)  # no batch exceeds the data
    return 4 * (4 * weights + 2 * batch * side * side * filters)


def available_memory_bytes() -> int | None:
    """The memory this machine can give a new process now (MemAvailable), or None unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo
                        if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def check_memory(config: TrainConfig) -> TrainConfig:
    """Refuse a model too large for this machine before it is built (TensorFlow would end in a
    ResourceExhaustedError traceback, or the kernel's OOM killer)."""
    needed, available = least_memory_bytes(config), available_memory_bytes()
    if available is not None and needed > available:
        name = "conv2_filters" if config.conv2_filters else "batch_size"
        raise _invalid(name, getattr(config, name),
                       f"a model that fits in memory: {config.model} with "
                       f"{config.conv2_filters or 'its'} conv2 filters needs at least "
                       f"{needed / 2**30:,.1f} GiB (batch size {config.batch_size}), and "
                       f"{available / 2**30:,.1f} GiB is available "
                       f"(the architecture's own: {DEFAULT_CONV2_FILTERS[config.model]})")
    return config
