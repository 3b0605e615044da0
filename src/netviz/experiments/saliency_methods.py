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
"""

from __future__ import annotations

import time

import numpy as np
import torch

from netviz import metrics, plots, tables
from netviz.tables import mean, stderr
from netviz.data import imagenet_categories
from netviz.errors import NetvizError
from netviz.experiments.context import Context
from netviz.jobs import Batch, Job, dispatch
from netviz.methods.attribution import channel_max_abs, image_seeds, standard_methods
from netviz.methods.baselines import SUBSTRATES, substrate
from netviz.methods.common import gather_scores
from netviz.methods.perturbation import perturbation_curve, saliency_ranks
from netviz.methods.randomization import cascading_randomization, weight_layers

CENTER = "Center prior"
# Summary metrics, with the direction that is better (for rankings in the report).
HIGHER_IS_BETTER = {"pointing": True, "energy": True, "deletion_auc": False, "insertion_auc": True}


def check_config(section: dict) -> None:
    """Refuse values the code cannot use, naming the key and what to do."""
    if section["perturbation_spacing"] not in ("uniform", "quadratic"):
        raise NetvizError("saliency_methods.perturbation_spacing must be \"uniform\" or \"quadratic\", "
                          f"got {section['perturbation_spacing']!r}")
    if section["target"] not in ("predicted", "label"):
        raise NetvizError(f"saliency_methods.target must be \"predicted\" or \"label\", got {section['target']!r}")
    for key in ("deletion_substrate", "insertion_substrate"):
        if section[key] not in SUBSTRATES:
            raise NetvizError(f"saliency_methods.{key} must be one of {', '.join(SUBSTRATES)}, got {section[key]!r}")
    for key in ("smoothgrad_samples", "ig_steps", "perturbation_steps", "num_shown", "randomization_images"):
        if section[key] < 1:
            raise NetvizError(f"saliency_methods.{key} must be at least 1, got {section[key]}")
    fractions = section["randomization_fractions"]
    if not fractions or any(not 0 <= f <= 1 for f in fractions) or sorted(fractions) != list(fractions):
        raise NetvizError(f"saliency_methods.randomization_fractions must be increasing shares in [0, 1], got {fractions}")


def images_name(index: int) -> str:
    return imagenet_categories()[index]


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


# --- jobs: all model work (pure: no files, no config beyond the job's params) ----------------------------------

def fractions_for(steps: int, spacing: str) -> list[float]:
    """Shares of pixels changed after each of ``steps`` deletion/insertion steps, 0 and 1 included (steps+1 values)."""
    power = {"uniform": 1, "quadratic": 2}[spacing]
    return [(k / steps) ** power for k in range(steps + 1)]


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


def maps_jobs(ctx: Context) -> list[Job]:
    """One "maps" job per model and shard of images."""
    cfg = ctx.section
    params = {k: cfg[k] for k in (*METHOD_KEYS, *MAPS_KEYS)}
    return [Job.make("saliency_methods", "maps", name, shard, batch_size=ctx.batch_size, seed=ctx.seed, **params)
            for name in ctx.model_names for shard in ctx.shards()]


def randomization_jobs(ctx: Context, targets: dict[str, np.ndarray]) -> list[Job]:
    """One "randomization" job per model, on the first ``randomization_images`` images, for their ``targets``
    (model -> N targets from the maps jobs, so that both explain the same classes)."""
    cfg = ctx.section
    count = min(int(cfg["randomization_images"]), len(ctx.images))
    params = {k: cfg[k] for k in (*METHOD_KEYS, "randomization_fractions")}
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


def maps_results(ctx: Context) -> tuple[list[Job], dict[str, dict]]:
    """The "maps" jobs, run through the run's executor, and per model their results merged over the shards."""
    first = maps_jobs(ctx)
    done = ctx.jobs(first)
    return first, {name: merge_shards([r for job, r in zip(first, done) if job.model == name])
                   for name in ctx.model_names}


def run_jobs(ctx: Context) -> tuple[dict[str, dict], dict[str, dict]]:
    """Every job of the section through the run's executor: per model, the merged "maps" result and the
    "randomization" result."""
    _, merged = maps_results(ctx)
    second = randomization_jobs(ctx, {name: m["targets"] for name, m in merged.items()})
    return merged, dict(zip(ctx.model_names, ctx.jobs(second)))


