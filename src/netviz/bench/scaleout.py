"""``netviz bench``'s scale-out part: what Ray costs per job, how a section's jobs scale over Ray workers, and
how long a large run would take.

- **Per-job overhead**: ``bench.overhead_jobs`` tiny jobs (the saliency gradient of one image) run in this
  process and, one at a time, on one actor of :class:`~netviz.executors.RayExecutor`. Overhead per job = a job's
  round trip to the warm actor − its computation inside the actor (median over the jobs after the first, whose
  round trip holds the actor's start and the model's transfer: ``ray_start_s``). Measured so, and not as a
  difference of the two executors' times per job, because those differ by more than the overhead (a separate
  process; jobs in flight overlap the driver's work).
- **Throughput**: the jobs of ``bench.scaleout_section`` (default ``saliency_methods``; a section without
  ``jobs(ctx)`` yet falls back to ``saliency``, with a note) on a folder of ``bench.scaleout_images`` images in
  ImageNet's validation layout (the course's images with deterministic flips and crops, see
  :func:`netviz.imagenet_folder.write_imagenet_folder`), on the section's first model, in shards of
  ``bench.scaleout_shard_size``: the local executor, then Ray with 1 and with 2 workers. Every executor runs torch
  on ONE thread per job (``run.threads = 1``, ``run.cpus_per_job = 1``), local included, so that one worker is one
  core everywhere. Each run's images/s is given over its whole wall time (actors' start included) and once every
  worker is busy (from the result that makes every worker proven started to the last). Ratio to ideal scaling =
  throughput with 2 workers / (2 × throughput with 1), once started (``ideal_ratio``) and whole
  (``ideal_ratio_with_start``).
- **Projection**: seconds per image measured here (CPU, one core per job) and the FLOPs per image (counted with
  FlopCounterMode on one job) give the time of ``bench.projection_images`` images on N CPU workers (measured
  cost, ideal scaling assumed) and on N GPUs, which are NOT measured: one GPU is assumed to do
  ``bench.gpu_fp32_tflops`` of fp32 arithmetic of which the jobs reach ``bench.gpu_share`` (both stated
  assumptions; the share the jobs reach of this CPU's measured matmul rate is stored beside them).

Nothing here writes results: :func:`scaleout` returns a dict that :func:`netviz.bench.run.run_bench` stores.
"""

from __future__ import annotations

import copy
import importlib
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from netviz.bench.timing import _sig
from netviz.data import ImageSet
from netviz.executors import LocalExecutor, RayExecutor, host_batch, start_ray
from netviz.jobs import Job

FALLBACK_SECTION = "saliency"  # converted first; used when the configured section has no jobs(ctx) yet
SCALES = (1, 2, 4, 8, 16)  # workers / GPUs in the projection table


def imagenet_folder_images(config: dict, count: int, folder: Path) -> ImageSet:
    """About ``count`` images (a multiple of the course's 25, at least ``count``) written to ``folder`` in
    ImageNet's validation layout and read back as a run would read them (``run.images = folder``)."""
    from netviz.imagenet_folder import write_imagenet_folder
    from netviz.config import resolve_data_dir
    from netviz.data import load_course_images, load_image_folder

    course = load_course_images(resolve_data_dir(config["run"]))
    write_imagenet_folder(course, folder, copies=max(1, math.ceil(count / len(course))))
    return load_image_folder(folder)


def _one_thread(config: dict, workers: int = 1) -> dict:
    """The config with every job on one CPU thread, no GPU, ``workers`` Ray actors, a local Ray instance unless a
    cluster is configured."""
    out = copy.deepcopy(config)
    out["run"].update(threads=1, cpus_per_job=1.0, gpus_per_job=0.0, ray_workers=workers)
    return out


def _ensure_ray(config: dict, cpus: int) -> bool:
    """Start a local Ray instance with ``cpus`` CPUs unless Ray runs or a cluster is configured; True if started."""
    if config["run"].get("ray_address"):
        return False
    return start_ray(num_cpus=cpus)


