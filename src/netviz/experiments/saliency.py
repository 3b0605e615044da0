"""Section 1: gradient saliency maps (Q1-Q4) and the pointing game."""

from __future__ import annotations

import numpy as np
import torch

from netviz import metrics, plots
from netviz.experiments.context import Context
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
        return torch.cat([model(images[i : i + batch_size]).softmax(1) for i in range(0, len(images), batch_size)])


def pointing(maps: np.ndarray, boxes: list, tolerance: float) -> list[dict]:
    """Per image: the map's argmax point, the hit, and the center baseline's hit (boxes-less images skipped)."""
    rows = []
    for i, saliency in enumerate(maps):
        if not boxes[i]:
            rows.append({"index": i, "point": None, "hit": None, "center_hit": None, "box_fraction": None})
            continue
        point = metrics.argmax_point(saliency)
        rows.append({
            "index": i,
            "point": list(point),
            "hit": metrics.pointing_hit(point, boxes[i], saliency.shape, tolerance),
            "center_hit": metrics.pointing_hit(metrics.center_point(saliency.shape), boxes[i], saliency.shape, tolerance),
            "box_fraction": round(metrics.box_area_fraction(boxes[i], saliency.shape), 4),
        })
    return rows


def rate(rows: list[dict], key: str) -> float | None:
    scored = [r[key] for r in rows if r[key] is not None]
    return round(sum(scored) / len(scored), 4) if scored else None


def run(ctx: Context) -> dict:
    images = ctx.images
    x = images.images.to(ctx.device)
    y = images.labels.to(ctx.device)
    shown = min(int(ctx.section["num_shown"]), len(images))
    tolerance = float(ctx.section["tolerance_px"])
    results: dict = {"images": [{"id": i, "label": int(l), "name": n} for i, n, l in zip(images.ids, images.names, images.labels)],
                     "tolerance_px": tolerance, "num_shown": shown, "models": {}}
    for name, loaded in ctx.models().items():
        model = loaded.model
        probs = predict(model, x, ctx.batch_size).cpu()
        maps = vanilla_gradient(model, x, y, batch_size=ctx.batch_size).cpu().numpy()
        rows = pointing(maps, images.boxes, tolerance)
        top1 = probs.argmax(1)
        top5 = probs.topk(5, dim=1).indices
        for row, label, pred, p_true, p_pred, t5 in zip(rows, images.labels, top1, probs[torch.arange(len(images)), images.labels], probs.max(1).values, top5):
            row.update({"predicted": int(pred), "predicted_name": images_name(int(pred)), "correct": bool(pred == label),
                        "in_top5": bool((t5 == label).any()), "p_true": round(float(p_true), 4), "p_predicted": round(float(p_pred), 4),
                        # how peaked the map is: share of the map's total above its 99th percentile
                        "top1pct_mass": round(float(np.sort(maps[row["index"]].ravel())[-maps[row["index"]].size // 100 :].sum() / maps[row["index"]].sum()), 4)})
        np.savez_compressed(ctx.results_dir / f"maps_{name}.npz", maps=maps.astype(np.float32))
        points = [tuple(r["point"]) if r["point"] else metrics.argmax_point(m) for r, m in zip(rows, maps)]
        hits = [bool(r["hit"]) for r in rows]
        titles = images.names
        fig_lab = ctx.save_figure(plots.images_over_maps(images.images[:shown], maps[:shown], titles[:shown]),
                                  f"saliency_{name}_first{shown}.png")
        fig_all = ctx.save_figure(plots.images_over_maps(images.images, maps, titles, points=points, hits=hits,
                                                         boxes=images.boxes, columns=9 if len(images) > 10 else None),
                                  f"saliency_{name}_all.png")
        results["models"][name] = {
            "weights_sha256": loaded.weights_sha256,
            "top1": int((top1 == images.labels).sum()),
            "top5": int(sum(r["in_top5"] for r in rows)),
            "n": len(images),
            "scored": sum(r["hit"] is not None for r in rows),
            "hit_rate": rate(rows, "hit"),
            "center_hit_rate": rate(rows, "center_hit"),
            "per_image": rows,
            "figures": {"first": fig_lab, "all": fig_all},
        }
        ctx.log(f"{name}: top-1 {results['models'][name]['top1']}/{len(images)}, pointing {results['models'][name]['hit_rate']}")
    return results


def images_name(index: int) -> str:
    from netviz.data import imagenet_categories

    return imagenet_categories()[index]
