"""Everything a run's saved files say about each filter, gathered for the run's page: its kernel
through training, how far it moved, its optimal input, the patches and digits that excite it,
the forces that moved it, and flags in words (dead, brightness detector, copy of another).

numpy only, from the run folder alone: every file is read through a checked reader, and a file
that is missing or damaged becomes a note of what the page cannot show, never an exception, so
an older or interrupted run still gets its page. The layers are replayed from the saved kernels
with kexp.probes.filter_views, as the figures are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kexp import config, shell_commands
from kexp.errors import RunError
from kexp.filters import analysis
from kexp.probes import filter_views
from kexp.storage import runs
from kexp.views import force_figures
from kexp.views.run_replay import RunReplay

LAYERS = config.CONV_LAYERS  # the layers the page has a card per filter for
MAP_DIGITS = 4  # test digits whose feature maps each card shows
WHEN = ("before", "after")


@dataclass
class LayerFacts:
    """One conv layer's filters (the last axis of every array is the filter, as in the npz)."""

    name: str
    labels: list[str]  # the snapshots shown through training, in order
    kernels: np.ndarray  # (snapshots, kh, kw, c_in, filters)
    change: np.ndarray  # relative change first -> last snapshot
    copies: list[list[int]]  # per filter, the other filters its last kernel equals
    optimal: dict[str, np.ndarray] | None = None  # when -> (filters, h, w) optimal inputs
    orientation: dict[str, np.ndarray] | None = None  # when -> single-orientation fraction
    pattern: dict[str, np.ndarray] | None = None  # when -> pattern fraction (brightness test)
    peak: dict[str, np.ndarray] | None = None  # when -> largest output on the probe digits
    maps: dict[str, np.ndarray] | None = None  # when -> (MAP_DIGITS, h, w, filters)
    patches: dict[str, filter_views.TopPatches] | None = None
    forces: dict | None = None  # "pushes" (classes, ..., filters), "cosine", "strongest"

    @property
    def count(self) -> int:
        return self.kernels.shape[-1]

    def brightness(self, when: str = "after") -> np.ndarray | None:
        """Per filter: its optimal input is mostly uniform ink (analysis.pattern_fraction)."""
        if self.pattern is None:
            return None
        return self.pattern[when] < analysis.BRIGHTNESS_DETECTOR_BELOW

    def dead(self, when: str = "after") -> np.ndarray | None:
        """Per filter: its output is never positive on any probe digit."""
        return None if self.peak is None else self.peak[when] <= 0


@dataclass
class RunFacts:
    run_dir: Path
    recorded: dict  # config.json ({} when unreadable)
    status: dict
    history: list[dict]
    layers: dict[str, LayerFacts] = field(default_factory=dict)
    digits: np.ndarray | None = None  # (MAP_DIGITS, h, w) in [0, 1], the maps' digits
    digit_labels: np.ndarray | None = None
    probe_count: int = 0
    forces_epochs: np.ndarray | None = None
    missing: list[str] = field(default_factory=list)  # what the page cannot show, and why


def shown_snapshots(run_dir: Path) -> list[tuple[str, Path]]:
    """The snapshots a card shows through training: the start, each epoch (not the snapshots
    within an epoch), and the end (final or interrupted)."""
    return [(label, path) for label, path in runs.snapshot_sequence(run_dir)
            if "_batch_" not in label and not label.startswith(f"{runs.INTERRUPTED}_")]


def _kernels_through_training(run_dir: Path, facts: RunFacts, replay: RunReplay):
    """Labels and kernels (by layer) of the shown snapshots, with the same end dropped once
    where it repeats the last epoch (final.npz), and the files of the first and the last."""
    shown = shown_snapshots(run_dir)
    if not shown or shown[0][0] != runs.INITIAL or len(shown) < 2:
        found = ", ".join(label for label, _ in runs.snapshot_sequence(run_dir)) or "none"
        facts.missing.append(f"No kernels before and after training in {runs.KERNELS_DIR}/ "
                             f"(found: {found}): the run stopped before its first epoch ended.")
        return None
    first = replay.kernels(shown[0][1])
    loaded = [(label, replay.kernels(path, like=first)) for label, path in shown]
    if len(loaded) > 2 and all(np.array_equal(loaded[-1][1][name], loaded[-2][1][name])
                               for name in first):
        del loaded[-2]  # final.npz repeats the last epoch: show it once, as the end
    return loaded, dict(zip(WHEN, (shown[0][1], shown[-1][1])))


def read_recorded(run_dir: Path) -> dict:
    """config.json as the page shows it: the settings (read and checked as a TrainConfig) and
    the data the run trained on."""
    return {"config": runs.read_config(run_dir).to_dict(), "data": runs.read_data_record(run_dir)}


