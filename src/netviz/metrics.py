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

def _channels_last(image: np.ndarray) -> np.ndarray:
    """3×H×W or H×W×3 (or H×W) -> H×W×C float64."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 2:
        return array[:, :, None]
    return array.transpose(1, 2, 0) if array.shape[0] == 3 and array.shape[-1] != 3 else array


def total_variation(image: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels (right and down neighbours pooled, all channels),
    in pixel-value units: 0 for a flat image, about 0.33 for uniform noise in [0, 1]. image: 3×H×W or H×W×3."""
    array = _channels_last(image)
    steps = np.concatenate([np.abs(np.diff(array, axis=0)).ravel(), np.abs(np.diff(array, axis=1)).ravel()])
    return float(steps.mean())


def high_frequency_share(image: np.ndarray, cutoff: float = 0.25) -> float:
    """Share (0..1) of an image's spectral energy at spatial frequencies above ``cutoff`` cycles per pixel
    (0.5 is the Nyquist limit), each channel's mean removed first. White noise puts about 80% there (the area
    outside the disc of radius 0.25), natural photographs a few percent. image: 3×H×W or H×W×3."""
    array = _channels_last(image)
    array = array - array.mean(axis=(0, 1), keepdims=True)
    power = (np.abs(np.fft.fft2(array, axes=(0, 1))) ** 2).sum(axis=2)
    fy = np.fft.fftfreq(array.shape[0])[:, None]
    fx = np.fft.fftfreq(array.shape[1])[None, :]
    total = power.sum()
    return float(power[np.hypot(fy, fx) > cutoff].sum() / total) if total > 0 else 0.0


def class_rank(probabilities: np.ndarray, target: int) -> int:
    """Rank of class ``target`` in one probability (or score) vector: 1 = the top class; ties count in its favour."""
    scores = np.asarray(probabilities)
    return int((scores > scores[target]).sum()) + 1

def energy_in_boxes(saliency: np.ndarray, boxes: Sequence[Sequence[int]]) -> float:
    """Energy-based pointing game (Wang et al. 2020, Score-CAM): the share (0..1) of the map's positive mass that
    lies inside the boxes' union. A map spread evenly scores the boxes' area share (:func:`box_area_fraction`),
    the baseline to compare with. NaN for a map with no positive mass."""
    positive = np.clip(np.asarray(saliency, dtype=np.float64), 0, None)
    total = positive.sum()
    if total <= 0:
        return float("nan")
    return float(positive[box_mask(boxes, positive.shape)].sum() / total)


def curve_auc(values: Sequence[float], fractions: Sequence[float] | None = None) -> float:
    """Area under a curve sampled at ``fractions`` (0..1; default evenly spaced), by the trapezoid rule. For a
    deletion or insertion curve of probabilities this is RISE's AUC, in [0, 1]."""
    values = np.asarray(values, dtype=np.float64)
    x = np.linspace(0.0, 1.0, len(values)) if fractions is None else np.asarray(fractions, dtype=np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (values[1:] + values[:-1]) / 2))


def rank_correlation(a: np.ndarray, b: np.ndarray, flat: float = float("nan")) -> float:
    """Spearman rank correlation (-1..1) between two maps of the same shape, pixel by pixel (scipy).

    Undefined when a map is constant (e.g. an all-zero map behind a dead ReLU); ``flat`` is returned then
    (NaN by default; the randomization check passes 0: a map that went flat keeps none of the ranking)."""
    from scipy.stats import spearmanr

    a, b = np.ravel(a), np.ravel(b)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float(flat)
    return float(spearmanr(a, b).statistic)


def scaled_to_unit(saliency: np.ndarray) -> np.ndarray:
    """A map divided by its maximum absolute value (so in [-1, 1], [0, 1] for non-negative maps); zeros stay."""
    peak = float(np.max(np.abs(saliency))) if np.size(saliency) else 0.0
    return np.asarray(saliency, dtype=np.float64) / peak if peak > 0 else np.zeros(np.shape(saliency))


def map_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity (scikit-image, 7×7 window) of two non-negative maps, each first scaled to [0, 1] by
    its maximum (the check compares where the maps are bright, not their units). 1 = identical structure."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(scaled_to_unit(a), scaled_to_unit(b), data_range=1.0))


def center_prior(shape: tuple[int, int], sigma_fraction: float = 0.25) -> np.ndarray:
    """A map that ignores image and model: an isotropic Gaussian at the image center with standard deviation
    ``sigma_fraction`` × the shorter side, peak 1. It is the center baseline of every map metric at once."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    cy, cx = shape[0] // 2, shape[1] // 2  # the pixel center_point() names, so the argmax is that point
    sigma = sigma_fraction * min(shape)
    return np.exp(-((rows - cy) ** 2 + (cols - cx) ** 2) / (2 * sigma**2))


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of a − b over paired scores (NaN pairs dropped): is a ranking more than noise?"""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[~np.isnan(diff)]
    if diff.size == 0:
        return float("nan"), float("nan")
    se = float(diff.std(ddof=1) / np.sqrt(diff.size)) if diff.size > 1 else float("nan")
    return float(diff.mean()), se

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
