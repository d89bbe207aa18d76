"""kexp.Run: a run folder as an object, for notebooks and scripts: what was trained, how it went,
every kernel snapshot, the figures and views, shown as a card in Jupyter.

Each attribute is read from the folder when asked for, through the same checked readers as the
command line (kexp.storage.runs, kexp.probes.filter_views, kexp.views.force_figures), so a
damaged or partial run gives the same one-line errors, per attribute: a run whose config.json is
gone still lists its snapshots. Nothing here imports TensorFlow, except `Run.model()` and
training a run.

    import kexp
    run = kexp.open_run()                 # the newest run in runs/; a Jupyter cell shows a card
    run.config.init, run.status, run.history["val_accuracy"]
    before, after = run.kernels("initial")["conv1"], run.kernels(run.snapshots[-1])["conv1"]
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path, PurePath

import numpy as np

from kexp.config import DEFAULTS, TrainConfig
from kexp.errors import KexpError
from kexp.probes import filter_views
from kexp.storage import files, runs
from kexp.views import force_figures, plots, view_figures

CARD_DPI = 48  # the card's conv1 picture: about 720 x 150 pixels, a few kilobytes
FIGURE_SUFFIXES = (".png", ".gif")


class Run:
    """One run folder. Path-like (`os.fspath`, `/`, `.name`, `.parent`; `.path` is the Path), so
    code that took the folder `kexp.train` used to return keeps working."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # --- the folder as a path
    def __fspath__(self) -> str:
        return os.fspath(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __truediv__(self, name: str | os.PathLike) -> Path:
        return self.path / name

    def __eq__(self, other) -> bool:
        if isinstance(other, Run):
            other = other.path
        return self.path == other if isinstance(other, PurePath) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def parent(self) -> Path:
        return self.path.parent

    def exists(self) -> bool:
        return self.path.exists()

    # --- what the folder records
    @property
    def config(self) -> TrainConfig:
        """The settings the run was trained with (config.json, checked as the CLI checks it)."""
        return runs.read_config(self.path)

    @property
    def status_record(self) -> dict:
        """status.json: status, timestamps, final metrics (a dead writer reads as crashed)."""
        return runs.read_status(self.path)

    @property
    def status(self) -> str:
        """running, finished, failed, interrupted or crashed."""
        return self.status_record["status"]

    @property
    def history(self) -> dict[str, np.ndarray]:
        """history.csv by column: {"epoch": [1, 2, ...], "loss": [...], "val_accuracy": ...};
        {} before the first epoch ended."""
        rows = runs.read_history(self.path)
        columns = dict.fromkeys(key for row in rows for key in row)
        return {column: np.array([row.get(column, np.nan) for row in rows])
                for column in columns}

    @property
    def snapshots(self) -> list[str]:
        """The labels of the kernel snapshots in training order: initial, epoch_001, ...,
        interrupted, final (what `kernels` and `biases` take)."""
        return [label for label, _ in runs.snapshot_sequence(self.path)]

    def kernels(self, label: str) -> dict[str, np.ndarray]:
        """The conv kernels of snapshot `label` by layer: (kh, kw, c_in, c_out) arrays."""
        return runs.load_kernels(runs.snapshot_path(self.path, label))

    def biases(self, label: str) -> dict[str, np.ndarray]:
        """The conv biases of snapshot `label` by layer."""
        return runs.load_biases(runs.snapshot_path(self.path, label))

    @property
    def figures(self) -> dict[str, Path]:
        """The figures drawn so far, by name without suffix: {"conv1_before_after": Path, ...}."""
        folder = self._folder(runs.FIGURES_DIR)
        if folder is None:
            return {}
        return {path.stem: path for path in sorted(folder.iterdir())
                if path.suffix in FIGURE_SUFFIXES and path.is_file()}

    @property
    def views(self) -> dict:
        """What the filters respond to, where the run has the files for it: "probe_digits"
        (images (n, 28, 28, 1), labels), "feature_maps" and "top_patches" of those digits
        ({"before"|"after": {layer: ...}}, replayed from the initial and the newest snapshot),
        "optimal_inputs" ({"before"|"after": {layer: {"images", "activation"}}}) and "forces"
        (per-class gradients at a few moments of training, kexp.views.force_figures.read_forces).
        The probe digits and feature maps are read-only arrays, as the figures and the page share
        them (kexp.views.run_replay): copy one to change it."""
        found = {}
        if self._folder(runs.VIEWS_DIR) is None:
            return found
        before_and_after = self._before_and_after()
        if before_and_after is not None:
            computed = view_figures.run_patches_and_maps(self.path, {
                "before": before_and_after[0][1], "after": before_and_after[1][1]})
            if computed is not None:
                images, labels, found["feature_maps"], found["top_patches"] = computed
                found["probe_digits"] = (images, labels)
        elif filter_views.has_probe_digits(self.path):
            found["probe_digits"] = filter_views.read_probe_digits(self.path)
        optimal_inputs = filter_views.read_optimal_inputs(self.path)
        if optimal_inputs:
            found["optimal_inputs"] = optimal_inputs
        if os.path.lexists(self.path / runs.VIEWS_DIR / runs.FORCES_FILE):
            found["forces"] = force_figures.read_forces(self.path)
        return found

    @property
    def page(self) -> Path | None:
        """The run's page (index.html: every filter from its draw to what it became), where
        written."""
        path = self.path / runs.PAGE_FILE
        return path if path.is_file() else None

    def model(self):
        """The trained Keras model (model.keras), loaded in safe mode. Imports TensorFlow."""
        from kexp.network import saving  # TensorFlow only for the one attribute that needs it

        return saving.load_model(self.path / runs.MODEL_FILE)

    def _before_and_after(self) -> tuple[tuple[str, Path], tuple[str, Path]] | None:
        """The initial and the newest snapshot (label, path), None before the first epoch."""
        try:
            return runs.first_and_last_snapshots(self.path)
        except runs.RunError:
            return None

    def _folder(self, name: str) -> Path | None:
        """Subfolder `name` of the run, None where it does not exist; RunError where something
        else is there (a file, a symlink loop)."""
        folder = self.path / name
        problem = files.folder_problem(folder)
        if problem:
            raise runs.RunError(f"Cannot read '{folder}': it {problem}. Expected the folder "
                                "kexp writes there.")
        return folder if folder.is_dir() else None

    # --- how Jupyter shows it
    def facts(self) -> dict[str, str]:
        """The card's lines as text: status, model, init, seed, epochs, test accuracy. A line
        whose file cannot be read shows the error instead, so a damaged run still shows."""
        readers = {"status": lambda: self.status,
                   **{key: lambda key=key: str(getattr(self.config, key))
                      for key in ("model", "init", "seed")},
                   "epochs": lambda: f"{len(self.history.get('epoch', ()))} of "
                                     f"{self.config.epochs}",
                   "test accuracy": lambda: _accuracy(self.status_record.get("test_accuracy"))}
        return {key: _read(reader) for key, reader in readers.items()}

    def conv1_picture(self) -> str | None:
        """conv1 before / after / difference, drawn small, as a PNG data: URI; None where the
        run has no readable conv1 before and after training."""
        before_and_after = self._before_and_after()
        if before_and_after is None:
            return None
        (_, before_path), (after_label, after_path) = before_and_after
        try:
            before = runs.load_kernels(before_path)
            after = runs.load_kernels(after_path, like=before)
        except KexpError:
            return None
        if "conv1" not in before:
            return None
        figure = plots.plot_filter_grids(before["conv1"], after["conv1"],
                                         after_title=f"after ({after_label})")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=CARD_DPI)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

    def page_link(self) -> str:
        """A relative link to the run page (relative to the current folder, where a notebook's
        kernel runs), or a note on how to write it."""
        page = self.page
        if page is None:
            return "<span>no run page yet (kexp visualize writes it)</span>"
        href = Path(os.path.relpath(page)).as_posix()
        return f'<a href="{html.escape(href)}" target="_blank">run page</a>'

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th style=\"text-align:left\">{html.escape(key)}</th>"
                       f"<td style=\"text-align:left\">{html.escape(value)}</td></tr>"
                       for key, value in self.facts().items())
        picture = self.conv1_picture()
        image = ("" if picture is None else
                 f'<div><img src="{picture}" alt="conv1 filters before and after training" '
                 'style="max-width:100%"></div>')
        return (f'<div class="kexp-run"><strong>{html.escape(self.name)}</strong>'
                f"<table>{rows}</table>{image}<div>{self.page_link()}</div></div>")


