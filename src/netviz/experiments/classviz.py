"""Section 3: class visualization (Q8-Q11) with the sweep over iterations × learning rate × regularization.

The work is two kinds of jobs. "optimise" jobs (a model and a chunk of image rows): every image started from noise
(the gallery, the featured class, and each sweep class's whole learning-rate × λ grid; identical settings are run
once), then the images started from course photographs, all in one batch per model by default
(``classviz.chunk_size = 0``). The iteration axis of the sweep is read from snapshots of the same runs. "score" jobs
(a judging model and the images one model made): softmax probabilities of the final images, the snapshots and the
photographs, so every image is scored by its maker and by the others (transfer). Smoothness, ranks, tables and
figures are assembled from those arrays on the driver.
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
from netviz.jobs import Batch, Job, dispatch, shards
from netviz.methods.classviz import Visualization, class_visualization
from netviz.methods.common import PRECISIONS, autocast


@dataclass(frozen=True)
class Target:
    """One image to optimise from noise: its target class and its own learning rate and λ."""

    target: int
    learning_rate: float
    l2_reg: float


def progress_bar(label: str):
    """A tqdm wrapper for the iteration loop when stderr is a terminal; None (quiet) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda steps: tqdm(steps, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True)


def smoothness(image: torch.Tensor) -> dict:
    """Total variation and high-frequency share of one 3×H×W pixel-space image, clamped to [0, 1] first."""
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
    if s.get("precision", "fp32") not in PRECISIONS:
        raise NetvizError(f"classviz.precision = {s['precision']!r} is not known; use one of {', '.join(PRECISIONS)}")
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
        "chunk_size": int(s.get("chunk_size", 0)),
    }


# --- jobs: optimise the images, then score them with every model ----------------------------------------------

def plan(ctx: Context, name: str, first: str, cfg: dict) -> dict:
    """The images ``name`` optimises: the gallery (the featured class first), the sweep cells, the rows started from
    noise (both, identical settings once) and the photographs started from, with their targets."""
    s = ctx.section
    classes = [cfg["target"]] + (cfg["gallery"] if name == first else cfg["other_gallery"])
    gallery = [Target(c, s["learning_rate"], s["l2_reg"]) for c in dict.fromkeys(classes)]
    sweep = [Target(c, lr, l2) for c in cfg["sweep_classes"] if name in cfg["sweep_models"]
             for l2 in s["sweep_l2_regs"] for lr in s["sweep_learning_rates"]]
    return {"gallery": gallery, "sweep": sweep,
            "targets": list(dict.fromkeys(gallery + sweep)),  # a sweep cell with the default settings is the gallery image
            "start_index": [s["start_image"], s["own_class_image"]],
            "start_targets": [cfg["start_target"], int(ctx.images.labels[s["own_class_image"]])]}


def optimise_jobs(ctx: Context, name: str, model, plan: dict, cfg: dict) -> list[Job]:
    """The "optimise" jobs of one model: its rows from noise, then its photo starts (Q10), which join the same batch
    (fewer, fuller passes; rows stay independent). Every row has its own target, learning rate and λ; all share the
    run's seed, so they start from the same noise and see the same jitter: differences come from the settings
    alone. ``classviz.chunk_size`` rows per job (0 = one job per model); a job's items are its photo starts."""
    s = ctx.section
    rows = [(t.target, t.learning_rate, t.l2_reg, None) for t in plan["targets"]]
    rows += [(tgt, s["learning_rate"], s["l2_reg"], i) for i, tgt in zip(plan["start_index"], plan["start_targets"])]
    settings = dict(num_iterations=s["num_iterations"], blur_every=s["blur_every"], blur_sigma=s["blur_sigma"],
                    max_jitter=s["max_jitter"], snapshots=cfg["snapshots"], seed=ctx.seed,
                    batch_size=ctx.batch_size_for(model),  # images per pass for this model (automatic by default)
                    precision=s.get("precision", "fp32"), image_shape=list(ctx.images.image_shape))
    jobs = []
    for chunk in shards(len(rows), cfg["chunk_size"]):
        part = [rows[r] for r in chunk]
        jobs.append(Job.make("classviz", "optimise", name, [r[3] for r in part if r[3] is not None],
                             targets=[r[0] for r in part], learning_rates=[r[1] for r in part],
                             l2_regs=[r[2] for r in part], from_noise=[r[3] is None for r in part], **settings))
    return jobs


