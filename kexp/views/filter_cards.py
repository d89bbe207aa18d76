"""One card of the run page per filter: its numbers before and after, its kernel through
training, its optimal input, strongest patches and feature maps before and after, the forces
that moved it, and flags in words. HTML text with the pictures inline (kexp.views.card_images).

Every colour scale is shared by all cards of a layer and by before and after, so a colour means
the same number on every card; the page's legend says what each scale spans.
"""

from __future__ import annotations

import html
import math

import numpy as np

from kexp.storage import runs
from kexp.views import card_images, drawing, view_figures
from kexp.views.filter_facts import WHEN, LayerFacts, RunFacts

STRIP_TILES_PER_ROW = 16  # conv1's kernel at each saved epoch, wrapped
NUMBER_DIGITS = 2  # decimals of the weights printed in a conv1 card's cells
# Sort keys: data attribute -> what it means; the page's menu offers each both ways.
SORT_KEYS = {"filter": "filter number", "change": "relative change",
             "orientation-after": "single-orientation fraction after",
             "orientation-gain": "gain in single orientation (after - before)",
             "peak": "largest output on the test digits",
             "cosine": "push aligned with the change (cosine)", "norm": "kernel norm after"}
FLAGS = {"dead": "dead filters", "brightness": "brightness detectors", "copy": "copies"}


def layer_scales(layer: LayerFacts) -> dict[str, float | bool]:
    """The colour scales a layer's cards share: weights, maps, optimal inputs, pushes."""
    scales: dict[str, float | bool] = {"weight": drawing.symmetric_limit(layer.kernels)}
    if layer.maps is not None:
        scales["map"] = view_figures.layer_limit(*layer.maps.values())
    if layer.optimal is not None:
        scales["ink"] = min(float(images.min()) for images in layer.optimal.values()) >= 0
        scales["optimal"] = view_figures.layer_limit(*layer.optimal.values(), symmetric=True)
    if layer.forces is not None:
        scales["push"] = drawing.symmetric_limit(layer.forces["pushes"])
    return scales


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "inf" if value is not None and value > 0 else "-"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:.4g}"


def snapshot_name(label: str) -> str:
    """A snapshot label in words: 'initial' -> 'start', 'epoch_007' -> 'epoch 7'."""
    if label.startswith(runs.EPOCH_PREFIX):
        return f"epoch {runs.label_epoch(label)}"
    return {runs.INITIAL: "start", runs.FINAL: "end"}.get(label, label)


def _span(labels: list[str]) -> str:
    """The snapshots a strip or curve runs through, in words."""
    named = [snapshot_name(label) for label in labels]
    return ", ".join(named) if len(named) <= 4 else f"{named[0]}, {named[1]}, ... {named[-1]}"


def _attribute(value: float | None) -> str:
    """A sort key in a data attribute: '' sorts last."""
    return "" if value is None or not math.isfinite(value) else repr(round(float(value), 6))


def image(picture: card_images.Picture, alt: str) -> str:
    return (f'<img src="{picture.uri}" width="{picture.width}" height="{picture.height}" '
            f'alt="{html.escape(alt)}">')


def figure(rgb: np.ndarray, scale: int, alt: str, caption: str) -> str:
    """A picture (RGB pixels shown `scale` screen pixels each) with its caption."""
    return (f"<figure>{image(card_images.png(rgb, scale), alt)}<figcaption>{caption}"
            "</figcaption></figure>")


def weight_table(kernel: np.ndarray, limit: float, caption: str) -> str:
    """A 3x3 (kh x kw) table of weights, each cell coloured on the layer's scale and its number
    printed with NUMBER_DIGITS decimals, as question 000 prints [-1 1 -1]."""
    rows = []
    for row in kernel:
        cells = []
        for value in row:
            dark = abs(value) > 0.6 * limit
            cells.append(f'<td style="background:{card_images.css_colour(value, limit)}'
                         f'{";color:#fff" if dark else ""}">{value:.{NUMBER_DIGITS}f}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="kernel"><caption>{caption}</caption>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def sparkline(values: np.ndarray, labels: list[str], title: str) -> str:
    """An inline SVG line of `values` through training, its first and last value printed."""
    width, height, margin = 150.0, 30.0, 3.0
    low, high = float(np.min(values)), float(np.max(values))
    span = high - low or 1.0
    xs = np.linspace(margin, width - margin, len(values)) if len(values) > 1 else [width / 2]
    ys = height - margin - (np.asarray(values) - low) / span * (height - 2 * margin)
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys))
    return (f'<p class="spark">{html.escape(title)} {_number(values[0])} &rarr; '
            f'{_number(values[-1])} <svg viewBox="0 0 {width:.0f} {height:.0f}" width="150" '
            f'height="30" role="img" aria-label="{html.escape(title)} through training: '
            f'{html.escape(_span(labels))}"><polyline points="{points}" fill="none" '
            'stroke="#6a3d9a" stroke-width="1.5"/></svg></p>')


