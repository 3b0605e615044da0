"""Section 1: gradient saliency maps (Q1-Q4) and the pointing game.

Writes per model: the maps (``maps_<model>.npz``, N×224×224 float32), accuracy, the pointing game per image
beside the center-point baseline, and two figures (the lab's first-N layout and all images with boxes).

The module reads in the order of a run: settings, the jobs and their pure ``compute``, scores (per-image rows,
summaries and claims), figures, and ``run``, which strings them together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netviz import claims, metrics, plots, tables
from netviz.tables import mean, rate
from netviz.data import ImageSet, imagenet_categories
from netviz.experiments.context import Context
from netviz.jobs import Batch, Job
from netviz.methods.saliency import vanilla_gradient
from netviz.models import LoadedModel


MAX_DRAWN = 100  # the figure of all images draws at most this many (the first ones); every image is scored


@dataclass(frozen=True)
class Settings:
    """What a run of the section is. num_shown: images (the first N, >= 1) in the lab's figure. tolerance_px: the
    pointing game's tolerance around a box (px, >= 0). shard_size: ``run.shard_size``, images per job (0 = one
    job for all images)."""

    num_shown: int
    tolerance_px: float
    shard_size: int


def read_settings(ctx: Context) -> Settings:
    """The section's settings. Their ranges are checked when the config is loaded (:data:`netviz.config.CONSTRAINTS`);
    no value of this section depends on anything else."""
    return Settings(num_shown=int(ctx.section["num_shown"]), tolerance_px=float(ctx.section["tolerance_px"]),
                    shard_size=int(ctx.config["run"].get("shard_size", 0)))


# --- jobs: the model work (pure: no files) ---------------------------------------------------------------------

def compute(job: Job, model, batch: Batch) -> dict:
    """One job: softmax probabilities (K×1000 float32) and gradient maps (K×224×224 float32, ≥ 0) of the job's
    images, for their true labels."""
    labels = batch.labels.to(batch.device)
    return {"probs": model.predict(batch.pixels, job["batch_size"]).cpu().numpy(),
            "maps": vanilla_gradient(model, batch.pixels, labels, batch_size=job["batch_size"]).cpu().numpy()}


def jobs(ctx: Context) -> list[Job]:
    """The section's work: one gradient job per (model, shard of ``run.shard_size`` images)."""
    return [Job.make("saliency", "gradient", name, shard, batch_size=ctx.batch_size_for(loaded.model), seed=ctx.seed)
            for name, loaded in ctx.models().items() for shard in ctx.shards()]


# --- scores ----------------------------------------------------------------------------------------------------

def image_rows(maps: np.ndarray, probs: torch.Tensor, labels: torch.Tensor, boxes: list, tolerance: float) -> list[dict]:
    """One record per image: prediction, pointing game (``None`` where the image has no boxes) and the
    center baseline, and how concentrated its map is."""
    categories = imagenet_categories()
    top5 = probs.topk(5, dim=1).indices
    rows = []
    for i, saliency in enumerate(maps):
        label, predicted = int(labels[i]), int(probs[i].argmax())
        row = {
            "index": i,
            "predicted": predicted,
            "predicted_name": categories[predicted],
            "correct": predicted == label,
            "in_top5": bool((top5[i] == label).any()),
            "p_true": round(float(probs[i, label]), 4),
            "p_predicted": round(float(probs[i, predicted]), 4),
            "top1pct_mass": round(metrics.top_mass_share(saliency, 0.01), 4),
            "point": list(metrics.argmax_point(saliency)),
            "hit": None, "center_hit": None, "box_fraction": None,
        }
        if boxes[i]:
            center = metrics.center_point(saliency.shape)
            row.update(hit=metrics.pointing_hit(tuple(row["point"]), boxes[i], saliency.shape, tolerance),
                       center_hit=metrics.pointing_hit(center, boxes[i], saliency.shape, tolerance),
                       box_fraction=round(metrics.box_area_fraction(boxes[i], saliency.shape), 4))
        rows.append(row)
    return rows


def image_title(index: int, image_id: str, name: str) -> str:
    """How the text names an image: its file name (user images) or its index (the course set), and its class."""
    return f"image {index} ({name})" if image_id == str(index) else f"{image_id} ({name})"


def first_model_claims(name: str, summary: dict) -> dict:
    """Q1's statements about one model's maps, decided on the annotated images."""
    rows = summary["per_image"]
    hits = [r["hit"] for r in rows]
    return {
        f"on_object/{name}": claims.rate_vs(
            f"on_object/{name}", f"{name}'s brightest pixel lies on the object (pointing game) more often than not",
            hits, 0.5, a_label=f"{name} hits"),
        f"gradient_vs_center/{name}": claims.paired_hits(
            f"gradient_vs_center/{name}", f"pointing game of {name}'s gradient against the center point",
            hits, [r["center_hit"] for r in rows], a_label="gradient", b_label="center point"),
    }


