"""An experiment's settings: plain data, validated at once, saved to and read from JSON.

This is the one place defaults live, and the one place each setting is described: a field's
metadata (`option`) holds its kind, bounds, choices and help, from which kexp.cli_options builds
the `train` options (and `compare`'s share of them) and `validate()` checks it. `validate()` runs
before any data is loaded or run folder is created, so bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from kexp.errors import KexpError
from kexp.network import initializers
from kexp.validation import check_whole

# Built by kexp.network.models; named here so that validating a config does not import Keras.
MODEL_NAMES = ("mnist_cnn", "convnet", "convnet_dense")
# The conv layers every model has, in order: their kernels are the filters kexp follows (the
# snapshots, the forces, the page's cards), and the layers `freeze` may name.
CONV_LAYERS = ("conv1", "conv2")
# The shapes every model shares: MNIST's 28x28 digits of one channel (kexp.digits loads them),
# NUM_CLASSES outputs, conv1's CONV1_FILTERS filters, a KERNEL_SIZE window in each conv layer.
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
CONV1_FILTERS = 32
KERNEL_SIZE = (3, 3)
# The layers from the image to conv2 of each model, in order: "convN" is a Conv2D with a ReLU
# ('valid' padding, stride 1), "poolN" a POOL_SIZE x POOL_SIZE max-pool with the same stride.
# kexp.network.models builds them; kexp.probes.filter_views replays them from saved kernels with numpy alone.
CONV_STAGES = {"mnist_cnn": CONV_LAYERS, "convnet": ("conv1", "pool1", "conv2"),
               "convnet_dense": ("conv1", "pool1", "conv2")}
POOL_SIZE = 2
FREEZABLE_LAYERS = CONV_LAYERS
SCHEDULES = ("cosine", "constant")


class ConfigError(KexpError):
    """A setting outside what kexp accepts; the message names the value and the valid ones."""


def _invalid(name: str, value, expected: str) -> ConfigError:
    return ConfigError(f"Invalid value for `{name}`: {value!r}. Expected {expected}.")


# The largest count TensorFlow's int32 shapes and steps take; a bigger epoch or batch count is a
# typo, not a plan. Seeds go to numpy's legacy seeding (keras.utils.set_random_seed): < 2**32.
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1
MAX_FLOAT32 = initializers.MAX_FLOAT32

# The kinds of setting: what a field holds, how the command line reads it, how it is checked.
WHOLE, NUMBER, CHOICE, TEXT, FLAG, NAMES = "whole", "number", "choice", "text", "flag", "names"


def option(default, kind: str, help: str, **rules) -> dataclasses.Field:
    """A TrainConfig field, described once. rules: `low`/`high` (WHOLE, NUMBER), `note` (what a
    bound means), `choices` (CHOICE, NAMES), `expected` (the words of the error), `flag` (the
    option's spelling where it is not --field-name). A default of None means "nothing for the
    default" and is allowed."""
    return dataclasses.field(default=default, metadata={"kind": kind, "help": help, **rules})


def option_flag(item: dataclasses.Field) -> str:
    """The command-line spelling of a setting: --batch-size for batch_size, unless it says."""
    return item.metadata.get("flag") or "--" + item.name.replace("_", "-")


def check_setting(item: dataclasses.Field, value) -> None:
    """Refuse `value` for the setting `item` as its metadata describes it (ConfigError)."""
    rules, name = item.metadata, item.name
    kind = rules.get("kind")
    if kind == WHOLE:
        check_whole(name, value, rules["low"], rules.get("high", MAX_COUNT), note=rules.get(
            "note", ""), none="nothing for the default" if item.default is None else None,
            error=ConfigError)
    elif kind == NUMBER and (not isinstance(value, (int, float)) or isinstance(value, bool)
                             or not rules["low"] <= value <= rules["high"]):
        raise _invalid(name, value, rules.get("expected")
                       or f"a number from {rules['low']:g} to {rules['high']:g}")
    elif kind == CHOICE and value not in rules["choices"]:
        raise _invalid(name, value, f"one of: {', '.join(rules['choices'])}")
    elif kind == FLAG and not isinstance(value, bool):
        raise _invalid(name, value, "true or false")
    elif kind == NAMES and (any(each not in rules["choices"] for each in value)
                            or len(set(value)) != len(value)):
        raise _invalid(name, ",".join(value),
                       f"layer names from: {', '.join(rules['choices'])}, each once")
    elif kind == TEXT and "expected" in rules and (not isinstance(value, str)
                                                   or not value.strip()):
        raise _invalid(name, value, rules["expected"])


def build_from(cls, values: dict, error: type[Exception] = ConfigError):
    """`cls(**values)` for a settings dataclass, refusing a key it does not have (a typo in a
    JSON file would otherwise be dropped silently or end in a TypeError)."""
    known = {item.name for item in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise error(f"Unknown settings: {', '.join(unknown)}. "
                    f"Expected only: {', '.join(sorted(known))}.")
    return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    """Everything needed to repeat a training run. Frozen: a config is a value, never shared
    state (argparse and every caller get their own)."""

    model: str = option(  # measured best in about a minute (docs: the training recipe)
        "convnet_dense", CHOICE, "the network that kexp.network.models builds",
        choices=MODEL_NAMES)
    init: str = option("glorot_uniform", TEXT,  # Keras' default for Conv2D
                       "kernel initializer of the conv layers, NAME or NAME:key=value,...; see "
                       "`kexp initializers`")
    init_conv2: str | None = option(None, TEXT, "initializer for conv2 only (default: the same "
                                    "as --init)")
    conv2_filters: int | None = option(None, WHOLE, "filters in conv2 (default: the "
                                       "architecture's own)", low=1)
    freeze: tuple[str, ...] = option((), NAMES, "comma-separated conv layers that keep their "
                                     "initial kernels (default: none)", choices=FREEZABLE_LAYERS)
    epochs: int = option(60, WHOLE, "passes over the training digits", low=1)
    batch_size: int = option(128, WHOLE, "training digits per step", low=1)
    learning_rate: float = option(
        3e-3, NUMBER, "Adam's learning rate (the peak of --schedule)", low=0, high=MAX_FLOAT32,
        expected=f"a number from 0 (trains nothing: a control run) to {MAX_FLOAT32:.4g}")
    schedule: str = option("cosine", CHOICE, "cosine: decay the learning rate to 0 over all "
                           "planned steps; constant: no decay", choices=SCHEDULES)
    warmup_epochs: int = option(0, WHOLE, "linear warm-up from 0 to the learning rate before "
                                "the decay", low=0)
    augment: bool = option(True, FLAG, "randomly rotate, shift and zoom the training batches "
                           "(never the validation or test digits)")
    rotation_degrees: float = option(10.0, NUMBER, "augmentation: rotate by up to +-this many "
                                     "degrees", low=0, high=180)
    shift_fraction: float = option(0.1, NUMBER, "augmentation: shift by up to this fraction of "
                                   "the image size", low=0, high=1)
    zoom_fraction: float = option(0.1, NUMBER, "augmentation: scale by a factor in 1 +- this",
                                  low=0, high=0.9)
    validation_fraction: float = option(
        0.1, NUMBER, "stratified share of the training digits kept for val_* metrics (0: none); "
        "the test digits are evaluated once, after training", low=0, high=0.5)
    seed: int = option(0, WHOLE, "the random seed: initial kernels, data order, augmentation",
                       low=0, high=MAX_SEED)
    data: str = option("auto", TEXT, "auto, mnist (Keras' loader), mnist-5k (offline subset), "
                       "or a path to mnist.npz / a folder of IDX files",
                       expected="auto, mnist, mnist-5k, or a path")
    train_samples: int | None = option(None, WHOLE, "use at most this many training samples "
                                       "(default: all)", low=1)
    test_samples: int | None = option(None, WHOLE, "use at most this many test samples "
                                      "(default: all)", low=1)
    snapshot_every_epochs: int = option(1, WHOLE, "save conv kernels every N epochs", low=1,
                                        flag="--snapshot-every")
    snapshot_every_batches: int = option(
        0, WHOLE, "also save conv kernels every K batches of the first epoch (0: off)", low=0,
        note=" (0: only per epoch)", flag="--snapshot-batches")
    deterministic: bool = option(False, FLAG, "TensorFlow op determinism: bit-identical final "
                                 "kernels")
    tensorboard: bool = option(False, FLAG, "also write Keras TensorBoard logs into the run "
                               "folder (`make tensorboard` shows them)")
    figures: bool = option(True, FLAG, "draw the run's figures and its page when training ends "
                           "(--no-figures: a quicker end; `kexp visualize` draws them later)")
    runs_dir: str = option("runs", TEXT, "folder of the run folders",
                           expected="a folder path (kexp never writes runs into the current "
                                    "folder)")

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
        """Check every field as its metadata says, then what ties fields together; raise
        ConfigError (InitializerError for `init`) naming the first bad value."""
        for item in dataclasses.fields(self):
            check_setting(item, getattr(self, item.name))
        self.init_specs  # noqa: B018  (parses and checks both initializer specs)
        if self.schedule == "cosine" and 0 < self.epochs <= self.warmup_epochs:
            raise _invalid("warmup_epochs", self.warmup_epochs,
                           f"fewer than the {self.epochs} epochs planned")
        return self

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["freeze"] = list(self.freeze)
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        return build_from(cls, values)


DEFAULTS = TrainConfig()  # immutable: read its fields, never change them

# The filters conv2 gets by default, by model (kexp.network.models builds them).
DEFAULT_CONV2_FILTERS = {"mnist_cnn": 32, "convnet": 64, "convnet_dense": 64}


def least_memory_bytes(config: TrainConfig) -> int:
    """A lower bound on the memory that training `config` needs: conv2's kernel and the layer
    after it (at least one weight per class for each flattened conv2 output), each with its
    gradient and Adam's two moments, and one batch of conv2 outputs with their gradient, in
    float32. What a huge --conv2-filters asks for, known before TensorFlow builds anything."""
    filters = config.conv2_filters or DEFAULT_CONV2_FILTERS[config.model]
    side = IMAGE_SHAPE[0]
    for stage in CONV_STAGES[config.model]:
        side = side - KERNEL_SIZE[0] + 1 if stage.startswith("conv") else side // POOL_SIZE
    weights = (KERNEL_SIZE[0] * KERNEL_SIZE[1] * CONV1_FILTERS * filters
               + (side // POOL_SIZE) ** 2 * filters * NUM_CLASSES)
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
