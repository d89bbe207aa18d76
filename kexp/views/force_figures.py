"""forces.png: what pushed each conv1 filter where it went, drawn from views/forces.npz.

Per conv1 filter: its change over training (after - before) beside the push of each digit class
(minus the class's part of the gradient, summed over the moments kexp.training.forces
recorded), the pushes of every class and filter on one colour scale; the classes that pushed
hardest, and the cosine between the summed push and the real change. numpy + matplotlib only: a
run whose forces file is missing or damaged is still drawn, without this figure, and says why on
one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from kexp.storage import files, runs
from kexp.views import drawing, figure_labels

# The arrays of views/forces.npz (written by kexp.training.forces.ForceSnapshots): the
# completed epochs of each recorded moment, the classes, digits per class, computing seconds per
# moment, the sample's indices into the run's training digits, and per layer path
# "gradients/<path>": (moments, classes, kh, kw, c_in, c_out).
EPOCHS_KEY, CLASSES_KEY, COUNTS_KEY = "epochs", "classes", "counts"
SECONDS_KEY, SAMPLE_KEY, GRADIENT_PREFIX = "seconds", "sample_indices", "gradients/"
LAYER = "conv1"
TOP_CLASSES = 3  # classes named per filter
TILE_PIXELS = 3 + 1  # a 3x3 tile and its separator in the mosaics
INCHES_PER_ROW = 0.36
LABEL_POINTS = 7  # the filter, class and cosine labels
LABEL_INCHES = 0.8  # room for the filter labels left of the change, the cosines right of the pushes
CLASS_LABEL_INCHES = 0.5  # the class labels above the pushes, under their title


def read_forces(run_dir: Path) -> dict:
    """A run's views/forces.npz, checked (`read_forces_file`)."""
    return read_forces_file(Path(run_dir) / runs.VIEWS_DIR / runs.FORCES_FILE)


def read_forces_file(path: Path) -> dict:
    """A forces file checked: "epochs" and "seconds" (moments,), "classes" (classes,) and
    "gradients" {layer path: finite (moments, classes, kh, kw, c_in, c_out)}. Missing or
    damaged: RunError naming it."""
    expected = ("per-class gradients of the conv kernels written by kexp (kexp.training.forces): "
                "float (moments, classes, kh, kw, c_in, c_out) by layer")
    arrays = files.read_npz(path, runs.RunError, expected)
    gradients = {key[len(GRADIENT_PREFIX):]: array for key, array in arrays.items()
                 if key.startswith(GRADIENT_PREFIX)}
    if not gradients:
        raise runs.RunError(f"Cannot read '{path}': it holds no '{GRADIENT_PREFIX}<layer>' "
                            f"arrays. Expected {expected}.")
    moments, classes = "moments", "classes"
    files.check_arrays(arrays, {
        EPOCHS_KEY: ("iu", (moments,)), SECONDS_KEY: ("f", (moments,)),
        CLASSES_KEY: ("iu", (classes,)),
        **{GRADIENT_PREFIX + layer: ("f", (moments, classes, None, None, None, None))
           for layer in gradients}}, path, runs.RunError, expected)
    for layer, array in gradients.items():
        if not np.all(np.isfinite(array)):
            raise runs.RunError(f"Cannot read '{path}': its array '{GRADIENT_PREFIX}{layer}' "
                                f"holds NaN or infinite values. Expected {expected}.")
    return {"epochs": arrays[EPOCHS_KEY], "classes": arrays[CLASSES_KEY],
            "seconds": arrays[SECONDS_KEY], "gradients": gradients}


