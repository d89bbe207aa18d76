"""The initializer study's figures, drawn from the runs the sweep trained: one figure answers
"does the starting point matter?" at a glance (every initializer's 32 conv1 filters before and
after on ONE colour scale, so a colour is the same number in every panel; then accuracy and
loss, how far each filter moved, and how edge-like the filters became), and one follows the
measures epoch by epoch, a thin line per seed so the spread shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kexp.experiments.compare import plan


# Weights span 0.01 (random_normal small) to 3+ (random_normal large): a linear scale shared
# by all panels would leave every ordinary initializer white, so the shared scale is
# symmetric-logarithmic, linear within +-LINEAR_WITHIN.
LINEAR_WITHIN = 0.02


def _display(init: str) -> str:
    return init.replace(":", "\n")


def _by_initializer(measured: list[tuple[dict, dict]]) -> dict[str, list[tuple[dict, dict]]]:
    grouped: dict[str, list[tuple[dict, dict]]] = {}
    for row, details in measured:
        grouped.setdefault(row["initializer"], []).append((row, details))
    return grouped


def _row_label(row: dict) -> str:
    if row["test_accuracy"] is None:
        return f"{_display(row['initializer'])}\nseed {row['seed']}: {row['status']}"
    copies = "\n(all 32 identical)" if row["conv1_distinct_final"] == 1 else ""
    return (f"{_display(row['initializer'])}\nseed {row['seed']}: test acc "
            f"{row['test_accuracy']:.3f}\ndistinct filters "
            f"{row['conv1_distinct_initial']} -> {row['conv1_distinct_final']}{copies}")


def _maps(axes, details: dict, titled: bool) -> None:
    """conv1's 32 maps of one test digit before | after training, on the row's own scale (the
    same for both): what the filters do to a digit, beside the filters themselves."""
    from kexp.views import plots, view_figures

    pair = [np.moveaxis(details[f"conv1_maps_{when}"], -1, 0) for when in ("before", "after")]
    limit = view_figures.layer_limit(*pair)
    for ax, maps, when in zip(axes, pair, ("before", "after")):
        plots.draw_mosaic(ax, plots.tile(maps, *plots.grid_shape(len(maps))), limit,
                          f"conv1 maps of a test '{plan.MAPS_DIGIT}', {when}\n(own scale per "
                          "row)" if titled else "", cmap=view_figures.ACTIVATION_CMAP, low=0.0,
                          separator=view_figures.LIGHT_SEPARATOR)


def _grids(figure, grouped: dict, epochs: int) -> None:
    """Left block: per initializer, conv1 before | after on one symmetric-log colour scale, and
    the change after - before on one linear scale shared by all initializers; then conv1's maps
    of one digit before | after."""
    from matplotlib.colors import Normalize, SymLogNorm

    from kexp.views import plots

    shown = {init: next(((row, d) for row, d in group if "conv1_before" in d), group[0])
             for init, group in grouped.items()}
    tiles = {}
    for init, (_, details) in shown.items():
        if "conv1_before" in details:
            before = plots.filter_tiles(details["conv1_before"])
            after = plots.filter_tiles(details["conv1_after"])
            tiles[init] = (before, after, after - before)
    weight_limit = plots.symmetric_limit(*[t for tri in tiles.values() for t in tri[:2]])
    change_limit = plots.symmetric_limit(*[tri[2] for tri in tiles.values()])
    weight_norm = SymLogNorm(linthresh=LINEAR_WITHIN, vmin=-weight_limit, vmax=weight_limit,
                             base=10)
    change_norm = Normalize(vmin=-change_limit, vmax=change_limit)
    titles = ("before training", f"after {epochs} epoch(s)", "change (after - before)")
    axes = figure.subplots(len(shown), 5, squeeze=False)
    images = [None, None]
    for index, (init, (row, details)) in enumerate(shown.items()):
        if "conv1_maps_before" in details:
            _maps(axes[index, 3:], details, titled=index == 0)
        else:
            for ax in axes[index, 3:]:
                ax.axis("off")
        for column, title in enumerate(titles):
            ax = axes[index, column]
            ax.set_xticks([])
            ax.set_yticks([])
            if index == 0:
                ax.set_title(title, fontsize=11)
            if init not in tiles:
                ax.text(0.5, 0.5, f"{row['status'].upper()}: see the table", ha="center",
                        va="center", fontsize=9, color="darkred", transform=ax.transAxes)
                continue
            rows, cols = plots.grid_shape(len(tiles[init][column]))
            ax.set_facecolor(plots.SEPARATOR_COLOUR)
            images[column == 2] = ax.imshow(
                np.ma.masked_invalid(plots.tile(tiles[init][column], rows, cols)),
                cmap=plots.CMAP, norm=change_norm if column == 2 else weight_norm,
                interpolation="nearest")
        axes[index, 0].set_ylabel(_row_label(row), rotation=0, ha="right", va="center",
                                  fontsize=9)
    labels = (f"weight (before and after, all rows; log beyond +-{LINEAR_WITHIN})",
              "change (all rows; linear)")
    for image, columns, label in zip(images, (axes[:, :2], axes[:, 2:3]), labels):
        if image is not None:
            colorbar = figure.colorbar(image, ax=columns, shrink=0.5, aspect=35,
                                       location="bottom", label=label)
            colorbar.ax.tick_params(labelsize=8)
    figure.suptitle("conv1's 32 3x3 filters (first seed of each initializer)", fontsize=12)


def _colours(inits) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return {init: palette(index % 10) for index, init in enumerate(inits)}


def _curves(ax, loss_ax, grouped: dict, colours: dict) -> None:
    """Training accuracy and loss per epoch, side by side, one line per run (the test digits
    are evaluated once, after training: they are the table's test accuracy)."""
    from matplotlib.ticker import FormatStrFormatter, MaxNLocator

    for init, group in grouped.items():
        for number, (_, details) in enumerate(group):
            history = details.get("history") or []
            if not history:
                continue
            epochs = [entry["epoch"] for entry in history]
            ax.plot(epochs, [entry.get("accuracy", np.nan) for entry in history],
                    color=colours[init], marker="o", lw=1.6)
            loss_ax.plot(epochs, [entry.get("loss", np.nan) for entry in history],
                         color=colours[init], marker="o", lw=1.6,
                         label=init if number == 0 else None)
    for axis in (ax, loss_ax):
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
    ax.set_ylabel("training accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("training accuracy (one line per seed)", fontsize=11)
    loss_ax.set_yscale("log")
    loss_ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    loss_ax.set_ylabel("training loss (log scale)")
    loss_ax.set_title("training loss", fontsize=11)
    if loss_ax.get_legend_handles_labels()[0]:  # a study whose runs logged no epoch has no lines
        loss_ax.legend(fontsize=7, loc="upper right", framealpha=0.9)


def _change(ax, grouped: dict, colours: dict) -> None:
    """Box per initializer of conv1's per-filter relative change, all seeds pooled."""
    positions, boxes = [], []
    for position, (init, group) in enumerate(grouped.items()):
        values = np.concatenate([d["conv1_change"] for _, d in group if "conv1_change" in d]
                                or [np.array([])])
        moved = values[np.isfinite(values) & (values > 0)]
        from_zero = int(np.isinf(values).sum())  # started at exactly 0 and moved
        if moved.size:
            positions.append(position)
            boxes.append(moved)
        if from_zero or (values.size and not moved.size):
            text = f"{from_zero} moved\nfrom 0 (inf)" if from_zero else "no filter\nmoved (0)"
            ax.text(position, 0.9 if moved.size else 0.5, text, ha="center", va="center",
                    fontsize=8, color=colours[init], transform=ax.get_xaxis_transform())
    if boxes:
        parts = ax.boxplot(boxes, positions=positions, widths=0.6, patch_artist=True)
        for patch, position in zip(parts["boxes"], positions):
            patch.set_facecolor(colours[list(grouped)[position]])
            patch.set_alpha(0.6)
    ax.set_yscale("log")
    ax.set_xticks(range(len(grouped)), [_display(init) for init in grouped], fontsize=8)
    ax.set_xlim(-0.6, len(grouped) - 0.4)
    ax.set_ylabel("||after - before|| / ||before||")
    ax.set_title("how far each conv1 filter moved (all seeds)", fontsize=11)


def _edges(ax, grouped: dict, colours: dict) -> None:
    """Mean edge-likeness of conv1 before (hollow) and after (filled) training."""
    for position, (init, group) in enumerate(grouped.items()):
        before = [d["edge_before"].mean() for _, d in group if "edge_before" in d]
        after = [d["edge_after"].mean() for _, d in group if "edge_after" in d]
        if not before:
            continue
        start, end = float(np.mean(before)), float(np.mean(after))
        ax.annotate("", xy=(position, end), xytext=(position, start),
                    arrowprops={"arrowstyle": "->", "color": colours[init], "lw": 1.5})
        ax.plot(position, start, "o", mfc="white", mec=colours[init], ms=8)
        ax.plot(position, end, "o", color=colours[init], ms=8)
    ax.plot([], [], "o", mfc="white", mec="black", label="before")
    ax.plot([], [], "o", color="black", label="after")
    ax.set_xticks(range(len(grouped)), [_display(init) for init in grouped], fontsize=8)
    ax.set_xlim(-0.6, len(grouped) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean best |cos| with an edge filter")
    ax.set_title("edge-likeness of conv1 (1 = pure oriented edge detector)", fontsize=11)
    ax.legend(fontsize=8, loc="lower right")


def plot_comparison(measured: list[tuple[dict, dict]], path: Path, study: plan.Study
                    ) -> Path:
    """The study's one figure: grids on the left, curves / change / edges on the right."""
    from matplotlib.figure import Figure

    from kexp.views import plots

    grouped = _by_initializer(measured)
    colours = _colours(grouped)
    height = max(9.0, 1.15 * len(grouped) + 2.0)
    figure = Figure(figsize=(26, height), layout="constrained")
    left, right = figure.subfigures(1, 2, width_ratios=[2.1, 1])
    _grids(left, grouped, study.epochs)
    axes = right.subplot_mosaic([["accuracy", "loss"], ["change", "change"],
                                 ["edges", "edges"]])
    _curves(axes["accuracy"], axes["loss"], grouped, colours)
    _change(axes["change"], grouped, colours)
    _edges(axes["edges"], grouped, colours)
    right.suptitle(f"{study.model} on {study.data}, {study.epochs} epoch(s), seeds "
                   f"{', '.join(map(str, study.seeds))}", fontsize=12)
    return plots.save_figure(figure, path)


EPOCH_PANELS = (("val_accuracy", "validation accuracy", (0, 1)),
                ("conv1_relative_change", "conv1 mean relative change from the start", None),
                ("conv1_distinct", "distinct conv1 filters (of 32)", (0, 33)),
                ("conv1_edge_likeness", "conv1 mean edge-likeness", (0, 1)))


def plot_epochs(measured: list[tuple[dict, dict]], path: Path, study: plan.Study) -> Path:
    """Accuracy and conv1's measures from the start (epoch 0) to the last epoch: a colour per
    initializer, a thin line per seed, so the seeds' spread shows beside the gaps."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from kexp.views import plots

    grouped = _by_initializer(measured)
    colours = _colours(grouped)
    figure = Figure(figsize=(18, 4.6), layout="constrained")
    axes = figure.subplots(1, len(EPOCH_PANELS), sharex=True)
    last_epoch = max([epoch for _, details in measured
                      for epoch in (details.get("series") or {}).get("epoch", [])] or [1])
    axes[0].set_xlim(-0.3, last_epoch + 0.3)  # epoch 0 to the last, in every panel
    for ax, (measure, title, limits) in zip(axes, EPOCH_PANELS):
        for init, group in grouped.items():
            for number, (_, details) in enumerate(group):
                series = details.get("series") or {}
                points = [(epoch, value) for epoch, value in
                          zip(series.get("epoch", []), series.get(measure, []))
                          if value is not None and np.isfinite(value)]
                if points:
                    ax.plot(*zip(*points), color=colours[init], lw=0.9, alpha=0.8,
                            marker="." if len(points) < 3 else None,
                            label=init if number == 0 else None)
        if measure == "val_accuracy":
            ax.axhline(study.target_accuracy, color="grey", lw=0.8, ls="--")
        if limits:
            ax.set_ylim(*limits)
        elif ax.lines:
            ax.set_yscale("symlog", linthresh=0.01)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch (0 = initial)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    if axes[2].get_legend_handles_labels()[1]:  # distinct filters sit at 32 or near 1:
        axes[2].legend(fontsize=7, loc="center right", framealpha=0.9)  # the middle is free
    figure.suptitle(f"per epoch, one thin line per seed ({len(study.seeds)} seed(s)); dashed: "
                    f"the stated accuracy {study.target_accuracy:g}", fontsize=11)
    return plots.save_figure(figure, path)
