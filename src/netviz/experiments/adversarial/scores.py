"""The section's numbers: the lab's fooling sets, the transfer sets and the section's claims, from the
executed, stored and judged parts (:class:`~netviz.experiments.adversarial.state.Part`)."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch

from netviz import claims, codecs, metrics
from netviz.data import imagenet_categories
from netviz.experiments.adversarial.plan import fooling_part, shown_indices
from netviz.experiments.adversarial.state import Part, Run, verdicts
from netviz.experiments.saliency import image_title
from netviz.methods.adversarial import Fooling
from netviz.tables import mean, rate


def overview(run: Run) -> dict:
    """The images (as the text names them), the fooling target and each model's clean accuracy."""
    images, s = run.ctx.images, run.settings
    return {
        "images": [{"id": i, "label": int(l), "name": n, "title": image_title(k, i, n)}
                   for k, (i, n, l) in enumerate(zip(images.ids, images.names, images.labels))],
        "target": s.target, "target_name": imagenet_categories()[s.target], "jpeg_quality": s.jpeg_quality,
        "clean": {m: {"top1": int(run.correct[m].sum()), "n": len(images), "correct": run.correct[m].tolist()} for m in run.names},
    }


def fooling_sets(run: Run, parts: dict) -> dict:
    """The lab's method on the fooling images (:func:`fooling_result`), per model."""
    out = {}
    for m in run.names:
        result = out[m] = fooling_result(run, parts[("fooling", m)], run.settings.lab_spec())
        s = result["summary"]
        run.ctx.log(f"{m}: fooling {s['success_png']} (png) {s['success_jpeg']} (jpeg) of {s['n']}, mean steps {s['mean_steps']}")
    return out


def transfer_sets(run: Run, parts: dict) -> dict:
    """The transfer sets (:func:`transfer_set`), per attack and model that made them."""
    out = {}
    for attack_name in run.settings.transfer_attacks:
        by_source = out[attack_name] = {m: transfer_set(run, parts[("transfer", attack_name, m)]) for m in run.names}
        run.ctx.log(f"transfer {attack_name}: " + "; ".join(f"{m}→" + ", ".join(f"{t} {v['png']}" for t, v in by_source[m]['success'].items()) for m in run.names))
    return out


def perturbation_stats(original: np.ndarray, adversarial: np.ndarray) -> dict:
    """Size of one stored perturbation (8-bit images H×W×3): L∞, L2 in levels, relative L2, SSIM."""
    return {"linf": round(metrics.linf_levels(original, adversarial), 2), "l2": round(metrics.l2_levels(original, adversarial), 2),
            "l2_rel": round(metrics.relative_l2(original, adversarial), 5), "ssim": round(metrics.ssim(original, adversarial), 4)}


def fooling_set(run: Run, source: str, indices: list[int], target: int, spec: Fooling, tag: str) -> dict:
    """The lab's method on ``indices`` with ``source``: stored, re-read and judged by every model."""
    part = fooling_part(run, source, indices, target, spec, tag)
    run.execute([part])
    return fooling_result(run, part, spec)


def fooling_result(run: Run, part: Part, spec: Fooling) -> dict:
    """Per image and summary of one executed :func:`fooling_part`."""
    source, target, stored = part.source, part.target, part.stored
    steps = part.joined("steps") if part.results else np.zeros(0, np.int64)
    probs = torch.from_numpy(part.joined("probs")) if part.results else torch.zeros(0, 1000)
    targets = torch.full((len(part.indices),), target, dtype=torch.long)
    floats = verdicts(probs, run.y[part.indices], targets)
    rows = []
    for k, i in enumerate(part.indices):
        row = {"index": i, "true": int(run.y[i]), "target": target, "steps": int(steps[k]), "file": part.files[k],
               **perturbation_stats(run.x8[i], stored[k]), "float": floats[k],
               "png": {m: part.judged["png"][m][k] for m in run.names}, "jpeg": {m: part.judged["jpeg"][m][k] for m in run.names}}
        row["success_float"] = floats[k]["pred"] == target
        row["success_png"] = row["png"][source]["pred"] == target
        row["success_jpeg"] = row["jpeg"][source]["pred"] == target
        rows.append(row)
    return {"spec": asdict(spec), "per_image": rows, "summary": fooling_summary(run, rows, source, target)}


