"""`kexp animate RUN`: the conv1 grid through every kernel snapshot of a run, as an animated GIF.

The before/after figure shows where the filters end up; this shows the path. Most of the change
happens in the first epoch, so train with `--snapshot-batches K` to get frames inside it. Every
frame uses the same symmetric colour scale, so a tile that fades has really shrunk. numpy,
matplotlib and pillow only: no TensorFlow.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np

from kexp.cli_options import add_command, add_run, add_runs_dir
from kexp.storage import atomic, files, runs

ANIMATION_FILE = "conv1_evolution.gif"
FRAME_MILLISECONDS = 500
LAST_FRAME_MILLISECONDS = 2000  # linger on the end state before the loop restarts


def steps_per_epoch(run_dir: Path) -> int | None:
    """Batches per epoch of a run, from its config.json (None if it does not say)."""
    samples = runs.read_data_record(run_dir).get("used_train_samples")
    return math.ceil(samples / runs.read_config(run_dir).batch_size) if samples else None


def snapshot_title(label: str, batches_per_epoch: int | None, epochs_completed: int = 0) -> str:
    """'epoch_001_batch_00004' -> 'step 4 (epoch 1, batch 4)'; initial is step 0."""
    match = runs.SNAPSHOT_ORDER.match(label)
    if label == "initial":
        return "step 0: initial (before training)"
    if match and match.group(2):
        epoch = int(match.group(2))
        batch = int(match.group(3)) if match.group(3) else batches_per_epoch
        if batch is None or batches_per_epoch is None:
            return label
        step = (epoch - 1) * batches_per_epoch + batch
        where = f"epoch {epoch}, batch {batch}" if match.group(3) else f"end of epoch {epoch}"
        return f"step {step} ({where})"
    if label == "final" and batches_per_epoch and epochs_completed:
        return f"step {epochs_completed * batches_per_epoch} (end of training)"
    return f"{label} (end of training)" if label == "final" else label


def conv1_frames(run_dir: Path, layer: str = "conv1") -> list[tuple[str, np.ndarray]]:
    """(label, kernel) for every snapshot of `layer`, in training order."""
    frames, first = [], None
    for label, path in runs.snapshot_sequence(run_dir):
        kernels = runs.load_kernels(path, like=first)
        first = first or kernels
        if layer not in kernels:
            raise runs.RunError(f"Invalid value for `layer`: '{layer}'. Expected one of: "
                                f"{', '.join(kernels)} (in {path}).")
        frames.append((label, kernels[layer]))
    return frames


def animate_run(run_dir: Path, output: Path | None = None, layer: str = "conv1") -> Path:
    """Write the animation of `layer`'s filters (one frame per snapshot) and return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    from kexp.views import plots

    run_dir = Path(run_dir)
    output = check_output(output or run_dir / runs.FIGURES_DIR / ANIMATION_FILE)
    frames = conv1_frames(run_dir, layer)
    if len(frames) < 2:
        raise runs.RunError(f"'{run_dir}' has {len(frames)} kernel snapshot(s); an animation "
                            "needs at least two. Train with --snapshot-batches K for more.")
    tiles = [plots.filter_tiles(kernel) for _, kernel in frames]
    rows, cols = plots.grid_shape(len(tiles[0]))
    limit = plots.symmetric_limit(*tiles)  # one scale for every frame
    config = runs.read_config(run_dir)
    batches_per_epoch = steps_per_epoch(run_dir)
    epochs_completed = len(runs.read_history(run_dir))

    figure = Figure(figsize=(7.5, 1.6 + 0.75 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    image = plots.draw_mosaic(ax, plots.tile(tiles[0], rows, cols), limit, "")
    figure.colorbar(image, ax=ax, shrink=0.85, label=f"weight (fixed scale +-{limit:.3g})")
    figure.suptitle(f"{layer} filters, init {config.init}, seed {config.seed}",
                    fontsize=11)
    rendered = []
    for (label, _), frame_tiles in zip(frames, tiles):
        image.set_data(np.ma.masked_invalid(plots.tile(frame_tiles, rows, cols)))
        ax.set_title(snapshot_title(label, batches_per_epoch, epochs_completed), fontsize=11)
        figure.canvas.draw()
        rendered.append(Image.fromarray(np.asarray(figure.canvas.buffer_rgba())).convert("RGB"))

    # One palette for all frames, so a colour keeps its meaning from frame to frame.
    strip = Image.new("RGB", (rendered[0].width, rendered[0].height * len(rendered)))
    for index, frame in enumerate(rendered):
        strip.paste(frame, (0, index * frame.height))
    palette = strip.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
    paletted = [frame.quantize(palette=palette, dither=Image.Dither.NONE) for frame in rendered]
    durations = [FRAME_MILLISECONDS] * (len(paletted) - 1) + [LAST_FRAME_MILLISECONDS]
    buffer = io.BytesIO()
    paletted[0].save(buffer, format="GIF", save_all=True, append_images=paletted[1:],
                     duration=durations, loop=0, optimize=False)
    output.parent.mkdir(parents=True, exist_ok=True)
    return atomic.write_bytes_atomic(output, buffer.getvalue())


GIF_MAGIC = (b"GIF87a", b"GIF89a")


def check_output(output: Path) -> Path:
    """Where a GIF may be written: a new .gif file name, or a GIF to replace (kexp writes only
    that kind of output there), and never one of a run folder's own files (only its figures/
    holds what kexp draws). Checked before any frame is drawn; RunError otherwise."""
    output = Path(output)
    where = Path(os.path.realpath(output.parent)) / output.name  # the folder written into
    problem = None
    if output.suffix.lower() != ".gif":
        problem = "is not a .gif file name"
    elif any(runs.is_run_dir(folder) for folder in where.parents) and not (
            where.parent.name == runs.FIGURES_DIR and runs.is_run_dir(where.parent.parent)):
        problem = f"lies in a run folder outside its {runs.FIGURES_DIR}/ (a run's own files)"
    elif os.path.lexists(output):
        files.check_replaceable(output, runs.RunError)
        with open(output, "rb") as handle:
            if handle.read(6) not in GIF_MAGIC:
                problem = "exists and is not a GIF: kexp replaces only a GIF there"
    if problem:
        raise runs.RunError(f"Invalid value for `output`: '{output}' {problem}. Expected a new "
                            f".gif file name, or a GIF to replace.")
    return output


def add_parser(subparsers) -> None:
    parser = add_command(subparsers, "animate", "animated GIF of a run's conv1 filters through "
                         "its kernel snapshots", _animate_command)
    add_run(parser)
    add_runs_dir(parser)
    parser.add_argument("--output", type=Path, default=None,
                        help=f"GIF to write (None: <run>/figures/{ANIMATION_FILE})")


def _animate_command(args) -> int:
    found = runs.resolve_run(args.run, args.runs_dir)
    if args.output is not None and len(found) > 1:
        raise runs.RunError(f"Invalid value for `output`: '{args.output}'. Expected no "
                            f"--output when animating {len(found)} runs (each gets its own).")
    if args.output is not None:
        check_output(args.output)  # before any frame is drawn
    for run_dir in found:
        path = animate_run(run_dir, args.output)
        frames = len(runs.snapshot_sequence(run_dir))
        print(f"kexp: {run_dir}: {frames} frames -> {path}")
    return 0
