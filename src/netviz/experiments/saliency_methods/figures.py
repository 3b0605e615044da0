"""Figures of one model: the images × methods grid, the deletion/insertion curves, and the randomization check."""

from __future__ import annotations

from netviz import plots
from netviz.data import imagenet_categories
from netviz.experiments.context import Context
from netviz.experiments.saliency_methods.scores import Scored
from netviz.experiments.saliency_methods.settings import Settings


def images_name(index: int) -> str:
    """The ImageNet class name of class ``index`` (0..999)."""
    return imagenet_categories()[index]


def model_figures(ctx: Context, settings: Settings, model_name: str, done: dict, scored: Scored) -> dict[str, str]:
    """Saves the four figures of one model (``done``: its merged "maps" result) and returns their paths by role."""
    images, methods, maps = ctx.images, done["methods"], scored.maps
    shown = min(settings.num_shown, len(images))
    # rows are labelled with the true class, and the class the maps explain when it differs
    row_titles = [label if int(t) == int(l) else f"{label}\n→ {images_name(int(t))}"
                  for label, l, t in zip(images.names[:shown], images.labels[:shown], done["targets"][:shown])]
    fig_grid = ctx.save_figure(plots.method_grid(images.pixels(range(shown)), {nm: maps[nm][:shown] for nm in methods},
                                                 row_titles, boxes=images.boxes[:shown]), f"methods_{model_name}.png")
    summary, mean_curve, similarity = scored.summary, scored.mean_curve, scored.similarity
    fig_curves = ctx.save_figure(plots.perturbation_figure(
        settings.fractions, mean_curve["deletion"], mean_curve["insertion"],
        {nm: s["deletion_auc"] for nm, s in summary.items()},
        {nm: s["insertion_auc"] for nm, s in summary.items()}), f"deletion_insertion_{model_name}.png")
    fig_random = ctx.save_figure(plots.randomization_figure(
        scored.labels, {nm: s["spearman"] for nm, s in similarity.items()},
        {nm: s["ssim"] for nm, s in similarity.items()}), f"randomization_{model_name}.png")
    fig_examples = ctx.save_figure(plots.randomization_examples(
        images.pixels([0])[0], {nm: scored.examples[nm] for nm in methods}, ["original", *scored.labels]),
        f"randomization_examples_{model_name}.png")
    return {"grid": fig_grid, "curves": fig_curves, "randomization": fig_random, "randomization_examples": fig_examples}
