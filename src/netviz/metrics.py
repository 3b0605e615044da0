"""Metrics: small functions on numpy arrays, one image at a time; aggregation is the caller's.

Conventions: maps are H×W float arrays; points are ``(x, y)`` pixel coordinates (column, row); boxes are
``(x0, y0, x1, y1)`` with x0/y0 inclusive and x1/y1 exclusive.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def argmax_point(saliency: np.ndarray) -> tuple[int, int]:
    """The ``(x, y)`` of the map's maximum (the first one in row-major order when tied)."""
    row, col = np.unravel_index(int(np.argmax(saliency)), saliency.shape)
    return int(col), int(row)


def box_mask(boxes: Sequence[Sequence[int]], shape: tuple[int, int]) -> np.ndarray:
    """H×W bool mask, True inside the union of ``boxes``."""
    mask = np.zeros(shape, dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return mask


def pointing_hit(point: tuple[int, int], boxes: Sequence[Sequence[int]], shape: tuple[int, int],
                 tolerance: float = 15) -> bool:
    """Pointing game (Zhang et al. 2016), with TorchRay's rule: a hit when some pixel of the boxes' union
    lies strictly closer than ``tolerance`` pixels to ``point`` (Euclidean distance, in pixels)."""
    mask = box_mask(boxes, shape)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    disk = (cols - point[0]) ** 2 + (rows - point[1]) ** 2 < tolerance**2
    return bool(np.any(disk & mask))


def center_point(shape: tuple[int, int]) -> tuple[int, int]:
    """The image center ``(x, y)``: the pointing game's baseline guess."""
    return shape[1] // 2, shape[0] // 2


def box_area_fraction(boxes: Sequence[Sequence[int]], shape: tuple[int, int]) -> float:
    """Share of the image covered by the boxes' union (0..1): a large share makes pointing easy."""
    return float(box_mask(boxes, shape).mean())


def top_mass_share(saliency: np.ndarray, fraction: float = 0.01) -> float:
    """Share (0..1) of a non-negative map's total held by its brightest ``fraction`` of pixels: 1 for a single
    peak, ``fraction`` for a flat map. Measures how concentrated a map is."""
    values = np.sort(np.asarray(saliency, dtype=np.float64).ravel())
    total = values.sum()
    if total <= 0:
        return float("nan")
    count = max(1, int(round(fraction * values.size)))
    return float(values[-count:].sum() / total)
