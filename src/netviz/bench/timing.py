"""The bench's measuring core: what is timed (:class:`Variant`, :class:`Workload`), timing on a device, FLOPs
counted with torch's FlopCounterMode, this machine's matrix-multiply rate (the physical anchor of every row) and
one table row per timed variant (:func:`measure`)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch


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
