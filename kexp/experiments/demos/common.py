"""What the claims' demos share: the settings of their small training runs, where a demo
writes (DemoContext, with the runs it shares with other demos), the start of the hand-written
Keras trainings, and the figure pieces several demos draw."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kexp.config import CONV1_FILTERS, KERNEL_SIZE, TrainConfig
from kexp.storage import atomic, runs
from kexp.training import tf_startup

# Every training demo uses these settings: small enough for 2 CPU cores in a few minutes. They
# are short runs on all 4,000 training digits without augmentation at a constant learning rate,
# not `make train`'s converged recipe: each demo isolates one claim, and its numbers in the
# README were measured with exactly this recipe.
DATA = "mnist-5k"
MODEL = "convnet"
EPOCHS = 3
TRAIN_SAMPLES = 4000
TEST_SAMPLES = 1000
SEED = 0
LEARNING_RATE = 1e-3
RECIPE = {"augment": False, "schedule": "constant", "validation_fraction": 0.0}
# Each demo draws its own figures, so its trainings end without the run's (`kexp visualize RUN`
# draws them); their optimal inputs are computed as in every run (demo 15 reads them).
RUN_FIGURES = False

# The claims about *trained* filters (demos 2, 10 and 15) are judged on filters that finished
# learning: one run of the default recipe (`make train`: TrainConfig's defaults, 60 epochs with
# augmentation and a cosine schedule) on the same digits and seed, trained once per `kexp demo
# all` and shared. Its control (learning rate 0) runs the same recipe for CONTROL_EPOCHS.
CONVERGED = {"data": DATA, "seed": SEED}  # every other setting: TrainConfig's default
CONTROL_EPOCHS = 1
# Settings that change what a run records, not what it learns.
RECORDING_ONLY = ("runs_dir", "tensorboard", "snapshot_every_epochs", "snapshot_every_batches",
                  "figures")

CONV1_SHAPE = (*KERNEL_SIZE, 1, CONV1_FILTERS)  # every model's conv1 kernel: 32 filters of 3x3
DEMO_RUNS_DIR = "runs"  # training runs go to <out_dir>/runs/
PALETTE_COLOURS = 256  # demo figures are palette PNGs: small enough to copy into the README


def import_keras():
    """Keras, imported only when a demo needs it (so `kexp --help` stays fast), with TensorFlow's
    C++ log quiet."""
    tf_startup.start_tensorflow()  # its start-up lines left out
    import keras

    return keras


@dataclass
class DemoContext:
    """Where a demo writes, and the training runs it shares with other demos in this process."""

    out_dir: Path
    figures_dir: Path | None = None
    runs: dict = field(default_factory=dict)
    converged_dir: Path | None = None  # a finished run of the default recipe, reused if given

    def __post_init__(self):
        if self.converged_dir is not None:
            check_converged_run(Path(self.converged_dir))

    def save(self, figure, stem: str) -> Path:
        """Write the figure as <stem>.png (and a copy into figures_dir), atomically."""
        from kexp.views import plots

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = plots.save_figure(figure, self.out_dir / f"{stem}.png", PALETTE_COLOURS)
        if self.figures_dir:
            self.figures_dir.mkdir(parents=True, exist_ok=True)
            atomic.write_bytes_atomic(self.figures_dir / path.name, path.read_bytes())
        return path

    def run(self, init: str, freeze: tuple[str, ...] = (), learning_rate: float = LEARNING_RATE
            ) -> dict:
        """Train (once per process) the demo model with `init`; returns its conv kernels before
        and after, test accuracy and run folder."""
        key = (init, tuple(freeze), learning_rate)
        if key not in self.runs:
            import_keras()
            from kexp.training import trainer

            config = TrainConfig(model=MODEL, init=init, freeze=list(freeze), epochs=EPOCHS,
                                 learning_rate=learning_rate, seed=SEED, data=DATA,
                                 train_samples=TRAIN_SAMPLES, test_samples=TEST_SAMPLES,
                                 runs_dir=str(self.out_dir / DEMO_RUNS_DIR),
                                 figures=RUN_FIGURES, **RECIPE)
            self.runs[key] = read_run(trainer.train(config, verbose=0))
        return self.runs[key]

    def converged(self, learning_rate: float | None = None) -> dict:
        """The default recipe's run (converged_dir, or trained once here), as `run` returns it;
        with `learning_rate` (the control) the same recipe for CONTROL_EPOCHS at that rate."""
        key = ("converged", learning_rate)
        if key not in self.runs:
            if learning_rate is None and self.converged_dir is not None:
                self.runs[key] = read_run(Path(self.converged_dir))
            else:
                import_keras()
                from kexp.training import trainer

                changes = {} if learning_rate is None else {
                    "learning_rate": learning_rate, "epochs": CONTROL_EPOCHS,
                    "figures": RUN_FIGURES}
                config = converged_config(self.out_dir / DEMO_RUNS_DIR, **changes)
                self.runs[key] = read_run(trainer.train(config, verbose=0))
                if learning_rate is None:
                    self.converged_dir = Path(self.runs[key]["run_dir"])
        return self.runs[key]


def converged_config(runs_dir, **changes) -> TrainConfig:
    """The default recipe on the demos' digits and seed (`make train` with data=mnist-5k)."""
    return TrainConfig(**CONVERGED, runs_dir=str(runs_dir), **changes)


