"""The section's jobs, planned from the settings: which images each model optimises (:func:`plan`), its "optimise"
jobs, the "score" jobs that have every model judge every model's images, and how their results are joined back.
The jobs themselves run in :mod:`netviz.experiments.classviz.work`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from netviz.experiments.classviz.settings import Settings, read_settings
from netviz.experiments.context import Context
from netviz.jobs import Job, shards
from netviz.methods.classviz import Visualization


@dataclass(frozen=True)
class Target:
    """One image to optimise from noise: its target class and its own learning rate and λ."""

    target: int
    learning_rate: float
    l2_reg: float


def plan(ctx: Context, name: str, first: str, settings: Settings) -> dict:
    """The images ``name`` optimises: the gallery (the featured class first), the sweep cells, the rows started from
    noise (both, identical settings once) and the photographs started from, with their targets."""
    s = settings
    classes = [s.target] + (s.gallery if name == first else s.other_gallery)
    gallery = [Target(c, s.learning_rate, s.l2_reg) for c in dict.fromkeys(classes)]
    sweep = [Target(c, lr, l2) for c in s.sweep_classes if name in s.sweep_models
             for l2 in s.sweep_l2_regs for lr in s.sweep_learning_rates]
    return {"gallery": gallery, "sweep": sweep,
            "targets": list(dict.fromkeys(gallery + sweep)),  # a sweep cell with the default settings is the gallery image
            "start_index": [s.start_image, s.own_class_image],
            "start_targets": [s.start_target, int(ctx.images.labels[s.own_class_image])]}


def optimise_jobs(ctx: Context, name: str, model, plan: dict, settings: Settings) -> list[Job]:
    """The "optimise" jobs of one model: its rows from noise, then its photo starts (Q10), which join the same batch
    (fewer, fuller passes; rows stay independent). Every row has its own target, learning rate and λ; all share the
    run's seed, so they start from the same noise and see the same jitter: differences come from the settings
    alone. ``classviz.chunk_size`` rows per job (0 = one job per model); a job's items are its photo starts."""
    s = settings
    rows = [(t.target, t.learning_rate, t.l2_reg, None) for t in plan["targets"]]
    rows += [(tgt, s.learning_rate, s.l2_reg, i) for i, tgt in zip(plan["start_index"], plan["start_targets"])]
    common = dict(num_iterations=s.num_iterations, blur_every=s.blur_every, blur_sigma=s.blur_sigma,
                  max_jitter=s.max_jitter, snapshots=s.snapshots, seed=ctx.seed,
                  batch_size=ctx.batch_size_for(model),  # images per pass for this model (automatic by default)
                  precision=s.precision, image_shape=list(ctx.images.image_shape))
    jobs = []
    for chunk in shards(len(rows), s.chunk_size):
        part = [rows[r] for r in chunk]
        jobs.append(Job.make("classviz", "optimise", name, [r[3] for r in part if r[3] is not None],
                             targets=[r[0] for r in part], learning_rates=[r[1] for r in part],
                             l2_regs=[r[2] for r in part], from_noise=[r[3] is None for r in part], **common))
    return jobs


def jobs(ctx: Context) -> list[Job]:
    """The section's heavy jobs: every model's "optimise" jobs."""
    settings = read_settings(ctx)
    loaded = ctx.models()
    names = list(loaded)
    return [job for name in names
            for job in optimise_jobs(ctx, name, loaded[name].model, plan(ctx, name, names[0], settings), settings)]


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


def make_images(ctx: Context, loaded: dict, settings: Settings) -> dict:
    """Every model's images (its optimise jobs run and joined, :func:`collect`), by model name, in config order."""
    names = list(loaded)
    plans = {name: plan(ctx, name, names[0], settings) for name in names}
    per_model = {name: optimise_jobs(ctx, name, loaded[name].model, plans[name], settings) for name in names}
    done = iter(ctx.jobs([job for name in names for job in per_model[name]]))
    made = {name: collect(plans[name], [next(done) for _ in per_model[name]], settings.snapshots) for name in names}
    for name in names:
        ctx.log(f"{name}: {len(made[name]['targets'])} images from noise, {len(made[name]['start_index'])} from "
                f"photographs, {settings.num_iterations} steps, {made[name]['wall']:.1f} s")
    return made


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


def judge_images(ctx: Context, names: list[str], made: dict, snapshots: list[int]) -> dict:
    """Every model's judgement of every model's images: {maker: {judging model: its score job's results}}."""
    scored = iter(ctx.jobs(score_jobs(ctx, names, made, snapshots)))
    return {maker: {judging: next(scored) for judging in names} for maker in names}