def _read(reader) -> str:
    """What `reader()` returns, or the message of the KexpError it raises (a damaged file)."""
    try:
        return reader()
    except KexpError as error:
        return f"unreadable: {error}"


def _accuracy(value: float | None) -> str:
    return "not tested" if value is None else f"{value:.4f}"


class RunList(list):
    """Runs, newest first; a Jupyter cell shows them as one table."""

    def _repr_html_(self) -> str:
        if not self:
            return "<p>No runs.</p>"
        rows = []
        for run in self:
            facts = run.facts()
            header = ["run", *facts, "page"]
            cells = [html.escape(run.name), *map(html.escape, facts.values()), run.page_link()]
            rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
        return f'<table class="kexp-runs"><tr>{head}</tr>{"".join(rows)}</table>'


def open_run(run: str | os.PathLike | None = None, runs_dir: str | os.PathLike = DEFAULTS.runs_dir
             ) -> Run:
    """The run `run` names (a path to a run folder, or a folder name inside `runs_dir`), the
    newest one in `runs_dir` when None; refused at once when it is no run folder, as the CLI
    refuses it. What the folder holds is read later, attribute by attribute."""
    return Run(runs.resolve_run(None if run is None else os.fspath(run), runs_dir,
                                allow_all=False)[0])


def list_runs(runs_dir: str | os.PathLike = DEFAULTS.runs_dir) -> RunList:
    """The runs in `runs_dir`, newest first."""
    return RunList(Run(path) for path in reversed(runs.list_runs(runs_dir)))


def train(config: TrainConfig, extra_callbacks=(), verbose: int | str = "auto") -> Run:
    """Train `config` (kexp.training.trainer.train) and return the run. Imports TensorFlow."""
    from kexp.training import trainer  # TensorFlow only once a model is trained

    return Run(trainer.train(config, extra_callbacks, verbose))


def resume(run_dir: str | os.PathLike, extra_callbacks=(), verbose: int | str = "auto") -> Run:
    """Continue an interrupted, failed or crashed run (kexp.training.trainer.resume) and return
    it."""
    from kexp.training import trainer  # TensorFlow only once a model is trained

    return Run(trainer.resume(Path(run_dir), extra_callbacks, verbose))
