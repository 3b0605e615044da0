"""The figure parts every family uses (PNG bytes, image and map panels, boxes and points, short titles) and the
general layouts: images over their maps, a grid of images, curves along iterations. Matplotlib runs headless.

Images come as H×W×3 float arrays in [0, 1] (or 3×H×W tensors, see :func:`to_hwc`); maps as H×W arrays.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "figure.dpi": 100})


def png_bytes(fig, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (tight bounding box, no software tag), in RGB when it is fully opaque, as every
    figure here is: pdfLaTeX then embeds the file as it is instead of splitting off an alpha channel and
    recompressing both (18 s -> 3 s for the whole report), and the file is smaller. Pixels are unchanged."""
    import io

    from PIL import Image

    buffer = io.BytesIO()  # matplotlib's PNG, uncompressed (it is decoded at once): one compression pass, not two
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None},
                pil_kwargs={"compress_level": 0})
    with Image.open(buffer) as image:
        image.load()
        if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
            image = image.convert("RGB")
        out = io.BytesIO()
        image.save(out, format="png")
    return out.getvalue()


def to_hwc(image) -> np.ndarray:
    """A 3×H×W tensor/array in [0, 1] -> H×W×3 numpy array in [0, 1]."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    return np.clip(array.transpose(1, 2, 0) if array.shape[0] == 3 else array, 0, 1)


def short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def draw_boxes(ax, boxes, color: str = "lime") -> None:
    for x0, y0, x1, y1 in boxes:
        ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=0.8))


def mark_point(ax, point, hit: bool | None) -> None:
    """A map's maximum: a green circle for a pointing-game hit, a cyan cross for a miss (plain circle when not
    scored), each outlined in black so it reads on any colour map."""
    from matplotlib import patheffects

    marker, color = ("o", "lime") if hit is None or hit else ("X", "cyan")
    ax.plot(*point, marker=marker, markersize=6, markerfacecolor="none" if marker == "o" else color,
            markeredgecolor=color, mew=1.4, path_effects=[patheffects.withStroke(linewidth=3, foreground="black")])


def display_scaled(saliency: np.ndarray, percentile: float = 99.5) -> np.ndarray:
    """A non-negative map scaled to [0, 1] for display: divided by its ``percentile``-th value and clipped, so a
    few extreme pixels do not turn the rest black (all-zero maps stay black)."""
    top = float(np.percentile(saliency, percentile)) if np.size(saliency) else 0.0
    top = top if top > 0 else float(np.max(saliency, initial=0.0))
    return np.clip(saliency / top, 0, 1) if top > 0 else np.zeros_like(saliency, dtype=float)


def frameless(axes) -> None:
    """Image panels: no ticks and no frame on each of ``axes`` (one axes or an array of them)."""
    for ax in np.ravel(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)


def images_over_maps(images: Sequence, maps: Sequence[np.ndarray], titles: Sequence[str],
                     cmap: str = "hot", row_labels: tuple[str, str] = ("image", "saliency"),
                     points: Sequence[tuple[int, int]] | None = None, hits: Sequence[bool] | None = None,
                     boxes: Sequence | None = None, columns: int | None = None, suptitle: str = ""):
    """The lab's layout: a row of images over a row of their maps (wrapping every ``columns`` images).

    Optional ``boxes`` are drawn on the images and ``points`` (x, y) on the maps (see :func:`mark_point`); a
    point whose ``hits`` entry is None (an image without boxes) is not drawn.
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
        if points is not None and (hits is None or hits[i] is not None):
            mark_point(bottom, points[i], None if hits is None else bool(hits[i]))
    for block in range(blocks):
        for offset, label in enumerate(row_labels):
            axes[2 * block + offset, 0].text(-0.08, 0.5, label, rotation=90, va="center", ha="right",
                                             transform=axes[2 * block + offset, 0].transAxes)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def image_grid(rows: Sequence[Sequence], titles: Sequence[Sequence[str]] | None = None,
               row_labels: Sequence[str] | None = None, col_labels: Sequence[str] | None = None,
               cell: float = 1.3, suptitle: str = ""):
    """A grid of images: ``rows[r][c]`` a 3×H×W tensor/array in [0, 1] (clipped) or None for an empty cell.

    ``titles[r][c]`` goes above each image, ``col_labels`` above the first row (bold), ``row_labels`` left of
    each row, so the axes of a sweep can be read off the figure.
    """
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(cell * n_cols + (0.5 if row_labels else 0), (cell + 0.3) * n_rows + 0.3),
                             squeeze=False)
    frameless(axes)
    for r, row in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            image = row[c] if c < len(row) else None
            if image is None:
                continue
            ax.imshow(to_hwc(image))
            title = titles[r][c] if titles is not None and c < len(titles[r]) else ""
            if title:
                ax.set_title(title, fontsize=7)
            if r == 0 and col_labels is not None:
                lines = title.count("\n") + 1 if title else 0
                ax.annotate(col_labels[c], xy=(0.5, 1), xycoords="axes fraction", xytext=(0, 3 + 9 * lines),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7.5, fontweight="bold")
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=7, rotation=90, labelpad=4)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(pad=0.3, h_pad=0.4, w_pad=0.2)
    return fig


def sweep_curves(iterations: Sequence[int], series: dict[str, dict[str, Sequence[float]]],
                 panels: Sequence[tuple[str, str, bool]], styles: dict[str, dict] | None = None):
    """Line plots sharing an iteration axis, one panel per metric.

    series: {line label: {metric key: values along ``iterations``}}; panels: (metric key, y label, log y);
    styles: optional matplotlib keyword arguments per line label.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 2.6), squeeze=False)
    for ax, (key, label, log) in zip(axes[0], panels):
        for name, values in series.items():
            ax.plot(iterations, values[key], marker="o", markersize=3, label=name, **(styles or {}).get(name, {}))
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.set_xticks(list(iterations))
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.tight_layout()
    return fig

