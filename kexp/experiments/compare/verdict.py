"""The study's answer, in sentences computed from its summary rows: which initializers differ
after the first epoch and which still differ at the end (a gap counts only where it is larger
than the seeds' spread), which stay broken by symmetry, and how many epochs each needs to reach
the stated accuracy. The page prints these sentences, so what it says is what the rows hold.

numpy-free and pure: rows in, sentences out.
"""

from __future__ import annotations

from statistics import mean

FINISHED = "finished"
FILTERS = 32  # conv1's filters in both study models


def _finished_by_initializer(rows: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] == FINISHED:
            grouped.setdefault(row["initializer"], []).append(row)
    return grouped


def symmetric(grouped: dict[str, list[dict]]) -> list[str]:
    """Initializers whose conv1 ends as one filter copied 32 times in every seed."""
    return [init for init, group in grouped.items()
            if all(row["conv1_distinct_final"] == 1 for row in group)]


def spread(values: list[float]) -> float | None:
    """The seeds' spread, max - min; None with one seed (unknown)."""
    return max(values) - min(values) if len(values) > 1 else None


def differing_pairs(values: dict[str, list[float]]) -> list[tuple[str, str]]:
    """Pairs (higher mean first) whose means differ by more than either one's seed spread."""
    inits = sorted(values, key=lambda init: -mean(values[init]))
    return [(high, low) for index, high in enumerate(inits) for low in inits[index + 1:]
            if mean(values[high]) - mean(values[low])
            > max(spread(values[high]), spread(values[low]))]


def _values(grouped: dict[str, list[dict]], column: str) -> dict[str, list[float]]:
    found = {init: [row[column] for row in group if row.get(column) is not None]
             for init, group in grouped.items()}
    return {init: values for init, values in found.items() if values}


def _listing(values: dict[str, list[float]]) -> str:
    parts = []
    for init in sorted(values, key=lambda name: -mean(values[name])):
        width = spread(values[init])
        parts.append(f"{init} {mean(values[init]):.3f}"
                     + ("" if width is None else f" (spread {width:.3f})"))
    return ", ".join(parts)


UNKNOWN_SPREAD = ("The seeds' spread is unknown (one seed per initializer), so no difference "
                  "can be told apart from seed noise.")


def _comparison(values: dict[str, list[float]], moment: str) -> str:
    unknown = any(spread(seeds) is None for seeds in values.values())
    if len(values) < 2:
        return (f"{moment}: {_listing(values) or 'no numbers'}. Fewer than two initializers "
                "learned, so none can differ." + (f" {UNKNOWN_SPREAD}" if unknown else ""))
    if unknown:
        return f"{moment}: {_listing(values)}. {UNKNOWN_SPREAD}"
    pairs = differing_pairs(values)
    if not pairs:
        return (f"{moment}, no two initializers differ by more than their seeds' spread: "
                f"{_listing(values)}.")
    named = "; ".join(f"{high} vs {low}" for high, low in pairs)
    return (f"{moment}, these differ by more than their seeds' spread: {named}. "
            f"Means over seeds: {_listing(values)}.")


def verdict(rows: list[dict], target_accuracy: float, epochs: int) -> list[str]:
    """The page's answer, one sentence (or two) per finding, from the summary rows alone."""
    grouped = _finished_by_initializer(rows)
    if not grouped:
        return ["No training finished, so the study has no answer yet."]
    broken = symmetric(grouped)
    sentences = []
    if broken:
        accuracies = _values({init: grouped[init] for init in broken}, "test_accuracy")
        verb = "has" if len(broken) == 1 else "have"
        sentences.append(
            f"Broken by symmetry: {' and '.join(broken)} still {verb} one distinct conv1 filter "
            f"(all {FILTERS} are copies) after {epochs} epoch(s) in every seed; test accuracy "
            f"{_listing(accuracies)}.")
    else:
        sentences.append("No initializer left its conv1 filters as copies of one filter.")
    split = {init: max(row["conv1_distinct_final"] for row in group)
             for init, group in grouped.items()
             if init not in broken and any(row["conv1_distinct_initial"] == 1 for row in group)}
    for init, distinct in split.items():
        sentences.append(f"{init} started as one filter copied {FILTERS} times and ended with "
                         f"up to {distinct} distinct filters: its symmetry was broken.")
    learning = {init: group for init, group in grouped.items() if init not in broken}
    sentences.append(_comparison(_values(learning, "val_accuracy_epoch_1"),
                                 "After epoch 1 (validation accuracy)"))
    sentences.append(_comparison(_values(learning, "test_accuracy"),
                                 f"At the end, after {epochs} epoch(s) (test accuracy)"))
    reached = []
    for init, group in grouped.items():
        needed = [row.get("epochs_to_target") for row in group]
        got = [epoch for epoch in needed if epoch is not None]
        reached.append(f"{init} " + (", ".join(map(str, got)) if got else "never")
                       + (f" ({len(needed) - len(got)} seed(s) never)"
                          if got and len(got) < len(needed) else ""))
    sentences.append(f"Epochs to reach validation accuracy {target_accuracy:g}, per seed: "
                     f"{'; '.join(reached)}.")
    return sentences
