"""The bench's precision checks: how far bf16 autocast moves the results of the methods that offer it from fp32,
with the time of each."""

from __future__ import annotations

from typing import Callable

import torch

from netviz.bench.harness import Bench
from netviz.bench.timing import _timed
from netviz.config import section_models
from netviz.sections import SECTIONS


def precision_checks(b: Bench, log: Callable[[str], None] = print) -> list[dict]:
    """How far bf16 autocast moves the results of the methods that offer it (``precision = "bf16"``) from fp32,
    on the first model of their section, with the time of each. One row per method.

    These call the methods directly on a few images: they compare two precisions of one method, which no
    section's jobs do (the sections run one precision), so they are not copies of a section's work."""
    rows = []
    for section, check in PRECISION_CHECKS.items():
        if section in SECTIONS:
            row = check(b)
            rows.append(row)
            log(f"  precision: {row['method']} on {row['model']} ({row['work']}): max diff {row['max_abs_diff_levels']} "
                f"levels, mean {row['mean_abs_diff_levels']}, same outcome {row['agreement']}, "
                f"fp32 {row['fp32_s']} s, bf16 {row['bf16_s']} s")
    return rows


def _precision_row(section: str, method: str, model_name: str, work: str, model, fp32: torch.Tensor,
                   bf16: torch.Tensor, times: tuple[float, float], agree: torch.Tensor) -> dict:
    """Differences of two pixel-space results in 8-bit levels, and how many keep their meaning (``agree``, N bool)."""
    levels_diff = (bf16.float() - fp32.float()).abs() * 255
    return {"section": section, "method": method, "model": model_name, "work": work,
            "max_abs_diff_levels": round(float(levels_diff.max()), 3),
            "mean_abs_diff_levels": round(float(levels_diff.mean()), 4),
            "agreement": f"{int(agree.sum())}/{len(agree)}", "agree": int(agree.sum()), "n": len(agree),
            "fp32_s": round(times[0], 4), "bf16_s": round(times[1], 4)}


def _both_precisions(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    from netviz.methods.common import autocast

    t32, out32 = _timed(fn, device)
    with autocast(device, "bf16"):
        t16, out16 = _timed(fn, device)
    return out32, out16, (t32, t16)


def classviz_precision(b: Bench) -> dict:
    """Class visualization from noise of the featured class and the first gallery classes, on the first model,
    for ``bench.precision_steps`` steps, in fp32 and in bf16 autocast (same noise and jitter). The ascent is
    chaotic (tiny differences grow step by step), so beside the pixel differences after one step and at the end
    it records the objective reached; same outcome: the bf16 image's final objective within 10 % of fp32's."""
    from netviz.data import class_index
    from netviz.methods.classviz import VizSettings, class_visualization

    s, name = b.config["classviz"], section_models(b.config, "classviz")[0]
    model = b.model(name)
    classes = list(dict.fromkeys([class_index(s["target"]), *(class_index(c) for c in s["gallery"])]))[:4]
    targets = torch.tensor(classes, device=b.device)
    steps = min(int(b.settings["precision_steps"]), int(s["num_iterations"]))
    settings = VizSettings(learning_rate=s["learning_rate"], l2_reg=s["l2_reg"], num_iterations=steps,
                           blur_every=s["blur_every"], blur_sigma=s["blur_sigma"], max_jitter=s["max_jitter"],
                           image_size=int(b.images.shape[-1]), snapshots=[1])
    run = lambda: class_visualization(model, None, targets, settings, seeds=int(b.config["run"]["seed"]))  # noqa: E731
    fp32, bf16, times = _both_precisions(run, b.device)
    final32, final16 = fp32.objective[-1], bf16.objective[-1]
    row = _precision_row("classviz", "class visualization", name, f"{len(classes)} images × {steps} steps", model,
                         fp32.images, bf16.images, times, (final16 - final32).abs() <= 0.1 * final32.abs())
    row.update(first_step_mean_levels=round(float((bf16.snapshots[1] - fp32.snapshots[1]).abs().mean() * 255), 4),
               first_step_max_levels=round(float((bf16.snapshots[1] - fp32.snapshots[1]).abs().max() * 255), 3),
               objective_fp32=round(float(final32.mean()), 3), objective_bf16=round(float(final16.mean()), 3),
               objective_rel_diff=round(float(((final16 - final32).abs() / final32.abs().clamp_min(1e-6)).mean()), 4))
    return row


def adversarial_precision(b: Bench) -> dict:
    """PGD L∞ at the transfer budget (random start from the same generator) on the first model, all images, in
    fp32 and in bf16 autocast; agreement: the adversarial images get the same fp32 prediction."""
    from netviz.experiments.adversarial import build_attack
    from netviz.methods.adversarial import projected_gradient

    s, name = b.config["adversarial"], section_models(b.config, "adversarial")[0]
    model = b.model(name)
    attack = build_attack("pgd_linf", float(s["transfer_eps"]), s, int(s["transfer_steps"]))
    seed = int(b.config["run"]["seed"])
    run = lambda: projected_gradient(model, b.images, b.labels, attack,  # noqa: E731
                                     generator=torch.Generator(device=b.device).manual_seed(seed)).images
    fp32, bf16, times = _both_precisions(run, b.device)
    with torch.inference_mode():
        p32, p16 = model(fp32).argmax(1), model(bf16).argmax(1)
    row = _precision_row("adversarial", "PGD L∞", name, f"{len(b.images)} images × {attack.steps} steps, ε {attack.eps:g}",
                         model, fp32, bf16, times, p32 == p16)
    row.update(first_step_mean_levels=None, first_step_max_levels=None,
               success_fp32=round(float((p32 != b.labels).float().mean()), 3),
               success_bf16=round(float((p16 != b.labels).float().mean()), 3),
               linf_bf16_levels=round(float((bf16 - b.images).abs().max() * 255), 3))
    return row


# Section name -> a function measuring bf16 against fp32 on that section's method.
PRECISION_CHECKS: dict[str, Callable[[Bench], dict]] = {
    "classviz": classviz_precision,
    "adversarial": adversarial_precision,
}
