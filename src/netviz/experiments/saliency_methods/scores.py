"""Scores: the jobs' arrays of one model turned into its numbers (pointing game, box energy, deletion and
insertion AUC, rankings, similarity under randomization) and the section's entry of ``metrics.json``."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from netviz import metrics
from netviz.data import ImageSet
from netviz.experiments.saliency_methods.settings import Settings
from netviz.experiments.saliency_methods.work import CENTER
from netviz.methods.attribution import standard_methods
from netviz.models import LoadedModel
from netviz.tables import mean, stderr

# Summary metrics, with the direction that is better (for rankings in the report).
HIGHER_IS_BETTER = {"pointing": True, "energy": True, "deletion_auc": False, "insertion_auc": True}


def box_scores(maps: np.ndarray, boxes: list, tolerance: float) -> list[dict | None]:
    """Per image: pointing-game hit and box energy of the map (None for images without boxes)."""
    rows: list[dict | None] = []
    for saliency, image_boxes in zip(maps, boxes):
        if not image_boxes:
            rows.append(None)
            continue
        point = metrics.argmax_point(saliency)
        rows.append({"hit": metrics.pointing_hit(point, image_boxes, saliency.shape, tolerance),
                     "energy": metrics.energy_in_boxes(saliency, image_boxes)})
    return rows


def ranking(per_image: dict[str, dict[str, list]], metric: str, names: list[str]) -> dict:
    """Methods ordered from best to worst on ``metric`` (means over images), and the paired difference between
    the best and the runner-up (mean, standard error) to tell a real lead from noise."""
    higher = HIGHER_IS_BETTER[metric]
    scores = {n: mean(per_image[n][metric]) for n in names}
    ordered = sorted((n for n in names if scores[n] is not None), key=lambda n: scores[n], reverse=higher)
    out = {"order": ordered, "lead": None, "lead_se": None}
    if len(ordered) > 1:
        best, second = (per_image[n][metric] for n in ordered[:2])
        pairs = [(a, b) for a, b in zip(best, second) if a is not None and b is not None]
        diff, se = metrics.paired_difference([float(a) for a, _ in pairs], [float(b) for _, b in pairs])
        sign = 1 if higher else -1
        out.update(lead=round(sign * diff, 4), lead_se=None if np.isnan(se) else round(se, 4))
    return out


def method_maps(done: dict, names: list[str], shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """name -> N×H×W maps of a merged maps result, with the center prior's (the same map for every image)."""
    maps = {name: done["maps"][i] for i, name in enumerate(done["methods"])}
    center = metrics.center_prior(shape).astype(np.float32)
    maps[CENTER] = np.broadcast_to(center, (len(done["targets"]), *shape))
    return {name: maps[name] for name in names}


def score_images(maps: dict[str, np.ndarray], done: dict, boxes: list, tolerance: float,
                 fractions: list[float]) -> dict[str, dict[str, list]]:
    """Per method and image: pointing-game hit and box energy (None without boxes), deletion and insertion AUC."""
    per_image: dict[str, dict[str, list]] = {}
    for i, name in enumerate(maps):
        scores = box_scores(maps[name], boxes, tolerance)
        per_image[name] = {
            "pointing": [None if s is None else float(s["hit"]) for s in scores],
            "energy": [None if s is None else s["energy"] for s in scores],
            "deletion_auc": [metrics.curve_auc(c, fractions) for c in done["curves_deletion"][i]],
            "insertion_auc": [metrics.curve_auc(c, fractions) for c in done["curves_insertion"][i]],
        }
    return per_image


def randomization_scores(maps: dict[str, np.ndarray], random: dict) -> tuple[dict, dict]:
    """Per method and stage: mean Spearman correlation and SSIM between the original and the randomized maps of
    the checked images, and how many randomized maps went flat; and the first image's maps (original, then one
    per stage) for the examples figure. The center prior ignores the model: it stays the same at every stage."""
    count = random["maps"].shape[2]
    similarity, examples = {}, {}
    for name, original in maps.items():
        original = original[:count]
        index = random["methods"].index(name) if name in random["methods"] else None
        stages = [original if index is None else stage[index] for stage in random["maps"]]
        # a map that went flat (a dead ReLU in front of the logit) keeps none of the ranking: it counts as 0
        similarity[name] = {
            "spearman": [mean([metrics.rank_correlation(a, b, flat=0.0) for a, b in zip(original, s)]) for s in stages],
            "ssim": [mean([metrics.map_ssim(a, b) for a, b in zip(original, s)]) for s in stages],
            "vanished": [sum(bool(np.ptp(m) == 0) for m in s) for s in stages]}
        examples[name] = [original[0], *(s[0] for s in stages)]
    return similarity, examples


def stage_labels(random: dict) -> list[str]:
    """The randomization stages as the figures and text name them: ``top 1/52`` ... ``all 52``."""
    layers = int(random["weight_layers"])
    return [f"top {k}/{layers}" if k < layers else f"all {k}" for k in random["stages"]]


def completeness_error(done: dict) -> dict[str, float]:
    """IG (black), IG (blur) -> median over images of the completeness error (torch's median: the lower middle)."""
    errors = torch.from_numpy(done["completeness"])
    return {name: round(float(errors[i].median()), 4) for i, name in enumerate(("IG (black)", "IG (blur)"))}


def image_table(images: ImageSet, per_image: dict[str, dict[str, list]]) -> list[dict]:
    """One row per method and image: the image (position, id, label) and its scores (None where not scored)."""
    return [{"method": name, "image": i, "id": images.ids[i], "label": int(images.labels[i]),
             **{metric: values[i] for metric, values in scores.items()}}
            for name, scores in per_image.items() for i in range(len(images))]