def pair_claims(first: str, second: str, models: dict, maps: dict, tolerance: float, seed: int) -> tuple[dict, dict]:
    """Q4's statements comparing the second network with the first on the same images, and the per-image
    agreement of their maps (distance between the brightest points, Spearman rank correlation of the maps)."""
    a, b = models[second]["per_image"], models[first]["per_image"]
    distance = [float(np.hypot(r["point"][0] - s["point"][0], r["point"][1] - s["point"][1])) for r, s in zip(a, b)]
    rho = [round(metrics.rank_correlation(x, y), 4) for x, y in zip(maps[second], maps[first])]
    agreement = {"models": [first, second], "tolerance_px": tolerance,
                 "point_distance_px": [round(d, 1) for d in distance],
                 "points_within": sum(d < tolerance for d in distance),
                 "median_distance_px": round(float(np.median(distance)), 1),
                 "spearman": rho, "median_spearman": round(float(np.nanmedian(rho)), 2) if len(rho) else None}
    key = f"{second}_vs_{first}"
    decided = {
        f"accuracy/{key}": claims.paired_hits(
            f"accuracy/{key}", f"top-1 accuracy of {second} against {first}",
            [r["correct"] for r in a], [r["correct"] for r in b], a_label=second, b_label=first),
        f"pointing/{key}": claims.paired_hits(
            f"pointing/{key}", f"pointing game of {second} against {first} (true class)",
            [r["hit"] for r in a], [r["hit"] for r in b], a_label=second, b_label=first),
        f"peaked/{key}": claims.paired_means(
            f"peaked/{key}", f"share of the gradient held by the brightest 1 % of pixels, {second} against {first}",
            [r["top1pct_mass"] for r in a], [r["top1pct_mass"] for r in b], seed, a_label=second, b_label=first),
        f"agree/{key}": claims.rate_vs(
            f"agree/{key}", f"the brightest points of {first} and {second} lie within {tolerance:g} px of each other "
            "more often than not", [d < tolerance for d in distance], 0.5, a_label="images where they agree"),
    }
    return decided, agreement


def model_summary(loaded: LoadedModel, rows: list[dict], jobs_run: int) -> dict:
    """One model's entry of metrics.json from its per-image rows (its figures are added by the caller)."""
    return {
        "weights_sha256": loaded.weights_sha256,
        "n": len(rows),
        "top1": sum(r["correct"] for r in rows),
        "top5": sum(r["in_top5"] for r in rows),
        "scored": sum(r["hit"] is not None for r in rows),
        "top1_ci": tables.rate_interval([r["correct"] for r in rows])["ci"],
        "hit_rate": rate(r["hit"] for r in rows),
        "hit_rate_ci": tables.rate_interval([r["hit"] for r in rows])["ci"],
        "center_hit_rate": rate(r["center_hit"] for r in rows),
        "mean_box_fraction": mean(r["box_fraction"] for r in rows),
        "mean_top1pct_mass": mean(r["top1pct_mass"] for r in rows),
        "per_image": rows,
        "drawn": min(len(rows), MAX_DRAWN),
        "jobs": jobs_run,
    }


# --- figures ----------------------------------------------------------------------------------------------------

def model_figures(ctx: Context, settings: Settings, name: str, maps: np.ndarray, rows: list[dict]) -> dict[str, str]:
    """The lab's figure (the first ``num_shown`` images) and the figure of all images (at most :data:`MAX_DRAWN`)
    with their brightest points and boxes, of one model's N×H×W maps."""
    images = ctx.images
    shown = min(settings.num_shown, len(images))
    drawn = min(len(images), MAX_DRAWN)
    first = ctx.save_figure(plots.images_over_maps(images.pixels(range(shown)), maps[:shown], images.names[:shown]),
                            f"saliency_{name}_first{shown}.png")
    every = ctx.save_figure(
        plots.images_over_maps(images.pixels(range(drawn)), maps[:drawn], images.names[:drawn],
                               points=[r["point"] for r in rows[:drawn]], hits=[r["hit"] for r in rows[:drawn]],
                               boxes=images.boxes[:drawn], columns=9 if drawn > 10 else None),
        f"saliency_{name}_all.png")
    return {"first": first, "all": every}


# --- the run ----------------------------------------------------------------------------------------------------

def section_header(images: ImageSet, settings: Settings) -> dict:
    """The model-independent part of metrics.json: the images, settings, and room for models and claims."""
    return {
        "images": [{"id": i, "label": int(label), "name": name, "title": image_title(k, i, name)}
                   for k, (i, name, label) in enumerate(zip(images.ids, images.names, images.labels))],
        "tolerance_px": settings.tolerance_px, "num_shown": min(settings.num_shown, len(images)), "models": {},
        "shard_size": settings.shard_size or len(images), "claims": {},
    }


def run(ctx: Context) -> dict:
    """The section: its jobs, then per model the maps file, per-image table, summary and figures; then the claims
    about the first model and, with two models, the comparison of the second with the first."""
    settings, images = read_settings(ctx), ctx.images
    results = section_header(images, settings)
    work = jobs(ctx)
    done = dict(zip(work, ctx.jobs(work)))
    all_maps: dict[str, np.ndarray] = {}
    for name, loaded in ctx.models().items():
        parts = [result for job, result in done.items() if job.model == name]
        probs = torch.from_numpy(np.concatenate([p["probs"] for p in parts]))
        maps = all_maps[name] = np.concatenate([p["maps"] for p in parts])
        np.savez_compressed(ctx.results_dir / f"maps_{name}.npz", maps=maps.astype(np.float32))
        rows = image_rows(maps, probs, images.labels, images.boxes, settings.tolerance_px)
        tables.write_table(rows, ctx.results_dir / f"per_image_{name}")
        summary = results["models"][name] = model_summary(loaded, rows, len(parts))
        summary["figures"] = model_figures(ctx, settings, name, maps, rows)
        if len(results["models"]) == 1:
            results["claims"].update(first_model_claims(name, summary))
        ctx.log(f"{name}: top-1 {summary['top1']}/{len(images)}, pointing game {summary['hit_rate']} "
                f"(center baseline {summary['center_hit_rate']})")
    names = list(results["models"])
    if len(names) > 1:
        decided, results["agreement"] = pair_claims(names[0], names[1], results["models"], all_maps,
                                                    settings.tolerance_px, ctx.seed)
        results["claims"].update(decided)
    return results