def gather(run_dir: Path, replay: RunReplay | None = None) -> RunFacts:
    """Read a run folder and compute every filter's facts; what cannot be read or computed is
    listed in `missing` in words. `replay`: the one the run's figures were drawn from, where
    they were (its snapshots and replayed layers are not read or computed again)."""
    run_dir = Path(run_dir)
    replay = replay or RunReplay(run_dir)
    facts = RunFacts(run_dir, {}, {}, [])
    for attribute, reader in (("recorded", read_recorded), ("status", runs.read_status),
                              ("history", runs.read_history)):
        try:
            setattr(facts, attribute, reader(run_dir))
        except RunError as error:
            facts.missing.append(str(error))
    try:
        through = _kernels_through_training(run_dir, facts, replay)
    except RunError as error:
        facts.missing.append(str(error))
        through = None
    if through is None:
        return facts
    loaded, ends = through
    labels = [label for label, _ in loaded]
    for name in LAYERS:
        if name in loaded[0][1]:
            kernels = np.stack([snapshot[name] for _, snapshot in loaded])
            equal = analysis.equal_filters(kernels[-1])
            facts.layers[name] = LayerFacts(
                name, labels, kernels, analysis.relative_change(kernels[0], kernels[-1]),
                [[int(other) for other in np.flatnonzero(row) if other != index]
                 for index, row in enumerate(equal)])
    _add_optimal_inputs(facts, replay)
    _add_maps_and_patches(facts, replay, ends)
    _add_forces(facts, replay)
    return facts


def _add_optimal_inputs(facts: RunFacts, replay: RunReplay) -> None:
    try:
        found = replay.optimal_inputs()
    except RunError as error:
        found, reason = {}, str(error)
    else:
        reason = f"the run has no {runs.VIEWS_DIR}/{runs.OPTIMAL_INPUTS_FILE}."
    if not found:
        command = shell_commands.kexp_command("explain",
                                              *shell_commands.run_arguments(facts.run_dir))
        facts.missing.append(f"No optimal inputs: {reason} Compute them with: {command}")
        return
    for layer in facts.layers.values():
        if not all(layer.name in found.get(when, {}) for when in WHEN):
            facts.missing.append(f"No optimal inputs of {layer.name} in "
                                 f"{runs.VIEWS_DIR}/{runs.OPTIMAL_INPUTS_FILE}.")
            continue
        images = {when: found[when][layer.name]["images"][..., 0] for when in WHEN}
        if any(len(images[when]) != layer.count for when in WHEN):
            facts.missing.append(f"The optimal inputs of {layer.name} are not one per filter.")
            continue
        layer.optimal = images
        layer.orientation = {when: analysis.single_orientation_fraction(images[when])
                             for when in WHEN}
        layer.pattern = {when: analysis.pattern_fraction(images[when]) for when in WHEN}


def map_digit_indices(labels: np.ndarray, count: int = MAP_DIGITS) -> np.ndarray:
    """`count` probe digits of classes spread over the classes, the first of each."""
    firsts = filter_views.first_of_each_class(labels)
    return firsts[np.unique(np.linspace(0, len(firsts) - 1, count).round().astype(int))]


def _add_maps_and_patches(facts: RunFacts, replay: RunReplay, ends: dict[str, Path]) -> None:
    """The layers replayed on the probe digits before and after training (`ends`: the two
    snapshot files): each filter's maps of a few digits, its largest output (dead or not) and
    its strongest patches."""
    try:
        replay.config()
    except RunError:
        facts.missing.append("No feature maps, strongest patches or dead filters: the run's "
                             f"{runs.CONFIG_FILE} (which names the model) is unreadable.")
        return
    if any(set(biases) != set(kernels) for kernels, biases in map(replay.snapshot, ends.values())):
        facts.missing.append("No feature maps, strongest patches or dead filters: the kernel "
                             "snapshots hold no biases (the run was trained by an older kexp).")
        return
    try:
        images, labels = replay.probe_digits()
    except RunError as error:
        facts.missing.append(f"No feature maps, strongest patches or dead filters: {error}")
        return
    shown = map_digit_indices(labels)
    facts.digits, facts.digit_labels = images[shown, ..., 0], labels[shown]
    facts.probe_count = len(images)
    maps = {when: replay.maps(path) for when, path in ends.items()}
    patches = {when: replay.patches(path) for when, path in ends.items()}
    for layer in facts.layers.values():
        if layer.name not in maps["after"]:
            continue
        layer.maps = {when: maps[when][layer.name][shown] for when in WHEN}
        layer.peak = {when: maps[when][layer.name].max(axis=(0, 1, 2)) for when in WHEN}
        layer.patches = {when: patches[when][layer.name] for when in WHEN}


def _add_forces(facts: RunFacts, replay: RunReplay) -> None:
    """The push of each digit class on each filter (minus its gradient, summed over the moments
    views/forces.npz holds) and how well the summed push points along the real change."""
    try:
        found = replay.forces()
    except RunError as error:
        facts.missing.append(f"No forces: {error}")
        return
    facts.forces_epochs = found["epochs"]
    for layer in facts.layers.values():
        gradients = found["gradients"].get(layer.name)
        if gradients is None or gradients.shape[2:] != layer.kernels.shape[1:]:
            facts.missing.append(f"No forces of {layer.name} in "
                                 f"{runs.VIEWS_DIR}/{runs.FORCES_FILE}.")
            continue
        pushes = force_figures.class_pushes(gradients)
        layer.forces = {"pushes": pushes, "classes": found["classes"],
                        "cosine": force_figures.cosines(pushes.sum(axis=0),
                                                        layer.kernels[-1] - layer.kernels[0]),
                        "strongest": force_figures.strongest_classes(pushes, found["classes"])}