def fooling_summary(run: Run, rows: list[dict], source: str, target: int) -> dict:
    """Rates (0..1, None without images), means (sizes in levels, probabilities) and the transfer to the other
    models of one fooling set's ``rows`` (:func:`fooling_result`) made by ``source``."""
    return {
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
        "transfer_target": {m: rate(r["png"][m]["pred"] == target for r in rows) for m in run.names},
        "transfer_flip": {m: rate(r["png"][m]["pred"] != r["true"] for r in rows if run.correct[m][r["index"]]) for m in run.names},
    }


def transfer_set(run: Run, part: Part) -> dict:
    """An executed :func:`transfer_part`: per image (stored, judged by all models) and the success matrix row."""
    rows = []
    for k, i in enumerate(part.indices):
        rows.append({"index": i, "true": int(run.y[i]), "file": part.files[k], **perturbation_stats(run.x8[i], part.stored[k]),
                     "png": {m: part.judged["png"][m][k] for m in run.names}, "jpeg": {m: part.judged["jpeg"][m][k] for m in run.names}})
    matrix = {m: {"n": len(rows), "png": rate(r["png"][m]["pred"] != r["true"] for r in rows),
                  "jpeg": rate(r["jpeg"][m]["pred"] != r["true"] for r in rows)} for m in run.names}
    s = run.settings
    spec = s.attack(part.tag, s.transfer_budget(part.tag), s.transfer_steps)
    return {"spec": asdict(spec), "per_image": rows, "success": matrix,
            "mean_linf": mean(r["linf"] for r in rows), "mean_l2": mean(r["l2"] for r in rows),
            "mean_ssim": mean(r["ssim"] for r in rows)}


def shown_examples(run: Run, fooling: dict, parts: dict) -> list[dict]:
    """The lab-style figure's rows: for each model and shown image, the lab's method (and its κ variant)."""
    s, rows = run.settings, []
    shown = shown_indices(run)
    for source in run.names if shown else []:
        runs = [("lab", s.lab_spec(), fooling[source])]
        if ("kappa", source) in parts:
            spec = s.lab_spec(s.kappa_compare)
            runs.append(("kappa", spec, fooling_result(run, parts[("kappa", source)], spec)))
        for label, spec, result in runs:
            for r in result["per_image"]:
                if r["index"] in shown:
                    rows.append({"model": source, "variant": label, "kappa": spec.kappa, **r})
    return rows


def rerun_alone(run: Run, fooling: dict, parts: dict) -> dict:
    """The lab's method on the shown images alone instead of inside the batch of ``fooling_images``: the
    arithmetic differs only in float rounding (batch-dependent kernels), so any difference in the result
    measures how sensitive the method's path is to rounding."""
    out = {}
    for source in run.names:
        if ("alone", source) not in parts:
            continue
        batched = {r["index"]: r for r in fooling[source]["per_image"]}
        alone = fooling_result(run, parts[("alone", source)], run.settings.lab_spec())
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


def transfer_matrices(results: dict, names: list[str]) -> dict:
    """{attack: {"png": [[source x target]], "jpeg": ...}} success rates; the lab's method (targeted: reaching
    the target class) first."""
    out = {"lab method (target reached)": {"png": [[results["fooling"][s]["summary"]["transfer_target"][t] for t in names] for s in names]}}
    for attack_name, by_source in results["transfer"].items():
        out[attack_name] = {kind: [[by_source[s]["success"][t][kind] for t in names] for s in names] for kind in ("png", "jpeg")}
    return out


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
