"""Section 3: class visualization (Q8-Q11) with the sweep over iterations × learning rate × regularization.

The work is two kinds of jobs (planned in :mod:`~netviz.experiments.classviz.planning`, run by
:mod:`~netviz.experiments.classviz.work`). "optimise" jobs (a model and a chunk of
image rows): every image started from noise (the gallery, the featured class, and each sweep class's whole
learning-rate × λ grid; identical settings are run once), then the images started from course photographs, all in
one batch per model by default (``classviz.chunk_size = 0``). The iteration axis of the sweep is read from
snapshots of the same runs. "score" jobs (a judging model and the images one model made): softmax probabilities of
the final images, the snapshots and the photographs, so every image is scored by its maker and by the others
(transfer). Smoothness, ranks and tables (:mod:`~netviz.experiments.classviz.scores`) and figures
(:mod:`~netviz.experiments.classviz.figures`) are assembled from those arrays on the driver. The config is read
once, by :func:`~netviz.experiments.classviz.settings.read_settings`.
"""

from __future__ import annotations

from netviz.data import imagenet_categories
from netviz.experiments.classviz.figures import add_figures
from netviz.experiments.classviz.scores import model_scores, reference_summary
from netviz.experiments.classviz.settings import Settings, read_settings
from netviz.experiments.classviz.planning import jobs, judge_images, make_images
from netviz.experiments.classviz.work import compute
from netviz.experiments.context import Context

__all__ = ["Settings", "compute", "jobs", "read_settings", "run"]


def summary(ctx: Context, settings: Settings, names: list[str], categories) -> dict:
    """The section's settings and reference numbers, before the per-model results."""
    return {
        "hyperparameters": {"learning_rate": settings.learning_rate, "l2_reg": settings.l2_reg,
                            "num_iterations": settings.num_iterations, "blur_every": settings.blur_every,
                            "blur_sigma": settings.blur_sigma, "max_jitter": settings.max_jitter, "seed": ctx.seed},
        "models": names,
        "first": names[0],
        "target": {"index": settings.target, "name": categories[settings.target]},
        "snapshots": settings.snapshots,
        "reference": reference_summary(ctx.images.images),
        "per_model": {},
    }


def run(ctx: Context) -> dict:
    """Make every model's images, have every model judge them, then score them and draw the figures."""
    settings = read_settings(ctx)
    categories = imagenet_categories()
    loaded = ctx.models()
    names = list(loaded)
    results = summary(ctx, settings, names, categories)
    made = make_images(ctx, loaded, settings)
    probs = judge_images(ctx, names, made, settings.snapshots)
    for name in names:
        described = model_scores(ctx.images, name, loaded[name], made[name], probs[name], settings, categories)
        add_figures(ctx, name, described, made[name], probs[name], settings, categories)
        results["per_model"][name] = described
    return results