def optimise(job: Job, model, batch: Batch) -> dict:
    """Class visualizations of the job's rows in one batch (passes of ``batch_size`` images).

    Rows marked ``from_noise`` start from the seeded noise; the others, in order, from the job's photographs
    (``batch.pixels``). Returns images R×3×H×W float32 in [0, 1], snapshots S×R×3×H×W float32 (the iterations of
    ``snapshots`` in order; iteration 0 is the start), objective T×R float32 (score − λ‖z‖² before each step) and
    wall_s, the seconds it took."""
    started = time.perf_counter()
    from_noise = list(job["from_noise"])
    starts = torch.zeros(len(from_noise), *job["image_shape"])
    photo_rows = [r for r, noise in enumerate(from_noise) if not noise]
    if photo_rows:
        starts[photo_rows] = batch.pixels.cpu()
    with autocast(batch.device, job["precision"]):  # "bf16": the optimisation's passes in bfloat16; scoring stays fp32
        result = class_visualization(
            model, starts.to(batch.device), torch.tensor(job["targets"], device=batch.device), from_noise=from_noise,
            seeds=job["seed"], learning_rate=list(job["learning_rates"]), l2_reg=list(job["l2_regs"]),
            num_iterations=job["num_iterations"], blur_every_steps=job["blur_every"], blur_sigma=job["blur_sigma"],
            max_jitter=job["max_jitter"], snapshots=list(job["snapshots"]), batch_size=job["batch_size"],
            progress=progress_bar(f"classviz {job.model}: {len(from_noise) - len(photo_rows)} images from noise, "
                                  f"{len(photo_rows)} from photographs"))
    return {"images": result.images.float().cpu().numpy(),
            "snapshots": np.stack([result.snapshots[k].float().cpu().numpy() for k in job["snapshots"]]),
            "objective": result.objective.float().cpu().numpy(), "wall_s": time.perf_counter() - started}


def judge(job: Job, model, batch: Batch) -> dict:
    """Softmax probabilities (N×1000 float32) under the job's model: of each input array (N×3×H×W, pixel space),
    under the same name, and of the job's photographs as "before"; each array in passes of ``batch_size``."""
    probs = {name: model.predict(torch.from_numpy(np.array(images, dtype=np.float32)), job["batch_size"]).cpu().numpy()
             for name, images in batch.inputs.items()}
    if batch.pixels is not None:
        probs["before"] = model.predict(batch.pixels, job["batch_size"]).cpu().numpy()
    return probs


def compute(job: Job, model, batch: Batch) -> dict:
    """One job: "optimise" (:func:`optimise`) or "score" (:func:`judge`)."""
    return dispatch(job, {"optimise": optimise, "score": judge}, model, batch)


def jobs(ctx: Context) -> list[Job]:
    """The section's heavy jobs: every model's "optimise" jobs."""
    loaded = ctx.models()
    names = list(loaded)
    cfg = check_settings(ctx, names)
    return [job for name in names for job in optimise_jobs(ctx, name, loaded[name].model, plan(ctx, name, names[0], cfg), cfg)]


def collect(plan: dict, results: list[dict], snapshots: list[int]) -> dict:
    """One model's optimise results joined in row order: the plan with "noise" and "from_real" (Visualizations of
    CPU tensors) and "wall" (seconds) added."""
    images = np.concatenate([r["images"] for r in results])
    stacked = np.concatenate([r["snapshots"] for r in results], axis=1)
    both = Visualization(torch.from_numpy(images), {k: torch.from_numpy(stacked[i]) for i, k in enumerate(snapshots)},
                         torch.from_numpy(np.concatenate([r["objective"] for r in results], axis=1)))
    n = len(plan["targets"])
    return {**plan, "noise": both.rows(slice(0, n)), "from_real": both.rows(slice(n, None)),
            "wall": sum(float(r["wall_s"]) for r in results)}


def score_jobs(ctx: Context, names: list[str], made: dict, snapshots: list[int]) -> list[Job]:
    """A "score" job per maker and judging model (maker-major order): the maker's final images (noise starts:
    "final", photo starts: "after") and its photographs ("before"); the snapshots ("snapshot_<k>",
    "start_snapshot_<k>") are scored by their maker only."""
    jobs = []
    for maker in names:
        noise, from_real = made[maker]["noise"], made[maker]["from_real"]
        for judging in names:
            inputs = {"final": noise.images.numpy(), "after": from_real.images.numpy()}
            if judging == maker:
                inputs.update({f"snapshot_{k}": noise.snapshots[k].numpy() for k in snapshots})
                inputs.update({f"start_snapshot_{k}": from_real.snapshots[k].numpy() for k in snapshots})
            jobs.append(Job.make("classviz", "score", judging, made[maker]["start_index"], inputs=inputs,
                                 batch_size=ctx.batch_size))
    return jobs


