"""The section's figures: the featured class along the iterations, the gallery, each sweep's grid and curves, and
the photo starts; drawn from a model's images and its numbers (:mod:`netviz.experiments.classviz.scores`)."""

from __future__ import annotations

from netviz import plots
from netviz.experiments.classviz.scores import start_changes
from netviz.experiments.classviz.settings import Settings
from netviz.experiments.context import Context


def short_p(p: float) -> str:
    """A probability for a small figure title: two decimals, or one significant digit below 0.01."""
    return f"{p:.2f}" if p >= 0.01 else f"{p:.0e}"


def fmt_value(value: float) -> str:
    return f"{value:g}"


def featured_figure(ctx: Context, name: str, made: dict, probs: dict, settings: Settings) -> str:
    """Q8: the featured class's image at each kept iteration, with its maker's probability of the class."""
    noise, snapshots, target = made["noise"], settings.snapshots, settings.target
    i = {t: i for i, t in enumerate(made["targets"])}[made["gallery"][0]]
    strip = [[noise.snapshots[k][i] for k in snapshots]]
    titles = [["noise"] + [f"p {short_p(float(probs[name][f'snapshot_{k}'][i][target]))}" for k in snapshots[1:]]]
    col_labels = ["start" if k == 0 else f"iteration {k}" for k in snapshots]
    return ctx.save_figure(plots.image_grid(strip, titles, col_labels=col_labels, cell=1.6), f"{name}_featured.png")


def gallery_figure(ctx: Context, name: str, made: dict, gallery: list[dict], categories, per_row: int = 7) -> str:
    """Q8: the gallery's final images, ``per_row`` to a row, each titled with its maker's probability."""
    index = {t: i for i, t in enumerate(made["targets"])}
    cells = [made["noise"].images[index[t]] for t in made["gallery"]]
    titles = [f"{plots.short(categories[t.target], 16)}\np {short_p(g['p'][name])}" for t, g in zip(made["gallery"], gallery)]
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    title_rows = [titles[i : i + per_row] for i in range(0, len(titles), per_row)]
    return ctx.save_figure(plots.image_grid(rows, title_rows, cell=1.35), f"{name}_gallery.png")


def sweep_figures(ctx: Context, name: str, made: dict, sweep: dict, settings: Settings) -> dict:
    """Q9: one sweep class's grid of snapshots (rows: learning rate and λ; columns: iterations) and its curves."""
    index = {t: i for i, t in enumerate(made["targets"])}
    grid, grid_titles, row_labels = [], [], []
    for target, cell in zip((t for t in made["sweep"] if t.target == sweep["class"]), sweep["cells"]):
        path = cell["by_iteration"]
        grid.append([made["noise"].snapshots[t["iteration"]][index[target]] for t in path])
        grid_titles.append([f"p {short_p(t['p'])}, TV {t['tv']:.3f}" for t in path])
        row_labels.append(f"lr {fmt_value(cell['learning_rate'])}, λ {fmt_value(cell['l2_reg'])}")
    slug = sweep["name"].split(",")[0].replace(" ", "_").lower()
    col_labels = [f"iteration {k}" for k in settings.snapshots if k > 0]
    grid_figure = ctx.save_figure(plots.image_grid(grid, grid_titles, row_labels=row_labels, col_labels=col_labels,
                                                   cell=1.25), f"{name}_sweep_{slug}.png")
    curves = sweep_curves(sweep["cells"], settings.sweep_learning_rates, settings.sweep_l2_regs, settings.snapshots,
                          sweep["name"])
    return {"grid": grid_figure, "curves": ctx.save_figure(curves, f"{name}_sweep_{slug}_curves.png")}


def sweep_curves(cells: list[dict], learning_rates: list[float], l2_regs: list[float], snapshots: list[int], class_name: str):
    """The sweep's p, total variation and high-frequency share along the iterations: a colour per learning rate, a
    line style per λ."""
    colors = {lr: f"C{j}" for j, lr in enumerate(learning_rates)}
    dashes = {l2: style for l2, style in zip(l2_regs, ["-", "--", ":", "-.", (0, (5, 1, 1, 1))] * 4)}
    series, styles = {}, {}
    for cell in cells:
        label = f"lr {fmt_value(cell['learning_rate'])}, λ {fmt_value(cell['l2_reg'])}"
        series[label] = {key: [t[key] for t in cell["by_iteration"]] for key in ("p", "tv", "hf")}
        styles[label] = {"color": colors[cell["learning_rate"]], "linestyle": dashes[cell["l2_reg"]]}
    return plots.sweep_curves([k for k in snapshots if k > 0], series,
                              [("p", f"p({plots.short(class_name, 14)})", True), ("tv", "total variation", False),
                               ("hf", "high-frequency share", False)], styles)


def starts_figure(ctx: Context, name: str, made: dict, probs: dict, settings: Settings, categories) -> str:
    """Q10: each photo start along the iterations, with its maker's probability of the target, and the size of the
    change (the largest over the colour channels, shown scaled to its maximum)."""
    real, from_real, snapshots = ctx.images, made["from_real"], settings.snapshots
    strip, strip_titles, row_labels = [], [], []
    for j, (i, tgt, change) in enumerate(zip(made["start_index"], made["start_targets"], start_changes(real, made))):
        strength = change.amax(0)
        strip.append([from_real.snapshots[k][j] for k in snapshots] + [(strength / max(float(strength.max()), 1e-8)).expand(3, -1, -1)])
        strip_titles.append([f"p({plots.short(categories[tgt], 12)}) {short_p(float(probs[name][f'start_snapshot_{k}'][j][tgt]))}"
                             for k in snapshots] + [f"max {float(change.max()):.2f}"])
        row_labels.append(f"{plots.short(real.names[i], 14)} → {plots.short(categories[tgt], 14)}")
    col_labels = ["photograph" if k == 0 else f"iteration {k}" for k in snapshots] + ["|change|"]
    return ctx.save_figure(plots.image_grid(strip, strip_titles, row_labels=row_labels, col_labels=col_labels, cell=1.35),
                           f"{name}_from_photographs.png")


def add_figures(ctx: Context, name: str, described: dict, made: dict, probs: dict, settings: Settings, categories) -> None:
    """Draw the figures of the images one model made and put their paths into its numbers (in place): the
    featured strip and the gallery, each sweep's grid and curves, the photo starts (in that order)."""
    described["featured"]["figure"] = featured_figure(ctx, name, made, probs, settings)
    gallery = gallery_figure(ctx, name, made, described["gallery"], categories)
    for sweep in described["sweeps"]:
        sweep["figures"] = sweep_figures(ctx, name, made, sweep, settings)
    described["figures"] = {"gallery": gallery, "featured": described["featured"]["figure"],
                            "starts": starts_figure(ctx, name, made, probs, settings, categories)}
