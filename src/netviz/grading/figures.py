"""Figures compared by SSIM, panel by panel: the axes boxes recorded when the figure was saved
(:mod:`netviz.panels`), or tiles where none were; pixel for pixel where the layout is the expected one, at a coarse
scale where it moved; each panel against the threshold that the expected set's variant builds and the section's
``UNSTABLE`` panels allow (:func:`panel_minimum`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from netviz.errors import NetvizError
from netviz.grading.compare import Check
from netviz.grading.expected import Build
from netviz.grading.tolerance import unstable_reason

TILE = 192  # px: tile size for figures without recorded panels
COARSE = 32  # px: longer side at which panels of differing layouts are compared


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(background, image)
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:  # PIL: truncated, not an image, missing
        raise NetvizError(f"figure {path} cannot be read ({err}); restore it or rebuild it") from None


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two H×W×3 uint8 images of one size (scikit-image; 7×7 windows, smaller for tiny crops)."""
    from skimage.metrics import structural_similarity

    side = min(a.shape[0], a.shape[1])
    if side < 3:
        return 1.0 if np.array_equal(a, b) else 0.0
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=window))


def tiles(shape: tuple[int, ...], size: int = TILE) -> list[dict]:
    height, width = shape[:2]
    ny, nx = max(1, round(height / size)), max(1, round(width / size))
    ys, xs = np.linspace(0, height, ny + 1).astype(int), np.linspace(0, width, nx + 1).astype(int)
    return [{"box": [int(xs[i]), int(ys[j]), int(xs[i + 1]), int(ys[j + 1])], "label": f"tile {j + 1},{i + 1}"}
            for j in range(ny) for i in range(nx)]