def bars(values: np.ndarray, names: list[str], title: str) -> str:
    """An inline SVG bar per class (push strength), named below."""
    width, height = 15 * len(values), 30
    top = float(np.max(values)) or 1.0
    rects = "".join(f'<rect x="{15 * i + 2}" y="{height - 26 * v / top:.1f}" width="11" '
                    f'height="{26 * v / top:.1f}" fill="#6a3d9a"/>' for i, v in enumerate(values))
    texts = "".join(f'<text x="{15 * i + 7.5}" y="{height + 10}" text-anchor="middle">{n}'
                    "</text>" for i, n in enumerate(names))
    return (f'<svg class="bars" viewBox="0 0 {width} {height + 12}" width="{width}" '
            f'height="{height + 12}" role="img" aria-label="{html.escape(title)}">{rects}{texts}'
            "</svg>")


def _kernel_pictures(layer: LayerFacts, index: int, scales: dict) -> list[str]:
    """conv1: the numbers before and after and the filter at each saved snapshot; deeper
    layers: the 3x3xC kernel as a mosaic (one tile per input channel) before and after."""
    kernels = layer.kernels[..., index]  # (snapshots, kh, kw, c_in)
    limit = scales["weight"]
    if kernels.shape[3] == 1:
        tables = "".join(weight_table(kernels[position, ..., 0], limit, caption)
                         for position, caption in ((0, "before"), (-1, "after")))
        rows = math.ceil(len(kernels) / STRIP_TILES_PER_ROW)
        strip = drawing.tile(kernels[..., 0], rows, min(len(kernels), STRIP_TILES_PER_ROW))
        return [f'<div class="pair">{tables}</div>',
                figure(card_images.weights(strip, limit), 6, "the filter through training",
                       f"through training, row by row: {_span(layer.labels)}")]
    c_in = kernels.shape[3]
    rows, cols = drawing.grid_shape(c_in)
    mosaics = [card_images.weights(drawing.tile(np.moveaxis(kernels[position], -1, 0), rows,
                                                cols), limit) for position in (0, -1)]
    return [figure(card_images.side_by_side(*mosaics, gap=3), 4, "kernel before and after",
                   f"its 3x3 kernel on each of the {c_in} input channels (one tile each, "
                   "channel 0 top left): before | after")]


def _view_pictures(layer: LayerFacts, index: int, scales: dict, facts: RunFacts) -> list[str]:
    parts = []
    if layer.optimal is not None:
        pair = [layer.optimal[when][index] for when in WHEN]
        limit = scales["optimal"]
        rgb = [card_images.coloured(item, card_images.PIXEL_CMAP, 0.0, limit) if scales["ink"]
               else card_images.weights(item, limit) for item in pair]
        scale = card_images.scale_for(pair[0].shape[1], 80)
        parts.append(figure(card_images.side_by_side(*rgb), scale,
                            "optimal input before and after",
                            "optimal input (the image it answers most): before | after"))
    if layer.patches is not None:
        blocks = []
        for when in WHEN:
            found = layer.patches[when]
            shown = np.where((found.scores[index] > 0)[:, None, None],
                             found.patches[index, ..., 0], np.nan)
            side = math.ceil(math.sqrt(len(shown)))
            blocks.append(card_images.coloured(drawing.tile(
                shown, math.ceil(len(shown) / side), side), card_images.PIXEL_CMAP, 0.0, 1.0,
                blank=card_images.EMPTY_RGB))
        scale = card_images.scale_for(blocks[0].shape[1], 80)
        parts.append(figure(card_images.side_by_side(*blocks, gap=3), scale,
                            "strongest patches before and after",
                            f"the {len(shown)} test-digit patches it answers most, strongest "
                            "first (blue: no answer at all): before | after"))
    if layer.maps is not None and facts.digits is not None:
        digits = facts.digits
        factor = max(1, round(digits.shape[1] / layer.maps["after"].shape[1]))
        rows = [card_images.coloured(drawing.tile(digits, 1, len(digits)),
                                     card_images.PIXEL_CMAP, 0.0, 1.0)]
        for when in WHEN:
            maps = np.repeat(np.repeat(layer.maps[when][..., index], factor, axis=1),
                             factor, axis=2)
            padded = np.full((len(maps), *digits.shape[1:]), np.nan)
            size = min(maps.shape[1], digits.shape[1])
            padded[:, :size, :size] = maps[:, :size, :size]
            rows.append(card_images.coloured(drawing.tile(padded, 1, len(padded)),
                                             card_images.ACTIVATION_CMAP, 0.0, scales["map"],
                                             blank=(255, 255, 255)))
        labels = ", ".join(str(int(label)) for label in facts.digit_labels)
        parts.append(figure(card_images.stacked(*rows), 2, "feature maps before and after",
                            f"its map of test digits {labels}: the digits, before, after"))
    return parts


