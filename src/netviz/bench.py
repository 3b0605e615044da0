"""``netviz bench``: how fast each experiment's work runs, against this machine's own arithmetic rate, against the
per-image loop and the libraries, and spread over Ray workers.

- ``netviz``: the section's OWN jobs (``module.jobs(ctx)``, the same jobs ``netviz run`` and the Ray executor
  run), each run with :func:`netviz.executors.compute` on the loaded models, on the section's default work (its
  config's models and images; iterative methods capped at ``bench.max_steps`` steps through their step keys,
  every step costing the same; saliency_methods on its first ``bench.map_images`` images). One row per model. A
  section without ``jobs(ctx)`` yet is skipped with a note.
- comparisons: the per-image loop a lab notebook would write (plain PyTorch, one image at a time, NCHW, fp32) and a
  library where one exists (Captum for saliency, torchattacks for attacks), on comparable work.

Each variant is warmed up (the first of a workload by a run whose FLOPs are counted with
``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, forward and backward; elementwise
work is not counted), then timed ``bench.repeats`` times (the median counts; fewer once ``bench.time_limit_s`` is
used, at least once). The physical anchor is this machine's fp32 matrix-multiply rate, measured in the same run
(:func:`matmul_rate`) right before each row's timing (on a shared machine it drifts with the load): every row
gives its GFLOP/s as a share of it. The comparisons' GFLOP/s are set against
netviz's jobs on the same experiment and model (``speedup``: how many times lower the comparison's rate is).
``max_abs_diff`` compares a comparison's output with netviz's job results where both compute the same maps.

Also measured: peak memory of VGG16 gradient passes under memory budgets, each in a fresh process
(:func:`memory_child`); how far bf16 autocast moves results from fp32 (:func:`precision_checks`); and with
``bench.scaleout`` the Ray part (:mod:`netviz.scaleout`: per-job overhead, throughput over 1 and 2 workers, the
projection to a large run).

Writes ``results/bench/bench.json`` (everything), ``bench.csv`` and ``bench.md`` (the tables) and
``figures/bench/bench_speedup.png``. Not part of ``netviz run``: the report adds an appendix when
``results/bench/bench.json`` exists. The file is named so that grading, which compares sections' ``metrics.json``,
never looks at timings.
"""

from __future__ import annotations

import copy
import csv
import importlib
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from netviz import store
from netviz.config import section_models
from netviz.data import ImageSet
from netviz.errors import NetvizError
from netviz.sections import SECTIONS
from netviz.methods.chunking import GB, available_bytes, probe_footprint, resolve_batch_size
from netviz.methods.common import fast_layout
from netviz.models import LoadedModel

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
    """Some work of one experiment on one model, done by comparison variants (loop, library).

    units: how much work, in ``unit`` (``image`` or ``image-step``). same_random: whether the variants draw
    the same random numbers as netviz's jobs (``reference``), so that their outputs should agree up to float
    rounding."""

    experiment: str
    task: str
    model: str
    units: int
    unit: str
    variants: list[Variant]
    same_random: bool = True
    note: str = ""
    reference: Callable[[], torch.Tensor | None] | None = None  # netviz's result of the same work, if comparable


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


def matmul_rate(device: torch.device, size: int = 2048, repeats: int = 5) -> dict:
    """This machine's fp32 matrix-multiply rate now, on ``device`` with torch's current threads: the median of
    ``repeats`` products of two ``size``×``size`` matrices after two warm-ups (2·size³ FLOPs each)."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.rand(size, size, generator=generator).to(device) for _ in range(2))
    for _ in range(2):
        torch.mm(a, b)
    times = [_timed(lambda: torch.mm(a, b), device)[0] for _ in range(repeats)]
    median = statistics.median(times)
    return {"size": size, "threads": torch.get_num_threads(), "device": device.type,
            "times_s": [_sig(t) for t in times], "gflop_per_s": _sig(2 * size**3 / 1e9 / median)}


def _repeat(run: Callable[[], object], device: torch.device, repeats: int, time_limit_s: float) -> tuple[list, object]:
    times, output = [], None
    for _ in range(max(1, repeats)):
        seconds, output = _timed(run, device)
        times.append(seconds)
        if sum(times) >= time_limit_s:
            break
    return times, output


def _sig(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (times and rates span many orders of magnitude)."""
    return float(f"{value:.{digits}g}")


