"""The section's model work as jobs (:mod:`netviz.jobs`), and the jobs of a run.

Per model and shard of images a "maps" job (predictions, every method's maps, IG's completeness, deletion and
insertion curves), then per model one "randomization" job on the first images (every method's maps on each
randomized copy). ``compute`` and what it calls are pure: no files, no config beyond the job's params; the
functions after them plan the jobs from the settings and run them through the run's executor.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from netviz import metrics
from netviz.experiments.context import Context
from netviz.experiments.saliency_methods.settings import Settings, fractions_for, read_settings
from netviz.jobs import Batch, Job, dispatch
from netviz.methods.attribution import channel_max_abs, image_seeds, standard_methods
from netviz.methods.baselines import substrate
from netviz.methods.common import gather_scores
from netviz.methods.perturbation import perturbation_curve, saliency_ranks
from netviz.methods.randomization import cascading_randomization, weight_layers

CENTER = "Center prior"


def layer_grid(model, image: torch.Tensor) -> list[int]:
    """Height and width of the Grad-CAM layer's output for one image (the resolution of its maps before upsampling)."""
    shapes: list[list[int]] = []
    handle = model.layer().register_forward_hook(lambda module, inputs, output: shapes.append(list(output.shape[-2:])))
    try:
        with torch.inference_mode():
            model(image)
    finally:
        handle.remove()
    return shapes[0]


def compute_maps(model, methods: dict, x: torch.Tensor, targets: torch.Tensor, batch_size: int
                 ) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor], dict[str, float]]:
    """Every method's N×H×W maps (numpy), the signed attributions of the pixel-space methods, and seconds each took."""
    maps, attributions, seconds = {}, {}, {}
    for name, (kind, method) in methods.items():
        started = time.perf_counter()
        out = method(model, x, targets, batch_size=batch_size)
        if kind == "attribution":
            attributions[name] = out.detach()
            out = channel_max_abs(out)
        seconds[name] = time.perf_counter() - started
        maps[name] = out.detach().cpu().numpy().astype(np.float32)
    return maps, attributions, seconds


# --- jobs: all model work (pure: no files, no config beyond the job's params) ----------------------------------

def job_methods(job: Job) -> dict:
    """The six methods with the job's settings (name -> (kind, method), as :func:`standard_methods` gives them);
    SmoothGrad's noise is drawn per image from its position in the set, so it does not depend on the shards."""
    return standard_methods(job["smoothgrad_sigma"], int(job["smoothgrad_samples"]), int(job["ig_steps"]),
                            job["ig_blur_sigma"], image_seeds(int(job["seed"]), job.items))


def ig_completeness_error(model, x: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor,
                          attributions: dict[str, torch.Tensor], blur_sigma: float, batch_size: int) -> np.ndarray:
    """Per IG baseline (black, blur) and image: |sum of IG's attributions - (score(x) - score(x'))| / |score gap|,
    2×K float32 (0 = complete; the attributions should add up to the score gap)."""
    baselines = {"IG (black)": substrate("black"), "IG (blur)": substrate("blur", blur_sigma)}
    errors = []
    for name, baseline in baselines.items():
        gap = gather_scores(logits, targets) - gather_scores(model.predict(baseline(x), batch_size, logits=True), targets)
        total = attributions[name].flatten(1).sum(1)
        errors.append(((total - gap).abs() / gap.abs().clamp_min(1e-6)).cpu())
    return torch.stack(errors).numpy()


