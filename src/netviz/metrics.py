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


# Adversarial perturbations: 8-bit images H×W×3 uint8 (what is stored), differences in 8-bit levels. -----------


def _delta(original: np.ndarray, adversarial: np.ndarray) -> np.ndarray:
    return adversarial.astype(np.float64) - original.astype(np.float64)


def linf_levels(original: np.ndarray, adversarial: np.ndarray) -> float:
    """‖δ‖∞ of the perturbation, in 8-bit levels (0..255)."""
    return float(np.abs(_delta(original, adversarial)).max())


def l2_levels(original: np.ndarray, adversarial: np.ndarray) -> float:
    """‖δ‖₂ of the perturbation over all values of the image, in 8-bit levels."""
    return float(np.linalg.norm(_delta(original, adversarial).ravel()))


def relative_l2(original: np.ndarray, adversarial: np.ndarray) -> float:
    """‖δ‖₂ / ‖x‖₂: the perturbation's size relative to the image's (0 = unchanged)."""
    return float(np.linalg.norm(_delta(original, adversarial).ravel()) / np.linalg.norm(original.astype(np.float64).ravel()))


def ssim(original: np.ndarray, adversarial: np.ndarray) -> float:
    """Structural similarity of two 8-bit RGB images (scikit-image, ``data_range=255``, channels last);
    1 = identical."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(original, adversarial, channel_axis=-1, data_range=255))


def attack_success(predicted: int, label: int, targeted: bool) -> bool:
    """Targeted: the prediction is the target ``label``; untargeted: it is not the true ``label``."""
    return predicted == label if targeted else predicted != label