def _row(experiment: str, task: str, model: str, variant: str, kind: str, batch_size, units: int, unit: str,
         times: list[float], flops: int, peak: float, note: str = "") -> dict:
    median = statistics.median(times)
    rate = flops / 1e9 / median if median > 0 else None
    return {"experiment": experiment, "task": task, "model": model, "variant": variant, "kind": kind,
            "batch_size": batch_size, "units": units, "unit": unit, "unit_plural": plural(unit), "repeats": len(times),
            "median_s": _sig(median), "min_s": _sig(min(times)), "times_s": [_sig(t) for t in times],
            "units_per_s": _sig(units / median) if median > 0 else None, "gflop": _sig(flops / 1e9),
            "gflop_per_s": _sig(rate) if rate is not None else None,
            "matmul_gflop_per_s": peak, "share_of_peak": _sig(rate / peak) if rate is not None and peak > 0 else None,
            "max_abs_diff": None, "mean_abs_diff": None, "note": note}


def anchor(device: torch.device) -> float:
    """The matmul rate (GFLOP/s) measured right before a timing: on a shared machine the rate drifts with the load,
    so every row is set against its own (median of 3 products, after the warm-ups)."""
    return matmul_rate(device, repeats=3)["gflop_per_s"]


def measure(workload: Workload, device: torch.device, repeats: int, time_limit_s: float,
            log: Callable[[str], None] = print) -> list[dict]:
    """Time every comparison variant of ``workload`` (see the module docstring); one row per variant."""
    first = workload.variants[0]
    flops, _ = count_flops(first.run)  # the first variant's warm-up, counted (every variant does that arithmetic)
    reference = workload.reference() if workload.reference and workload.same_random else None
    rows = []
    for variant in workload.variants:
        if variant is not first:
            (variant.warmup or variant.run)()
        peak = anchor(device)
        times, output = _repeat(variant.run, device, repeats, time_limit_s)
        row = _row(workload.experiment, workload.task, workload.model, variant.name, variant.kind, variant.batch_size,
                   workload.units, workload.unit, times, flops, peak, workload.note)
        if reference is not None:
            row["max_abs_diff"], row["mean_abs_diff"] = _abs_diff(output, reference)
        rows.append(row)
        _log_row(row, repeats, log)
    return rows


def _log_row(row: dict, repeats: int, log: Callable[[str], None]) -> None:
    log(f"  {row['experiment']} / {row['task']} / {row['model']} / {row['variant']}: {row['median_s']:.2f} s "
        f"({row['units_per_s']} {row['unit_plural']}/s, {row['gflop_per_s']} GFLOP/s, {row['share_of_peak']} of matmul"
        f"{', ' + str(row['repeats']) + ' runs' if row['repeats'] != repeats else ''})")


# --- netviz: the section's own jobs ------------------------------------------------------------------------------

# Config keys of iterative methods that ``bench.max_steps`` caps in the bench's run of a section's jobs.
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "classviz": ("num_iterations",),
    "adversarial": ("fooling_max_iter", "steps", "transfer_steps"),
}
# Sections whose jobs the bench runs on fewer images (bench setting naming how many; 0 = all).
IMAGE_KEYS: dict[str, str] = {"saliency_methods": "map_images"}


def _as_loaded(model) -> LoadedModel:
    """A loaded model as contexts and executors take it (a bare classifier, e.g. a test's tiny model, wrapped)."""
    return model if isinstance(model, LoadedModel) else LoadedModel(model, "", "", "bench")


def subset(images: ImageSet, count: int) -> ImageSet:
    """The first ``count`` images of ``images`` (0 or more than it holds: all of them)."""
    if count <= 0 or count >= len(images):
        return images
    keep = list(range(count))
    return ImageSet(images.pixels(keep), images.labels[:count], list(images.names[:count]), list(images.ids[:count]),
                    list(images.boxes[:count]), images.source, f"{images.sha256}[:{count}]")