def check_converged_run(run_dir: Path) -> None:
    """Refuse a folder that is not a finished run of exactly the default recipe (its runs_dir
    aside): the demos' numbers are stated for that run."""
    try:
        settings = runs.read_config(run_dir).to_dict()
    except runs.RunError as error:
        raise runs.RunError(f"Invalid value for `converged_run`: '{run_dir}' is not a run folder "
                            f"({error}). Expected a finished run of the default recipe.") from None
    expected = converged_config(settings["runs_dir"]).to_dict()
    for name, value in expected.items():
        if name not in RECORDING_ONLY and settings.get(name) != value:
            raise runs.RunError(f"Invalid value for `converged_run`: '{run_dir}' has {name}="
                                f"{settings.get(name)!r}. Expected a finished run of the "
                                f"default recipe ({name}={value!r}).")
    status = runs.read_status(run_dir)["status"]
    if status != runs.STATUS_FINISHED:
        raise runs.RunError(f"Invalid value for `converged_run`: '{run_dir}' is {status}. "
                            "Expected a finished run of the default recipe.")


def read_run(run_dir: Path) -> dict:
    """A finished run's conv kernels before and after, test accuracy and folder."""
    kernels = Path(run_dir) / runs.KERNELS_DIR
    return {"before": runs.load_kernels(kernels / "initial.npz"),
            "after": runs.load_kernels(kernels / "final.npz"),
            "test_accuracy": runs.read_status(run_dir)["test_accuracy"],
            "run_dir": str(run_dir)}


# ---------------------------------------------------------------------------------------------
# The hand-written trainings (peak filter, flip invariance, Gaussian blur) start the same way;
# the first two also fit one watched layer the same way.

def seeded_sequential(seed: int, input_shape: tuple, layers: list, optimizer, loss,
                      metrics: tuple[str, ...] = ()):
    """Seed Keras' global random state with `seed`, then Sequential([Input, *layers]) compiled
    with `optimizer` and `loss`. The layers' initializers carry their own seeds."""
    keras = import_keras()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input(input_shape), *layers])
    model.compile(optimizer=optimizer, loss=loss, metrics=list(metrics) or None)
    return model


def fit_watching_kernel(model, layer: str, x: np.ndarray, y: np.ndarray, epochs: int,
                        batch_size: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit `model` quietly on shuffled batches; returns `layer`'s kernel before and after (as
    float64) and the fit history."""
    kernel = model.get_layer(layer).kernel
    initial = kernel.numpy().astype(float)
    history = model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    return initial, kernel.numpy().astype(float), history.history


# ---------------------------------------------------------------------------------------------
# Figure pieces.

def new_figure(width: float, height: float):
    """An empty figure with constrained layout, `width` x `height` inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def draw_matrix(ax, matrix: np.ndarray, limit: float, title: str, annotate: bool = True):
    """A small matrix drawn with the shared colour scale, each value written in its cell."""
    from kexp.views import plots

    image = ax.imshow(matrix, cmap=plots.CMAP, vmin=-limit, vmax=limit)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    if annotate:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(value) > 0.6 * limit else "black")
    return image
