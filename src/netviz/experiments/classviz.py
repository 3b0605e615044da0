"""Section 3: class visualization (Q8-Q11) with the sweep over iterations × learning rate × regularization.

Per model, two batched optimisations: every image started from noise (the gallery, the featured class, and each
sweep class's whole learning-rate × λ grid; identical settings are run once), then the images started from course
photographs. The iteration axis of the sweep is read from snapshots of the same runs. Each image is then scored by
every model (the maker and the others: transfer) and measured for smoothness.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from netviz import metrics, plots
from netviz.data import class_index, imagenet_categories
from netviz.errors import NetvizError
from netviz.experiments.context import Context
from netviz.methods.classviz import class_visualization


@dataclass(frozen=True)
class Job:
    """One image to optimise: its target class and its own learning rate and λ."""

    target: int
    learning_rate: float
    l2_reg: float


def progress_bar(label: str):
    """A tqdm wrapper for the iteration loop when stderr is a terminal; None (quiet) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda steps: tqdm(steps, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True)


def probabilities(model, images: torch.Tensor, batch_size: int) -> np.ndarray:
    """Softmax probabilities N×1000 of pixel-space images, without autograd."""
    device = model.mean.device
    with torch.inference_mode():  # channels-last: faster CPU convolutions, as in the optimisation
        return torch.cat([model(images[i : i + batch_size].to(device).contiguous(memory_format=torch.channels_last))
                          .softmax(1).cpu() for i in range(0, len(images), batch_size)]).numpy()


def smoothness(image: torch.Tensor) -> dict:
    array = image.detach().cpu().clamp(0, 1).numpy()
    return {"tv": round(metrics.total_variation(array), 5), "hf": round(metrics.high_frequency_share(array), 5)}


def score(probs: np.ndarray, target: int) -> dict:
    return {"p": float(f"{float(probs[target]):.4g}"), "rank": metrics.class_rank(probs, target)}


def short_p(p: float) -> str:
    return f"{p:.2f}" if p >= 0.01 else f"{p:.0e}"


def fmt_value(value: float) -> str:
    return f"{value:g}"


def check_settings(ctx: Context, names: list[str]) -> dict:
    """Validate the [classviz] table; returns the settings the experiment uses."""
    s = ctx.section
    if s["num_iterations"] < 1:
        raise NetvizError(f"classviz.num_iterations must be at least 1, got {s['num_iterations']}")
    if s["max_jitter"] < 0 or s["blur_sigma"] < 0:
        raise NetvizError("classviz.max_jitter and classviz.blur_sigma must be >= 0")
    for key in ("learning_rate", "l2_reg"):
        if s[key] < 0:
            raise NetvizError(f"classviz.{key} must be >= 0, got {s[key]}")
    for key in ("sweep_learning_rates", "sweep_l2_regs"):
        if not s[key] or any(v < 0 for v in s[key]):
            raise NetvizError(f"classviz.{key} must list at least one value >= 0, got {s[key]}")
    n = len(ctx.images)
    for key in ("start_image", "own_class_image"):
        if not 0 <= s[key] < n:
            raise NetvizError(f"classviz.{key} = {s[key]} is not an image index; the image set has images 0..{n - 1}")
    unknown = [m for m in s["sweep_models"] if m not in names]
    if unknown:
        raise NetvizError(f"classviz.sweep_models names '{unknown[0]}', which is not among this section's models: {', '.join(names)}")
    T = s["num_iterations"]
    return {
        "target": class_index(s["target"]),
        "gallery": [class_index(c) for c in s["gallery"]],
        "other_gallery": [class_index(c) for c in s["other_gallery"]],
        "sweep_classes": [class_index(c) for c in s["sweep_classes"]],
        "start_target": class_index(s["start_target"]),
        "snapshots": sorted({0, T, *(k for k in s["snapshots"] if 0 < k <= T)}),
        "sweep_models": s["sweep_models"] or names[:1],
    }


