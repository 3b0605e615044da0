"""Section 2: adversarial examples (Q5-Q7).

Three measurements, each on every model of the section:

- the lab's fooling image (targeted, unbounded, normalised gradient steps) on ``fooling_images``;
- a sweep of budgeted untargeted attacks (FGSM, PGD L∞/L2, MI-FGSM) over ε, on the images the model gets right;
- transfer sets: full-strength untargeted attacks at one budget.

Every adversarial image the results count is written as an 8-bit PNG under ``results/adversarial/images/``,
read back from disk and classified again (by every model, for the fooling and transfer sets): every "this image
fools model X" in the results is a statement about the stored file. Images of the fooling and transfer sets are
also put through a JPEG round trip and classified again.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from netviz import claims, codecs, metrics, plots
from netviz.data import class_index, imagenet_categories
from netviz.errors import NetvizError
from netviz.experiments.context import Context
from netviz.experiments.saliency import image_title
from netviz.methods.adversarial import Attack, Fooling, fgsm, fooling_image, mi_fgsm, pgd, projected_gradient


ATTACKS = ("fgsm", "pgd_linf", "pgd_l2", "mi_fgsm")


class ChannelsLast(nn.Module):
    """Feeds a classifier channels-last tensors: the same logits up to float rounding, and convolutions 1.3 to
    1.8 times faster on the CPU (measured on SqueezeNet and EfficientNet-Lite0). Kept here, not in the methods,
    so that the methods see exactly what the caller passes (the tests compare them with torchattacks)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.train(model.training)  # a new module starts in training mode, which frozen_eval would then restore

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.normalize(x)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.denormalize(z)


def build_attack(name: str, eps: float, section: dict, steps: int, targeted: bool = False,
                 stop_on_success: bool = False) -> Attack:
    """The attack ``name`` at budget ``eps`` (8-bit levels) with the section's step rules.

    PGD's step is ``step_size`` × ε (Madry et al. use about 2.5·ε/steps); MI-FGSM's is ε/steps (Dong et al.).
    """
    if name == "fgsm":
        return fgsm(eps, targeted=targeted)
    if name in ("pgd_linf", "pgd_l2"):
        return pgd(eps, float(section["step_size"]) * eps, steps, "linf" if name == "pgd_linf" else "l2",
                   bool(section["random_start"]), targeted, stop_on_success)
    if name == "mi_fgsm":
        return mi_fgsm(eps, eps / steps, steps, float(section["momentum"]), targeted=targeted,
                       stop_on_success=stop_on_success)
    raise NetvizError(f"unknown attack '{name}' in [adversarial]; known: {', '.join(ATTACKS)}")


def check_config(section: dict, n_images: int) -> None:
    for key in ("attacks", "transfer_attacks"):
        for name in section[key]:
            if name not in ATTACKS:
                raise NetvizError(f"unknown attack '{name}' in adversarial.{key}; known: {', '.join(ATTACKS)}")
    for key in ("fooling_images", "fooling_shown", "sweep_images"):
        bad = [i for i in section[key] if not 0 <= i < n_images]
        if bad:
            raise NetvizError(f"adversarial.{key} has image index {bad[0]}, but there are {n_images} images (0..{n_images - 1})")
    chosen = set(section["fooling_images"] or range(n_images))
    missing = [i for i in section["fooling_shown"] if i not in chosen]
    if missing:
        raise NetvizError(f"adversarial.fooling_shown has image {missing[0]}, which is not in adversarial.fooling_images; add it there")
    if not 0 <= section["fooling_kappa"] < 1 or not 0 <= section["kappa_compare"] < 1:
        raise NetvizError("adversarial.fooling_kappa and kappa_compare are probabilities in [0, 1); 0 means off")
    if not 1 <= section["jpeg_quality"] <= 95:
        raise NetvizError(f"adversarial.jpeg_quality must be in 1..95, got {section['jpeg_quality']}")


