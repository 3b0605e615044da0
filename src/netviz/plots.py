"""Matplotlib figure builders shared by the experiments (no file I/O: they return figures).

Images come as H×W×3 float arrays in [0, 1]; maps as H×W arrays (any scale: each is shown min-max scaled).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # headless: figures are written to files only
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
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


def bench_speedups(rows: list[dict], target: float = 3.0):
    """``netviz bench``: for each workload (experiment, task, model) how many times longer the per-image loop and
    the libraries take than netviz's batched run (log scale), with the target ratio as a dashed line.
    rows: the benchmark's rows (keys experiment, task, model, variant, kind, speedup)."""
    workloads = list(dict.fromkeys((r["experiment"], r["task"], r["model"]) for r in rows))
    others = list(dict.fromkeys(r["variant"] for r in rows if r["kind"] != "batched"))
    colors = dict(zip(others, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    height = 0.8 / max(len(others), 1)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.42 * len(workloads) * max(len(others), 1) ** 0.5))
    labelled: set[str] = set()
    for i, key in enumerate(workloads):
        for r in rows:
            if (r["experiment"], r["task"], r["model"]) != key or r["kind"] == "batched" or not r["speedup"]:
                continue
            y = i - 0.4 + height * (others.index(r["variant"]) + 0.5)
            ax.barh(y, r["speedup"], height=height * 0.9, color=colors[r["variant"]],
                    label=None if r["variant"] in labelled else r["variant"])
            labelled.add(r["variant"])
            ax.text(r["speedup"] * 1.03, y, f"{r['speedup']:.1f}×", va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(target, color="gray", linestyle="--", linewidth=0.8, label=f"target {target:g}×")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.5, 1, 2, 3, 5, 10, 20, 50, 100]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(range(len(workloads)), [f"{e}: {t}\n{short(m, 22)}" for e, t, m in workloads])
    ax.invert_yaxis()
    ax.set_xlabel("time relative to netviz batched (×, log scale; > 1 = slower than netviz)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    right = max([r["speedup"] for r in rows if r["speedup"]] + [target])
    ax.set_xlim(min([r["speedup"] for r in rows if r["speedup"]] + [1.0]) * 0.7, right * 1.6)
    fig.tight_layout()
    return fig