def timed_run(executor, jobs: list[Job], images) -> dict:
    """Run ``jobs`` on ``executor``: wall time, time to the first result, each result's arrival time (s from the
    start) and how many images it covered."""
    from netviz.experiments.runner import cpu_threads

    arrivals, sizes = [], []
    with cpu_threads(1):
        start = time.perf_counter()
        for position, _ in executor.run(jobs, images):
            arrivals.append(time.perf_counter() - start)
            sizes.append(len(jobs[position].items))
    return {"wall_s": arrivals[-1] if arrivals else 0.0, "first_s": arrivals[0] if arrivals else 0.0,
            "arrivals_s": arrivals, "sizes": sizes}


def steady_rate(run: dict, workers: int) -> float | None:
    """Images per second once every worker is busy: from the ``workers``-th result to the last, the images of
    the results that arrived after it (None when there are too few results)."""
    arrivals, sizes = run["arrivals_s"], run["sizes"]
    if len(arrivals) <= workers:
        return None
    window = arrivals[-1] - arrivals[workers - 1]
    return sum(sizes[workers:]) / window if window > 0 else None


def job_overhead(config: dict, loaded: Callable, model: str, images, count: int, seed: int) -> dict:
    """Per-job overhead of Ray on ``count`` one-image gradient jobs sent one at a time to one warm actor: per job,
    the round trip the driver sees minus the time the job's computation took inside the actor (what remains is
    sending the job and its images, scheduling, and returning the result); the median over the jobs after the
    first, whose round trip includes the actor's start (``ray_start_s``). The same jobs' time in this process is
    given beside (``local_per_job_ms``)."""
    import ray

    jobs = [Job.make("saliency", "gradient", model, (i % len(images),), batch_size=1, seed=seed)
            for i in range(count)]
    local = timed_run(LocalExecutor(loaded, torch.device("cpu")), jobs, images)
    gaps = [b - a for a, b in zip([0.0, *local["arrivals_s"]], local["arrivals_s"])][1:]  # the first is a warm-up
    executor = RayExecutor(_one_thread(config)["run"], loaded)
    actor = executor._actors(model, 1)[0]
    trips, inside = [], []
    try:
        for position, job in enumerate(jobs):
            pixels, labels = host_batch(job, images)
            started = time.perf_counter()
            _, _, seconds = ray.get(actor.run_timed.remote(position, job, pixels, labels))
            trips.append(time.perf_counter() - started)
            inside.append(seconds)
    finally:
        ray.kill(actor)
    extra = [t - s for t, s in zip(trips[1:], inside[1:])]
    return {"jobs": count, "work": "saliency gradient of 1 image", "model": model,
            "local_per_job_ms": _sig(1000 * (statistics.median(gaps) if gaps else local["wall_s"])),
            "ray_per_job_ms": _sig(1000 * statistics.median(trips[1:])) if extra else None,
            "ray_compute_ms": _sig(1000 * statistics.median(inside[1:])) if extra else None,
            "overhead_per_job_ms": _sig(1000 * statistics.median(extra)) if extra else None,
            "overheads_ms": [_sig(1000 * e) for e in extra],
            "ray_start_s": _sig(trips[0], 3)}


def _section_jobs(config: dict, section: str, images, loaded: Callable, log) -> tuple[str, list[Job], str, dict]:
    """(section used, its jobs on ``images``, a note, the local seconds of jobs that ``jobs(ctx)`` already ran as
    prerequisites, on one thread) — the fallback section when ``section`` has no jobs yet."""
    from netviz.bench.harness import bench_context
    from netviz.experiments.runner import cpu_threads

    note = ""
    if not hasattr(importlib.import_module(f"netviz.experiments.{section}"), "jobs"):
        note = (f"{section} has no jobs(ctx) yet: measured on {FALLBACK_SECTION} instead "
                f"(bench.scaleout_section)")
        log(f"  scale-out: {note}")
        section = FALLBACK_SECTION
    module = importlib.import_module(f"netviz.experiments.{section}")
    prior: dict = {}
    with tempfile.TemporaryDirectory(prefix="netviz-bench-") as tmp, cpu_threads(1):
        ctx = bench_context(config, section, images, loaded, torch.device("cpu"), Path(tmp), log, timings=prior)
        jobs = list(module.jobs(ctx))
    return section, jobs, note, prior