def jobs(ctx: Context) -> list[Job]:
    """The section's compute jobs: the "maps" jobs and the "randomization" jobs (these need the maps jobs'
    targets, which this runs through ``ctx.jobs`` first)."""
    first, merged = maps_results(ctx)
    return [*first, *randomization_jobs(ctx, {name: m["targets"] for name, m in merged.items()})]


# --- scoring (on the jobs' arrays) ------------------------------------------------------------------------------

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
    layers = int(random["weight_layers"])
    return [f"top {k}/{layers}" if k < layers else f"all {k}" for k in random["stages"]]


def completeness_error(done: dict) -> dict[str, float]:
    """IG (black), IG (blur) -> median over images of the completeness error (torch's median: the lower middle)."""
    errors = torch.from_numpy(done["completeness"])
    return {name: round(float(errors[i].median()), 4) for i, name in enumerate(("IG (black)", "IG (blur)"))}


def image_table(ctx: Context, per_image: dict[str, dict[str, list]]) -> list[dict]:
    """One row per method and image: the image (position, id, label) and its scores (None where not scored)."""
    images = ctx.images
    return [{"method": name, "image": i, "id": images.ids[i], "label": int(images.labels[i]),
             **{metric: values[i] for metric, values in scores.items()}}
            for name, scores in per_image.items() for i in range(len(images))]


# --- figures ----------------------------------------------------------------------------------------------------

def model_figures(ctx: Context, model_name: str, maps: dict, done: dict, summary: dict, mean_curve: dict,
                  similarity: dict, examples: dict, labels: list[str]) -> dict[str, str]:
    """The images × methods grid, the deletion/insertion curves, and the randomization figures of one model."""
    images, methods = ctx.images, done["methods"]
    shown = min(int(ctx.section["num_shown"]), len(images))
    # rows are labelled with the true class, and the class the maps explain when it differs
    row_titles = [label if int(t) == int(l) else f"{label}\n→ {images_name(int(t))}"
                  for label, l, t in zip(images.names[:shown], images.labels[:shown], done["targets"][:shown])]
    fig_grid = ctx.save_figure(plots.method_grid(images.pixels(range(shown)), {nm: maps[nm][:shown] for nm in methods},
                                                 row_titles, boxes=images.boxes[:shown]), f"methods_{model_name}.png")
    fig_curves = ctx.save_figure(plots.perturbation_figure(
        fractions_for(int(ctx.section["perturbation_steps"]), ctx.section["perturbation_spacing"]),
        mean_curve["deletion"], mean_curve["insertion"], {nm: s["deletion_auc"] for nm, s in summary.items()},
        {nm: s["insertion_auc"] for nm, s in summary.items()}), f"deletion_insertion_{model_name}.png")
    fig_random = ctx.save_figure(plots.randomization_figure(
        labels, {nm: s["spearman"] for nm, s in similarity.items()}, {nm: s["ssim"] for nm, s in similarity.items()}),
        f"randomization_{model_name}.png")
    fig_examples = ctx.save_figure(plots.randomization_examples(
        images.pixels([0])[0], {nm: examples[nm] for nm in methods}, ["original", *labels]),
        f"randomization_examples_{model_name}.png")
    return {"grid": fig_grid, "curves": fig_curves, "randomization": fig_random, "randomization_examples": fig_examples}


# --- assembly ---------------------------------------------------------------------------------------------------

