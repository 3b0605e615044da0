"""The section's numbers: what the images each model made score (probability and rank of the target under every
model), how smooth they are, and how far the photo starts moved; the rows of ``metrics.json``. Figures are
:mod:`netviz.experiments.classviz.figures`."""

from __future__ import annotations

import numpy as np
import torch

from netviz import metrics
from netviz.experiments.classviz.settings import Settings


def smoothness(image: torch.Tensor) -> dict:
    """Total variation and high-frequency share of one 3×H×W pixel-space image, clamped to [0, 1] first."""
    array = image.detach().cpu().clamp(0, 1).numpy()
    return {"tv": round(metrics.total_variation(array), 5), "hf": round(metrics.high_frequency_share(array), 5)}


def score(probs: np.ndarray, target: int) -> dict:
    """The probability of ``target`` in one softmax row (1000 values), to 4 significant digits, and its rank (1 = top)."""
    return {"p": float(f"{float(probs[target]):.4g}"), "rank": metrics.class_rank(probs, target)}


def reference_summary(real: torch.Tensor) -> dict:
    """Smoothness of the course photographs (N×3×H×W): what a natural image measures."""
    reference = [smoothness(img) for img in real]
    return {
        "n": len(real),
        "tv_median": round(float(np.median([r["tv"] for r in reference])), 5),
        "hf_median": round(float(np.median([r["hf"] for r in reference])), 5),
        "tv_max": round(float(max(r["tv"] for r in reference)), 5),
        "hf_max": round(float(max(r["hf"] for r in reference)), 5),
    }


def final_scores(probs: dict, images: torch.Tensor, i: int, target: int, categories) -> dict:
    """Final image ``i``'s probability, rank and top class for ``target`` under every judging model (probs: judge ->
    score results), and its smoothness."""
    return {"p": {m: score(p["final"][i], target)["p"] for m, p in probs.items()},
            "rank": {m: score(p["final"][i], target)["rank"] for m, p in probs.items()},
            "top": {m: categories[int(p["final"][i].argmax())] for m, p in probs.items()},
            **smoothness(images[i])}


def trajectory(probs: dict, snapshots: dict, prefix: str, i: int, target: int) -> list[dict]:
    """Row ``i`` along the iterations (> 0): its maker's probability and rank of ``target`` (probs[f"{prefix}_{k}"])
    and the smoothness of the snapshot."""
    return [{"iteration": k, **score(probs[f"{prefix}_{k}"][i], target), **smoothness(snapshots[k][i])}
            for k in snapshots if k > 0]


def gallery_scores(name: str, made: dict, probs: dict, settings: Settings, categories) -> tuple[list, dict]:
    """Q8: the gallery's final scores under every model, and the featured class along the iterations."""
    noise, target = made["noise"], settings.target
    index = {t: i for i, t in enumerate(made["targets"])}
    gallery = [{"class": t.target, "name": categories[t.target],
                **final_scores(probs, noise.images, index[t], t.target, categories)} for t in made["gallery"]]
    featured = {"class": target, "name": categories[target],
                "by_iteration": trajectory(probs[name], noise.snapshots, "snapshot", index[made["gallery"][0]], target)}
    return gallery, featured


def sweep_scores(name: str, made: dict, probs: dict, settings: Settings, categories, cls: int) -> dict:
    """Q9: one sweep class's iterations × learning rate × λ grid: each cell's path and final scores."""
    noise = made["noise"]
    index = {t: i for i, t in enumerate(made["targets"])}
    cells = []
    for cell in (t for t in made["sweep"] if t.target == cls):
        i = index[cell]
        cells.append({"learning_rate": cell.learning_rate, "l2_reg": cell.l2_reg,
                      "default": cell.learning_rate == settings.learning_rate and cell.l2_reg == settings.l2_reg,
                      "by_iteration": trajectory(probs[name], noise.snapshots, "snapshot", i, cls),
                      "final": final_scores(probs, noise.images, i, cls, categories)})
    return {"class": cls, "name": categories[cls], "learning_rates": settings.sweep_learning_rates,
            "l2_regs": settings.sweep_l2_regs, "cells": cells}