def local_run(jobs: list[Job], images, loaded: Callable, prior: dict) -> dict:
    """The local executor's run of ``jobs`` on one thread, as per-job seconds: jobs that ``jobs(ctx)`` already
    ran as prerequisites (``prior``, the same executor and thread count) are not run again."""
    todo = [job for job in jobs if job not in prior]
    run = timed_run(LocalExecutor(loaded, torch.device("cpu")), todo, images) if todo else {"arrivals_s": []}
    gaps = [b - a for a, b in zip([0.0, *run["arrivals_s"]], run["arrivals_s"])]
    seconds = {**prior, **dict(zip(todo, gaps))}  # results arrive in job order locally
    per_job = [seconds[job] for job in jobs]
    return {"wall_s": sum(per_job), "per_job_s": per_job, "reused": len(jobs) - len(todo)}


def by_kind(jobs: list[Job], per_job: list[float]) -> dict:
    """Local seconds, jobs and images per job kind, and seconds per image of each."""
    out: dict = {}
    for job, seconds in zip(jobs, per_job):
        entry = out.setdefault(job.kind, {"jobs": 0, "images": 0, "seconds": 0.0})
        entry.update(jobs=entry["jobs"] + 1, images=entry["images"] + len(job.items), seconds=entry["seconds"] + seconds)
    for entry in out.values():
        entry["s_per_image"] = _sig(entry["seconds"] / entry["images"]) if entry["images"] else None
        entry["seconds"] = _sig(entry["seconds"])
    return out


def throughput(config: dict, section: str, images, loaded: Callable, log) -> dict:
    """Images per second of ``section``'s jobs on ``images``: local, then Ray with 1 and 2 workers; the per-image
    cost and FLOPs of its main kind (the one covering the most images) for the projection."""
    from netviz.bench.timing import count_flops, matmul_rate
    from netviz.executors import compute, host_batch, to_batch
    from netviz.experiments.runner import cpu_threads

    with cpu_threads(1):  # the one-thread matmul rate before and after the local run (it drifts with the load)
        before = matmul_rate(torch.device("cpu"))["gflop_per_s"]
    section, jobs, note, prior = _section_jobs(config, section, images, loaded, log)
    n = len({i for job in jobs for i in job.items}) or len(images)
    local = local_run(jobs, images, loaded, prior)
    kinds = by_kind(jobs, local["per_job_s"])
    main = max(kinds, key=lambda k: kinds[k]["images"])
    first = next(job for job in jobs if job.kind == main)
    with cpu_threads(1):  # the main kind's FLOPs on one job
        after = matmul_rate(torch.device("cpu"))["gflop_per_s"]
        flops, _ = count_flops(lambda: compute(first, loaded(first.model).model,
                                               to_batch(first, *host_batch(first, images), torch.device("cpu"))))
    anchor = {"gflop_per_s": _sig((before + after) / 2), "before": before, "after": after}
    gflop_per_image = flops / 1e9 / max(1, len(first.items))
    runs = [{"executor": "local", "workers": 1, "wall_s": _sig(local["wall_s"]), "first_result_s": None,
             "images_per_s": _sig(n / local["wall_s"]) if local["wall_s"] > 0 else None, "steady_images_per_s": None}]
    log(f"  scale-out: local, 1 thread: {runs[-1]['images_per_s']} images/s")
    for workers in (1, 2):
        result = timed_run(RayExecutor(_one_thread(config, workers)["run"], loaded), jobs, images)
        runs.append({"executor": "ray", "workers": workers, **_rates(result, n, workers)})
        log(f"  scale-out: Ray, {workers} worker(s): {runs[-1]['images_per_s']} images/s "
            f"({runs[-1]['steady_images_per_s']} once started; first result after {runs[-1]['first_result_s']} s)")
    one, two = runs[1]["steady_images_per_s"], runs[2]["steady_images_per_s"]
    one_all, two_all = runs[1]["images_per_s"], runs[2]["images_per_s"]
    per_image = kinds[main]["s_per_image"]
    share = gflop_per_image / per_image / anchor["gflop_per_s"] if per_image else None
    return {"section": section, "note": note, "images": n, "jobs": len(jobs), "model": first.model,
            "kinds": kinds, "main_kind": main, "shard_size": int(config["run"]["shard_size"]),
            "local_reused_jobs": local["reused"], "runs": runs,
            "ideal_ratio": _sig(two / (2 * one), 3) if one and two else None,
            "ideal_ratio_with_start": _sig(two_all / (2 * one_all), 3) if one_all and two_all else None,
            "s_per_image": per_image, "gflop_per_image": _sig(gflop_per_image),
            "matmul_1thread_gflop_per_s": anchor["gflop_per_s"], "matmul_1thread_before_after": [before, after],
            "share_of_matmul": _sig(share) if share is not None else None}


