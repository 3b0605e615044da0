"""Where the panels of a saved figure are, so that figures can be compared panel by panel (grading).

A panel is one matplotlib axes that shows something (an image, lines, bars, text, or visible axis lines). Its
box is the axes' plotting area in the pixels of the saved PNG: ``[x0, y0, x1, y1]``, origin top left, x1/y1
exclusive. Boxes are computed from the figure's layout right after saving, for figures saved with
``bbox_inches="tight"`` (what :meth:`netviz.experiments.context.Context.save_figure` does); they agree with
the pixels to about a pixel.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

# the same default as savefig's: the margin added around the tight box
PAD_INCHES = matplotlib.rcParams["savefig.pad_inches"]


def _shows_something(ax) -> bool:
    return ax.get_visible() and bool(ax.axison or ax.images or ax.lines or ax.collections or ax.patches
                                     or ax.texts or ax.tables)


def _label(ax, index: int) -> str:
    title = ax.get_title() or ax.get_title("left") or ax.get_title("right")
    spec = ax.get_subplotspec() if hasattr(ax, "get_subplotspec") else None
    where = f"row {spec.rowspan.start + 1}, column {spec.colspan.start + 1}" if spec is not None else f"axes {index + 1}"
    return f"{where}: {title}" if title else where


def panel_boxes(fig, png_size: tuple[int, int], pad_inches: float = PAD_INCHES) -> list[dict]:
    """The panels of ``fig`` as saved with ``bbox_inches="tight"`` into a PNG of ``png_size`` (width, height).

    Returns ``[{"box": [x0, y0, x1, y1], "label": "row 1, column 2: hen"}, ...]`` in axes order; boxes are
    clipped to the image, and panels smaller than 8 pixels either way are left out.
    """
    renderer = fig.canvas.get_renderer()
    padded = fig.get_tightbbox(renderer).padded(pad_inches)  # inches, origin bottom left
    width, height = png_size
    sx, sy = width / padded.width, height / padded.height  # pixels per inch of the saved file
    panels = []
    for index, ax in enumerate(fig.axes):
        if not _shows_something(ax):
            continue
        ext = ax.get_window_extent(renderer)  # display pixels at the figure's dpi, origin bottom left
        x0 = (ext.x0 / fig.dpi - padded.x0) * sx
        x1 = (ext.x1 / fig.dpi - padded.x0) * sx
        y0 = (padded.y1 - ext.y1 / fig.dpi) * sy
        y1 = (padded.y1 - ext.y0 / fig.dpi) * sy
        box = [max(0, round(x0)), max(0, round(y0)), min(width, round(x1)), min(height, round(y1))]
        if box[2] - box[0] >= 8 and box[3] - box[1] >= 8:
            panels.append({"box": box, "label": _label(ax, index)})
    return panels


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG, read from its header."""
    from PIL import Image

    with Image.open(path) as image:
        return image.size
