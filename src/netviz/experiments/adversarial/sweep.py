"""The sweep over the budget ε: its jobs, its stored images, and the success rate against ε."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from netviz import metrics
from netviz.experiments.adversarial.state import Run
from netviz.jobs import Job
from netviz.tables import rate


def sweep_images(run: Run, name: str) -> list[int]:
    """The sweep's images for model ``name``: those of ``sweep_images`` (every image when empty) it gets right."""
    return [i for i in (run.settings.sweep_images or range(len(run.y))) if run.correct[name][i]]


def sweep_plan(run: Run) -> dict:
    """The sweep's jobs: per model and attack (group ``("sweep", model, attack)``), a job per shard of
    :func:`sweep_images`, each over the attack's whole ε grid."""
    s = run.settings
    return {("sweep", name, a): [run.attack_job("sweep", name, shard, attack=a, eps_grid=s.sweep_grid(a),
                                                **s.attack_params(a, s.steps))
                                 for shard in run.ctx.shards(sweep_images(run, name))]
            for name in run.names for a in s.attacks}


def sweeps(run: Run, planned: dict, done: dict) -> dict:
    """:func:`sweep` of every model, from the executed :func:`sweep_plan` (``planned``) and its results (``done``)."""
    out = {}
    for m in run.names:
        out[m] = sweep(run, m, planned, done)
        run.ctx.log(f"{m}: sweep " + ", ".join(f"{a} {[r['success'] for r in v['rows']]}" for a, v in out[m]["attacks"].items()))
    return out


def sweep(run: Run, name: str, planned: dict, done: dict) -> dict:
    """The smallest budget of the grid at which each attack fools ``name`` with a storable image, for each of
    :func:`sweep_images`, and the success rate against ε that follows.

    Budgets are tried in increasing order, each image only until it is fooled, so the success rate at ε is the
    share of images the attack fools when run at some budget ≤ ε of the grid (the usual robust-accuracy reading:
    a perturbation found within a small budget is also within a larger one). An image stops at the first step
    where its 8-bit rounding is misclassified; it is then stored as a PNG, read back, and counts only if the
    file still fools the model (checked in the job on the same 8-bit values). The sizes recorded are those of
    the stored image, which can exceed the float budget (a change of half a level rounds to a full level).
    ``planned``, ``done``: the jobs of :func:`sweep_plan` and their results, by group.
    """
    s, chosen = run.settings, sweep_images(run, name)
    out = {"n": len(chosen), "attacks": {}}
    for attack_name in s.attacks:
        grid = s.sweep_grid(attack_name)
        key = ("sweep", name, attack_name)
        found, first = sweep_found(run, name, attack_name, grid, planned[key], done[key])
        rows = sweep_rows(grid, chosen, found, first)
        minimal = [found[i]["eps"] for i in chosen if i in found]
        out["attacks"][attack_name] = {
            "spec": asdict(s.attack(attack_name, grid[-1], s.steps, stop_on_success=True)),
            "norm": "l2" if attack_name == "pgd_l2" else "linf", "rows": rows,
            "per_image": [found.get(i, {"index": i, "eps": None}) for i in chosen],
            "median_min_eps": float(np.median(minimal)) if len(minimal) == len(chosen) and minimal else None,
            "max_linf": max((f["linf"] for f in found.values()), default=None),
        }
    return out


def sweep_rows(grid: list[float], chosen: list[int], found: dict, first: dict) -> list[dict]:
    """Per budget of the grid (position j): how many images were attacked there (those not fooled at a smaller
    one), the share fooled at some budget up to it, and the largest stored L∞ among images first fooled there."""
    rows = []
    for j, eps in enumerate(grid):
        rows.append({"eps": eps, "attacked": sum(first.get(i, j) >= j for i in chosen),
                     "success": rate(i in first and first[i] <= j for i in chosen),
                     "max_linf_new": max((found[i]["linf"] for i in chosen if first.get(i) == j), default=None)})
    return rows


def sweep_found(run: Run, name: str, attack_name: str, grid: list[float], jobs: list[Job], results: list[dict]):
    """Store every image a sweep job stopped on as a PNG; returns the images the files fool ({index: record})
    and the grid position each was first fooled at."""
    found, first = {}, {}
    for job, result in zip(jobs, results):
        for m, (position, j) in enumerate(zip(result["position"], result["eps_index"])):
            i, eps = job.items[int(position)], grid[int(j)]
            files, stored = run.store(f"sweep_{attack_name}_{name}_eps{eps:g}", [i], result["images"][m : m + 1])
            if int(result["pred"][m]) != int(run.y[i]):
                found[i] = {"index": i, "eps": eps, "steps": int(result["steps"][m]), "file": files[0],
                            "linf": metrics.linf_levels(run.x8[i], stored[0]),
                            "l2": round(metrics.l2_levels(run.x8[i], stored[0]), 2)}
                first[i] = int(j)
    return found, first