def run(ctx: Context) -> dict:
    s = ctx.section
    categories = imagenet_categories()
    loaded = ctx.models()
    names = list(loaded)
    first = names[0]
    cfg = check_settings(ctx, names)
    snapshots = cfg["snapshots"]
    hyper = {"learning_rate": s["learning_rate"], "l2_reg": s["l2_reg"], "num_iterations": s["num_iterations"],
             "blur_every": s["blur_every"], "blur_sigma": s["blur_sigma"], "max_jitter": s["max_jitter"], "seed": ctx.seed}
    settings = dict(num_iterations=s["num_iterations"], blur_every_steps=s["blur_every"], blur_sigma=s["blur_sigma"],
                    max_jitter=s["max_jitter"], snapshots=snapshots, batch_size=ctx.batch_size)
    images = ctx.images
    real = images.images
    reference = [smoothness(img) for img in real]
    results: dict = {
        "hyperparameters": hyper,
        "models": names,
        "first": first,
        "target": {"index": cfg["target"], "name": categories[cfg["target"]]},
        "snapshots": snapshots,
        "reference": {
            "n": len(real),
            "tv_median": round(float(np.median([r["tv"] for r in reference])), 5),
            "hf_median": round(float(np.median([r["hf"] for r in reference])), 5),
            "tv_max": round(float(max(r["tv"] for r in reference)), 5),
            "hf_max": round(float(max(r["hf"] for r in reference)), 5),
        },
        "per_model": {},
    }
    made: dict[str, dict] = {}  # per model: the optimised images, scored below by every model
    for name in names:
        model = loaded[name].model
        started = time.perf_counter()
        classes = [cfg["target"]] + (cfg["gallery"] if name == first else cfg["other_gallery"])
        gallery_jobs = [Job(c, s["learning_rate"], s["l2_reg"]) for c in dict.fromkeys(classes)]
        sweep_jobs = [Job(c, lr, l2) for c in cfg["sweep_classes"] if name in cfg["sweep_models"]
                      for l2 in s["sweep_l2_regs"] for lr in s["sweep_learning_rates"]]
        jobs = list(dict.fromkeys(gallery_jobs + sweep_jobs))  # a sweep cell with the default settings is the gallery image
        # one batch: every image has its own target, learning rate and λ; all share the run's seed, so they start
        # from the same noise and see the same jitter: differences come from the settings alone
        settings["batch_size"] = ctx.batch_size_for(model)  # images per pass for this model (automatic by default)
        start_index = [s["start_image"], s["own_class_image"]]
        start_targets = [cfg["start_target"], int(images.labels[s["own_class_image"]])]
        # the photo starts (Q10) join the same batch: fewer, fuller passes; rows stay independent
        starts = torch.cat([torch.zeros(len(jobs), *real.shape[1:]), real[start_index]]).to(ctx.device)
        with ctx.autocast():  # precision = "bf16": the optimisation's passes in bfloat16; the scoring below stays fp32
            both = class_visualization(
                model, starts, torch.tensor([j.target for j in jobs] + start_targets, device=ctx.device),
                from_noise=[True] * len(jobs) + [False] * len(start_index), seeds=ctx.seed,
                learning_rate=[j.learning_rate for j in jobs] + [s["learning_rate"]] * len(start_index),
                l2_reg=[j.l2_reg for j in jobs] + [s["l2_reg"]] * len(start_index),
                progress=progress_bar(f"classviz {name}: {len(jobs)} images from noise, "
                                      f"{len(start_index)} from photographs"), **settings)
        noise, from_real = both.rows(slice(0, len(jobs))), both.rows(slice(len(jobs), None))
        wall = time.perf_counter() - started
        ctx.log(f"{name}: {len(jobs)} images from noise, {len(start_index)} from photographs, "
                f"{s['num_iterations']} steps, {wall:.1f} s")
        made[name] = {"jobs": jobs, "noise": noise, "start_index": start_index, "start_targets": start_targets,
                      "from_real": from_real, "gallery_jobs": gallery_jobs, "sweep_jobs": sweep_jobs, "wall": wall}

    for name in names:
        results["per_model"][name] = describe(ctx, name, loaded, made[name], cfg, categories)
    return results