def probabilities(model, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Softmax probabilities N×1000 (on CPU) for pixel-space images, batched, without autograd."""
    with torch.inference_mode():
        return torch.cat([model(images[i : i + batch_size]).softmax(1).cpu() for i in range(0, len(images), batch_size)])


def verdicts(probs: torch.Tensor, labels, targets=None) -> list[dict]:
    """Per image: top-1 class and its probability, the true class's probability (and the target's)."""
    names = imagenet_categories()
    rows = []
    for i, p in enumerate(probs):
        top = int(p.argmax())
        row = {"pred": top, "pred_name": names[top], "p_pred": round(float(p[top]), 4), "p_true": round(float(p[int(labels[i])]), 4)}
        if targets is not None:
            row["p_target"] = round(float(p[int(targets[i])]), 4)
        rows.append(row)
    return rows


def perturbation_stats(original: np.ndarray, adversarial: np.ndarray) -> dict:
    """Size of one stored perturbation (8-bit images H×W×3): L∞, L2 in levels, relative L2, SSIM."""
    return {"linf": round(metrics.linf_levels(original, adversarial), 2), "l2": round(metrics.l2_levels(original, adversarial), 2),
            "l2_rel": round(metrics.relative_l2(original, adversarial), 5), "ssim": round(metrics.ssim(original, adversarial), 4)}


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def rate(flags) -> float | None:
    flags = list(flags)
    return round(sum(bool(f) for f in flags) / len(flags), 4) if flags else None


class Run:
    """State shared by the parts of the section: config, images, models, clean predictions, storage."""

    def __init__(self, ctx: Context):
        self.ctx, self.sec = ctx, ctx.section
        check_config(self.sec, len(ctx.images))
        self.x = ctx.images.images.to(ctx.device)
        self.y = ctx.images.labels
        self.x8 = codecs.to_uint8(ctx.images.images)
        self.models = {name: ChannelsLast(loaded.model) for name, loaded in ctx.models().items()}
        self.batch = ctx.batch_size
        self.quality = int(self.sec["jpeg_quality"])
        self.clean = {name: probabilities(m, self.x, self.batch) for name, m in self.models.items()}
        self.correct = {name: (p.argmax(1) == self.y).numpy() for name, p in self.clean.items()}
        (ctx.results_dir / "images").mkdir(exist_ok=True)
        self.timings: dict[str, dict[str, float]] = {}  # part -> wall and CPU seconds (CPU: all threads)
        self.fooling_cache: dict[tuple[str, str], dict] = {}  # (model, variant) -> fooling_set result

    def generator(self) -> torch.Generator:
        return torch.Generator(device=self.x.device).manual_seed(self.ctx.seed)

    def store(self, tag: str, indices: list[int], images: torch.Tensor) -> tuple[list[str], np.ndarray]:
        """Write each adversarial image as an 8-bit PNG, then read the files back (what all claims use)."""
        paths = []
        for i, image in zip(indices, codecs.to_uint8(images)):
            name = f"{tag}_{i:02d}.png"
            codecs.save_png(self.ctx.results_dir / "images" / name, image)
            paths.append(name)
        reread = np.stack([codecs.load_png(self.ctx.results_dir / "images" / p) for p in paths]) if paths else self.x8[:0]
        return [f"results/{self.ctx.name}/images/{p}" for p in paths], reread

    def judge_stored(self, stored: np.ndarray, indices: list[int], targets=None) -> dict:
        """Classify stored 8-bit images (and their JPEG round trips) with every model."""
        jpeg = np.stack([codecs.jpeg_roundtrip(im, self.quality) for im in stored]) if len(stored) else stored
        labels = self.y[indices]
        out = {"png": {}, "jpeg": {}}
        for name, model in self.models.items():
            out["png"][name] = verdicts(probabilities(model, codecs.from_uint8(stored, self.x.device), self.batch), labels, targets)
            out["jpeg"][name] = verdicts(probabilities(model, codecs.from_uint8(jpeg, self.x.device), self.batch), labels, targets)
        return out

    def timed(self, key: str, started: tuple[float, float]) -> None:
        """Add the wall and CPU seconds since ``started`` (a :func:`clock` reading) to part ``key``."""
        wall, cpu = clock()
        old = self.timings.get(key, {"wall_s": 0.0, "cpu_s": 0.0})
        self.timings[key] = {"wall_s": round(old["wall_s"] + wall - started[0], 2), "cpu_s": round(old["cpu_s"] + cpu - started[1], 2)}


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds: CPU time shows the cost when other jobs share the cores."""
    return time.perf_counter(), time.process_time()