def bench_context(config: dict, section: str, images: ImageSet, loaded: Callable[[str], LoadedModel],
                  device: torch.device, tmp: Path, log: Callable[[str], None] = print, timings: dict | None = None):
    """A :class:`~netviz.experiments.context.Context` for ``section`` whose output folders are under ``tmp`` and
    whose ``ctx.jobs`` (prerequisite stages of ``jobs(ctx)``) runs jobs in this process without any cache;
    ``timings`` (when given) gets each such job's seconds, including reading its images, by job."""
    from netviz.executors import LocalExecutor
    from netviz.experiments.context import Context
    from netviz.jobs import decode, encode

    def run_jobs(jobs):
        jobs, results = list(jobs), {}
        last = time.perf_counter()
        for position, result in LocalExecutor(loaded, device).run(jobs, images):
            results[position] = decode(encode(result))  # as a stored result reads back
            now = time.perf_counter()
            if timings is not None:
                timings[jobs[position]] = now - last
            last = now
        return [results[i] for i in range(len(jobs))]

    folders = [tmp / section / part for part in ("results", "figures")]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return Context(section, config, device, images, loaded, folders[0], folders[1], f"figures/{section}",
                   log=lambda msg: log(f"  {section}: {msg}"), run_jobs=run_jobs)


def bench_config(config: dict, section: str) -> dict:
    """The config the bench runs ``section``'s jobs with: iterative methods capped at ``bench.max_steps``."""
    out = copy.deepcopy(config)
    cap = int(config["bench"]["max_steps"])
    for key in STEP_KEYS.get(section, ()) if cap > 0 else ():
        if key in out[section]:
            out[section][key] = min(int(out[section][key]), cap)
    return out


def job_rows(b: "Bench", section: str, jobs: list, log: Callable[[str], None] = print) -> list[dict]:
    """netviz's rows of ``section``: its ``jobs`` grouped by model, each group run with
    :func:`netviz.executors.compute` (images already in memory), warmed up with its FLOPs counted, then timed."""
    from netviz.executors import compute, host_batch, to_batch

    images = b.section_images(section)
    rows = []
    for name in dict.fromkeys(job.model for job in jobs):
        mine = [job for job in jobs if job.model == name]
        model = b.model(name) if name else None
        batches = [to_batch(job, *host_batch(job, images), b.device) for job in mine]

        def run(mine=mine, batches=batches, model=model):
            return [compute(job, model, batch) for job, batch in zip(mine, batches)]

        flops, results = count_flops(run)
        b.job_results[(section, name)] = results
        peak = anchor(b.device)
        times, _ = _repeat(run, b.device, int(b.settings["repeats"]), float(b.settings["time_limit_s"]))
        items = sum(len(job.items) for job in mine)
        kinds = ", ".join(dict.fromkeys(job.kind for job in mine))
        sizes = {job.get("batch_size") for job in mine} - {None}
        row = _row(section, f"{len(mine)} {'job' if len(mine) == 1 else 'jobs'} ({kinds})", name or "–", "netviz",
                   "batched", max(sizes) if sizes else None, items or len(mine), "image" if items else "job", times,
                   flops, peak)
        row["jobs"] = len(mine)
        rows.append(row)
        _log_row(row, int(b.settings["repeats"]), log)
    return rows


