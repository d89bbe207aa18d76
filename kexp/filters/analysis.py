"""Numbers that describe a set of filters: how far they moved, how edge-like they are, how many
are really different. numpy only; used by plots, demos, the initializer study and tests.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SOBEL_X = np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T
EDGE_ANGLES_DEGREES = tuple(range(0, 180, 15))


def relative_change(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per output filter ||after - before|| / ||before|| for kernels (..., c_out); inf where a
    filter started at exactly zero and moved, 0 where it did not move."""
    flat_before = before.reshape(-1, before.shape[-1]).astype(np.float64)
    flat_after = after.reshape(-1, after.shape[-1]).astype(np.float64)
    change = np.linalg.norm(flat_after - flat_before, axis=0)
    norm = np.linalg.norm(flat_before, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, change / norm, np.where(change > 0, np.inf, 0.0))


def oriented_edge_filters(angles_degrees=EDGE_ANGLES_DEGREES) -> np.ndarray:
    """Unit-norm 3x3 first-derivative (Sobel) filters steered to each angle: (angles, 3, 3)."""
    filters = []
    for angle in angles_degrees:
        theta = math.radians(angle)
        steered = math.cos(theta) * SOBEL_X + math.sin(theta) * SOBEL_Y
        filters.append(steered / np.linalg.norm(steered))
    return np.stack(filters)


def edge_likeness(kernel: np.ndarray) -> np.ndarray:
    """Per output filter, the best |cosine similarity| between the filter (its mean removed) and
    an oriented 3x3 edge detector: 1 for a pure edge detector of some orientation; random 3x3
    filters typically score about 0.3-0.6. For c_in > 1 the score is averaged over the input
    channels' 3x3 slices. kernel: (3, 3, c_in, c_out)."""
    if kernel.shape[:2] != (3, 3):
        raise ValueError(f"edge_likeness needs 3x3 kernels; got shape {kernel.shape}.")
    edges = oriented_edge_filters().reshape(-1, 9)  # (angles, 9), zero mean and unit norm
    slices = np.transpose(kernel, (2, 3, 0, 1)).reshape(kernel.shape[2], kernel.shape[3], 9)
    centred = slices - slices.mean(axis=-1, keepdims=True)
    norms = np.linalg.norm(centred, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(norms > 0, centred / norms, 0.0)
    cosine = np.abs(unit @ edges.T).max(axis=-1)  # (c_in, c_out)
    return cosine.mean(axis=0)


def equal_filters(kernel: np.ndarray, tolerance: float = 1e-3) -> np.ndarray:
    """(c_out, c_out) booleans: output filters i and j are equal, their distance at most
    `tolerance` times the larger norm (or absolutely, for norms below 1); the diagonal is True."""
    filters = kernel.reshape(-1, kernel.shape[-1]).T.astype(np.float64)
    norms = np.linalg.norm(filters, axis=1)
    squared = (norms[:, None] ** 2 + norms[None, :] ** 2 - 2 * filters @ filters.T)
    distances = np.sqrt(np.maximum(squared, 0.0))
    scale = np.maximum(np.maximum(norms[:, None], norms[None, :]), 1.0)
    return (distances <= tolerance * scale) | np.eye(len(filters), dtype=bool)


def distinct_filters(kernel: np.ndarray, tolerance: float = 1e-3) -> int:
    """How many output filters are really different: filters equal within `tolerance`
    (`equal_filters`) count as one. The zeros initializer gives 1: every filter gets the same
    gradient, so they never separate."""
    equal = equal_filters(kernel, tolerance)
    representatives: list[int] = []
    for candidate in range(len(equal)):
        if not equal[candidate, representatives].any():
            representatives.append(candidate)
    return len(representatives)


ORIENTATION_BAND_DEGREES = 30.0
SPECTRUM_SIDE = 64  # images are zero-padded to this for a finely sampled spectrum


def single_orientation_fraction(images: np.ndarray,
                                band_degrees: float = ORIENTATION_BAND_DEGREES) -> np.ndarray:
    """Per image (n, h, w): the largest share of its spatial-frequency energy (mean removed,
    Hann-windowed) that lies within one band of orientations `band_degrees` wide. A simple
    edge or line detector's pattern, a straight stroke or a grating of one orientation, scores
    about 0.9; a corner or cross, two orientations, about 0.45; a curve, blob or noise, whose
    energy spreads over every orientation, about band / 180 (0.2 for 30 degrees). The measure
    of "complexity" behind demo 15: 1 means one oriented edge explains the pattern."""
    images = np.asarray(images, dtype=np.float64)
    count, height, width = images.shape
    centred = images - images.mean(axis=(1, 2), keepdims=True)
    windowed = centred * np.outer(np.hanning(height), np.hanning(width))
    side = max(SPECTRUM_SIDE, height, width)
    power = (np.abs(np.fft.fft2(windowed, s=(side, side))) ** 2).reshape(count, -1)
    total = power.sum(axis=1)
    order, starts, stops = orientation_band_runs(side, float(band_degrees))
    # Each band's energy as a difference of running sums over the frequencies sorted by
    # orientation, laid out twice for the bands that wrap past 180 degrees: the same sums as
    # `power @ orientation_bands(...)`, 20x faster.
    running = np.cumsum(np.concatenate([np.zeros((count, 1)), power[:, order],
                                        power[:, order]], axis=1), axis=1)
    best = (running[:, stops] - running[:, starts]).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, best / total, 0.0)


