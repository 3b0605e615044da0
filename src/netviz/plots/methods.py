"""Figures that compare saliency methods: a grid of every method's maps, deletion/insertion curves, and the
model-randomization sanity check (summary curves and example maps)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from netviz.plots.common import display_scaled, draw_boxes, frameless, plt, short, to_hwc


def _method_columns(n_rows: int, names: Sequence[str]):
    """The frame of :func:`method_grid` and :func:`randomization_examples`: ``n_rows`` rows of an image column
    then one column per method, frameless, titled on the first row. Returns (figure, n_rows × (1 + methods) axes)."""
    fig, axes = plt.subplots(n_rows, 1 + len(names), figsize=(1.35 * (1 + len(names)), 1.4 * n_rows), squeeze=False)
    frameless(axes)
    for j, name in enumerate(["image", *names]):
        axes[0, j].set_title(name)
    return fig, axes


def _show_maps(ax_row, maps: dict[str, Sequence[np.ndarray]], index: int, cmap: str, percentile: float) -> None:
    """Map ``index`` of each method in ``ax_row[1:]`` (method order), scaled by :func:`display_scaled`."""
    for ax, name in zip(ax_row[1:], maps):
        ax.imshow(display_scaled(maps[name][index], percentile), cmap=cmap, vmin=0, vmax=1)


def method_grid(images: Sequence, maps: dict[str, Sequence[np.ndarray]], titles: Sequence[str],
                boxes: Sequence | None = None, cmap: str = "hot", percentile: float = 99.5):
    """Images down the rows, one column per method: the image (with its ``boxes``) then each method's map,
    every map shown with :func:`display_scaled`."""
    fig, axes = _method_columns(len(images), list(maps))
    for i in range(len(images)):
        axes[i, 0].imshow(to_hwc(images[i]))
        axes[i, 0].set_ylabel("\n".join(short(line, 18) for line in titles[i].split("\n")), fontsize=7)
        if boxes is not None:
            draw_boxes(axes[i, 0], boxes[i])
        _show_maps(axes[i], maps, i, cmap, percentile)
    fig.tight_layout(pad=0.3)
    return fig


def method_colors(names: Sequence[str]) -> dict[str, tuple]:
    """One fixed colour per method (in the given order), the same in every figure; baselines are gray."""
    cycle = plt.get_cmap("tab10").colors
    colors, used = {}, 0
    for name in names:
        if name.lower().startswith(("center", "random")):
            colors[name] = (0.45, 0.45, 0.45)
        else:
            colors[name] = cycle[used % len(cycle)]
            used += 1
    return colors


def perturbation_figure(fractions: Sequence[float], deletion: dict[str, Sequence[float]],
                        insertion: dict[str, Sequence[float]], deletion_auc: dict[str, float],
                        insertion_auc: dict[str, float], suptitle: str = ""):
    """Mean deletion and insertion curves (probability of the class against the share of pixels changed),
    one line per method, its AUC in the legend."""
    colors = method_colors(list(deletion))
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.1), sharey=True)
    for ax, curves, aucs, title, where in ((axes[0], deletion, deletion_auc, "deletion (lower is better)", "upper right"),
                                           (axes[1], insertion, insertion_auc, "insertion (higher is better)", "lower right")):
        for name, curve in curves.items():
            dashed = colors[name] == (0.45, 0.45, 0.45)
            ax.plot(fractions, curve, marker="o", markersize=2.5, color=colors[name], linestyle="--" if dashed else "-",
                    label=f"{name} ({aucs[name]:.3f})")
        ax.set_title(title)
        ax.set_xlabel("share of pixels deleted" if curves is deletion else "share of pixels inserted")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc=where, fontsize=6.5, title="method (AUC)", title_fontsize=6.5, frameon=False)
    axes[0].set_ylabel("probability of the class")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def randomization_figure(stage_labels: Sequence[str], spearman: dict[str, Sequence[float]],
                         ssim: dict[str, Sequence[float]], suptitle: str = ""):
    """The sanity check's summary: similarity of each method's maps to its original maps (Spearman rank
    correlation left, SSIM right) as more layers are re-initialised from the top (left to right)."""
    colors = method_colors(list(spearman))
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.0), sharey=True)
    x = np.arange(len(stage_labels))
    for ax, values, title in ((axes[0], spearman, "Spearman rank correlation"), (axes[1], ssim, "SSIM")):
        for name, series in values.items():
            dashed = colors[name] == (0.45, 0.45, 0.45)
            ax.plot(x, series, marker="o", markersize=3, color=colors[name], linestyle="--" if dashed else "-", label=name)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xticks(x, stage_labels, rotation=20, ha="right")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("similarity to the original maps")
    axes[0].set_ylim(-0.2, 1.05)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=6.5, frameon=False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def randomization_examples(image, maps: dict[str, Sequence[np.ndarray]], stage_labels: Sequence[str],
                           cmap: str = "hot", percentile: float = 99.5):
    """One image's maps as the model is randomised: the stages down the rows (the first row is the original
    model), the image then one column per method, as in :func:`method_grid`; maps shown with :func:`display_scaled`."""
    fig, axes = _method_columns(len(stage_labels), list(maps))
    axes[0, 0].imshow(to_hwc(image))
    for row, label in enumerate(stage_labels):
        if row:
            axes[row, 0].axis("off")
        axes[row, 1].set_ylabel(label, fontsize=7)
        _show_maps(axes[row], maps, row, cmap, percentile)
    fig.tight_layout(pad=0.3)
    return fig

