"""Measured grading tolerances: how far each graded item moves between legitimate builds of one configuration.

An iterative method that stops at the first step past a decision boundary turns tiny differences in float
rounding (another CPU's kernels, a thread count, a batch size, folded batch norms, a memory layout) into another
step, so one machine's build is not the only correct one. ``netviz expected`` therefore builds the expected
configuration again under :data:`VARIANTS`, implementation choices that change results only by rounding (set
through ``run.threads``, ``run.batch_size``, ``run.fold_batchnorm`` and ``run.channels_last``), and records in the
expected set's ``variation.json``, per graded item, how far the variants moved it:

- a number: ``spread`` = the largest |variant − expected|;
- anything else (a boolean, a predicted class name): the other ``values`` the variants gave;
- a figure: the lowest SSIM of each panel between a variant's figure and the expected one.

Grading (:mod:`netviz.grading`) derives each item's tolerance from that record: a number passes within
``max(floor, grade.spread_factor × spread)``, the floor being the ``[grade]`` tolerance; a non-number passes when
it equals the expected value or one a variant gave (the variant envelope); a panel passes above
``min(grade.ssim_min, 1 − grade.spread_factor × (1 − variant SSIM))``, never below ``grade.ssim_floor``.

Variant builds live in ``.netviz-variants/<name>/`` (re-used by the next ``netviz expected`` when nothing
changed, like any build) and run in parallel, one CPU thread each.
"""

from __future__ import annotations

import concurrent.futures
import copy
import math
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any, Callable

from netviz.errors import NetvizError

VARIANTS: dict[str, dict[str, Any]] = {
    # one thread instead of the machine's default, and chunks of 3 images instead of the automatic size
    "1thread-batch3": {"run.threads": 1, "run.batch_size": 3},
    # the network as published (batch norms not folded), contiguous NCHW tensors, chunks of 8 images
    "1thread-unfolded-nchw-batch8": {"run.threads": 1, "run.fold_batchnorm": False, "run.channels_last": False,
                                     "run.batch_size": 8},
}
VARIATION = "variation.json"
WORK_DIR = ".netviz-variants"


def parse_names(text: str | None) -> list[str]:
    """``--variants`` value: "all" (or None), "none", or comma-separated names of :data:`VARIANTS`."""
    if text is None or text == "all":
        return list(VARIANTS)
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise NetvizError(f"unknown variant '{unknown[0]}'; known: {', '.join(VARIANTS)} (or all, none)")
    return names


def variant_config(config: dict, overrides: dict[str, Any]) -> dict:
    """``config`` with the variant's dotted keys set."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        table, key = dotted.rsplit(".", 1)
        node = out
        for part in table.split("."):
            node = node[part]
        node[key] = value
    return out


def _run_variant(name: str, config: dict, root: str, only: list[str] | None) -> float:
    from netviz.experiments.runner import run_experiments

    started = time.perf_counter()
    run_experiments(config, Path(root), only=only, log=lambda msg: print(f"[{name}] {msg}", flush=True))
    return time.perf_counter() - started


def build_variants(config: dict, work: Path, names: list[str], jobs: int = 0, only: list[str] | None = None,
                   log: Callable[[str], None] = print) -> dict[str, dict]:
    """Build ``config`` (its sections ``only``, default all) under each variant ``name`` in ``work/<name>``
    (``jobs`` processes at once; 0 = one per CPU core). Returns ``{name: {"root", "overrides", "wall_s"}}``."""
    work = Path(work)
    jobs = jobs or max(1, min(len(names), os.cpu_count() or 1))
    out: dict[str, dict] = {}
    if not names:
        return out
    log(f"variants: building {', '.join(names)} ({jobs} at a time) in {work}/")
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {name: pool.submit(_run_variant, name, variant_config(config, VARIANTS[name]), str(work / name), only)
                   for name in names}
        for name, future in futures.items():
            out[name] = {"root": work / name, "overrides": VARIANTS[name], "wall_s": round(future.result(), 1)}
    return out


def _significant(value: float) -> float:
    return float(f"{value:.4g}")


def measure(expected, variants: dict[str, Any], grade_config: dict) -> dict:
    """``variation.json``'s content: per graded item of ``expected`` (a :class:`netviz.grading.Build`), how far
    the variant builds (``{name: Build}``) moved it. Items no variant moved are left out (spread 0)."""
    from netviz import grading

    metrics: dict[str, dict] = {}
    figures: dict[str, list[float]] = {}
    missing: list[str] = []
    for section, stored in expected.sections.items():
        e_leaves = grading.leaves(stored["metrics"])
        v_leaves = {name: grading.leaves(b.sections[section]["metrics"]) if section in b.sections else {}
                    for name, b in variants.items()}
        for key, value in e_leaves.items():
            label = f"{section}.{key}"
            if grading.tolerance_for(label, grade_config).skip:
                continue
            seen = [leaves[key] for leaves in v_leaves.values() if key in leaves]
            if len(seen) < len(v_leaves):
                missing.append(label)
            if grading.is_number(value) and seen and all(grading.is_number(v) for v in seen):
                gaps = [math.inf if math.isnan(v) != math.isnan(value) else 0.0 if math.isnan(v) else abs(v - value)
                        for v in seen]
                if max(gaps) > 0:
                    metrics[label] = {"spread": _significant(max(gaps))}
            else:
                others = []
                for v in seen:
                    if v != value and v not in others:
                        others.append(v)
                if others:
                    metrics[label] = {"values": others}
        for rel in expected.figures(section):
            lows: list[float] | None = None
            for build in variants.values():
                check = grading.compare_figure(section, rel, expected, build, grade_config, [])
                values = [p["ssim"] for p in check.panels] if check.panels else [0.0]
                lows = values if lows is None or len(lows) != len(values) else [min(a, b) for a, b in zip(lows, values)]
            if lows is not None and min(lows) < 1.0:
                figures[rel] = [round(v, 4) for v in lows]
    return {"metrics": metrics, "figures": figures, "missing_in_variants": missing[:50]}


def record(expected_root: Path, built: dict[str, dict], grade_config: dict, measured_s: float) -> dict:
    """The full ``variation.json`` for the build in ``expected_root`` and its variant builds."""
    from netviz import grading

    expected = grading.load_build(expected_root)
    variants = {name: grading.load_build(info["root"], f"variant build {name}") for name, info in built.items()}
    body = measure(expected, variants, grade_config)
    return {
        "format": "netviz variation 1",
        "how": ("the expected configuration built again under each variant (implementation choices that change "
                "results only by float rounding); per graded item, the largest distance of a variant's value from "
                "the expected one (numbers), the other values variants gave (anything else), the lowest panel SSIM "
                "(figures). Grading allows max(floor, spread_factor x spread) and the variants' values."),
        "variants": {name: {"overrides": info["overrides"], "wall_s": info["wall_s"],
                            "device": variants[name].provenance.get("device", {})}
                     for name, info in built.items()},
        "measured_s": round(measured_s, 1),
        "moved": {"metrics": len(body["metrics"]), "figures": len(body["figures"])},
        **body,
    }
