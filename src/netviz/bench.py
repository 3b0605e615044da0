"""``netviz bench``: how fast each experiment's tensor work runs: batched, image by image, and in a library.

For every experiment with a workload below, on its default work (the config's models, images and
hyperparameters; iterative methods capped at ``bench.max_steps`` steps, every step costing the same), three
ways to do the same arithmetic are timed:

- ``netviz``: the experiment's own batched call (chunk size from ``batch_size``, automatic by default);
- ``loop``: the per-image loop a lab notebook would write for the same work: plain PyTorch, one image at a time,
  default (NCHW) memory layout, fp32;
- a library doing the same work where one exists: Captum for saliency, torchattacks for attacks.

Each variant is warmed up, then timed ``bench.repeats`` times (the median counts; a variant is timed fewer times
once it has used ``bench.time_limit_s``, at least once). FLOPs are counted once, on netviz's warm-up run, with
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, forward and backward;
elementwise work is not counted); every variant does the same arithmetic, so GFLOP/s = that count / its time.
``max_abs_diff`` compares each variant's output with netviz's, where both draw the same random numbers.
Ratios, not absolute times, are the headline: the machine may be shared (the load average is recorded).

Also measured: peak memory of VGG16 gradient passes (random weights) under memory budgets, each in a fresh
process (:func:`memory_child`), and how far bf16 autocast moves results from fp32 (:func:`precision_checks`).

Writes ``results/bench/bench.json`` (everything), ``bench.csv`` and ``bench.md`` (the table) and
``figures/bench/bench_speedup.png``. Not part of ``netviz run``: the report adds an appendix when
``results/bench/bench.json`` exists. The file is named so that grading, which compares sections' ``metrics.json``,
never looks at timings.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from netviz import store
from netviz.config import section_models
from netviz.errors import NetvizError
from netviz.sections import SECTIONS
from netviz.methods.chunking import GB, available_bytes, probe_footprint, resolve_batch_size
from netviz.methods.common import fast_layout

RESULTS = "bench.json"
FIGURE = "bench_speedup.png"
TARGET_SPEEDUP = 3.0  # the project's goal: batched >= 3x the per-image loop on the same work


# --- what is timed ------------------------------------------------------------------------------------------

@dataclass
class Variant:
    """One way to do a workload. ``run()`` does all of it once and returns its output (for the agreement
    check); ``warmup()`` exercises the same kernels more cheaply (default: ``run``)."""

    name: str
    kind: str  # "batched", "loop" or "library"
    run: Callable[[], torch.Tensor]
    warmup: Callable[[], object] | None = None
    batch_size: int | None = None  # images per pass (None: all of them at once)


@dataclass
class Workload:
    """Some work of one experiment on one model, done by several variants; the first is netviz's batched one.

    units: how much work, in ``unit`` (``image`` or ``image-step``). same_random: whether the variants draw
    the same random numbers, so that their outputs should agree up to float rounding."""

    experiment: str
    task: str
    model: str
    units: int
    unit: str
    variants: list[Variant]
    same_random: bool = True
    note: str = ""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], torch.Tensor], device: torch.device) -> tuple[float, torch.Tensor]:
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - start, out


class _GlobalOnly:
    """Stands in for FlopCounterMode's module tracker: every FLOP counts under "Global" only. The tracker's
    backward hooks make ``torch.autograd.grad`` fail when a leaf tensor enters a module directly ("A leaf node was
    passed to _will_engine_execute_node"), which Captum and channels-last inputs do; we need only the total."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> bool:
        return False


def count_flops(fn: Callable[[], torch.Tensor]) -> tuple[int, torch.Tensor]:
    """(FLOPs of ``fn()`` as counted by torch's FlopCounterMode, its output)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        out = fn()
    return counter.get_total_flops(), out


def _abs_diff(a, b) -> tuple[float | None, float | None]:
    """(max, mean) absolute difference of two outputs of the same shape, else (None, None)."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return None, None
    diff = (a.detach().float().cpu() - b.detach().float().cpu()).abs()
    return float(diff.max()), float(diff.mean())


def plural(unit: str) -> str:
    return unit + ("es" if unit.endswith("s") else "s")


def measure(workload: Workload, device: torch.device, repeats: int, time_limit_s: float,
            log: Callable[[str], None] = print) -> list[dict]:
    """Time every variant of ``workload`` (see the module docstring); one row per variant."""
    base = workload.variants[0]
    flops, reference = count_flops(base.run)  # netviz's warm-up, counted
    rows = []
    for variant in workload.variants:
        if variant is not base:
            (variant.warmup or variant.run)()
        times, output = [], None
        for _ in range(max(1, repeats)):
            seconds, output = _timed(variant.run, device)
            times.append(seconds)
            if sum(times) >= time_limit_s:
                break
        median = statistics.median(times)
        compare = workload.same_random and variant is not base
        max_diff, mean_diff = _abs_diff(output, reference) if compare else (None, None)
        rows.append({
            "experiment": workload.experiment, "task": workload.task, "model": workload.model,
            "variant": variant.name, "kind": variant.kind, "batch_size": variant.batch_size,
            "units": workload.units, "unit": workload.unit, "unit_plural": plural(workload.unit), "repeats": len(times),
            "median_s": round(median, 4), "min_s": round(min(times), 4), "times_s": [round(t, 4) for t in times],
            "units_per_s": round(workload.units / median, 3), "gflop": round(flops / 1e9, 3),
            "gflop_per_s": round(flops / 1e9 / median, 2),
            "max_abs_diff": max_diff, "mean_abs_diff": mean_diff,
            "note": workload.note,
        })
        log(f"  {workload.experiment} / {workload.task} / {workload.model} / {variant.name}: "
            f"{median:.2f} s ({rows[-1]['units_per_s']:.1f} {plural(workload.unit)}/s, {rows[-1]['gflop_per_s']:.1f} GFLOP/s"
            f"{', ' + str(len(times)) + ' runs' if len(times) != repeats else ''})")
    for row in rows:  # how many times longer than netviz's batched run
        row["speedup"] = round(row["median_s"] / rows[0]["median_s"], 2) if rows[0]["median_s"] > 0 else None
    return rows


# --- the per-image loops a notebook would write (plain PyTorch, NCHW, one image at a time) ----------------------

def notebook_saliency(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|d score / d pixel|, max over channels, one image at a time: N×H×W."""
    maps = []
    for image, label in zip(images, labels):
        x = image[None].clone().requires_grad_(True)
        model(x)[0, label].backward()
        maps.append(x.grad.abs().amax(dim=1)[0])
    return torch.stack(maps)


def captum_saliency(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Captum's Saliency on the whole batch at once (abs), max over channels: N×H×W."""
    from captum.attr import Saliency

    return Saliency(model).attribute(images.clone().requires_grad_(True), target=labels, abs=True).amax(dim=1)


# --- workloads per experiment -----------------------------------------------------------------------------------

@dataclass
class Bench:
    """What the workload builders get: config, device, images and models (loaded once)."""

    config: dict
    device: torch.device
    images: torch.Tensor
    labels: torch.Tensor
    load: Callable[..., torch.nn.Module]  # load(name, fold=True)
    models_cache: dict = field(default_factory=dict)
    plain_cache: dict = field(default_factory=dict)

    @property
    def settings(self) -> dict:
        return self.config["bench"]

    def model(self, name: str):
        if name not in self.models_cache:
            self.models_cache[name] = self.load(name)
        return self.models_cache[name]

    def plain(self, name: str):
        """The model as a notebook or a library user has it: the same weights, batch norms not folded (netviz folds
        them, see :func:`netviz.models.fold_batchnorm`; that speed-up is part of what is measured). Without batch
        norms to fold it is the model itself."""
        if name not in self.plain_cache:
            folded = self.model(name)
            self.plain_cache[name] = self.load(name, fold=False) if folded.folded_batchnorms else folded
        return self.plain_cache[name]

    def models(self, section: str) -> dict:
        return {name: self.model(name) for name in section_models(self.config, section)}

    def budget(self) -> int:
        run = self.config["run"]
        return int(GB * (run["gpu_memory_budget_gb"] if self.device.type == "cuda" else run["memory_budget_gb"]))

    def batch_size(self, section: str, model, n: int | None = None) -> int:
        """netviz's chunk size for ``section`` on ``model``, as the experiment would pick it."""
        configured = int(self.config[section].get("batch_size") or self.config["run"]["batch_size"])
        return resolve_batch_size(configured, model, tuple(self.images.shape[1:]), self.budget(),
                                  n=n or len(self.images), device=self.device)

    def steps(self, steps: int) -> int:
        """An iterative method's step count, capped at ``bench.max_steps`` (0 = no cap)."""
        cap = int(self.settings["max_steps"])
        return min(steps, cap) if cap > 0 else steps


def saliency_workloads(b: Bench) -> Iterator[Workload]:
    from netviz.methods.saliency import vanilla_gradient

    x, y = b.images, b.labels
    for name, model in b.models("saliency").items():
        plain = b.plain(name)
        size = b.batch_size("saliency", model)
        yield Workload("saliency", "vanilla gradient", name, len(x), "image", [
            Variant("netviz", "batched", lambda m=model, s=size: vanilla_gradient(m, x, y, batch_size=s), batch_size=size),
            Variant("loop", "loop", lambda m=plain: notebook_saliency(m, x, y),
                    warmup=lambda m=plain: notebook_saliency(m, x[:1], y[:1]), batch_size=1),
            Variant("captum", "library", lambda m=plain: captum_saliency(m, x, y),
                    warmup=lambda m=plain: captum_saliency(m, x[:2], y[:2]), batch_size=len(x)),
        ])


def notebook_class_visualization(model, target: int, learning_rate: float, l2_reg: float, steps: int, seed: int,
                                 start: torch.Tensor | None = None, image_size: int = 224, blur_every: int = 10,
                                 blur_sigma: float = 0.5, max_jitter: int = 16) -> torch.Tensor:
    """The lab's class visualization for ONE image, as a notebook writes it (pixel space out, 1×3×H×W): start from
    seeded noise (normalized space) or ``start``; per step jitter, ascend score − λ‖z‖², unjitter, clamp, blur.
    Draws its noise and jitter from one generator seeded with ``seed``, in the order netviz does."""
    from torchvision.transforms.v2 import functional as TF

    generator = torch.Generator().manual_seed(seed)
    device = model.mean.device
    if start is None:
        z = torch.randn((3, image_size, image_size), generator=generator)[None].to(device)
    else:
        z = model.normalize(start[None])
    low, high = model.normalize(torch.zeros(1, 3, 1, 1, device=device)), model.normalize(torch.ones(1, 3, 1, 1, device=device))
    size = 2 * int(4 * blur_sigma + 0.5) + 1
    for t in range(steps):
        dy, dx = torch.randint(0, max_jitter + 1, (2,), generator=generator).tolist() if max_jitter > 0 else (0, 0)
        moved = torch.roll(z, (dy, dx), dims=(2, 3)).detach().requires_grad_(True)
        objective = model.net(moved)[0, target] - l2_reg * moved.pow(2).sum()
        objective.backward()
        z = torch.roll(moved.detach() + learning_rate * moved.grad, (-dy, -dx), dims=(2, 3))
        z = torch.maximum(torch.minimum(z, high), low)
        if blur_every > 0 and blur_sigma > 0 and t % blur_every == 0:
            z = TF.gaussian_blur(z, [size, size], [blur_sigma, blur_sigma])
    return model.denormalize(z)


def classviz_workloads(b: Bench) -> Iterator[Workload]:
    """The experiment's two batches per model (its classes and sweep from noise; two photographs), capped steps."""
    from netviz.data import class_index
    from netviz.methods.classviz import class_visualization

    s, seed = b.config["classviz"], int(b.config["run"]["seed"])
    steps = b.steps(int(s["num_iterations"]))
    names = section_models(b.config, "classviz")
    sweep_models = s["sweep_models"] or names[:1]
    pixels = int(b.images.shape[-1])
    common = dict(num_iterations=steps, blur_every_steps=s["blur_every"], blur_sigma=s["blur_sigma"],
                  max_jitter=s["max_jitter"], image_size=pixels)
    loop_common = dict(steps=steps, seed=seed, blur_every=s["blur_every"], blur_sigma=s["blur_sigma"],
                       max_jitter=s["max_jitter"], image_size=pixels)
    for name in names:
        model, plain = b.model(name), b.plain(name)
        size = b.batch_size("classviz", model)
        classes = [class_index(s["target"])] + [class_index(c) for c in (s["gallery"] if name == names[0] else s["other_gallery"])]
        jobs = [(c, s["learning_rate"], s["l2_reg"]) for c in dict.fromkeys(classes)]
        if name in sweep_models:
            jobs += [(class_index(c), lr, l2) for c in s["sweep_classes"] for l2 in s["sweep_l2_regs"]
                     for lr in s["sweep_learning_rates"]]
        jobs = list(dict.fromkeys(jobs))
        targets = torch.tensor([j[0] for j in jobs], device=b.device)
        rates, lambdas = [j[1] for j in jobs], [j[2] for j in jobs]

        def batched(m=model, t=targets, r=rates, l2=lambdas, bs=size):
            return class_visualization(m, None, t, seeds=seed, learning_rate=r, l2_reg=l2, batch_size=bs, **common).images

        def loop(m=plain, js=jobs, k=None):
            return torch.cat([notebook_class_visualization(m, c, lr, l2, **{**loop_common, "steps": k or steps})
                              for c, lr, l2 in js])

        yield Workload("classviz", "from noise", name, len(jobs) * steps, "image-step", [
            Variant("netviz", "batched", batched, batch_size=size),
            Variant("loop", "loop", loop, warmup=lambda js=jobs: loop(js=js[:1], k=1), batch_size=1)])
        starts = [s["start_image"], s["own_class_image"]]
        photos = b.images[starts]
        photo_targets = torch.tensor([class_index(s["start_target"]), int(b.labels[s["own_class_image"]])], device=b.device)

        def batched_photos(m=model, bs=size):
            return class_visualization(m, photos, photo_targets, seeds=seed, learning_rate=s["learning_rate"],
                                       l2_reg=s["l2_reg"], batch_size=bs, **common).images

        def loop_photos(m=plain, k=None):
            return torch.cat([notebook_class_visualization(m, int(c), s["learning_rate"], s["l2_reg"], start=x,
                                                           **{**loop_common, "steps": k or steps})
                              for x, c in zip(photos, photo_targets)])

        yield Workload("classviz", "from photographs", name, len(starts) * steps, "image-step", [
            Variant("netviz", "batched", batched_photos, batch_size=size),
            Variant("loop", "loop", loop_photos, warmup=lambda: loop_photos(k=1), batch_size=1)])


def notebook_attributions(model, images: torch.Tensor, targets: torch.Tensor, settings: dict,
                          batch_size: int | None = None) -> list[torch.Tensor]:
    """The section's six maps with Captum's own classes, as a notebook calls them: image by image
    (``batch_size`` None) or, as the library comparison, on all images at once with Captum's internal batching
    set to ``batch_size`` rows. Returns the raw attributions of the methods, in the section's order."""
    from captum.attr import (GuidedBackprop, IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel,
                             Saliency)

    from netviz.methods.baselines import gaussian_blur

    saliency, ig, gbp = Saliency(model), IntegratedGradients(model), GuidedBackprop(model)
    smooth, cam = NoiseTunnel(saliency), LayerGradCam(model, model.layer())
    samples, steps = int(settings["smoothgrad_samples"]), int(settings["ig_steps"])
    parts = [(images, targets)] if batch_size else [(x[None], t[None]) for x, t in zip(images, targets)]
    rows = batch_size or steps
    out: list[list[torch.Tensor]] = [[] for _ in range(6)]
    for x, t in parts:
        x = x.clone().requires_grad_(True)
        results = [
            saliency.attribute(x, target=t, abs=False),
            smooth.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=settings["smoothgrad_sigma"],
                             nt_samples_batch_size=max(1, rows // len(x)), target=t, abs=False),
            ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=steps, method="gausslegendre",
                         internal_batch_size=max(rows, len(x))),
            ig.attribute(x, baselines=gaussian_blur(x.detach(), settings["ig_blur_sigma"]), target=t, n_steps=steps,
                         method="gausslegendre", internal_batch_size=max(rows, len(x))),
            gbp.attribute(x, target=t),
            LayerAttribution.interpolate(cam.attribute(x, target=t, relu_attributions=True).detach(),
                                         tuple(x.shape[-2:]), "bilinear").squeeze(1),
        ]
        for store_, result in zip(out, results):
            store_.append(result.detach())
    return [torch.cat(parts_) for parts_ in out]


def saliency_methods_workloads(b: Bench) -> Iterator[Workload]:
    """The section's maps (six methods) and its deletion/insertion curves, per model."""
    import warnings

    from netviz.methods.attribution import standard_methods
    from netviz.methods.baselines import substrate
    from netviz.methods.perturbation import perturbation_curve, saliency_ranks
    from netviz.methods.saliency import vanilla_gradient

    warnings.filterwarnings("ignore", message="(Setting backward hooks on ReLU|.*did not already require gradients)")
    s, seed = b.config["saliency_methods"], int(b.config["run"]["seed"])
    x = fast_layout(b.images)
    k = int(b.settings["map_images"]) or len(x)  # the maps cost many gradient passes per image (below): a subset is timed
    xm, images_m = x[:k], b.images[:k]
    methods = standard_methods(s["smoothgrad_sigma"], int(s["smoothgrad_samples"]), int(s["ig_steps"]),
                               s["ig_blur_sigma"], seed)
    passes = len(x) * (3 + int(s["smoothgrad_samples"]) + 2 * int(s["ig_steps"]))  # gradient passes of the six methods
    steps = int(s["perturbation_steps"])
    power = {"uniform": 1, "quadratic": 2}[s["perturbation_spacing"]]
    fractions = [(k / steps) ** power for k in range(1, steps)]
    for name, model in b.models("saliency_methods").items():
        plain = b.plain(name)
        size = b.batch_size("saliency_methods", model)
        with torch.inference_mode():
            logits = model(x)
        targets = logits.argmax(1) if s["target"] == "predicted" else b.labels  # outside: a normal tensor

        tm = targets[:k]

        def ours(m=model, t=tm, bs=size):
            return [method(m, xm, t, batch_size=bs) for _, method in methods.values()]

        yield Workload("saliency_methods", f"six maps ({k} images)", name, passes * k // len(x), "image-pass", [
            Variant("netviz", "batched", ours, batch_size=size),
            Variant("loop", "loop", lambda m=plain, t=tm: notebook_attributions(m, images_m, t, s),
                    warmup=lambda m=plain, t=tm: notebook_attributions(m, images_m[:1], t[:1], s), batch_size=1),
            Variant("captum", "library", lambda m=plain, t=tm, bs=size: notebook_attributions(m, images_m, t, s, bs),
                    warmup=lambda m=plain, t=tm, bs=size: notebook_attributions(m, images_m[:1], t[:1], s, bs),
                    batch_size=size),
        ], same_random=False, note="SmoothGrad noise differs between variants")
        ranks = saliency_ranks(vanilla_gradient(model, x, targets, batch_size=size), seed=seed)
        substrates = substrate(s["deletion_substrate"], s["substrate_blur_sigma"])(x)

        def curves(m=model, t=targets, r=ranks, bs=size):
            return torch.stack([perturbation_curve(m, x, substrates, r, t, fractions, mode, bs)
                                for mode in ("deletion", "insertion")])

        def loop_curves(m=plain, t=targets, r=ranks, k=None):
            rows = range(k or len(x))
            return torch.stack([torch.cat([perturbation_curve(m, b.images[i : i + 1], substrates[i : i + 1], r[i : i + 1],
                                                              t[i : i + 1], [f], mode) for f in fractions], dim=1)
                                for mode in ("deletion", "insertion") for i in rows]).view(2, len(rows), -1)

        yield Workload("saliency_methods", "deletion/insertion (one method)", name, 2 * len(x) * len(fractions),
                       "image-pass", [
            Variant("netviz", "batched", curves, batch_size=size),
            Variant("loop", "loop", loop_curves, warmup=lambda: loop_curves(k=1), batch_size=1),
        ])


def notebook_fooling(model, images: torch.Tensor, targets: torch.Tensor, lr: float, max_iter: int) -> torch.Tensor:
    """The lab's fooling image, one image at a time: normalised-space steps lr·g/‖g‖ on the target's score until
    the target is top-1 (or ``max_iter`` steps), each step mapped back to pixels and clipped to [0, 1]."""
    out = []
    for image, target in zip(images, targets):
        x = image[None].clone()
        for step in range(max_iter + 1):
            z = model.normalize(x).detach().requires_grad_(True)
            logits = model(model.denormalize(z))
            if logits.argmax(1).item() == int(target) or step == max_iter:
                break
            logits[0, target].backward()
            x = model.denormalize(z.detach() + lr * z.grad / (z.grad.norm() + 1e-10)).clamp(0, 1)
        out.append(x)
    return torch.cat(out)


def notebook_attack(model, images: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float, steps: int,
                    momentum: float = 0.0, random_start: bool = False, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """Untargeted L∞ FGSM / PGD / MI-FGSM (budgets in pixel units), one image at a time, as a notebook writes it:
    x ← clip(x₀ + clip(x + α·sign(g) − x₀, ±ε), 0, 1), g the cross-entropy gradient (with momentum: the running
    sum of g/mean|g|)."""
    out = []
    for image, label in zip(images, labels):
        x0 = image[None]
        x = x0.clone()
        if random_start:
            x = (x0 + (torch.rand(x0.shape, generator=generator, device=x0.device) * 2 - 1) * eps).clamp(0, 1)
        velocity = torch.zeros_like(x0)
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            F.cross_entropy(model(x), label[None]).backward()
            grad = x.grad
            if momentum > 0:
                velocity = momentum * velocity + grad / grad.abs().mean()
                grad = velocity
            x = (x0 + (x.detach() + alpha * grad.sign() - x0).clamp(-eps, eps)).clamp(0, 1)
        out.append(x.detach())
    return torch.cat(out)


def adversarial_workloads(b: Bench) -> Iterator[Workload]:
    """The lab's fooling images and the transfer attacks (FGSM, PGD, MI-FGSM at the transfer budget, run to the
    end) per model. The ε sweep is the transfer loop again with early stopping, so it is not timed separately."""
    import torchattacks

    from netviz.experiments.adversarial import ChannelsLast, build_attack
    from netviz.methods.adversarial import Fooling, fooling_image, levels, projected_gradient

    s, seed = b.config["adversarial"], int(b.config["run"]["seed"])
    target = int(s["fooling_target"])
    fooling_idx = [i for i in (s["fooling_images"] or range(len(b.images))) if i < len(b.images) and int(b.labels[i]) != target]
    spec = Fooling(float(s["fooling_lr"]), b.steps(int(s["fooling_max_iter"])), float(s["fooling_kappa"]))
    models = b.models("adversarial")
    with torch.inference_mode():
        correct = torch.stack([m(fast_layout(b.images)).argmax(1) == b.labels for m in models.values()]).all(0)
    transfer_idx = correct.nonzero().squeeze(1).tolist() or list(range(len(b.images)))
    xt, yt = b.images[transfer_idx], b.labels[transfer_idx]
    steps = b.steps(int(s["transfer_steps"]))
    for name, model in models.items():
        plain = b.plain(name)
        size = b.batch_size("adversarial", model)
        wrapped = ChannelsLast(model)  # as the experiment feeds its models
        xf = b.images[fooling_idx]
        tf = torch.full((len(fooling_idx),), target, dtype=torch.long, device=b.device)
        yield Workload("adversarial", f"fooling image (≤ {spec.max_iter} steps)", name, len(fooling_idx), "image", [
            Variant("netviz", "batched", lambda w=wrapped, bs=size: fooling_image(w, xf, tf, spec, batch_size=bs).images,
                    batch_size=size),
            Variant("loop", "loop", lambda m=plain: notebook_fooling(m, xf, tf, spec.lr, spec.max_iter),
                    warmup=lambda m=plain: notebook_fooling(m, xf[:1], tf[:1], spec.lr, 1), batch_size=1),
        ])
        for attack_name in s["transfer_attacks"]:
            if attack_name == "pgd_l2":
                continue  # the notebook loop and the comparison here are L∞ only
            attack = build_attack(attack_name, float(s["transfer_eps"]), s, steps)
            eps, alpha = levels(attack.eps), levels(attack.alpha)
            library = {"fgsm": lambda m: torchattacks.FGSM(m, eps=eps),
                       "pgd_linf": lambda m: torchattacks.PGD(m, eps=eps, alpha=alpha, steps=attack.steps,
                                                              random_start=attack.random_start),
                       "mi_fgsm": lambda m: torchattacks.MIFGSM(m, eps=eps, alpha=alpha, steps=attack.steps,
                                                                decay=attack.momentum)}[attack_name]

            def ours(w=wrapped, a=attack, bs=size):
                return projected_gradient(w, xt, yt, a, bs, torch.Generator(device=b.device).manual_seed(seed)).images

            def loop(m=plain, a=attack, k=None):
                return notebook_attack(m, xt[:k], yt[:k], levels(a.eps), levels(a.alpha), a.steps, a.momentum,
                                       a.random_start, torch.Generator(device=b.device).manual_seed(seed))

            task = {"fgsm": "FGSM", "pgd_linf": "PGD L∞", "mi_fgsm": "MI-FGSM"}[attack_name]
            yield Workload("adversarial", f"{task} (ε {attack.eps:g}, {attack.steps} steps)", name,
                           len(transfer_idx) * attack.steps, "image-step", [
                Variant("netviz", "batched", ours, batch_size=size),
                Variant("loop", "loop", loop, warmup=lambda a=attack: loop(a=a, k=1), batch_size=1),
                Variant("torchattacks", "library", lambda m=plain, make=library: make(m)(xt, yt),
                        warmup=lambda m=plain, make=library: make(m)(xt[:2], yt[:2]), batch_size=len(xt)),
            ], same_random=not attack.random_start, note="random starts differ" if attack.random_start else "")


# Section name -> workload builder. A section without one is listed as "no workload" in the results.
WORKLOADS: dict[str, Callable[[Bench], Iterator[Workload]]] = {
    "saliency": saliency_workloads,
    "saliency_methods": saliency_methods_workloads,
    "classviz": classviz_workloads,
    "adversarial": adversarial_workloads,
}


# --- memory: peak of gradient passes under a budget, each in a fresh process ------------------------------------

def _peak_rss() -> int:
    """This process's peak resident set in bytes. On Linux from /proc/self/status (VmHWM, the peak of this
    process's own memory map): ``getrusage``'s ru_maxrss also counts the parent's resident set at the fork that
    started it (the kernel carries the high-water mark across exec), which would hide the child's own peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def memory_child(model_name: str, images: int, image_size: int, budget_gb: float, batch_size: int,
                 device: str) -> dict:
    """Run in a fresh process (see :func:`memory_check`): a saliency pass of ``model_name`` (random weights) on
    ``images`` random images at ``batch_size`` (0 = automatic under ``budget_gb``); returns the chunk size, the
    estimate and the measured peak (CPU: the process's peak resident set; CUDA: torch's peak allocation)."""
    from netviz.methods.saliency import vanilla_gradient
    from netviz.models import random_model

    dev = torch.device(device)
    model = random_model(model_name, device=dev)
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(images, 3, image_size, image_size, generator=generator).to(dev)
    y = torch.randint(0, 1000, (images,), generator=generator).to(dev)
    footprint = probe_footprint(model, (3, image_size, image_size))
    size = resolve_batch_size(batch_size, model, (3, image_size, image_size), int(budget_gb * GB), n=images)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    start = time.perf_counter()
    vanilla_gradient(model, x, y, batch_size=size)
    _sync(dev)
    wall = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _peak_rss()
    budget = int(budget_gb * GB)
    return {"model": model_name, "images": images, "image_size": image_size, "device": dev.type,
            "budget_gb": budget_gb if batch_size <= 0 else None, "batch_size": size,
            "chunks": -(-images // size), "per_image_mb": round(footprint.per_image / 1e6, 1),
            "weights_mb": round(footprint.fixed / 1e6, 1),
            "available_gb": round(available_bytes(footprint, dev, budget) / GB, 3) if batch_size <= 0 else None,
            "estimate_gb": round((budget - available_bytes(footprint, dev, budget) + footprint.estimate(size)) / GB, 3)
            if batch_size <= 0 else None,
            "peak_gb": round(peak / GB, 3), "wall_s": round(wall, 1)}


def memory_check(settings: dict, device: torch.device, log: Callable[[str], None] = print) -> list[dict]:
    """Peak memory of ``bench.memory_model`` passes: automatic chunks under each of ``bench.memory_budgets_gb``,
    and one unchunked pass, each in a fresh process so that peaks do not mix."""
    name = settings["memory_model"]
    if not name:
        return []
    runs = [(budget, 0) for budget in settings["memory_budgets_gb"]] + [(0.0, int(settings["memory_images"]))]
    src = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    rows = []
    for budget, batch_size in runs:
        args = (name, int(settings["memory_images"]), int(settings["memory_image_size"]), budget, batch_size, device.type)
        code = f"import json; from netviz.bench import memory_child; print(json.dumps(memory_child(*{args!r})))"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            log(f"  memory: {name} budget {budget} GB failed ({tail})")
            rows.append({"model": name, "budget_gb": budget or None, "batch_size": batch_size or None,
                         "error": tail})
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        what = f"budget {budget:g} GB -> batch {row['batch_size']}" if batch_size <= 0 else f"unchunked (batch {batch_size})"
        log(f"  memory: {name}, {row['images']} images at {row['image_size']} px, {what}: peak {row['peak_gb']:.2f} GB"
            + (f" (estimate {row['estimate_gb']:.2f} GB)" if row.get("estimate_gb") else "") + f", {row['wall_s']} s")
    return rows


# --- bf16 autocast against fp32 ----------------------------------------------------------------------------------

def precision_checks(b: Bench, log: Callable[[str], None] = print) -> list[dict]:
    """How far bf16 autocast moves the results of the methods that offer it (``precision = "bf16"``) from fp32,
    on the first model of their section, with the time of each. One row per method."""
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
    from netviz.methods.classviz import class_visualization

    s, name = b.config["classviz"], section_models(b.config, "classviz")[0]
    model = b.model(name)
    classes = list(dict.fromkeys([class_index(s["target"]), *(class_index(c) for c in s["gallery"])]))[:4]
    targets = torch.tensor(classes, device=b.device)
    steps = min(int(b.settings["precision_steps"]), int(s["num_iterations"]))
    run = lambda: class_visualization(model, None, targets, seeds=int(b.config["run"]["seed"]),  # noqa: E731
                                      learning_rate=s["learning_rate"], l2_reg=s["l2_reg"], num_iterations=steps,
                                      blur_every_steps=s["blur_every"], blur_sigma=s["blur_sigma"],
                                      max_jitter=s["max_jitter"], image_size=int(b.images.shape[-1]), snapshots=[1])
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
    from netviz.experiments.adversarial import ChannelsLast, build_attack
    from netviz.methods.adversarial import projected_gradient

    s, name = b.config["adversarial"], section_models(b.config, "adversarial")[0]
    model = ChannelsLast(b.model(name))
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


# --- outputs ------------------------------------------------------------------------------------------------------

COLUMNS = ["experiment", "task", "model", "variant", "kind", "batch_size", "units", "unit", "repeats", "median_s",
           "min_s", "units_per_s", "gflop", "gflop_per_s", "speedup", "max_abs_diff", "mean_abs_diff"]


def summarize(rows: list[dict]) -> list[dict]:
    """Per experiment: total median time of each kind over its workloads, and the ratios (loop / netviz,
    library / netviz over the workloads a library can do)."""
    out = []
    for experiment in dict.fromkeys(r["experiment"] for r in rows):
        mine = [r for r in rows if r["experiment"] == experiment]
        batched = {(r["task"], r["model"]): r["median_s"] for r in mine if r["kind"] == "batched"}
        loop = [r for r in mine if r["kind"] == "loop"]
        library = [r for r in mine if r["kind"] == "library"]
        entry = {"experiment": experiment, "workloads": len(batched), "netviz_s": round(sum(batched.values()), 3),
                 "loop_s": None, "vs_loop": None, "library_s": None, "vs_library": None, "libraries": []}
        if loop:
            ours = sum(batched[(r["task"], r["model"])] for r in loop)
            entry.update(loop_s=round(sum(r["median_s"] for r in loop), 3),
                         vs_loop=round(sum(r["median_s"] for r in loop) / ours, 2) if ours > 0 else None)
        if library:
            ours = sum(batched[(r["task"], r["model"])] for r in library)
            entry.update(library_s=round(sum(r["median_s"] for r in library), 3),
                         vs_library=round(sum(r["median_s"] for r in library) / ours, 2) if ours > 0 else None,
                         libraries=sorted({r["variant"] for r in library}))
        entry["meets_target"] = entry["vs_loop"] is not None and entry["vs_loop"] >= TARGET_SPEEDUP
        out.append(entry)
    return out


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:,.2f}"
    return str(value)


def to_markdown(results: dict) -> str:
    env = results["environment"]
    lines = [f"# netviz bench ({env['finished']})", "",
             f"{env['device']} ({env['device_name']}), {env['threads']} threads, load average "
             f"{env['load_before'][0]:.2f} before / {env['load_after'][0]:.2f} after; torch {env['torch']}.", "",
             "| experiment | netviz (s) | loop (s) | loop / netviz | library (s) | library / netviz |",
             "|---|---:|---:|---:|---:|---:|"]
    for s in results["summary"]:
        lines.append(f"| {s['experiment']} | {_cell(s['netviz_s'])} | {_cell(s['loop_s'])} | {_cell(s['vs_loop'])}× | "
                     f"{_cell(s['library_s'])} | {_cell(s['vs_library']) + '×' if s['vs_library'] else '–'} |")
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in results["rows"]]
    if results["memory"]:
        lines += ["", "| model | images | budget (GB) | batch | estimate (GB) | peak (GB) | time (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {m['model']} | {_cell(m.get('images'))} | {_cell(m.get('budget_gb'))} | {_cell(m.get('batch_size'))} | "
                  f"{_cell(m.get('estimate_gb'))} | {_cell(m.get('peak_gb'))} | {_cell(m.get('wall_s'))} |"
                  for m in results["memory"]]
    if results["precision"]:
        keys = list(dict.fromkeys(k for p in results["precision"] for k in p))
        lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_cell(p.get(k)) for k in keys) + " |" for p in results["precision"]]
    return "\n".join(lines) + "\n"


def environment(device: torch.device) -> dict:
    from netviz.provenance import device_info, git_state

    info = device_info(device)
    git = git_state()
    return {"device": device.type, "device_name": info["name"], "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.__version__, "python": platform.python_version(),
            "git_commit": git["commit"], "git_dirty": git["dirty"],
            "load_before": list(os.getloadavg()) if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]}


def run_bench(config: dict, root: Path = Path("."), log: Callable[[str], None] = print, images=None,
              load: Callable[[str], torch.nn.Module] | None = None) -> dict:
    """Run the benchmark for ``bench.sections`` (all with a workload when empty) and write its outputs under
    ``root`` (see the module docstring). Returns what it wrote to ``results/bench/bench.json``.

    images (an :class:`~netviz.data.ImageSet`) and load (model name -> classifier on the run's device) replace
    the run's images and pretrained models, e.g. with tiny ones in tests."""
    from netviz import plots
    from netviz.data import load_images
    from netviz.models import load_model, resolve_device

    settings = config["bench"]
    root = Path(root)
    wanted = settings["sections"] or [s for s in SECTIONS if s in WORKLOADS]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise NetvizError(f"bench.sections: unknown section '{unknown[0]}'; sections: {', '.join(SECTIONS)}")
    missing = [s for s in wanted if s not in WORKLOADS]
    if missing:
        raise NetvizError(f"bench.sections: no benchmark workload for '{missing[0]}'; "
                          f"available: {', '.join(s for s in SECTIONS if s in WORKLOADS)}")
    device = resolve_device(config["run"]["device"])
    env = environment(device)
    started = time.perf_counter()
    images = images if images is not None else load_images(config["run"])
    n = int(settings["images"]) or len(images)
    load = load or (lambda name, fold=True: load_model(name, config["models"]["weights"], config["run"]["data_dir"], device,
                                                       fold=fold).model)
    b = Bench(config, device, images.images[:n].to(device), images.labels[:n].to(device), load)
    torch.manual_seed(int(config["run"]["seed"]))
    rows = []
    for section in wanted:
        log(f"bench: {section}")
        for workload in WORKLOADS[section](b):
            rows.extend(measure(workload, device, int(settings["repeats"]), float(settings["time_limit_s"]), log))
    log("bench: bf16 against fp32")
    precision = precision_checks(b, log) if settings["precision_check"] else []
    log("bench: memory")
    memory = memory_check(settings, device, log)
    env["load_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]
    env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    env["wall_s"] = round(time.perf_counter() - started, 1)
    results = {"environment": env, "settings": dict(settings), "target_speedup": TARGET_SPEEDUP,
               "images": n, "rows": rows, "summary": summarize(rows), "memory": memory, "precision": precision,
               "sections_without_workload": [s for s in SECTIONS if s not in WORKLOADS],
               "figure": f"figures/bench/{FIGURE}"}
    results_final, figures_final = root / "results" / "bench", root / "figures" / "bench"
    with store.exclusive(root / "results", "netviz bench"):
        results_stage, figures_stage = store.staging_dir(results_final), store.staging_dir(figures_final)
        try:
            import matplotlib.pyplot as plt

            fig = plots.bench_speedups(rows, TARGET_SPEEDUP)
            (figures_stage / FIGURE).write_bytes(plots.png_bytes(fig))
            plt.close(fig)
            (results_stage / "bench.csv").write_text(to_csv(rows))
            (results_stage / "bench.md").write_text(to_markdown(results))
            store.write_json(results_stage / RESULTS, results)
            store.swap_in(figures_stage, figures_final)
            store.swap_in(results_stage, results_final)
        except BaseException:
            import shutil

            shutil.rmtree(results_stage, ignore_errors=True)
            shutil.rmtree(figures_stage, ignore_errors=True)
            raise
    for s in results["summary"]:
        log(f"bench: {s['experiment']}: netviz {s['netviz_s']:.2f} s"
            + (f", loop {s['vs_loop']:.2f}x slower" if s["vs_loop"] else "")
            + (f", {'/'.join(s['libraries'])} {s['vs_library']:.2f}x" if s["vs_library"] else ""))
    log(f"bench: results/bench/{RESULTS}, bench.csv, bench.md, figures/bench/{FIGURE} ({env['wall_s']} s)")
    return results
