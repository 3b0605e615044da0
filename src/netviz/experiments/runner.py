"""Run the experiments, re-running only those whose inputs changed, and write provenance.

For each section the runner computes a key (config slice, code, data, weights, versions, device; see
:mod:`netviz.cache`), compares it with ``results/<name>/manifest.json`` and prints ``cached`` or
``re-running: <why>``. New results are built in staging folders and swapped in at the end, so an
interrupted or failed run leaves the earlier results as they were.
"""

from __future__ import annotations

import importlib
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable

import torch

from netviz import cache, store
from netviz.config import section_models, section_slice
from netviz.data import ImageSet, load_images
from netviz.errors import NetvizError
from netviz.experiments import SECTIONS
from netviz.experiments.context import Context, seed_everything
from netviz.models import LoadedModel, load_model, resolve_device, resolve_weights
from netviz.data import sha256_file


def _module_name(section: str) -> str:
    return f"netviz.experiments.{section}"


class ModelCache:
    """Loads each model once per run (on the run's device)."""

    def __init__(self, config: dict, device: torch.device):
        self.config, self.device = config, device
        self._loaded: dict[str, LoadedModel] = {}
        self._weights_sha: dict[str, str] = {}

    def weights_sha(self, name: str) -> str:
        if name not in self._weights_sha:
            path = resolve_weights(name, self.config["models"]["weights"], self.config["run"]["data_dir"])
            self._weights_sha[name] = sha256_file(path)
        return self._weights_sha[name]

    def __call__(self, name: str) -> LoadedModel:
        if name not in self._loaded:
            self._loaded[name] = load_model(name, self.config["models"]["weights"], self.config["run"]["data_dir"], self.device)
        return self._loaded[name]


def key_parts(section: str, config: dict, images: ImageSet, models: ModelCache, device: torch.device) -> dict:
    """Everything a section's results depend on, as a flat dict (see :mod:`netviz.cache`)."""
    parts = {f"config {k}": v for k, v in cache.flatten(section_slice(config, section)).items()}
    parts.update(cache.code_parts(_module_name(section)))
    parts["data"] = images.sha256
    for name in section_models(config, section):
        parts[f"weights {name}"] = models.weights_sha(name)
    parts.update({f"version {k}": v for k, v in cache.library_versions().items()})
    parts["device"] = device.type
    return parts


def git_state(root: Path) -> dict:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or "unknown", "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def run_experiments(config: dict, root: Path = Path("."), only: list[str] | None = None,
                    force: list[str] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the sections (all, or ``only``), skipping those whose key is unchanged unless in ``force``
    (``"all"`` forces every one). Returns the provenance dict also written to ``results/provenance.json``."""
    root = Path(root)
    results_root, figures_root = root / "results", root / "figures"
    sections = list(only or SECTIONS)
    unknown = [s for s in [*sections, *(force or [])] if s not in SECTIONS and s != "all"]
    if unknown:
        raise NetvizError(f"unknown section '{unknown[0]}'; sections: {', '.join(SECTIONS)}")
    forced = set(SECTIONS) if force and "all" in force else set(force or [])
    for parent in (results_root, figures_root):
        store.clean_stale(parent)

    device = resolve_device(config["run"]["device"])
    images = load_images(config["run"])
    models = ModelCache(config, device)
    provenance_path = results_root / "provenance.json"
    previous = store.read_json(provenance_path) if provenance_path.exists() else {}
    experiments = dict(previous.get("experiments", {}))

    for section in sections:
        parts = key_parts(section, config, images, models, device)
        manifest_path = results_root / section / "manifest.json"
        old = store.read_json(manifest_path) if manifest_path.exists() else None
        if old is not None and old.get("key") == cache.digest(parts) and section not in forced:
            log(f"{section}: cached")
            experiments[section] = old["run"]
            continue
        why = ["forced"] if section in forced else cache.explain_changes(old and old.get("parts"), parts)
        log(f"{section}: re-running: {'; '.join(why)}")
        experiments[section] = _run_one(section, config, device, images, models, parts, results_root, figures_root, log)

    provenance = {
        "git": git_state(root),
        "config_hash": cache.digest(config)[:16],
        "config": config,
        "data": {"source": images.source, "sha256": images.sha256, "images": len(images)},
        "weights": {
            name: {"path": models(name).weights_path, "sha256": models.weights_sha(name)}
            for name in sorted({n for s in SECTIONS if s in config for n in section_models(config, s)})
            if name in models._loaded
        },
        "versions": {**cache.library_versions(), "python": platform.python_version(),
                     "cuda": torch.version.cuda if device.type == "cuda" else None},
        "device": {"type": device.type, "name": device_name(device)},
        "seed": config["run"]["seed"],
        "experiments": {s: experiments[s] for s in SECTIONS if s in experiments},
    }
    store.write_json(provenance_path, provenance)
    return provenance


def _run_one(section, config, device, images, models, parts, results_root, figures_root, log) -> dict:
    module = importlib.import_module(_module_name(section))
    results_final, figures_final = results_root / section, figures_root / section
    results_stage, figures_stage = store.staging_dir(results_final), store.staging_dir(figures_final)
    ctx = Context(section, config, device, images, models, results_stage, figures_stage,
                  figure_prefix=f"figures/{section}", log=lambda msg: log(f"  {section}: {msg}"))
    seed_everything(ctx.seed)
    started = time.perf_counter()
    try:
        metrics = module.run(ctx)
        wall = time.perf_counter() - started
        run_info = {"wall_time_s": round(wall, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "device": device.type, "seed": ctx.seed}
        store.write_json(results_stage / "metrics.json", metrics)
        store.write_json(results_stage / "manifest.json", {
            "key": cache.digest(parts), "parts": parts, "figures": ctx.figures, "run": run_info,
        })
    except BaseException:
        import shutil

        shutil.rmtree(results_stage, ignore_errors=True)
        shutil.rmtree(figures_stage, ignore_errors=True)
        raise
    store.swap_in(figures_stage, figures_final)
    store.swap_in(results_stage, results_final)  # the manifest lands last: only now is the result complete
    log(f"  {section}: done in {wall:.1f} s")
    return run_info
