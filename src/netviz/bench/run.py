"""``netviz bench`` from start to end: every wanted section's jobs and comparisons, the precision and memory
checks, the scale-out part, and the outputs, staged and swapped in (see :mod:`netviz.bench`)."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from netviz import store
from netviz.bench.comparisons import WORKLOADS
from netviz.bench.harness import Bench, _as_loaded, _has_jobs, job_rows, section_jobs, subset
from netviz.bench.memory import memory_check
from netviz.bench.output import FIGURE, RESULTS, TARGET_SPEEDUP, summarize, to_csv, to_markdown
from netviz.bench.precision import precision_checks
from netviz.bench.timing import matmul_rate, measure
from netviz.data import ImageSet
from netviz.errors import NetvizError
from netviz.sections import SECTIONS


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
    under ``root`` (see :mod:`netviz.bench`). Returns what it wrote to ``results/bench/bench.json``.

    images (an :class:`~netviz.data.ImageSet`) and load (model name -> LoadedModel or classifier on the run's
    device) replace the run's images and pretrained models, e.g. with tiny ones in tests; scaleout_images replaces
    the scale-out's generated ImageNet-layout folder."""
    from netviz.config import resolve_data_dir
    from netviz.data import load_images
    from netviz.models import load_model, resolve_device

    settings = config["bench"]
    root = Path(root)
    wanted = wanted_sections(settings)
    device, data_dir = resolve_device(config["run"]["device"]), resolve_data_dir(config["run"])
    env = environment(device)
    started = time.perf_counter()
    images = images if images is not None else load_images(config["run"], data_dir)
    load = load or (lambda name, fold=True: load_model(name, config["models"]["weights"], data_dir, device,
                                                       fold=fold))
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
    scale = _scaleout(config, device, load, log, scaleout_images) if settings["scaleout"] else None
    env["load_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else [0.0, 0.0, 0.0]
    env["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    env["wall_s"] = round(time.perf_counter() - started, 1)
    summary = summarize(rows)
    if scale and device.type == "cuda":
        _gpu_projection(scale, summary, int(settings["projection_images"]), peak["gflop_per_s"], env["device_name"])
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


def wanted_sections(settings: dict) -> list[str]:
    """``bench.sections``, or when empty every section with jobs or comparisons; a one-line error for a name that
    is not a section."""
    wanted = settings["sections"] or [s for s in SECTIONS if s in WORKLOADS or _has_jobs(s)]
    unknown = [s for s in wanted if s not in SECTIONS]
    if unknown:
        raise NetvizError(f"bench.sections: unknown section '{unknown[0]}'; sections: {', '.join(SECTIONS)}")
    return wanted


def _scaleout(config: dict, device: torch.device, load: Callable[..., object], log: Callable[[str], None],
              images: ImageSet | None) -> dict:
    """The scale-out part (:func:`netviz.bench.scaleout.scaleout`), on CPU copies of the models."""
    from netviz.bench.scaleout import scaleout
    from netviz.config import resolve_data_dir
    from netviz.models import load_model

    log("bench: scaling out (Ray)")
    data_dir = resolve_data_dir(config["run"])
    cpu_load = load if device.type == "cpu" else (
        lambda name: load_model(name, config["models"]["weights"], data_dir, torch.device("cpu")))
    return scaleout(config, lambda name: _as_loaded(cpu_load(name)), log, images)


def _gpu_projection(scale: dict, summary: list[dict], images: int, peak_gflop_per_s: float, device_name: str) -> None:
    """Replace the scale-out's GPU rows by ones from this GPU's matmul rate and the share of it that the scale-out
    section's jobs reached here (when they were timed)."""
    from netviz.bench.scaleout import projection

    share = next((s["share_of_peak"] for s in summary if s["experiment"] == scale["throughput"]["section"]), None)
    if share:
        scale["projection"] = projection(scale["throughput"], images, peak_gflop_per_s / 1000, share,
                                         gpu_basis=f"measured on {device_name}")


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


def _write(results: dict, root: Path) -> None:
    """bench.json, bench.csv, bench.md and the figure, staged and swapped in."""
    import matplotlib.pyplot as plt

    from netviz import plots

    rows = results["rows"]
    with store.exclusive(root / "results", "netviz bench"), \
            store.staged(root / "figures" / "bench", root / "results" / "bench") as (figures_stage, results_stage):
        fig = plots.bench_speedups(rows, TARGET_SPEEDUP)
        (figures_stage / FIGURE).write_bytes(plots.png_bytes(fig))
        plt.close(fig)
        (results_stage / "bench.csv").write_text(to_csv(rows))
        (results_stage / "bench.md").write_text(to_markdown(results))
        store.write_json(results_stage / RESULTS, results)
