"""Figures of adversarial examples: example rows (original, adversarial, difference), success rate against the
budget ε, and the transfer matrices between models."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from netviz.plots.common import plt, short

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