def fooling_set(run: Run, source: str, indices: list[int], target: int, spec: Fooling, tag: str) -> dict:
    """The lab's method on ``indices`` with ``source``: stored, re-read and judged by every model."""
    started = clock()
    model = run.models[source]
    targets = torch.full((len(indices),), target, dtype=torch.long)
    with run.ctx.autocast():  # precision = "bf16": the attack's passes in bfloat16; judging stays fp32
        adv = fooling_image(model, run.x[indices], targets.to(run.x.device), spec, batch_size=run.batch)
    floats = verdicts(probabilities(model, adv.images, run.batch), run.y[indices], targets)
    files, stored = run.store(f"{tag}_{source}", indices, adv.images)
    judged = run.judge_stored(stored, indices, targets)
    rows = []
    for k, i in enumerate(indices):
        row = {"index": i, "true": int(run.y[i]), "target": target, "steps": int(adv.steps[k]), "file": files[k],
               **perturbation_stats(run.x8[i], stored[k]), "float": floats[k],
               "png": {m: judged["png"][m][k] for m in run.models}, "jpeg": {m: judged["jpeg"][m][k] for m in run.models}}
        row["success_float"] = floats[k]["pred"] == target
        row["success_png"] = row["png"][source]["pred"] == target
        row["success_jpeg"] = row["jpeg"][source]["pred"] == target
        rows.append(row)
    summary = {
        "n": len(rows),
        "success_float": rate(r["success_float"] for r in rows),
        "success_png": rate(r["success_png"] for r in rows),
        "success_jpeg": rate(r["success_jpeg"] for r in rows),
        "mean_steps": mean(r["steps"] for r in rows if r["steps"] >= 0),
        "max_steps_used": max((r["steps"] for r in rows), default=None),
        "mean_linf": mean(r["linf"] for r in rows), "mean_l2": mean(r["l2"] for r in rows),
        "mean_l2_rel": mean(r["l2_rel"] for r in rows), "mean_ssim": mean(r["ssim"] for r in rows),
        "mean_p_target_float": mean(r["float"]["p_target"] for r in rows),
        "mean_p_true_float": mean(r["float"]["p_true"] for r in rows),
        "mean_p_target_png": mean(r["png"][source]["p_target"] for r in rows),
        # survival: of the images that fooled the model as floats, the share whose stored file still does
        "survive_png": rate(r["success_png"] for r in rows if r["success_float"]),
        "survive_jpeg": rate(r["success_jpeg"] for r in rows if r["success_float"]),
        "lost_png": rate(not r["success_png"] for r in rows if r["success_float"]),
        "lost_jpeg": rate(not r["success_jpeg"] for r in rows if r["success_float"]),
        # on the other models: reaching the target (targeted transfer), or just leaving the true class
        "transfer_target": {m: rate(r["png"][m]["pred"] == target for r in rows) for m in run.models},
        "transfer_flip": {m: rate(r["png"][m]["pred"] != r["true"] for r in rows if run.correct[m][r["index"]]) for m in run.models},
    }
    run.timed("fooling", started)
    return {"spec": asdict(spec), "per_image": rows, "summary": summary}