# --- assembly: scores, smoothness, figures ---------------------------------------------------------------------

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


def run(ctx: Context) -> dict:
    s = ctx.section
    categories = imagenet_categories()
    loaded = ctx.models()
    names = list(loaded)
    cfg = check_settings(ctx, names)
    results: dict = {
        "hyperparameters": {"learning_rate": s["learning_rate"], "l2_reg": s["l2_reg"],
                            "num_iterations": s["num_iterations"], "blur_every": s["blur_every"],
                            "blur_sigma": s["blur_sigma"], "max_jitter": s["max_jitter"], "seed": ctx.seed},
        "models": names,
        "first": names[0],
        "target": {"index": cfg["target"], "name": categories[cfg["target"]]},
        "snapshots": cfg["snapshots"],
        "reference": reference_summary(ctx.images.images),
        "per_model": {},
    }
    plans = {name: plan(ctx, name, names[0], cfg) for name in names}
    per_model = {name: optimise_jobs(ctx, name, loaded[name].model, plans[name], cfg) for name in names}
    done = iter(ctx.jobs([job for name in names for job in per_model[name]]))
    made = {name: collect(plans[name], [next(done) for _ in per_model[name]], cfg["snapshots"]) for name in names}
    for name in names:
        ctx.log(f"{name}: {len(made[name]['targets'])} images from noise, {len(made[name]['start_index'])} from "
                f"photographs, {s['num_iterations']} steps, {made[name]['wall']:.1f} s")
    scored = iter(ctx.jobs(score_jobs(ctx, names, made, cfg["snapshots"])))
    probs = {maker: {judging: next(scored) for judging in names} for maker in names}
    for name in names:
        results["per_model"][name] = describe(ctx, name, loaded[name], made[name], probs[name], cfg, categories)
    return results


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


def describe(ctx: Context, name: str, loaded, made: dict, probs: dict, cfg: dict, categories) -> dict:
    """Scores, smoothness, figures and tables for the images one model made (probs: judging model -> its score
    job's results for these images)."""
    model, noise = loaded.model, made["noise"]
    gallery, featured, gallery_figure = describe_gallery(ctx, name, made, probs, cfg, categories)
    sweeps = [describe_sweep(ctx, name, made, probs, cfg, categories, cls)
              for cls in dict.fromkeys(t.target for t in made["sweep"])]
    starts, starts_figure = describe_starts(ctx, name, made, probs, cfg, categories)
    return {
        "weights_sha256": loaded.weights_sha256,
        # the input normalisation: a step in normalized space is std times larger in pixels
        "input_mean": [round(float(v), 4) for v in model.mean.flatten()],
        "input_std": [round(float(v), 4) for v in model.std.flatten()],
        "wall_time_s": round(made["wall"], 2),
        "images_from_noise": len(made["targets"]),
        "gallery": gallery,
        "featured": featured,
        "sweeps": sweeps,
        "starts": starts,
        "objective_first": [round(float(v), 3) for v in noise.objective[0]],
        "objective_last": [round(float(v), 3) for v in noise.objective[-1]],
        "figures": {"gallery": gallery_figure, "featured": featured["figure"], "starts": starts_figure},
    }