def _forces(layer: LayerFacts, index: int, scales: dict) -> list[str]:
    if layer.forces is None:
        return []
    pushes = layer.forces["pushes"][..., index]  # (classes, kh, kw, c_in)
    classes = [str(int(c)) for c in layer.forces["classes"]]
    strongest = ", ".join(map(str, layer.forces["strongest"][index]))
    cosine = layer.forces["cosine"][index]
    if pushes.shape[3] == 1:
        tiles = drawing.tile(pushes[..., 0], 1, len(pushes))
        picture = image(card_images.png(card_images.weights(tiles, scales["push"]), 6),
                        "push of each class")
        caption = f"push of each digit class {classes[0]}..{classes[-1]} (left to right)"
    else:
        norms = np.linalg.norm(pushes.reshape(len(pushes), -1), axis=1)
        picture = bars(norms, classes, "push strength per class")
        caption = "push strength of each digit class"
    return [f"<figure>{picture}<figcaption>{caption}; pushed most by {strongest}; summed "
            f"push vs real change: cosine {cosine:+.2f}</figcaption></figure>"]


def flags(layer: LayerFacts, index: int, facts: RunFacts) -> list[tuple[str, str]]:
    """(css class, words) of what the filter is, where the run's files tell."""
    found = []
    dead = layer.dead()
    if dead is not None and dead[index]:
        since = " (also before training)" if layer.dead("before")[index] else ""
        found.append(("dead", f"dead: never positive on the {facts.probe_count} test "
                              f"digits{since}"))
    bright = layer.brightness()
    if bright is not None and bright[index]:
        found.append(("brightness", "brightness detector: its optimal input is mostly even ink "
                                    f"(pattern {layer.pattern['after'][index]:.2f} < 0.3)"))
    if layer.copies[index]:
        others = ", ".join(map(str, layer.copies[index]))
        plural = "s" if len(layer.copies[index]) > 1 else ""
        found.append(("copy", f"copy of filter{plural} {others}"))
    if layer.change[index] == 0:
        found.append(("still", "never moved"))
    return found


def card(layer: LayerFacts, index: int, scales: dict, facts: RunFacts) -> str:
    """The HTML of one filter's card, numbered as in the npz arrays (its index on the last
    axis), with its numbers as data attributes for sorting and filtering."""
    kernels = layer.kernels[..., index]
    norms = np.linalg.norm(kernels.reshape(len(kernels), -1), axis=1)
    found = flags(layer, index, facts)
    numbers = {"filter": index, "change": layer.change[index], "norm": norms[-1],
               "cosine": None if layer.forces is None else layer.forces["cosine"][index],
               "peak": None if layer.peak is None else layer.peak["after"][index]}
    rows = [("moved: ||after - before|| / ||before||", _number(layer.change[index]))]
    if layer.orientation is not None:
        before, after = (layer.orientation[when][index] for when in WHEN)
        numbers.update({"orientation-after": after, "orientation-gain": after - before})
        rows.append(("single-orientation fraction (1: one edge)",
                     f"{before:.2f} &rarr; {after:.2f}"))
    if layer.peak is not None:
        rows.append(("largest output on test digits",
                     f"{_number(layer.peak['before'][index])} &rarr; "
                     f"{_number(layer.peak['after'][index])}"))
    attributes = "".join(f' data-{key}="{_attribute(value)}"' for key, value in numbers.items())
    attributes += "".join(f' data-{flag}="{int(any(css == flag for css, _ in found))}"'
                          for flag in FLAGS)
    flag_html = "".join(f'<li class="flag {css}">{html.escape(words)}</li>'
                        for css, words in found)
    table = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    body = [*_kernel_pictures(layer, index, scales),
            sparkline(norms, layer.labels, "kernel norm"),
            f'<table class="numbers">{table}</table>',
            *_view_pictures(layer, index, scales, facts), *_forces(layer, index, scales)]
    return (f'<article class="card" id="{layer.name}-{index}" data-layer="{layer.name}"'
            f'{attributes} tabindex="0"><h3>{layer.name} filter {index}</h3>'
            f'<ul class="flags">{flag_html}</ul>' + "".join(body) + "</article>")