def sweep(run: Run, name: str, indices: list[int]) -> dict:
    """The smallest budget of the grid at which each attack fools ``name`` with a storable image, for each of
    ``indices`` that ``name`` classifies correctly, and the success rate against ε that follows.

    Budgets are tried in increasing order, each image only until it is fooled, so the success rate at ε is the
    share of images the attack fools when run at some budget ≤ ε of the grid (the usual robust-accuracy reading:
    a perturbation found within a small budget is also within a larger one). An image stops at the first step
    where its 8-bit rounding is misclassified; it is then stored as a PNG, read back and classified again, and
    counts only if the file still fools the model. The sizes recorded are those of the stored image, which can
    exceed the float budget (a change of half a level rounds to a full level).
    """
    model, sec = run.models[name], run.sec
    chosen = [i for i in indices if run.correct[name][i]]
    out = {"n": len(chosen), "attacks": {}}
    for attack_name in sec["attacks"]:
        started = clock()
        grid = sorted(float(e) for e in (sec["eps_grid_l2"] if attack_name == "pgd_l2" else sec["eps_grid"]))
        found: dict[int, dict] = {}
        rows = []
        for eps in grid:
            remaining = [i for i in chosen if i not in found]
            before = set(found)
            if remaining:
                spec = build_attack(attack_name, eps, sec, int(sec["steps"]), stop_on_success=True)
                with run.ctx.autocast():
                    adv = projected_gradient(model, run.x[remaining], run.y[remaining].to(run.x.device), spec,
                                             run.batch, run.generator(), stored_as=codecs.quantize)
                fooled = [k for k in range(len(remaining)) if adv.steps[k] >= 0]
                if fooled:
                    # store the images fooled at this budget, read them back and keep those that still fool
                    indices = [remaining[k] for k in fooled]
                    files, stored = run.store(f"sweep_{attack_name}_{name}_eps{eps:g}", indices, adv.images[fooled])
                    pred = probabilities(model, codecs.from_uint8(stored, run.x.device), run.batch).argmax(1)
                    for k, i in enumerate(indices):
                        if int(pred[k]) != int(run.y[i]):
                            found[i] = {"index": i, "eps": eps, "steps": int(adv.steps[fooled[k]]), "file": files[k],
                                        "linf": metrics.linf_levels(run.x8[i], stored[k]),
                                        "l2": round(metrics.l2_levels(run.x8[i], stored[k]), 2)}
            new = [found[i]["linf"] for i in found if i not in before]
            rows.append({"eps": eps, "attacked": len(remaining), "success": rate(i in found for i in chosen),
                         "max_linf_new": max(new, default=None)})  # largest stored L∞ among images first fooled here
        minimal = [found[i]["eps"] for i in chosen if i in found]
        out["attacks"][attack_name] = {
            "spec": asdict(build_attack(attack_name, grid[-1], sec, int(sec["steps"]), stop_on_success=True)),
            "norm": "l2" if attack_name == "pgd_l2" else "linf", "rows": rows,
            "per_image": [found.get(i, {"index": i, "eps": None}) for i in chosen],
            "median_min_eps": float(np.median(minimal)) if len(minimal) == len(chosen) and minimal else None,
            "max_linf": max((f["linf"] for f in found.values()), default=None),
        }
        run.timed(f"sweep {attack_name}", started)
    return out


def transfer_set(run: Run, source: str, attack_name: str) -> dict:
    """Full-strength untargeted attack by ``source`` on the images every model gets right (so every cell of the
    transfer matrix counts the same images), stored and judged by all models."""
    started = clock()
    sec = run.sec
    indices = [i for i in range(len(run.y)) if all(run.correct[m][i] for m in run.models)]
    eps = float(sec["transfer_eps_l2"] if attack_name == "pgd_l2" else sec["transfer_eps"])
    spec = build_attack(attack_name, eps, sec, int(sec["transfer_steps"]))
    with run.ctx.autocast():
        adv = projected_gradient(run.models[source], run.x[indices], run.y[indices].to(run.x.device), spec, run.batch,
                                 run.generator())
    files, stored = run.store(f"{attack_name}_{source}", indices, adv.images)
    judged = run.judge_stored(stored, indices)
    rows = []
    for k, i in enumerate(indices):
        rows.append({"index": i, "true": int(run.y[i]), "file": files[k], **perturbation_stats(run.x8[i], stored[k]),
                     "png": {m: judged["png"][m][k] for m in run.models}, "jpeg": {m: judged["jpeg"][m][k] for m in run.models}})
    matrix = {m: {"n": len(rows), "png": rate(r["png"][m]["pred"] != r["true"] for r in rows),
                  "jpeg": rate(r["jpeg"][m]["pred"] != r["true"] for r in rows)} for m in run.models}
    run.timed(f"transfer {attack_name}", started)
    return {"spec": asdict(spec), "per_image": rows, "success": matrix,
            "mean_linf": mean(r["linf"] for r in rows), "mean_l2": mean(r["l2"] for r in rows),
            "mean_ssim": mean(r["ssim"] for r in rows)}


def shown_examples(run: Run, target: int) -> list[dict]:
    """The lab-style figure's rows: for each model and shown image, the lab's method (and its κ variant)."""
    sec, rows = run.sec, []
    shown = [i for i in sec["fooling_shown"] if int(run.y[i]) != target]
    if not shown:
        return rows
    for source in run.models:
        runs = [("lab", Fooling(float(sec["fooling_lr"]), int(sec["fooling_max_iter"]), float(sec["fooling_kappa"])))]
        if sec["kappa_compare"] > 0:
            runs.append(("kappa", Fooling(float(sec["fooling_lr"]), int(sec["fooling_max_iter"]), float(sec["kappa_compare"]))))
        for label, spec in runs:
            result = run.fooling_cache.get((source, label)) or fooling_set(run, source, shown, target, spec, f"shown_{label}")
            for r in result["per_image"]:
                if r["index"] in shown:
                    rows.append({"model": source, "variant": label, "kappa": spec.kappa, **r})
    return rows


