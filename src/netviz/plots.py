"""Matplotlib figure builders shared by the experiments (no file I/O: they return figures).

Images come as H×W×3 float arrays in [0, 1]; maps as H×W arrays (any scale: each is shown min-max scaled).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "figure.dpi": 100})


def to_hwc(image) -> np.ndarray:
    """A 3×H×W tensor/array in [0, 1] -> H×W×3 numpy array in [0, 1]."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    return np.clip(array.transpose(1, 2, 0) if array.shape[0] == 3 else array, 0, 1)


def short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def draw_boxes(ax, boxes, color: str = "lime") -> None:
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=0.8))


def images_over_maps(images: Sequence, maps: Sequence[np.ndarray], titles: Sequence[str],
                     cmap: str = "hot", row_labels: tuple[str, str] = ("image", "saliency"),
                     points: Sequence[tuple[int, int]] | None = None, hits: Sequence[bool] | None = None,
                     boxes: Sequence | None = None, columns: int | None = None, suptitle: str = ""):
    """The lab's layout: a row of images over a row of their maps (wrapping every ``columns`` images).

    Optional ``boxes`` are drawn on the images and ``points`` (x, y) on the maps, green for a hit, red for a miss.
    """
    n = len(images)
    columns = columns or n
    blocks = (n + columns - 1) // columns
    fig, axes = plt.subplots(2 * blocks, columns, figsize=(1.6 * columns, 3.4 * blocks), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        block, col = divmod(i, columns)
        top, bottom = axes[2 * block, col], axes[2 * block + 1, col]
        top.imshow(to_hwc(images[i]))
        top.set_title(short(titles[i]))
        if boxes is not None:
            draw_boxes(top, boxes[i])
        bottom.imshow(maps[i], cmap=cmap)
        if points is not None:
            color = "lime" if hits is None or hits[i] else "red"
            bottom.plot(*points[i], marker="o", markersize=5, markerfacecolor="none", markeredgecolor=color, mew=1.2)
    for block in range(blocks):
        for offset, label in enumerate(row_labels):
            axes[2 * block + offset, 0].text(-0.08, 0.5, label, rotation=90, va="center", ha="right",
                                             transform=axes[2 * block + offset, 0].transAxes)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# Adversarial examples ---------------------------------------------------------------------------------------

ATTACK_COLORS = {"fgsm": "tab:orange", "pgd_linf": "tab:blue", "pgd_l2": "tab:green", "mi_fgsm": "tab:purple"}
ATTACK_LABELS = {"fgsm": "FGSM", "pgd_linf": "PGD-L∞", "pgd_l2": "PGD-L2", "mi_fgsm": "MI-FGSM"}
NORM_LABELS = {"linf": "L∞ budget ε (8-bit levels per value)", "l2": "L2 budget ε (8-bit levels, whole image)"}


def adversarial_rows(rows: Sequence[dict]):
    """The lab's layout, one row per example: original | adversarial | magnified difference.

    Each row: ``original`` and ``adversarial`` H×W×3 uint8, ``label`` (left of the row) and ``captions``
    (three strings under the panels, e.g. predicted class and probability). The difference is shown around
    mid-gray, magnified so that its 99th percentile (of absolute values) reaches black or white, larger values
    clipped; the factor is in the panel's title.
    """
    fig, axes = plt.subplots(len(rows), 3, figsize=(6.3, 2.35 * len(rows)), squeeze=False)
    for ax_row, row in zip(axes, rows):
        delta = row["adversarial"].astype(np.float64) - row["original"].astype(np.float64)
        peak = max(float(np.percentile(np.abs(delta), 99)), 1.0)
        gain = 127.5 / peak
        panels = [(row["original"], "original"), (row["adversarial"], "adversarial (stored PNG)"),
                  (np.clip(127.5 + gain * delta, 0, 255).astype(np.uint8), f"difference ×{gain:.0f}")]
        for ax, (image, title), caption in zip(ax_row, panels, row["captions"]):
            ax.imshow(image)
            ax.set_title(title)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(caption)
        ax_row[0].set_ylabel(row["label"], fontsize=7)
    fig.tight_layout()
    return fig


def success_curves(curves: dict):
    """Attack success rate against ε, one panel per (norm, model), one line per attack.

    curves: {model: {attack: {"norm": "linf"|"l2", "eps": [...], "success": [...]}}}; rates in 0..1.
    """
    from matplotlib.ticker import FixedLocator, NullLocator

    models = list(curves)
    norms = [n for n in ("linf", "l2") if any(a["norm"] == n for m in models for a in curves[m].values())]
    fig, axes = plt.subplots(len(norms), len(models), figsize=(3.2 * len(models), 2.5 * len(norms)), squeeze=False)
    for r, norm in enumerate(norms):
        for c, model in enumerate(models):
            ax = axes[r, c]
            ticks = set()
            for attack, curve in curves[model].items():
                if curve["norm"] == norm:
                    ax.plot(curve["eps"], curve["success"], marker="o", markersize=3, color=ATTACK_COLORS.get(attack),
                            label=ATTACK_LABELS.get(attack, attack))
                    ticks.update(curve["eps"])
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([f"{t:g}" for t in sorted(ticks)])
            ax.set_ylim(-0.03, 1.03)
            ax.set_title(model)
            ax.set_xlabel(NORM_LABELS[norm])
            ax.set_ylabel("success rate")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def transfer_matrices(matrices: dict, models: Sequence[str]):
    """One heat map per attack: the success rate of each source model's stored images (rows) on each model
    (columns); the diagonal is the white-box case. ``matrices``: {attack: {"png": [[rate]], ...}}."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(1.8 * len(matrices) + 1.0, 2.4), squeeze=False)
    short_names = [short(m, 20) for m in models]
    for ax, (attack, kinds) in zip(axes[0], matrices.items()):
        grid = np.array([[np.nan if v is None else v for v in row] for row in kinds["png"]], dtype=float)
        ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
        for (i, j), value in np.ndenumerate(grid):
            text = "–" if np.isnan(value) else f"{100 * value:.0f}%"
            ax.text(j, i, text, ha="center", va="center", color="white" if np.isnan(value) or value < 0.6 else "black")
        ax.set_xticks(range(len(models)), short_names, rotation=25, ha="right", fontsize=7)
        ax.set_yticks(range(len(models)), short_names if ax is axes[0, 0] else [], fontsize=7)
        ax.set_title(ATTACK_LABELS.get(attack, attack))
        ax.set_xlabel("judged by")
    axes[0, 0].set_ylabel("made on")
    fig.tight_layout()
    return fig