def class_pushes(gradients: np.ndarray) -> np.ndarray:
    """(moments, classes, ...) -> (classes, ...): minus each class's gradient, summed over the
    recorded moments."""
    return -gradients.sum(axis=0)


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Per output filter (last axis), the cosine between two kernels' filters (0 where one is
    zero)."""
    a, b = first.reshape(-1, first.shape[-1]), second.reshape(-1, second.shape[-1])
    norms = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    return np.where(norms > 0, (a * b).sum(axis=0) / np.where(norms > 0, norms, 1), 0.0)


def strongest_classes(pushes: np.ndarray, classes: np.ndarray, count: int = TOP_CLASSES
                      ) -> list[list[int]]:
    """Per filter, the `count` classes whose push is largest (Euclidean norm), strongest first."""
    norms = np.linalg.norm(pushes.reshape(len(pushes), -1, pushes.shape[-1]), axis=1)
    return [[int(classes[index]) for index in np.argsort(-norms[:, f])[:count]]
            for f in range(pushes.shape[-1])]


def _centres(count: int) -> np.ndarray:
    return 1 + TILE_PIXELS * np.arange(count) + (TILE_PIXELS - 2) / 2


def plot_forces(change: np.ndarray, pushes: np.ndarray, classes: np.ndarray,
                epochs: np.ndarray, path: Path, suptitle: str = "") -> Path:
    """change (kh, kw, 1, filters); pushes (classes, kh, kw, 1, filters)."""
    filters = change.shape[-1]
    change_tiles = np.moveaxis(change[:, :, 0], -1, 0)
    push_tiles = np.moveaxis(pushes[:, :, :, 0], -1, 0).reshape(-1, *change.shape[:2])
    cosine = cosines(pushes.sum(axis=0), change)
    named = strongest_classes(pushes, classes)
    push_mosaic = drawing.tile(push_tiles, filters, len(classes))
    change_mosaic = drawing.tile(change_tiles, filters, 1)
    inches = INCHES_PER_ROW / TILE_PIXELS  # per mosaic pixel
    figure, [axes] = drawing.panel_figure(
        [[drawing.Panel(change_mosaic.shape[1] * inches, change_mosaic.shape[0] * inches,
                        left=LABEL_INCHES, right=0.3),
          drawing.Panel(push_mosaic.shape[1] * inches, push_mosaic.shape[0] * inches,
                        left=0.3, right=2 * LABEL_INCHES + 0.5)]],
        suptitle or "conv1: what pushed each filter", below=1.0,
        above=drawing.TITLE_INCHES + 0.2 + CLASS_LABEL_INCHES)
    change_limit = drawing.symmetric_limit(change_tiles)
    scale = drawing.paint_mosaic(axes[0], change_mosaic, change_limit, "change\n(after - before)")
    centres = _centres(filters)
    for centre, number in zip(centres, range(filters)):  # numbered as in the npz arrays
        axes[0].text(-1, centre, f"filter {number}", fontsize=LABEL_POINTS, ha="right",
                     va="center")
    figure_labels.colour_bar(figure, scale, axes[:1], "change", location="bottom",
                             ticks=[-change_limit, 0, change_limit], length=1.6)
    push_scale = drawing.paint_mosaic(
        axes[1], push_mosaic, drawing.symmetric_limit(push_tiles),
        f"push of each class (one scale): minus its gradient,\nsummed over {len(epochs)} "
        f"moments (after epochs {', '.join(map(str, epochs))})")
    axes[1].set_title(axes[1].get_title(), fontsize=10, pad=CLASS_LABEL_INCHES * 72)
    for centre, label in zip(_centres(len(classes)), classes):
        axes[1].text(centre, -1, f"class {label}", fontsize=LABEL_POINTS, rotation=90,
                     ha="center", va="bottom")
    for centre, value, top in zip(centres, cosine, named):
        axes[1].text(push_mosaic.shape[1], centre,
                     f"cos {value:+.2f}   pushed most: {', '.join(map(str, top))}",
                     fontsize=LABEL_POINTS, ha="left", va="center")
    figure_labels.colour_bar(figure, push_scale, axes[1:],
                             "push (minus the summed gradient of the mean loss)",
                             location="bottom", length=0.8)
    return drawing.save_figure(figure, path)


def render_forces(run_dir: Path, initial_path: Path, after_path: Path, description: str,
                  replay) -> list[Path]:
    """Draw figures/forces.png from views/forces.npz and the change between two snapshots, read
    through `replay` (the run's kexp.views.run_replay.RunReplay); a run without a readable
    forces file (trained before kexp recorded them, or damaged) gets a note on stderr instead,
    and its other figures are drawn as usual."""
    run_dir = Path(run_dir)
    try:
        found = replay.forces()
        if LAYER not in found["gradients"]:
            raise runs.RunError(f"'{run_dir / runs.VIEWS_DIR / runs.FORCES_FILE}' has no "
                                f"{LAYER} gradients")
    except runs.RunError as error:
        print(f"kexp: note: {runs.FORCES_FIGURE} not drawn for {run_dir.name}: {error}",
              file=sys.stderr, flush=True)
        return []
    before, after = replay.kernels(initial_path)[LAYER], replay.kernels(after_path)[LAYER]
    return [plot_forces(after - before, class_pushes(found["gradients"][LAYER]),
                        found["classes"], found["epochs"],
                        run_dir / runs.FIGURES_DIR / runs.FORCES_FIGURE,
                        f"conv1: what pushed each filter\n{description}")]
