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