def _rates(run: dict, images: int, workers: int) -> dict:
    """A run's images/s over its whole wall time (actor start included) and once every worker was busy."""
    wall, steady = run["wall_s"], steady_rate(run, workers)
    return {"wall_s": _sig(wall), "first_result_s": _sig(run["first_s"], 3),
            "images_per_s": _sig(images / wall) if wall > 0 else None,
            "steady_images_per_s": _sig(steady) if steady else None}


def projection(measured: dict, images: int, gpu_tflops: float, gpu_share: float, gpu_basis: str = "assumed") -> dict:
    """Hours for ``images`` images of the measured work (its main kind) on N CPU workers (the cost per image
    measured here, ideal scaling) and on N GPUs (projected, not measured: the FLOPs per image counted here at an
    assumed ``gpu_share`` of an assumed ``gpu_tflops`` fp32 rate, ideal scaling). ``gpu_basis`` says where those
    two came from ("assumed", or measured on the bench's GPU)."""
    s_cpu = measured["s_per_image"]
    rate = gpu_tflops * 1000 * gpu_share  # GFLOP/s
    s_gpu = measured["gflop_per_image"] / rate if rate > 0 else None
    rows = [{"n": n, "cpu_hours": _sig(images * s_cpu / n / 3600, 3),
             "gpu_hours": _sig(images * s_gpu / n / 3600, 3) if s_gpu else None} for n in SCALES]
    return {"images": images, "section": measured["section"], "kind": measured["main_kind"],
            "measured_cpu_s_per_image": s_cpu, "measured_gflop_per_image": measured["gflop_per_image"],
            "measured_cpu_share_of_matmul": measured["share_of_matmul"],
            "assumed_gpu_fp32_tflops": gpu_tflops, "assumed_gpu_share": gpu_share, "gpu_basis": gpu_basis,
            "projected_gpu_s_per_image": _sig(s_gpu) if s_gpu else None,
            "measured_ideal_ratio_2_workers": measured["ideal_ratio"], "rows": rows}


def scaleout(config: dict, loaded: Callable, log: Callable[[str], None] = print, images: ImageSet | None = None) -> dict:
    """The scale-out part (see the module doc). ``loaded``: model name -> LoadedModel on CPU. ``images`` replaces
    the generated ImageNet-layout folder (tests)."""
    import ray

    from netviz.config import section_models

    settings = config["bench"]
    section = settings["scaleout_section"]
    cfg = _one_thread(config)
    cfg["run"]["shard_size"] = int(settings["scaleout_shard_size"])
    started = _ensure_ray(cfg, 2)
    try:
        with tempfile.TemporaryDirectory(prefix="netviz-scaleout-") as tmp:
            if images is None:
                images = imagenet_folder_images(config, int(settings["scaleout_images"]), Path(tmp) / "val")
            model = section_models(cfg, section)[0]
            for name in (section, FALLBACK_SECTION):
                cfg[name]["models"] = [model]  # the first model only
            log(f"  scale-out: per-job overhead ({settings['overhead_jobs']} jobs, {model})")
            overhead = job_overhead(cfg, loaded, model, images, int(settings["overhead_jobs"]), int(cfg["run"]["seed"]))
            log(f"  scale-out: overhead {overhead['overhead_per_job_ms']} ms per job "
                f"(local {overhead['local_per_job_ms']} ms, Ray {overhead['ray_per_job_ms']} ms)")
            measured = throughput(cfg, section, images, loaded, log)
        cpus = ray.cluster_resources().get("CPU")
    finally:
        if started:
            ray.shutdown()
    return {"threads_per_job": 1, "ray_cpus": cpus, "overhead": overhead, "throughput": measured,
            "projection": projection(measured, int(settings["projection_images"]), float(settings["gpu_fp32_tflops"]),
                                    float(settings["gpu_share"]))}