def start_state(probs: dict, key: str, name: str, j: int, target: int, label: int, image: torch.Tensor, categories) -> dict:
    """Photo start ``j`` before or after the ascent (probs[judge][key]): the maker's view of the target, the label
    and its top class, every model's view of the target, and the image's smoothness."""
    own = probs[name][key][j]
    top = int(own.argmax())
    return {"p_target": score(own, target)["p"], "rank_target": score(own, target)["rank"],
            "p_label": float(f"{float(own[label]):.4g}"), "predicted": top, "predicted_name": categories[top],
            "p_target_under": {m: score(p[key][j], target)["p"] for m, p in probs.items()},
            "rank_target_under": {m: score(p[key][j], target)["rank"] for m, p in probs.items()},
            "predicted_under": {m: categories[int(p[key][j].argmax())] for m, p in probs.items()},
            **smoothness(image)}


def change_in_boxes(change: torch.Tensor, boxes) -> tuple[float | None, float | None]:
    """Mean |change| (3×H×W) inside and outside the annotated boxes (None, None without boxes or when they cover
    all or none of the image): where the change goes, on the object or around it."""
    if not boxes:
        return None, None
    mask = torch.from_numpy(metrics.box_mask(boxes, tuple(change.shape[1:])))
    if not (mask.any() and (~mask).any()):
        return None, None
    inside, outside = (round(float(change[:, m].mean()), 5) for m in (mask, ~mask))
    return inside, outside


def start_changes(real, made: dict) -> list[torch.Tensor]:
    """|result − photograph| (3×H×W, pixel range) of each photo start of ``made``, in order (real: the image set)."""
    return [(made["from_real"].images[j] - real.images[i]).abs() for j, i in enumerate(made["start_index"])]


def start_scores(real, name: str, made: dict, probs: dict, categories) -> list[dict]:
    """Q10: each photo start before and after, along the iterations, and the size and place of the change."""
    from_real, starts = made["from_real"], []
    for j, ((i, tgt), change) in enumerate(zip(zip(made["start_index"], made["start_targets"]), start_changes(real, made))):
        label = int(real.labels[i])
        inside, outside = change_in_boxes(change, real.boxes[i] if real.boxes else None)
        starts.append({
            "image": i, "image_name": real.names[i], "label": label, "target": tgt, "target_name": categories[tgt],
            "own_class": tgt == label,
            "before": start_state(probs, "before", name, j, tgt, label, real.images[i], categories),
            "after": start_state(probs, "after", name, j, tgt, label, from_real.images[j], categories),
            "by_iteration": trajectory(probs[name], from_real.snapshots, "start_snapshot", j, tgt),
            "mean_abs_change": round(float(change.mean()), 5), "max_abs_change": round(float(change.max()), 5),
            "mean_abs_change_in_boxes": inside, "mean_abs_change_outside_boxes": outside,
        })
    return starts


def model_scores(real, name: str, loaded, made: dict, probs: dict, settings: Settings, categories) -> dict:
    """The numbers of the images one model made (probs: judging model -> its score job's results for them); the
    figures' paths are added by :func:`netviz.experiments.classviz.figures.add_figures`."""
    model, noise = loaded.model, made["noise"]
    gallery, featured = gallery_scores(name, made, probs, settings, categories)
    return {
        "weights_sha256": loaded.weights_sha256,
        # the input normalisation: a step in normalized space is std times larger in pixels
        "input_mean": [round(float(v), 4) for v in model.mean.flatten()],
        "input_std": [round(float(v), 4) for v in model.std.flatten()],
        "wall_time_s": round(made["wall"], 2),
        "images_from_noise": len(made["targets"]),
        "gallery": gallery,
        "featured": featured,
        "sweeps": [sweep_scores(name, made, probs, settings, categories, cls)
                   for cls in dict.fromkeys(t.target for t in made["sweep"])],
        "starts": start_scores(real, name, made, probs, categories),
        "objective_first": [round(float(v), 3) for v in noise.objective[0]],
        "objective_last": [round(float(v), 3) for v in noise.objective[-1]],
    }