def perturbation_curves(model, x: torch.Tensor, maps: dict[str, np.ndarray], targets: torch.Tensor,
                        p_original: torch.Tensor, job: Job) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Deletion and insertion curves (mode -> M×K×(steps+1) float32 probabilities of the target, methods in the
    order of ``maps``) and the probability of the target on each substrate (mode -> K float32). The curves' end
    points (the image, the substrate) are the same for every method and computed once."""
    bs, seed = int(job["batch_size"]), int(job["seed"])
    fractions = fractions_for(int(job["perturbation_steps"]), job["perturbation_spacing"])
    kinds = {mode: job[f"{mode}_substrate"] for mode in ("deletion", "insertion")}
    made: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # substrate kind -> (images, p of the target)
    for kind in dict.fromkeys(kinds.values()):
        images = substrate(kind, job["substrate_blur_sigma"])(x)
        made[kind] = images, gather_scores(model.predict(images, bs), targets).cpu()
    curves: dict[str, list[np.ndarray]] = {mode: [] for mode in kinds}
    for saliency in maps.values():
        ranks = saliency_ranks(torch.from_numpy(np.ascontiguousarray(saliency)).to(x.device), seed=seed)
        for mode, kind in kinds.items():
            images, p_substrate = made[kind]
            inner = perturbation_curve(model, x, images, ranks, targets, fractions[1:-1], mode, bs).cpu()
            start, end = (p_original, p_substrate) if mode == "deletion" else (p_substrate, p_original)
            curves[mode].append(torch.cat([start[:, None], inner, end[:, None]], dim=1).numpy())
    return ({mode: np.stack(c) for mode, c in curves.items()},
            {mode: made[kind][1].numpy() for mode, kind in kinds.items()})


def compute_maps_job(job: Job, model, batch: Batch) -> dict:
    """A shard of K images: predictions and targets (K), each method's maps (``maps``: M×K×H×W float32 in the
    order of ``methods``), IG's completeness error (2×K), the substrates' probabilities and the deletion/insertion
    curves ((M+1)×K×(steps+1), the center prior last), and the seconds each part took."""
    started = time.perf_counter()
    bs = int(job["batch_size"])
    # channels-last images: the same numbers, and 1.3-2.4x faster convolutions on CPU (oneDNN), on every pass below
    x = batch.pixels
    logits = model.predict(x, bs, logits=True)
    predicted = logits.argmax(1)
    targets = predicted if job["target"] == "predicted" else batch.labels.to(batch.device)
    p_original = gather_scores(logits.softmax(1), targets).cpu()
    methods = job_methods(job)
    maps, attributions, seconds = compute_maps(model, methods, x, targets, bs)
    completeness = ig_completeness_error(model, x, logits, targets, attributions, job["ig_blur_sigma"], bs)
    del attributions
    perturb_started = time.perf_counter()
    center = metrics.center_prior(tuple(x.shape[-2:])).astype(np.float32)
    with_center = {**maps, CENTER: np.repeat(center[None], len(x), axis=0)}
    curves, p_substrate = perturbation_curves(model, x, with_center, targets, p_original, job)
    return {"methods": list(methods), "maps": np.stack([maps[name] for name in methods]),
            "predicted": predicted.cpu().numpy(), "targets": targets.cpu().numpy(), "p_original": p_original.numpy(),
            "completeness": completeness, "cam_grid": layer_grid(model, x[:1]),
            **{f"curves_{mode}": c for mode, c in curves.items()},
            **{f"p_substrate_{mode}": p for mode, p in p_substrate.items()},
            "seconds": seconds, "perturbation_seconds": time.perf_counter() - perturb_started,
            "total_seconds": time.perf_counter() - started}


def compute_randomization_job(job: Job, model, batch: Batch) -> dict:
    """The cascading randomization check on K images for the classes in ``batch.inputs["targets"]``: each method's
    maps on every stage's randomized copy (``maps``: S×M×K×H×W float32), the stages' sizes ``k`` (top k weight
    layers re-drawn) and the model's number of weight layers."""
    started = time.perf_counter()
    x = batch.pixels
    targets = torch.from_numpy(np.asarray(batch.inputs["targets"])).to(batch.device)
    methods = job_methods(job)
    stages, maps = [], []
    for k, _, randomized in cascading_randomization(model, list(job["randomization_fractions"]), seed=int(job["seed"])):
        random_maps, _, _ = compute_maps(randomized, methods, x, targets, int(job["batch_size"]))
        stages.append(k)
        maps.append(np.stack([random_maps[name] for name in methods]))
    empty = np.zeros((0, len(methods), len(x), *x.shape[-2:]), np.float32)  # no stage at all
    return {"methods": list(methods), "stages": stages, "weight_layers": len(weight_layers(model)),
            "maps": np.stack(maps) if maps else empty,
            "seconds": time.perf_counter() - started}