def describe(ctx: Context, name: str, loaded: dict, run: dict, cfg: dict, categories) -> dict:
    """Scores, smoothness, figures and tables for the images one model made."""
    s = ctx.section
    model = loaded[name].model
    snapshots = cfg["snapshots"]
    jobs, noise, from_real = run["jobs"], run["noise"], run["from_real"]
    final_probs = {m: probabilities(loaded[m].model, noise.images, ctx.batch_size) for m in loaded}
    snap_probs = {k: probabilities(model, noise.snapshots[k], ctx.batch_size) for k in snapshots}

    def trajectory(i: int, target: int) -> list[dict]:
        return [{"iteration": k, **score(snap_probs[k][i], target), **smoothness(noise.snapshots[k][i])}
                for k in snapshots if k > 0]

    def final(i: int, target: int) -> dict:
        return {"p": {m: score(final_probs[m][i], target)["p"] for m in loaded},
                "rank": {m: score(final_probs[m][i], target)["rank"] for m in loaded},
                "top": {m: categories[int(final_probs[m][i].argmax())] for m in loaded},
                **smoothness(noise.images[i])}

    index = {job: i for i, job in enumerate(jobs)}
    gallery = []
    for job in run["gallery_jobs"]:
        i = index[job]
        gallery.append({"class": job.target, "name": categories[job.target], **final(i, job.target)})
    target = cfg["target"]
    featured_i = index[run["gallery_jobs"][0]]
    featured = {"class": target, "name": categories[target], "by_iteration": trajectory(featured_i, target)}

    # figures: the featured class along the iterations, and the gallery
    strip = [[noise.snapshots[k][featured_i] for k in snapshots]]
    strip_titles = [["noise"] + [f"p {short_p(float(snap_probs[k][featured_i][target]))}" for k in snapshots[1:]]]
    featured["figure"] = ctx.save_figure(plots.image_grid(strip, strip_titles, col_labels=[
        "start" if k == 0 else f"iteration {k}" for k in snapshots], cell=1.6), f"{name}_featured.png")
    per_row = 7
    cells = [noise.images[index[job]] for job in run["gallery_jobs"]]
    titles = [f"{plots.short(categories[job.target], 16)}\np {short_p(g['p'][name])}" for job, g in zip(run["gallery_jobs"], gallery)]
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    title_rows = [titles[i : i + per_row] for i in range(0, len(titles), per_row)]
    gallery_figure = ctx.save_figure(plots.image_grid(rows, title_rows, cell=1.35), f"{name}_gallery.png")

    # the sweep: iterations × learning rate × λ, for each sweep class
    sweeps = []
    for cls in dict.fromkeys(job.target for job in run["sweep_jobs"]):
        cell_jobs = [job for job in run["sweep_jobs"] if job.target == cls]
        cells_out = []
        grid, grid_titles, row_labels = [], [], []
        for job in cell_jobs:
            i = index[job]
            path = trajectory(i, cls)
            cells_out.append({"learning_rate": job.learning_rate, "l2_reg": job.l2_reg,
                              "default": job.learning_rate == s["learning_rate"] and job.l2_reg == s["l2_reg"],
                              "by_iteration": path, "final": final(i, cls)})
            grid.append([noise.snapshots[t["iteration"]][i] for t in path])
            grid_titles.append([f"p {short_p(t['p'])}, TV {t['tv']:.3f}" for t in path])
            row_labels.append(f"lr {fmt_value(job.learning_rate)}, λ {fmt_value(job.l2_reg)}")
        slug = categories[cls].split(",")[0].replace(" ", "_").lower()
        grid_figure = ctx.save_figure(plots.image_grid(grid, grid_titles, row_labels=row_labels,
                                                       col_labels=[f"iteration {k}" for k in snapshots if k > 0], cell=1.25),
                                      f"{name}_sweep_{slug}.png")
        colors = {lr: f"C{j}" for j, lr in enumerate(s["sweep_learning_rates"])}
        dashes = {l2: style for l2, style in zip(s["sweep_l2_regs"], ["-", "--", ":", "-.", (0, (5, 1, 1, 1))] * 4)}
        series, styles = {}, {}
        for cell in cells_out:
            label = f"lr {fmt_value(cell['learning_rate'])}, λ {fmt_value(cell['l2_reg'])}"
            series[label] = {key: [t[key] for t in cell["by_iteration"]] for key in ("p", "tv", "hf")}
            styles[label] = {"color": colors[cell["learning_rate"]], "linestyle": dashes[cell["l2_reg"]]}
        curves_figure = ctx.save_figure(plots.sweep_curves(
            [k for k in snapshots if k > 0], series,
            [("p", f"p({plots.short(categories[cls], 14)})", True), ("tv", "total variation", False),
             ("hf", "high-frequency share", False)], styles), f"{name}_sweep_{slug}_curves.png")
        sweeps.append({"class": cls, "name": categories[cls], "learning_rates": s["sweep_learning_rates"],
                       "l2_regs": s["sweep_l2_regs"], "cells": cells_out,
                       "figures": {"grid": grid_figure, "curves": curves_figure}})

    # starts from photographs: before and after, with snapshots
    real = ctx.images
    before_probs = {m: probabilities(loaded[m].model, real.images[run["start_index"]], ctx.batch_size) for m in loaded}
    after_probs = {m: probabilities(loaded[m].model, from_real.images, ctx.batch_size) for m in loaded}
    start_snap_probs = {k: probabilities(model, from_real.snapshots[k], ctx.batch_size) for k in snapshots}
    starts, strip, strip_titles, row_labels = [], [], [], []
    for j, (i, tgt) in enumerate(zip(run["start_index"], run["start_targets"])):
        label = int(real.labels[i])

        def state(probs: dict, image: torch.Tensor) -> dict:
            top = int(probs[name][j].argmax())
            return {"p_target": score(probs[name][j], tgt)["p"], "rank_target": score(probs[name][j], tgt)["rank"],
                    "p_label": float(f"{float(probs[name][j][label]):.4g}"), "predicted": top, "predicted_name": categories[top],
                    "p_target_under": {m: score(probs[m][j], tgt)["p"] for m in loaded},
                    "rank_target_under": {m: score(probs[m][j], tgt)["rank"] for m in loaded},
                    "predicted_under": {m: categories[int(probs[m][j].argmax())] for m in loaded},
                    **smoothness(image)}

        change = (from_real.images[j].cpu() - real.images[i]).abs()
        inside = outside = None
        if real.boxes and real.boxes[i]:  # where the change goes: on the annotated object or around it
            mask = torch.from_numpy(metrics.box_mask(real.boxes[i], tuple(change.shape[1:])))
            if mask.any() and (~mask).any():
                inside, outside = (round(float(change[:, m].mean()), 5) for m in (mask, ~mask))
        starts.append({
            "image": i, "image_name": real.names[i], "label": label, "target": tgt, "target_name": categories[tgt],
            "own_class": tgt == label,
            "before": state(before_probs, real.images[i]), "after": state(after_probs, from_real.images[j]),
            "by_iteration": [{"iteration": k, **score(start_snap_probs[k][j], tgt), **smoothness(from_real.snapshots[k][j])}
                             for k in snapshots if k > 0],
            "mean_abs_change": round(float(change.mean()), 5), "max_abs_change": round(float(change.max()), 5),
            "mean_abs_change_in_boxes": inside, "mean_abs_change_outside_boxes": outside,
        })
        strength = change.amax(0)  # the largest change over the colour channels, shown scaled to its maximum
        strip.append([from_real.snapshots[k][j] for k in snapshots] + [(strength / max(float(strength.max()), 1e-8)).expand(3, -1, -1)])
        strip_titles.append([f"p({plots.short(categories[tgt], 12)}) {short_p(float(start_snap_probs[k][j][tgt]))}" for k in snapshots]
                            + [f"max {float(change.max()):.2f}"])
        row_labels.append(f"{plots.short(real.names[i], 14)} → {plots.short(categories[tgt], 14)}")
    col_labels = ["photograph" if k == 0 else f"iteration {k}" for k in snapshots] + ["|change|"]
    starts_figure = ctx.save_figure(plots.image_grid(strip, strip_titles, row_labels=row_labels, col_labels=col_labels, cell=1.35),
                                    f"{name}_from_photographs.png")
    return {
        "weights_sha256": loaded[name].weights_sha256,
        # the input normalisation: a step in normalized space is std times larger in pixels
        "input_mean": [round(float(v), 4) for v in model.mean.flatten()],
        "input_std": [round(float(v), 4) for v in model.std.flatten()],
        "wall_time_s": round(run["wall"], 2),
        "images_from_noise": len(jobs),
        "gallery": gallery,
        "featured": featured,
        "sweeps": sweeps,
        "starts": starts,
        "objective_first": [round(float(v), 3) for v in noise.objective[0]],
        "objective_last": [round(float(v), 3) for v in noise.objective[-1]],
        "figures": {"gallery": gallery_figure, "featured": featured["figure"], "starts": starts_figure},
    }