class Scored(NamedTuple):
    """One model's scores, from which its metrics.json entry and its figures are made.

    names: the methods, then the center prior. maps: name -> N×H×W maps. per_image: name -> metric -> N scores
    (None where not scored). similarity, examples, labels: the randomization check (:func:`randomization_scores`,
    :func:`stage_labels`). curves: mode ("deletion", "insertion") -> name -> N×(steps+1) probabilities of the
    target; mean_curve: the same averaged over images. summary: name -> metric -> mean over images.
    """

    names: list[str]
    maps: dict[str, np.ndarray]
    per_image: dict[str, dict[str, list]]
    similarity: dict
    examples: dict
    labels: list[str]
    curves: dict[str, dict[str, np.ndarray]]
    mean_curve: dict[str, dict[str, np.ndarray]]
    summary: dict[str, dict[str, float | None]]


def score_model(images: ImageSet, settings: Settings, done: dict, random: dict) -> Scored:
    """Every score of one model from its merged "maps" result (``done``) and its "randomization" result."""
    names = [*done["methods"], CENTER]
    maps = method_maps(done, names, tuple(done["maps"].shape[-2:]))
    per_image = score_images(maps, done, images.boxes, float(settings.tolerance_px), settings.fractions)
    similarity, examples = randomization_scores(maps, random)
    curves = {mode: {nm: done[f"curves_{mode}"][i] for i, nm in enumerate(names)} for mode in ("deletion", "insertion")}
    mean_curve = {mode: {nm: c.mean(0) for nm, c in by_name.items()} for mode, by_name in curves.items()}
    summary = {nm: {m: mean(per_image[nm][m]) for m in HIGHER_IS_BETTER} for nm in names}
    return Scored(names, maps, per_image, similarity, examples, stage_labels(random), curves, mean_curve, summary)


def model_entry(loaded: LoadedModel, images: ImageSet, settings: Settings, done: dict, random: dict,
                scored: Scored) -> dict:
    """One model's entry of metrics.json (its figures are added by the caller)."""
    shape = tuple(done["maps"].shape[-2:])
    tolerance = float(settings.tolerance_px)
    names, per_image, summary, mean_curve = scored.names, scored.per_image, scored.summary, scored.mean_curve
    center_hits = [metrics.pointing_hit(metrics.center_point(shape), b, shape, tolerance) for b in images.boxes if b]
    seconds = {**done["seconds"], CENTER: 0.0}
    return {
        "weights_sha256": loaded.weights_sha256, "target_layer": loaded.model.target_layer,
        "cam_grid": list(done["cam_grid"]),
        "top1": int((torch.from_numpy(done["predicted"]) == images.labels).sum()),
        "center_hit_rate": mean([float(h) for h in center_hits]),
        "p_original": mean(done["p_original"].tolist()),
        "p_substrate": {mode: mean(done[f"p_substrate_{mode}"].tolist()) for mode in ("deletion", "insertion")},
        "ig_completeness_error": completeness_error(done),
        "weight_layers": int(random["weight_layers"]), "stages": scored.labels,
        "methods": {nm: {**summary[nm], **{f"{m}_se": stderr(per_image[nm][m]) for m in HIGHER_IS_BETTER},
                         "seconds": round(seconds[nm], 2), **scored.similarity[nm],
                         "mean_curve": {mode: [round(float(v), 4) for v in mean_curve[mode][nm]]
                                        for mode in scored.curves}}
                    for nm in names},
        "rankings": {m: ranking(per_image, m, list(done["methods"])) for m in HIGHER_IS_BETTER},
        "per_image": {nm: {m: [None if v is None else round(float(v), 4) for v in per_image[nm][m]]
                           for m in HIGHER_IS_BETTER} for nm in names},
        "seconds": {"total": round(done["total_seconds"] + random["seconds"], 1),
                    "perturbation": round(done["perturbation_seconds"], 1),
                    "randomization": round(random["seconds"], 1)},
    }


def curve_arrays(model_name: str, scored: Scored) -> dict[str, np.ndarray]:
    """``<model>/<method>/<mode>`` -> N×(steps+1) deletion/insertion curves of one model (for curves.npz)."""
    return {f"{model_name}/{nm}/{mode}": scored.curves[mode][nm] for nm in scored.names for mode in scored.curves}


def section_header(images: ImageSet, settings: Settings, shape: tuple[int, int]) -> dict:
    """The model-independent part of metrics.json: the images, methods and settings (``shape``: H×W of the
    images)."""
    n = len(images)
    annotated = [i for i in range(n) if images.boxes[i]]
    return {  # the method names do not depend on the settings
        "images": [{"id": i, "label": int(l), "name": nm, "boxes": len(b)}
                   for i, nm, l, b in zip(images.ids, images.names, images.labels, images.boxes)],
        "methods": list(standard_methods()), "baseline_method": CENTER, "n": n, "annotated": len(annotated),
        "num_shown": min(settings.num_shown, n), "randomization_images": min(settings.randomization_images, n),
        "fractions": settings.fractions,
        "settings": settings.values("target", "tolerance_px", "smoothgrad_samples", "smoothgrad_sigma", "ig_steps",
                                    "ig_blur_sigma", "perturbation_steps", "perturbation_spacing",
                                    "deletion_substrate", "insertion_substrate", "substrate_blur_sigma",
                                    "randomization_fractions"),
        "box_fraction": mean([metrics.box_area_fraction(images.boxes[i], shape) for i in annotated]),
        "models": {},
    }