def describe_gallery(ctx: Context, name: str, made: dict, probs: dict, cfg: dict, categories) -> tuple[list, dict, str]:
    """Q8: the gallery's scores and the featured class along the iterations, with their figures."""
    noise, snapshots, target = made["noise"], cfg["snapshots"], cfg["target"]
    index = {t: i for i, t in enumerate(made["targets"])}
    gallery = [{"class": t.target, "name": categories[t.target],
                **final_scores(probs, noise.images, index[t], t.target, categories)} for t in made["gallery"]]
    featured_i = index[made["gallery"][0]]
    featured = {"class": target, "name": categories[target],
                "by_iteration": trajectory(probs[name], noise.snapshots, "snapshot", featured_i, target)}
    strip = [[noise.snapshots[k][featured_i] for k in snapshots]]
    strip_titles = [["noise"] + [f"p {short_p(float(probs[name][f'snapshot_{k}'][featured_i][target]))}"
                                 for k in snapshots[1:]]]
    featured["figure"] = ctx.save_figure(plots.image_grid(strip, strip_titles, col_labels=[
        "start" if k == 0 else f"iteration {k}" for k in snapshots], cell=1.6), f"{name}_featured.png")
    per_row = 7
    cells = [noise.images[index[t]] for t in made["gallery"]]
    titles = [f"{plots.short(categories[t.target], 16)}\np {short_p(g['p'][name])}" for t, g in zip(made["gallery"], gallery)]
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    title_rows = [titles[i : i + per_row] for i in range(0, len(titles), per_row)]
    gallery_figure = ctx.save_figure(plots.image_grid(rows, title_rows, cell=1.35), f"{name}_gallery.png")
    return gallery, featured, gallery_figure


def describe_sweep(ctx: Context, name: str, made: dict, probs: dict, cfg: dict, categories, cls: int) -> dict:
    """Q9: one sweep class's iterations × learning rate × λ grid: each cell's path and final scores, the grid of
    snapshots and the curves."""
    s, noise, snapshots = ctx.section, made["noise"], cfg["snapshots"]
    index = {t: i for i, t in enumerate(made["targets"])}
    cells, grid, grid_titles, row_labels = [], [], [], []
    for cell in (t for t in made["sweep"] if t.target == cls):
        i = index[cell]
        path = trajectory(probs[name], noise.snapshots, "snapshot", i, cls)
        cells.append({"learning_rate": cell.learning_rate, "l2_reg": cell.l2_reg,
                      "default": cell.learning_rate == s["learning_rate"] and cell.l2_reg == s["l2_reg"],
                      "by_iteration": path, "final": final_scores(probs, noise.images, i, cls, categories)})
        grid.append([noise.snapshots[t["iteration"]][i] for t in path])
        grid_titles.append([f"p {short_p(t['p'])}, TV {t['tv']:.3f}" for t in path])
        row_labels.append(f"lr {fmt_value(cell.learning_rate)}, λ {fmt_value(cell.l2_reg)}")
    slug = categories[cls].split(",")[0].replace(" ", "_").lower()
    grid_figure = ctx.save_figure(plots.image_grid(grid, grid_titles, row_labels=row_labels,
                                                   col_labels=[f"iteration {k}" for k in snapshots if k > 0], cell=1.25),
                                  f"{name}_sweep_{slug}.png")
    curves_figure = ctx.save_figure(sweep_curves(cells, s["sweep_learning_rates"], s["sweep_l2_regs"], snapshots,
                                                 categories[cls]), f"{name}_sweep_{slug}_curves.png")
    return {"class": cls, "name": categories[cls], "learning_rates": s["sweep_learning_rates"],
            "l2_regs": s["sweep_l2_regs"], "cells": cells, "figures": {"grid": grid_figure, "curves": curves_figure}}


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


def describe_starts(ctx: Context, name: str, made: dict, probs: dict, cfg: dict, categories) -> tuple[list, str]:
    """Q10: the photo starts before and after, along the iterations, and their figure (with the change's size)."""
    real, from_real, snapshots = ctx.images, made["from_real"], cfg["snapshots"]
    starts, strip, strip_titles, row_labels = [], [], [], []
    for j, (i, tgt) in enumerate(zip(made["start_index"], made["start_targets"])):
        label = int(real.labels[i])
        change = (from_real.images[j] - real.images[i]).abs()
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
        strength = change.amax(0)  # the largest change over the colour channels, shown scaled to its maximum
        strip.append([from_real.snapshots[k][j] for k in snapshots] + [(strength / max(float(strength.max()), 1e-8)).expand(3, -1, -1)])
        strip_titles.append([f"p({plots.short(categories[tgt], 12)}) {short_p(float(probs[name][f'start_snapshot_{k}'][j][tgt]))}"
                             for k in snapshots] + [f"max {float(change.max()):.2f}"])
        row_labels.append(f"{plots.short(real.names[i], 14)} → {plots.short(categories[tgt], 14)}")
    col_labels = ["photograph" if k == 0 else f"iteration {k}" for k in snapshots] + ["|change|"]
    figure = ctx.save_figure(plots.image_grid(strip, strip_titles, row_labels=row_labels, col_labels=col_labels, cell=1.35),
                             f"{name}_from_photographs.png")
    return starts, figure