def compute(job: Job, model, batch: Batch) -> dict:
    """Run one job of this section (kind "maps" or "randomization")."""
    return dispatch(job, {"maps": compute_maps_job, "randomization": compute_randomization_job}, model, batch)


# --- the jobs of a run ------------------------------------------------------------------------------------------

METHOD_KEYS = ("smoothgrad_samples", "smoothgrad_sigma", "ig_steps", "ig_blur_sigma")
MAPS_KEYS = ("target", "perturbation_steps", "perturbation_spacing", "deletion_substrate", "insertion_substrate",
             "substrate_blur_sigma")


def maps_jobs(ctx: Context, settings: Settings) -> list[Job]:
    """One "maps" job per model and shard of images."""
    params = settings.values(*METHOD_KEYS, *MAPS_KEYS)
    return [Job.make("saliency_methods", "maps", name, shard, batch_size=ctx.batch_size, seed=ctx.seed, **params)
            for name in ctx.model_names for shard in ctx.shards()]


def randomization_jobs(ctx: Context, settings: Settings, targets: dict[str, np.ndarray]) -> list[Job]:
    """One "randomization" job per model, on the first ``randomization_images`` images, for their ``targets``
    (model -> N targets from the maps jobs, so that both explain the same classes)."""
    count = min(settings.randomization_images, len(ctx.images))
    params = settings.values(*METHOD_KEYS, "randomization_fractions")
    return [Job.make("saliency_methods", "randomization", name, range(count), batch_size=ctx.batch_size,
                     seed=ctx.seed, inputs={"targets": np.ascontiguousarray(targets[name][:count])}, **params)
            for name in ctx.model_names]


def merge_shards(parts: list[dict]) -> dict:
    """One model's "maps" job results, shard after shard, as one result over all images."""
    first = parts[0]
    joined = {key: np.concatenate([p[key] for p in parts], axis=1)
              for key in ("maps", "completeness", "curves_deletion", "curves_insertion")}
    joined.update({key: np.concatenate([p[key] for p in parts])
                   for key in ("predicted", "targets", "p_original", "p_substrate_deletion", "p_substrate_insertion")})
    seconds = {name: sum(p["seconds"][name] for p in parts) for name in first["seconds"]}
    return {**joined, "methods": first["methods"], "cam_grid": first["cam_grid"], "seconds": seconds,
            "perturbation_seconds": sum(p["perturbation_seconds"] for p in parts),
            "total_seconds": sum(p["total_seconds"] for p in parts)}


def maps_results(ctx: Context, settings: Settings) -> tuple[list[Job], dict[str, dict]]:
    """The "maps" jobs, run through the run's executor, and per model their results merged over the shards."""
    first = maps_jobs(ctx, settings)
    done = ctx.jobs(first)
    return first, {name: merge_shards([r for job, r in zip(first, done) if job.model == name])
                   for name in ctx.model_names}


def run_jobs(ctx: Context, settings: Settings) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every job of the section through the run's executor: per model, the merged "maps" result and the
    "randomization" result."""
    _, merged = maps_results(ctx, settings)
    second = randomization_jobs(ctx, settings, {name: m["targets"] for name, m in merged.items()})
    return merged, dict(zip(ctx.model_names, ctx.jobs(second)))


def jobs(ctx: Context) -> list[Job]:
    """The section's compute jobs: the "maps" jobs and the "randomization" jobs (these need the maps jobs'
    targets, which this runs through ``ctx.jobs`` first)."""
    settings = read_settings(ctx)
    first, merged = maps_results(ctx, settings)
    return [*first, *randomization_jobs(ctx, settings, {name: m["targets"] for name, m in merged.items()})]