@functools.lru_cache(maxsize=4)
def orientation_bands(side: int, band_degrees: float) -> np.ndarray:
    """(side * side, 180): column d is 1 at the frequencies of a side x side spectrum whose
    orientation lies within band_degrees / 2 of d degrees (the zero frequency in none)."""
    frequencies = np.fft.fftfreq(side)
    fy, fx = np.meshgrid(frequencies, frequencies, indexing="ij")
    orientation = np.degrees(np.arctan2(fy, fx)).ravel() % 180.0
    centres = np.arange(0.0, 180.0, 1.0)
    distance = np.abs((orientation[:, None] - centres[None, :] + 90.0) % 180.0 - 90.0)
    in_band = (distance <= band_degrees / 2) & ((fy != 0) | (fx != 0)).ravel()[:, None]
    return in_band.astype(np.float64)


@functools.lru_cache(maxsize=4)
def orientation_band_runs(side: int, band_degrees: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frequencies of `orientation_bands` (the zero frequency left out) in order of
    orientation, and per band the [start, stop) of its frequencies in that order written twice:
    a band is a run of neighbouring orientations, wrapping past 180 degrees."""
    bands = orientation_bands(side, band_degrees)
    nonzero = np.flatnonzero(bands.any(axis=1))
    frequencies = np.fft.fftfreq(side)
    fy, fx = np.meshgrid(frequencies, frequencies, indexing="ij")
    orientation = (np.degrees(np.arctan2(fy, fx)).ravel() % 180.0)[nonzero]
    order = nonzero[np.argsort(orientation, kind="stable")]
    in_band = bands[order].astype(bool)  # (frequencies, bands), rows by orientation
    # A run starts where a member follows a non-member (circularly); a band that holds every
    # frequency starts at 0.
    starts = np.argmax(in_band & ~np.roll(in_band, 1, axis=0), axis=0)
    return order, starts, starts + in_band.sum(axis=0)


BRIGHTNESS_DETECTOR_BELOW = 0.3  # pattern fraction under which a filter is a brightness detector


def pattern_fraction(images: np.ndarray) -> np.ndarray:
    """Per image (n, h, w): the share of its energy that is pattern rather than uniform
    brightness, ||x - mean(x)||^2 / ||x||^2. A filter whose optimal input scores below
    BRIGHTNESS_DETECTOR_BELOW answers to how much ink there is, not to where it is: a
    brightness detector, for which an orientation means nothing."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    energy = (flat ** 2).sum(axis=1)
    pattern = ((flat - flat.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(energy > 0, pattern / energy, 0.0)
