"""The bench's memory check: peak memory of gradient passes of one model under memory budgets (automatic chunks)
and unchunked, each in a fresh process so that peaks do not mix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import torch

from netviz.bench.timing import _sync
from netviz.budget import GB, available_bytes, probe_footprint, resolve_batch_size


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
    src = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    rows = []
    for budget, batch_size in runs:
        args = (name, int(settings["memory_images"]), int(settings["memory_image_size"]), budget, batch_size, device.type)
        code = f"import json; from netviz.bench.memory import memory_child; print(json.dumps(memory_child(*{args!r})))"
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