def section_jobs(b: "Bench", section: str, log: Callable[[str], None] = print) -> list | None:
    """``section``'s jobs for the bench (``jobs(ctx)`` on :func:`bench_config`), or None when it has none yet."""
    module = importlib.import_module(f"netviz.experiments.{section}")
    if not hasattr(module, "jobs"):
        return None
    with tempfile.TemporaryDirectory(prefix="netviz-bench-") as tmp:
        ctx = bench_context(bench_config(b.config, section), section, b.section_images(section), b.loaded, b.device,
                            Path(tmp), log)
        return list(module.jobs(ctx))


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
    """What the workload builders get: config, device, images (``image_set`` on CPU; ``images``/``labels`` on the
    device), models (loaded once), the matmul rate (``peak``, GFLOP/s) and netviz's job results per (section,
    model), which comparisons check their outputs against."""

    config: dict
    device: torch.device
    image_set: ImageSet
    load: Callable[..., object]  # load(name, fold=True) -> LoadedModel (or a bare classifier)
    peak: float = 0.0
    models_cache: dict = field(default_factory=dict)
    plain_cache: dict = field(default_factory=dict)
    job_results: dict = field(default_factory=dict)

    def __post_init__(self):
        self.images = self.image_set.images.to(self.device)
        self.labels = self.image_set.labels.to(self.device)

    def section_images(self, section: str) -> ImageSet:
        """The images the bench runs ``section``'s jobs on (fewer where ``IMAGE_KEYS`` names a setting)."""
        key = IMAGE_KEYS.get(section)
        return subset(self.image_set, int(self.settings[key]) if key else 0)

    @property
    def settings(self) -> dict:
        return self.config["bench"]

    def loaded(self, name: str) -> LoadedModel:
        if name not in self.models_cache:
            self.models_cache[name] = _as_loaded(self.load(name))
        return self.models_cache[name]

    def model(self, name: str):
        return self.loaded(name).model

    def plain(self, name: str):
        """The model as a notebook or a library user has it: the same weights, batch norms not folded (netviz folds
        them, see :func:`netviz.models.fold_batchnorm`; that speed-up is part of what is measured). Without batch
        norms to fold it is the model itself."""
        if name not in self.plain_cache:
            folded = self.model(name)
            self.plain_cache[name] = _as_loaded(self.load(name, fold=False)).model if folded.folded_batchnorms else folded
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
    """The per-image loop and Captum on the section's gradient maps, checked against netviz's job results."""
    import numpy as np

    x, y = b.images, b.labels
    for name in section_models(b.config, "saliency"):
        plain = b.plain(name)

        def reference(name=name):
            results = b.job_results.get(("saliency", name))
            return torch.from_numpy(np.concatenate([r["maps"] for r in results])) if results else None

        yield Workload("saliency", "vanilla gradient", name, len(x), "image", [
            Variant("loop", "loop", lambda m=plain: notebook_saliency(m, x, y),
                    warmup=lambda m=plain: notebook_saliency(m, x[:1], y[:1]), batch_size=1),
            Variant("captum", "library", lambda m=plain: captum_saliency(m, x, y),
                    warmup=lambda m=plain: captum_saliency(m, x[:2], y[:2]), batch_size=len(x)),
        ], reference=reference)


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
    """The per-image loop on the section's work per model (its classes and sweep from noise; two photographs),
    capped steps."""
    from netviz.data import class_index

    s, seed = b.config["classviz"], int(b.config["run"]["seed"])
    steps = b.steps(int(s["num_iterations"]))
    names = section_models(b.config, "classviz")
    sweep_models = s["sweep_models"] or names[:1]
    pixels = int(b.images.shape[-1])
    loop_common = dict(steps=steps, seed=seed, blur_every=s["blur_every"], blur_sigma=s["blur_sigma"],
                       max_jitter=s["max_jitter"], image_size=pixels)
    for name in names:
        plain = b.plain(name)
        classes = [class_index(s["target"])] + [class_index(c) for c in (s["gallery"] if name == names[0] else s["other_gallery"])]
        jobs = [(c, s["learning_rate"], s["l2_reg"]) for c in dict.fromkeys(classes)]
        if name in sweep_models:
            jobs += [(class_index(c), lr, l2) for c in s["sweep_classes"] for l2 in s["sweep_l2_regs"]
                     for lr in s["sweep_learning_rates"]]
        jobs = list(dict.fromkeys(jobs))

        def loop(m=plain, js=jobs, k=None):
            return torch.cat([notebook_class_visualization(m, c, lr, l2, **{**loop_common, "steps": k or steps})
                              for c, lr, l2 in js])

        yield Workload("classviz", "from noise", name, len(jobs) * steps, "image-step", [
            Variant("loop", "loop", loop, warmup=lambda js=jobs: loop(js=js[:1], k=1), batch_size=1)])
        starts = [s["start_image"], s["own_class_image"]]
        photos = b.images[starts]
        photo_targets = torch.tensor([class_index(s["start_target"]), int(b.labels[s["own_class_image"]])], device=b.device)

        def loop_photos(m=plain, k=None):
            return torch.cat([notebook_class_visualization(m, int(c), s["learning_rate"], s["l2_reg"], start=x,
                                                           **{**loop_common, "steps": k or steps})
                              for x, c in zip(photos, photo_targets)])

        yield Workload("classviz", "from photographs", name, len(starts) * steps, "image-step", [
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
    """The per-image loop and Captum on the section's maps (six methods; a subset of the images) and the loop on its
    deletion/insertion curves, per model."""
    import warnings

    from netviz.methods.baselines import substrate
    from netviz.methods.perturbation import perturbation_curve, saliency_ranks
    from netviz.methods.saliency import vanilla_gradient

    warnings.filterwarnings("ignore", message="(Setting backward hooks on ReLU|.*did not already require gradients)")
    s, seed = b.config["saliency_methods"], int(b.config["run"]["seed"])
    x = fast_layout(b.images)
    k = int(b.settings["map_images"]) or len(x)  # the maps cost many gradient passes per image (below): a subset is timed
    images_m = b.images[:k]
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
        yield Workload("saliency_methods", f"six maps ({k} images)", name, passes * k // len(x), "image-pass", [
            Variant("loop", "loop", lambda m=plain, t=tm: notebook_attributions(m, images_m, t, s),
                    warmup=lambda m=plain, t=tm: notebook_attributions(m, images_m[:1], t[:1], s), batch_size=1),
            Variant("captum", "library", lambda m=plain, t=tm, bs=size: notebook_attributions(m, images_m, t, s, bs),
                    warmup=lambda m=plain, t=tm, bs=size: notebook_attributions(m, images_m[:1], t[:1], s, bs),
                    batch_size=size),
        ], same_random=False, note="SmoothGrad noise differs between variants")
        # the loop's inputs (the order in which pixels change), made once with netviz's methods; not timed
        ranks = saliency_ranks(vanilla_gradient(model, x, targets, batch_size=size), seed=seed)
        substrates = substrate(s["deletion_substrate"], s["substrate_blur_sigma"])(x)

        def loop_curves(m=plain, t=targets, r=ranks, k=None):
            rows = range(k or len(x))
            return torch.stack([torch.cat([perturbation_curve(m, b.images[i : i + 1], substrates[i : i + 1], r[i : i + 1],
                                                              t[i : i + 1], [f], mode) for f in fractions], dim=1)
                                for mode in ("deletion", "insertion") for i in rows]).view(2, len(rows), -1)

        yield Workload("saliency_methods", "deletion/insertion (one method)", name, 2 * len(x) * len(fractions),
                       "image-pass", [
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
    """The per-image loop (and torchattacks) on the lab's fooling images and the transfer attacks (FGSM, PGD,
    MI-FGSM at the transfer budget, run to the end) per model. The ε sweep is the transfer loop again with early stopping, so it is not timed separately."""
    import torchattacks

    from netviz.experiments.adversarial import build_attack
    from netviz.methods.adversarial import Fooling, levels

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
    for name in models:
        plain = b.plain(name)
        xf = b.images[fooling_idx]
        tf = torch.full((len(fooling_idx),), target, dtype=torch.long, device=b.device)
        yield Workload("adversarial", f"fooling image (≤ {spec.max_iter} steps)", name, len(fooling_idx), "image", [
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

            def loop(m=plain, a=attack, k=None):
                return notebook_attack(m, xt[:k], yt[:k], levels(a.eps), levels(a.alpha), a.steps, a.momentum,
                                       a.random_start, torch.Generator(device=b.device).manual_seed(seed))

            task = {"fgsm": "FGSM", "pgd_linf": "PGD L∞", "mi_fgsm": "MI-FGSM"}[attack_name]
            yield Workload("adversarial", f"{task} (ε {attack.eps:g}, {attack.steps} steps)", name,
                           len(transfer_idx) * attack.steps, "image-step", [
                Variant("loop", "loop", loop, warmup=lambda a=attack: loop(a=a, k=1), batch_size=1),
                Variant("torchattacks", "library", lambda m=plain, make=library: make(m)(xt, yt),
                        warmup=lambda m=plain, make=library: make(m)(xt[:2], yt[:2]), batch_size=len(xt)),
            ], same_random=not attack.random_start, note="random starts differ" if attack.random_start else "")


# Section name -> its comparisons (loop, library); netviz's own side is the section's jobs (job_rows).
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
           "min_s", "units_per_s", "gflop", "gflop_per_s", "share_of_peak", "speedup", "max_abs_diff", "mean_abs_diff"]


def _rate(rows: list[dict]) -> tuple[float, float, float | None]:
    """(total seconds, total GFLOP, GFLOP/s) of some rows."""
    seconds, gflop = sum(r["median_s"] for r in rows), sum(r["gflop"] for r in rows)
    return seconds, gflop, (gflop / seconds if seconds > 0 else None)


def summarize(rows: list[dict]) -> list[dict]:
    """Per experiment: netviz's jobs (time, GFLOP/s, share of the matmul rate measured before each row: their
    GFLOP over the GFLOP that rate would do in their time), the loop's and the
    libraries' GFLOP/s and how many times netviz's rate they fall short of (``vs_loop``, ``vs_library``). Also sets
    each comparison row's ``speedup``: netviz's rate on the same experiment and model over the row's rate."""
    out = []
    for experiment in dict.fromkeys(r["experiment"] for r in rows):
        mine = [r for r in rows if r["experiment"] == experiment]
        netviz = [r for r in mine if r["kind"] == "batched"]
        by_model = {r["model"]: r["gflop_per_s"] for r in netviz}
        for r in mine:
            ours = by_model.get(r["model"])
            r["speedup"] = (1.0 if r["kind"] == "batched" else
                            _sig(ours / r["gflop_per_s"], 3) if ours and r["gflop_per_s"] else None)
        seconds, gflop, rate = _rate(netviz)
        capacity = sum(r["median_s"] * r["matmul_gflop_per_s"] for r in netviz)
        entry = {"experiment": experiment, "workloads": len(netviz), "jobs": sum(r.get("jobs", 0) for r in netviz),
                 "netviz_s": _sig(seconds) if netviz else None, "netviz_gflop": _sig(gflop),
                 "netviz_gflop_per_s": _sig(rate) if rate else None,
                 "share_of_peak": _sig(gflop / capacity) if capacity > 0 else None,
                 "loop_gflop_per_s": None, "vs_loop": None, "library_gflop_per_s": None, "vs_library": None,
                 "libraries": []}
        for kind, key in (("loop", "loop"), ("library", "library")):
            others = [r for r in mine if r["kind"] == kind and r["model"] in by_model]
            if not others:
                continue
            theirs = _rate(others)[2]
            ours = _rate([r for r in netviz if r["model"] in {o["model"] for o in others}])[2]
            entry[f"{key}_gflop_per_s"] = _sig(theirs) if theirs else None
            entry[f"vs_{key}"] = _sig(ours / theirs, 3) if ours and theirs else None
            if kind == "library":
                entry["libraries"] = sorted({r["variant"] for r in others})
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
    env, peak = results["environment"], results["matmul"]
    lines = [f"# netviz bench ({env['finished']})", "",
             f"{env['device']} ({env['device_name']}), {env['threads']} threads, load average "
             f"{env['load_before'][0]:.2f} before / {env['load_after'][0]:.2f} after; torch {env['torch']}.", "",
             f"fp32 matrix multiply ({peak['size']}×{peak['size']}, {peak['threads']} threads): "
             f"{_cell(peak['gflop_per_s'])} GFLOP/s (the anchor of every share below).", "",
             "| experiment | jobs | netviz (s) | GFLOP/s | share of matmul | loop GFLOP/s | netviz / loop | "
             "library GFLOP/s | netviz / library |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in results["summary"]:
        lines.append(f"| {s['experiment']} | {s['jobs']} | {_cell(s['netviz_s'])} | {_cell(s['netviz_gflop_per_s'])} | "
                     f"{_cell(s['share_of_peak'])} | {_cell(s['loop_gflop_per_s'])} | {_cell(s['vs_loop'])} | "
                     f"{_cell(s['library_gflop_per_s'])} | {_cell(s['vs_library'])} |")
    lines += [f"- {note}" for note in results["notes"]]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in results["rows"]]
    if results.get("scaleout"):
        lines += scaleout_markdown(results["scaleout"])
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


def scaleout_markdown(scale: dict) -> list[str]:
    """The scale-out part as markdown lines: overhead, throughput table, projection."""
    o, t, p = scale["overhead"], scale["throughput"], scale["projection"]
    lines = ["", "## Scaling out (one CPU thread per job)", "",
             f"Per-job overhead of Ray: {_cell(o['overhead_per_job_ms'])} ms ({o['jobs']} jobs of {o['work']} on "
             f"{o['model']}, one at a time: round trip {_cell(o['ray_per_job_ms'])} ms, computation in the actor "
             f"{_cell(o['ray_compute_ms'])} ms, in this process {_cell(o['local_per_job_ms'])} ms; "
             f"actor start {_cell(o['ray_start_s'])} s, not counted).", "",
             f"Throughput of {t['section']} ({', '.join(t['kinds'])}; {t['jobs']} jobs of ≤ {t['shard_size']} images) "
             f"on {t['images']} images, {t['model']}:" + (f" {t['note']}." if t["note"] else ""), "",
             "| executor | workers | wall (s) | first result (s) | images/s | images/s once started |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['executor']} | {r['workers']} | {_cell(r['wall_s'])} | {_cell(r['first_result_s'])} | "
              f"{_cell(r['images_per_s'])} | {_cell(r['steady_images_per_s'])} |" for r in t["runs"]]
    lines += ["", f"Ratio to ideal scaling (Ray, 2 workers / 2 × 1 worker, once started): {_cell(t['ideal_ratio'])} "
              f"({_cell(t['ideal_ratio_with_start'])} with the actors' start). Measured: "
              f"{_cell(t['s_per_image'])} s per image on one core ({t['main_kind']} jobs), {_cell(t['gflop_per_image'])} GFLOP per image, "
              f"{_cell(t['share_of_matmul'])} of the one-thread matmul rate ({_cell(t['matmul_1thread_gflop_per_s'])} GFLOP/s).",
              "", f"Projection for {p['images']:,} images (CPU rows: measured cost per image, ideal scaling assumed; "
              f"GPU rows: projected from {_cell(p['assumed_gpu_fp32_tflops'])} TFLOP/s fp32 per GPU, of which the jobs "
              f"reach {_cell(p['assumed_gpu_share'])}, both {p['gpu_basis']}):",
              "", "| N | CPU workers (h) | GPUs (h) |", "|---:|---:|---:|"]
    lines += [f"| {r['n']} | {_cell(r['cpu_hours'])} | {_cell(r['gpu_hours'])} |" for r in p["rows"]]
    return lines


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
              load: Callable[..., object] | None = None, scaleout_images: ImageSet | None = None) -> dict:
    """Run the benchmark for ``bench.sections`` (all with jobs or comparisons when empty) and write its outputs
    under ``root`` (see the module docstring). Returns what it wrote to ``results/bench/bench.json``.

    images (an :class:`~netviz.data.ImageSet`) and load (model name -> LoadedModel or classifier on the run's
    device) replace the run's images and pretrained models, e.g. with tiny ones in tests; scaleout_images replaces
    the scale-out's generated ImageNet-layout folder."""
    from netviz.data import load_images
    from netviz.models import load_model, resolve_device

    settings = config["bench"]
    root = Path(root)
    wanted = settings["sections"] or [s for s in SECTIONS if s in WORKLOADS or _has_jobs(s)]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise NetvizError(f"bench.sections: unknown section '{unknown[0]}'; sections: {', '.join(SECTIONS)}")
    device = resolve_device(config["run"]["device"])
    env = environment(device)
    started = time.perf_counter()
    images = images if images is not None else load_images(config["run"])
    load = load or (lambda name, fold=True: load_model(name, config["models"]["weights"], config["run"]["data_dir"],
                                                       device, fold=fold))
    log("bench: fp32 matrix-multiply rate")
    peak = matmul_rate(device)
    log(f"  {peak['gflop_per_s']} GFLOP/s ({peak['size']}×{peak['size']}, {peak['threads']} threads)")
    b = Bench(config, device, subset(images, int(settings["images"])), load, peak=peak["gflop_per_s"])
    torch.manual_seed(int(config["run"]["seed"]))
    rows, notes = measure_sections(b, wanted, log)
    log("bench: bf16 against fp32")
    precision = precision_checks(b, log) if settings["precision_check"] else []
    log("bench: memory")
    memory = memory_check(settings, device, log)
    scale = None
    if settings["scaleout"]:
        from netviz.scaleout import scaleout

        log("bench: scaling out (Ray)")
        cpu_load = load if device.type == "cpu" else (
            lambda name: load_model(name, config["models"]["weights"], config["run"]["data_dir"], torch.device("cpu")))
        scale = scaleout(config, lambda name: _as_loaded(cpu_load(name)), log, scaleout_images)
    env["load_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]
    env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    env["wall_s"] = round(time.perf_counter() - started, 1)
    summary = summarize(rows)
    if scale and device.type == "cuda":  # the GPU rows from this GPU's matmul rate and the section's share of it
        from netviz.scaleout import projection

        share = next((s["share_of_peak"] for s in summary if s["experiment"] == scale["throughput"]["section"]), None)
        if share:
            scale["projection"] = projection(scale["throughput"], int(settings["projection_images"]),
                                             peak["gflop_per_s"] / 1000, share, gpu_basis=f"measured on {env['device_name']}")
    results = {"environment": env, "settings": dict(settings), "target_speedup": TARGET_SPEEDUP, "matmul": peak,
               "images": len(b.image_set), "rows": rows, "summary": summary, "notes": notes, "memory": memory,
               "precision": precision, "scaleout": scale,
               "sections_without_workload": [s for s in SECTIONS if s not in WORKLOADS and not _has_jobs(s)],
               "figure": f"figures/bench/{FIGURE}"}
    _write(results, root)
    for s in summary:
        log(f"bench: {s['experiment']}: netviz {s['netviz_s']} s, {s['share_of_peak']} of the matmul rate"
            + (f", GFLOP/s {s['vs_loop']:.2f}x the loop's" if s["vs_loop"] else "")
            + (f", {s['vs_library']:.2f}x {'/'.join(s['libraries'])}'s" if s["vs_library"] else ""))
    log(f"bench: results/bench/{RESULTS}, bench.csv, bench.md, figures/bench/{FIGURE} ({env['wall_s']} s)")
    return results


def measure_sections(b: Bench, sections: list[str], log: Callable[[str], None] = print) -> tuple[list[dict], list[str]]:
    """Every section's rows: its jobs (netviz), then its comparisons; and a note per section without jobs."""
    rows, notes = [], []
    for section in sections:
        log(f"bench: {section}")
        jobs = section_jobs(b, section, log)
        if jobs is None:
            notes.append(f"{section}: no jobs(ctx) yet, so netviz's side is not timed (comparisons only)")
            log(f"  {notes[-1]}")
        else:
            rows.extend(job_rows(b, section, jobs, log))
        for workload in WORKLOADS.get(section, lambda _: [])(b):
            rows.extend(measure(workload, b.device, int(b.settings["repeats"]), float(b.settings["time_limit_s"]), log))
    return rows, notes


def _has_jobs(section: str) -> bool:
    return hasattr(importlib.import_module(f"netviz.experiments.{section}"), "jobs")


def _write(results: dict, root: Path) -> None:
    """bench.json, bench.csv, bench.md and the figure, staged and swapped in."""
    from netviz import plots

    rows = results["rows"]
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
