"""What the bench runs a section's work with: :class:`Bench` (config, device, images and models, loaded once),
a section's context and config for the bench, and the timing of the section's OWN jobs (``jobs(ctx)``, the same
jobs ``netviz run`` runs), one row per model (:func:`job_rows`)."""

from __future__ import annotations

import copy
import importlib
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from netviz import budget
from netviz.bench.timing import _log_row, _repeat, _row, anchor, count_flops
from netviz.config import section_models
from netviz.data import ImageSet
from netviz.models import LoadedModel

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
        them, see :func:`netviz.batchnorm.fold_batchnorm`) and inputs in the caller's NCHW layout (netviz feeds its
        networks channels-last): both speed-ups are part of what is measured."""
        if name not in self.plain_cache:
            plain = _as_loaded(self.load(name, fold=False)).model
            if plain is self.model(name):  # a loader that hands out one object (tests): copy, keep netviz's layout
                plain = copy.deepcopy(plain)
            self.plain_cache[name] = plain.use_channels_last(False)
        return self.plain_cache[name]

    def models(self, section: str) -> dict:
        return {name: self.model(name) for name in section_models(self.config, section)}

    def batch_size(self, section: str, model, n: int | None = None) -> int:
        """netviz's chunk size for ``section`` on ``model``, as the experiment would pick it."""
        return budget.batch_size_for(self.config, section, model, tuple(self.images.shape[1:]), self.device,
                                     n=n or len(self.images))

    def steps(self, steps: int) -> int:
        """An iterative method's step count, capped at ``bench.max_steps`` (0 = no cap)."""
        cap = int(self.settings["max_steps"])
        return min(steps, cap) if cap > 0 else steps


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


def job_rows(b: Bench, section: str, jobs: list, log: Callable[[str], None] = print) -> list[dict]:
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


def section_jobs(b: Bench, section: str, log: Callable[[str], None] = print) -> list | None:
    """``section``'s jobs for the bench (``jobs(ctx)`` on :func:`bench_config`), or None when it has none yet."""
    module = importlib.import_module(f"netviz.experiments.{section}")
    if not hasattr(module, "jobs"):
        return None
    with tempfile.TemporaryDirectory(prefix="netviz-bench-") as tmp:
        ctx = bench_context(bench_config(b.config, section), section, b.section_images(section), b.loaded, b.device,
                            Path(tmp), log)
        return list(module.jobs(ctx))


def _has_jobs(section: str) -> bool:
    """Whether ``section``'s module has ``jobs(ctx)`` (the sections not converted yet have only ``run``)."""
    return hasattr(importlib.import_module(f"netviz.experiments.{section}"), "jobs")
