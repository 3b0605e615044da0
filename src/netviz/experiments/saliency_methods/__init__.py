"""Section 1b: stronger saliency methods and a fair evaluation of them (extends the answer to Q2).

Per model: the maps of six methods (gradient, SmoothGrad, Integrated Gradients with a black and a blurred
baseline, Guided Backprop, Grad-CAM) plus a center prior that ignores image and model; scored by the pointing
game and box energy on the annotated images, deletion and insertion AUC on all images, and the cascading
model-randomization check on the first few images.

The model work runs as jobs (:mod:`netviz.jobs`): per model and shard of images a "maps" job (predictions,
every method's maps, IG's completeness, deletion/insertion curves), then per model one "randomization" job on
the first images (every method's maps on each randomized copy). Scoring (pointing game, box energy, AUCs,
similarity to the original maps), figures and files are assembled from their results, so a scoring-only key
(``tolerance_px``, ``num_shown``) re-uses every job.

The parts, in the order a run takes them: :mod:`.settings` (``Settings``, ``read_settings``), :mod:`.work` (the
jobs and their pure ``compute``), :mod:`.scores` (the numbers of metrics.json), :mod:`.figures`; :func:`run`
strings them together.
"""

from __future__ import annotations

import numpy as np

from netviz import tables
from netviz.experiments.context import Context
from netviz.experiments.saliency_methods.figures import model_figures
from netviz.experiments.saliency_methods.scores import (HIGHER_IS_BETTER, curve_arrays, image_table, model_entry,
                                                        score_model, section_header)
from netviz.experiments.saliency_methods.settings import Settings, read_settings
from netviz.experiments.saliency_methods.work import CENTER, compute, jobs, run_jobs

__all__ = ["CENTER", "HIGHER_IS_BETTER", "Settings", "compute", "jobs", "read_settings", "run"]


def run(ctx: Context) -> dict:
    """The section: its jobs, then per model its scores, figures and per-image table, and the curves of all."""
    settings = read_settings(ctx)
    maps_done, random_done = run_jobs(ctx, settings)
    results = section_header(ctx.images, settings, tuple(next(iter(maps_done.values()))["maps"].shape[-2:]))
    arrays: dict[str, np.ndarray] = {}
    for model_name in ctx.model_names:
        done, random = maps_done[model_name], random_done[model_name]
        scored = score_model(ctx.images, settings, done, random)
        entry = model_entry(ctx.load_model(model_name), ctx.images, settings, done, random, scored)
        entry["figures"] = model_figures(ctx, settings, model_name, done, scored)
        results["models"][model_name] = entry
        arrays.update(curve_arrays(model_name, scored))
        tables.write_table(image_table(ctx.images, entry["per_image"]), ctx.results_dir / f"per_image_{model_name}")
        best = entry["rankings"]
        ctx.log(f"{model_name}: best insertion {best['insertion_auc']['order'][:1]}, best deletion "
                f"{best['deletion_auc']['order'][:1]}, in {entry['seconds']['total']:.1f} s of jobs")
    np.savez_compressed(ctx.results_dir / "curves.npz",
                        **{k.replace("/", "__"): v.astype(np.float32) for k, v in arrays.items()})
    return results
