"""Section 1: gradient saliency maps (Q1-Q4) and the pointing game.

Writes per model: the maps (``maps_<model>.npz``, N×224×224 float32), accuracy, the pointing game per image
beside the center-point baseline, and two figures (the lab's first-N layout and all images with boxes).
"""

from __future__ import annotations

import numpy as np
import torch

from netviz import metrics, plots
from netviz.data import imagenet_categories
from netviz.experiments.context import Context
from netviz.methods.common import fast_layout
from netviz.methods.saliency import vanilla_gradient

TITLE = "Saliency maps"

# Which stored metrics and figures answer which lab question (for grading; see netviz.experiments).
QUESTIONS = {
    "Q1": {"metrics": ["images.*", "num_shown", "tolerance_px", "models.{models[0]}.*"],
           "figures": ["saliency_{models[0]}_*.png"]},
    "Q2": {"metrics": ["models.{models[0]}.hit_rate", "models.{models[0]}.center_hit_rate",
                       "models.{models[0]}.per_image.*.hit", "models.{models[0]}.per_image.*.top1pct_mass"],
           "figures": ["saliency_{models[0]}_all.png"]},
    # Q3 (other uses of saliency maps) is answered in prose only: nothing to grade.
    "Q4": {"metrics": ["models.{models[1]}.*"], "figures": ["saliency_{models[1]}_*.png"]},
}


def predict(model, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probabilities N×1000 for pixel-space images, batched, without autograd."""
    with torch.inference_mode():
        return torch.cat([model(fast_layout(images[i : i + batch_size])).softmax(1)
                          for i in range(0, len(images), batch_size)])


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


def rate(rows: list[dict], key: str) -> float | None:
    """Mean of a boolean column over the images where it is defined (None when none is)."""
    scored = [r[key] for r in rows if r[key] is not None]
    return round(sum(scored) / len(scored), 4) if scored else None


def run(ctx: Context) -> dict:
    images = ctx.images
    x, y = images.images.to(ctx.device), images.labels.to(ctx.device)
    shown = min(int(ctx.section["num_shown"]), len(images))
    tolerance = float(ctx.section["tolerance_px"])
    results: dict = {
        "images": [{"id": i, "label": int(label), "name": name} for i, name, label in zip(images.ids, images.names, images.labels)],
        "tolerance_px": tolerance, "num_shown": shown, "models": {},
    }
    for name, loaded in ctx.models().items():
        batch_size = ctx.batch_size_for(loaded.model)
        probs = predict(loaded.model, x, batch_size).cpu()
        maps = vanilla_gradient(loaded.model, x, y, batch_size=batch_size).cpu().numpy()
        np.savez_compressed(ctx.results_dir / f"maps_{name}.npz", maps=maps.astype(np.float32))
        rows = image_rows(maps, probs, images.labels, images.boxes, tolerance)
        first = ctx.save_figure(plots.images_over_maps(images.images[:shown], maps[:shown], images.names[:shown]),
                                f"saliency_{name}_first{shown}.png")
        every = ctx.save_figure(
            plots.images_over_maps(images.images, maps, images.names, points=[r["point"] for r in rows],
                                   hits=[r["hit"] is not False for r in rows], boxes=images.boxes,
                                   columns=9 if len(images) > 10 else None),
            f"saliency_{name}_all.png")
        summary = {
            "weights_sha256": loaded.weights_sha256,
            "n": len(images),
            "top1": sum(r["correct"] for r in rows),
            "top5": sum(r["in_top5"] for r in rows),
            "scored": sum(r["hit"] is not None for r in rows),
            "hit_rate": rate(rows, "hit"),
            "center_hit_rate": rate(rows, "center_hit"),
            "mean_box_fraction": round(float(np.mean([r["box_fraction"] for r in rows if r["box_fraction"] is not None])), 4)
            if any(r["box_fraction"] is not None for r in rows) else None,
            "mean_top1pct_mass": round(float(np.nanmean([r["top1pct_mass"] for r in rows])), 4),
            "per_image": rows,
            "figures": {"first": first, "all": every},
        }
        results["models"][name] = summary
        ctx.log(f"{name}: top-1 {summary['top1']}/{len(images)}, pointing game {summary['hit_rate']} "
                f"(center baseline {summary['center_hit_rate']})")
    return results