def _crop(image: np.ndarray, box: list[int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def _scaled(box: list[int], sx: float, sy: float) -> list[int]:
    return [round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)]


def _coarse(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def panel_ssim(expected: np.ndarray, actual: np.ndarray, same_grid: bool) -> tuple[float, bool]:
    """SSIM of two panel crops, and whether they had to be rescaled.

    On the same pixel grid (same box in same-sized figures: the same layout) they are compared at full
    resolution. Otherwise (another font or matplotlib version moved the layout by a few pixels) pixel-level
    comparison of noisy content such as saliency maps is meaningless after resampling, so both are averaged
    down to ``COARSE`` px on their longer side and compared there, against ``grade.ssim_min_rescaled``.
    """
    if same_grid and expected.shape == actual.shape:
        return ssim(expected, actual), False
    height, width = expected.shape[:2]
    scale = min(1.0, COARSE / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    return ssim(_coarse(expected, size), _coarse(actual, size)), True


def panel_minimum(base: float, grade_config: dict, variant_ssim: float | None, unstable: bool) -> float:
    """The SSIM a panel must reach: ``base`` (``ssim_min`` or ``ssim_min_rescaled``), lowered to
    ``1 − spread_factor × (1 − variant_ssim)`` when variant builds moved the panel that far, and to
    ``ssim_floor`` for a panel a section declares unstable; never below ``ssim_floor``."""
    floor = float(grade_config.get("ssim_floor", 0.5))
    if unstable:
        return min(base, floor)
    if variant_ssim is not None:
        factor = float(grade_config.get("spread_factor", 3.0))
        return min(base, max(floor, 1.0 - factor * (1.0 - variant_ssim)))
    return base


def measured_unstable(grade_config: dict, variant_ssim: float | None) -> str | None:
    """Why a panel is not graded by SSIM although no section declared it: legitimate variant builds already moved
    it so far (``1 − spread_factor × (1 − SSIM)`` below ``ssim_floor``) that no threshold separates a correct build
    from a wrong one; the metrics of the same results are graded instead."""
    if variant_ssim is None:
        return None
    factor, floor = float(grade_config.get("spread_factor", 3.0)), float(grade_config.get("ssim_floor", 0.5))
    if 1.0 - factor * (1.0 - variant_ssim) >= floor:
        return None
    return (f"legitimate variant builds already differ here (panel SSIM {variant_ssim:.2f}): the image is chaotic "
            "under float rounding, so its metrics are graded instead")


def compare_figure(section: str, rel: str, expected: Build, actual: Build, grade_config: dict,
                   questions: list[str], unstable: dict | None = None) -> Check:
    """SSIM of figure ``rel`` per panel (per tile when no panels were recorded); the whole-figure SSIM is
    reported too. The figure passes when every panel does (each against :func:`panel_minimum`, from the expected
    set's measured variation and the section's ``UNSTABLE`` panels) and the panel layout matches."""
    strict, rescaled_min = float(grade_config["ssim_min"]), float(grade_config["ssim_min_rescaled"])
    lows = (expected.variation or {}).get("figures", {}).get(rel)
    check = Check("figure", section, rel, False, "", questions)
    if section not in actual.sections or not (actual.root / rel).is_file():
        check.detail = "missing in the build"
        return check
    e_img = read_rgb(expected.root / rel)
    try:
        a_img = read_rgb(actual.root / rel)
    except NetvizError:
        check.detail = "unreadable in the build (a damaged image); rebuild it"
        return check
    same_size = e_img.shape == a_img.shape
    check.ssim = ssim(e_img, a_img if same_size else resize(a_img, (e_img.shape[1], e_img.shape[0])))
    sx, sy = a_img.shape[1] / e_img.shape[1], a_img.shape[0] / e_img.shape[0]
    e_panels = expected.panels(section, rel)
    a_panels = actual.panels(section, rel)
    notes = []
    layout_ok = True
    if e_panels:
        paired = a_panels is not None and len(a_panels) == len(e_panels)
        if not paired:
            layout_ok = False
            notes.append(f"{len(a_panels or [])} panels recorded, expected {len(e_panels)}")
        a_boxes = [p["box"] for p in a_panels] if paired else [_scaled(p["box"], sx, sy) for p in e_panels]
    else:
        e_panels = tiles(e_img.shape)
        a_boxes = [_scaled(p["box"], sx, sy) for p in e_panels]
    for index, (panel, a_box) in enumerate(zip(e_panels, a_boxes)):
        e_crop, a_crop = _crop(e_img, panel["box"]), _crop(a_img, a_box)
        if e_crop.size == 0 or a_crop.size == 0:
            value, rescaled = 0.0, False
        else:
            value, rescaled = panel_ssim(e_crop, a_crop, same_size and list(a_box) == list(panel["box"]))
        variant = lows[index] if lows and len(lows) == len(e_panels) else None
        why = unstable_reason(f"{Path(rel).name}:{panel['label']}", unstable or {}) or measured_unstable(grade_config, variant)
        minimum = panel_minimum(rescaled_min if rescaled else strict, grade_config, variant, why is not None)
        if why is not None and why.startswith("legitimate variant"):
            minimum = 0.0  # shown, not graded
        check.panels.append({"label": panel["label"], "ssim": value, "box": panel["box"], "actual_box": a_box,
                             "rescaled": rescaled, "min": minimum, "passed": value >= minimum,
                             "variant_ssim": variant, "unstable": why})
    if any(p["rescaled"] for p in check.panels):
        notes.append(f"layout differs from the expected figure's ({a_img.shape[1]}×{a_img.shape[0]} vs "
                     f"{e_img.shape[1]}×{e_img.shape[0]} px): panels compared at {COARSE} px")
    failing = sorted((p for p in check.panels if not p["passed"]), key=lambda p: p["ssim"])
    check.passed = layout_ok and not failing
    worst = failing[0] if failing else min(check.panels, key=lambda p: p["ssim"])
    if failing:
        check.detail = (f"SSIM {worst['ssim']:.3f} < {worst['min']:g} in panel '{worst['label']}'"
                        + (f" and {len(failing) - 1} more panel(s)" if len(failing) > 1 else ""))
    else:
        check.detail = f"panels SSIM ≥ {worst['ssim']:.3f}"
    check.detail += f"; whole figure {check.ssim:.3f}" + "".join(f"; {n}" for n in notes)
    return check