def rerun_alone(run: Run, target: int) -> dict:
    """The lab's method on the shown images alone instead of inside the batch of ``fooling_images``: the
    arithmetic differs only in float rounding (batch-dependent kernels), so any difference in the result
    measures how sensitive the method's path is to rounding."""
    sec, out = run.sec, {}
    shown = [i for i in sec["fooling_shown"] if int(run.y[i]) != target]
    spec = Fooling(float(sec["fooling_lr"]), int(sec["fooling_max_iter"]), float(sec["fooling_kappa"]))
    for source in run.models:
        batched = {r["index"]: r for r in run.fooling_cache[(source, "lab")]["per_image"]}
        if not shown or len(batched) == len(shown):
            continue
        alone = fooling_set(run, source, shown, target, spec, "shown_alone")
        out[source] = []
        for r in alone["per_image"]:
            b = batched[r["index"]]
            one = codecs.load_png(run.ctx.results_dir / "images" / r["file"].rsplit("/", 1)[-1])
            other = codecs.load_png(run.ctx.results_dir / "images" / b["file"].rsplit("/", 1)[-1])
            out[source].append({"index": r["index"], "batch": len(batched), "steps": [b["steps"], r["steps"]],
                                "p_target_png": [b["png"][source]["p_target"], r["png"][source]["p_target"]],
                                "success_png": [b["success_png"], r["success_png"]],
                                "linf_between": metrics.linf_levels(other, one), "l2_between": round(metrics.l2_levels(other, one), 2)})
    return out


def run(ctx: Context) -> dict:
    state = Run(ctx)
    sec, images = ctx.section, ctx.images
    target = class_index(int(sec["fooling_target"]))
    fooling_indices = [i for i in (sec["fooling_images"] or range(len(images))) if int(images.labels[i]) != target]
    sweep_indices = list(sec["sweep_images"] or range(len(images)))
    names = list(state.models)
    results: dict = {
        "images": [{"id": i, "label": int(l), "name": n, "title": image_title(k, i, n)}
                   for k, (i, n, l) in enumerate(zip(images.ids, images.names, images.labels))],
        "target": target, "target_name": imagenet_categories()[target], "jpeg_quality": state.quality,
        "clean": {m: {"top1": int(state.correct[m].sum()), "n": len(images), "correct": state.correct[m].tolist()} for m in names},
        "fooling": {}, "sweep": {}, "transfer": {}, "figures": {},
    }
    fooling_spec = Fooling(float(sec["fooling_lr"]), int(sec["fooling_max_iter"]), float(sec["fooling_kappa"]))
    for m in names:
        result = fooling_set(state, m, fooling_indices, target, fooling_spec, "fooling")
        results["fooling"][m] = result
        state.fooling_cache[(m, "lab")] = result
        s = result["summary"]
        ctx.log(f"{m}: fooling {s['success_png']} (png) {s['success_jpeg']} (jpeg) of {s['n']}, mean steps {s['mean_steps']}")
    results["shown"] = shown_examples(state, target)
    results["alone"] = rerun_alone(state, target)
    for m in names:
        results["sweep"][m] = sweep(state, m, sweep_indices)
        ctx.log(f"{m}: sweep " + ", ".join(f"{a} {[r['success'] for r in v['rows']]}" for a, v in results["sweep"][m]["attacks"].items()))
    for attack_name in sec["transfer_attacks"]:
        results["transfer"][attack_name] = {m: transfer_set(state, m, attack_name) for m in names}
        ctx.log(f"transfer {attack_name}: " + "; ".join(f"{m}→" + ", ".join(f"{t} {v['png']}" for t, v in results['transfer'][attack_name][m]['success'].items()) for m in names))

    results["figures"]["examples"] = ctx.save_figure(plots.adversarial_rows(examples_for_plot(state, results)), "fooling_examples.png")
    results["figures"]["sweep"] = ctx.save_figure(plots.success_curves(curves_for_plot(results)), "success_vs_eps.png")
    matrices = transfer_matrices(results, names)
    results["transfer_matrix"] = matrices
    results["figures"]["transfer"] = ctx.save_figure(plots.transfer_matrices(matrices, names), "transfer.png")
    results["timings_s"] = state.timings
    results["claims"] = section_claims(results, names)
    return results