def model_results(ctx: Context, model_name: str, done: dict, random: dict) -> tuple[dict, dict[str, np.ndarray]]:
    """One model's entry of metrics.json from its jobs' results, its figures, and its curves (for curves.npz)."""
    images, loaded = ctx.images, ctx.load_model(model_name)
    shape = tuple(done["maps"].shape[-2:])
    tolerance = float(ctx.section["tolerance_px"])
    fractions = fractions_for(int(ctx.section["perturbation_steps"]), ctx.section["perturbation_spacing"])
    names = [*done["methods"], CENTER]
    maps = method_maps(done, names, shape)
    per_image = score_images(maps, done, images.boxes, tolerance, fractions)
    similarity, examples = randomization_scores(maps, random)
    labels = stage_labels(random)
    curves = {mode: {nm: done[f"curves_{mode}"][i] for i, nm in enumerate(names)} for mode in ("deletion", "insertion")}
    mean_curve = {mode: {nm: c.mean(0) for nm, c in by_name.items()} for mode, by_name in curves.items()}
    summary = {nm: {m: mean(per_image[nm][m]) for m in HIGHER_IS_BETTER} for nm in names}
    figures = model_figures(ctx, model_name, maps, done, summary, mean_curve, similarity, examples, labels)
    center_hits = [metrics.pointing_hit(metrics.center_point(shape), b, shape, tolerance) for b in images.boxes if b]
    seconds = {**done["seconds"], CENTER: 0.0}
    entry = {
        "weights_sha256": loaded.weights_sha256, "target_layer": loaded.model.target_layer,
        "cam_grid": list(done["cam_grid"]),
        "top1": int((torch.from_numpy(done["predicted"]) == images.labels).sum()),
        "center_hit_rate": mean([float(h) for h in center_hits]),
        "p_original": mean(done["p_original"].tolist()),
        "p_substrate": {mode: mean(done[f"p_substrate_{mode}"].tolist()) for mode in ("deletion", "insertion")},
        "ig_completeness_error": completeness_error(done),
        "weight_layers": int(random["weight_layers"]), "stages": labels,
        "methods": {nm: {**summary[nm], **{f"{m}_se": stderr(per_image[nm][m]) for m in HIGHER_IS_BETTER},
                         "seconds": round(seconds[nm], 2), **similarity[nm],
                         "mean_curve": {mode: [round(float(v), 4) for v in mean_curve[mode][nm]] for mode in curves}}
                    for nm in names},
        "rankings": {m: ranking(per_image, m, list(done["methods"])) for m in HIGHER_IS_BETTER},
        "per_image": {nm: {m: [None if v is None else round(float(v), 4) for v in per_image[nm][m]]
                           for m in HIGHER_IS_BETTER} for nm in names},
        "seconds": {"total": round(done["total_seconds"] + random["seconds"], 1),
                    "perturbation": round(done["perturbation_seconds"], 1),
                    "randomization": round(random["seconds"], 1)},
        "figures": figures,
    }
    arrays = {f"{model_name}/{nm}/{mode}": curves[mode][nm] for nm in names for mode in curves}
    return entry, arrays


def section_header(ctx: Context, shape: tuple[int, int]) -> dict:
    """The model-independent part of metrics.json: the images, methods and settings (``shape``: H×W of the
    images)."""
    cfg, images = ctx.section, ctx.images
    n = len(images)
    annotated = [i for i in range(n) if images.boxes[i]]
    return {  # the method names do not depend on the settings
        "images": [{"id": i, "label": int(l), "name": nm, "boxes": len(b)}
                   for i, nm, l, b in zip(images.ids, images.names, images.labels, images.boxes)],
        "methods": list(standard_methods()), "baseline_method": CENTER, "n": n, "annotated": len(annotated),
        "num_shown": min(int(cfg["num_shown"]), n), "randomization_images": min(int(cfg["randomization_images"]), n),
        "fractions": fractions_for(int(cfg["perturbation_steps"]), cfg["perturbation_spacing"]),
        "settings": {k: cfg[k] for k in ("target", "tolerance_px", "smoothgrad_samples", "smoothgrad_sigma", "ig_steps",
                                         "ig_blur_sigma", "perturbation_steps", "perturbation_spacing", "deletion_substrate",
                                         "insertion_substrate", "substrate_blur_sigma", "randomization_fractions")},
        "box_fraction": mean([metrics.box_area_fraction(images.boxes[i], shape) for i in annotated]),
        "models": {},
    }


def run(ctx: Context) -> dict:
    check_config(ctx.section)
    maps_done, random_done = run_jobs(ctx)
    results = section_header(ctx, tuple(next(iter(maps_done.values()))["maps"].shape[-2:]))
    arrays: dict[str, np.ndarray] = {}
    for model_name in ctx.model_names:
        entry, curves = model_results(ctx, model_name, maps_done[model_name], random_done[model_name])
        results["models"][model_name] = entry
        arrays.update(curves)
        tables.write_table(image_table(ctx, entry["per_image"]), ctx.results_dir / f"per_image_{model_name}")
        best = entry["rankings"]
        ctx.log(f"{model_name}: best insertion {best['insertion_auc']['order'][:1]}, best deletion "
                f"{best['deletion_auc']['order'][:1]}, in {entry['seconds']['total']:.1f} s of jobs")
    np.savez_compressed(ctx.results_dir / "curves.npz",
                        **{k.replace("/", "__"): v.astype(np.float32) for k, v in arrays.items()})
    return results