def transfer_flags(results: dict, attack: str, source: str, judge: str) -> list[bool]:
    """Per image of the transfer set: does the stored image made by ``attack`` on ``source`` fool ``judge``."""
    return [r["png"][judge]["pred"] != r["true"] for r in results["transfer"][attack][source]["per_image"]]


def section_claims(results: dict, names: list[str]) -> dict:
    """The statements of Q6 and Q7, decided on the stored per-image outcomes (see :mod:`netviz.claims`)."""
    out: dict = {}
    first, others = names[0], names[1:]
    pgd_sweep = results["sweep"][first]["attacks"].get("pgd_linf")
    if pgd_sweep and pgd_sweep["rows"]:
        eps = pgd_sweep["rows"][0]["eps"]
        flags = [r["eps"] is not None and r["eps"] <= eps for r in pgd_sweep["per_image"]]
        key = f"pgd_smallest_eps/{first}"
        out[key] = claims.rate_vs(key, f"PGD-L∞ fools most of the images {first} classifies correctly within ε = {eps:g} level",
                                  flags, 0.5, a_label="images fooled")
    if others and results["transfer"]:
        other = others[0]
        rates = {a: v[first]["success"][other]["png"] for a, v in results["transfer"].items()}
        if "pgd_linf" in rates and "mi_fgsm" in rates:
            key = f"momentum_vs_pgd/{first}->{other}"
            out[key] = claims.paired_hits(key, f"transfer from {first} to {other}: MI-FGSM against PGD-L∞",
                                          transfer_flags(results, "mi_fgsm", first, other),
                                          transfer_flags(results, "pgd_linf", first, other), "MI-FGSM", "PGD-L∞")
        ordered = sorted(rates, key=lambda a: rates[a])
        if len(ordered) > 1 and rates[ordered[0]] is not None:
            best, worst = ordered[-1], ordered[0]
            key = f"best_vs_worst_transfer/{first}->{other}"
            out[key] = claims.paired_hits(key, f"transfer from {first} to {other}: {best} against {worst}",
                                          transfer_flags(results, best, first, other),
                                          transfer_flags(results, worst, first, other), best, worst)
        off = [(a, m, t) for a in results["transfer"] for m in names for t in names
               if m != t and results["transfer"][a][m]["success"][t]["png"] is not None]
        if off:
            a, m, t = max(off, key=lambda c: results["transfer"][c[0]][c[1]]["success"][c[2]]["png"])
            key = "highest_transfer"
            out[key] = claims.rate_vs(key, f"the highest transfer rate ({a}, made on {m}, judged by {t}) against one half",
                                      transfer_flags(results, a, m, t), 0.5, a_label=f"{a} {m}->{t}")
    return out


def examples_for_plot(state: Run, results: dict) -> list[dict]:
    """Rows of (original, stored adversarial, captions) for the lab-style figure, read back from the PNGs."""
    names = imagenet_categories()
    rows = []
    for r in results["shown"]:
        i, source = r["index"], r["model"]
        clean = state.clean[source][i]
        stored = codecs.load_png(state.ctx.results_dir / "images" / r["file"].rsplit("/", 1)[-1])
        judged = r["png"][source]
        what = "lab method" if r["variant"] == "lab" else f"κ = {r['kappa']:g}"
        rows.append({
            "original": state.x8[i], "adversarial": stored,
            "label": f"{source}, image {i}, {what}",
            "captions": (f"{names[int(clean.argmax())]} {float(clean.max()):.2f}",
                         f"{judged['pred_name']} {judged['p_pred']:.2f}",
                         f"L∞ {r['linf']:g}, L2 {r['l2']:.0f} levels"),
        })
    return rows


def curves_for_plot(results: dict) -> dict:
    return {m: {a: {"norm": v["norm"], "eps": [row["eps"] for row in v["rows"]], "success": [row["success"] for row in v["rows"]]}
                for a, v in results["sweep"][m]["attacks"].items()} for m in results["sweep"]}


def transfer_matrices(results: dict, names: list[str]) -> dict:
    """{attack: {"png": [[source x target]], "jpeg": ...}} success rates; the lab's method (targeted: reaching
    the target class) first."""
    out = {"lab method (target reached)": {"png": [[results["fooling"][s]["summary"]["transfer_target"][t] for t in names] for s in names]}}
    for attack_name, by_source in results["transfer"].items():
        out[attack_name] = {kind: [[by_source[s]["success"][t][kind] for t in names] for s in names] for kind in ("png", "jpeg")}
    return out
