"""Run the experiments, re-running only those whose inputs changed, and write provenance.

For each section the runner computes a key (config slice, code, data, weights, library versions, device; see
:mod:`netviz.cache`), compares it with ``results/<name>/manifest.json`` and prints ``<name>: cached`` or
``<name>: re-running: <why>``. A stored result counts only when its key matches and every file it lists
(metrics, arrays, figures) is on disk with its recorded sha256.

Interruptions (Ctrl-C, ``kill -9``, a crash) never leave a result that a later run would take as complete:
a section is built in staging folders (``results/<name>.tmp-<pid>``, ``figures/<name>.tmp-<pid>``) that are
swapped in when it has finished, figures first and the results folder, whose manifest is the commit mark, last.
The next run removes the leftovers and re-runs what is missing. A lock on ``results/`` keeps two runs apart.

Every section starts from the same seeds (``run.seed``) with deterministic algorithms enabled, so results do
not depend on which other sections ran in the same process; on CPU two runs give identical files.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import warnings
from pathlib import Path
from typing import Callable, Iterator

import torch

from netviz import cache, provenance, store
from netviz.config import DataDir, resolve_data_dir, section_models, section_slice
from netviz.data import ImageSet, data_fingerprint, load_images
from netviz.errors import NetvizError
from netviz.sections import SECTIONS
from netviz.executors import JobRunner, LocalExecutor, make_executor
from netviz.experiments.context import Context, seed_everything
from netviz.jobs import JOBS_DIR, JobStore, section_base
from netviz.models import LoadedModel, load_model, resolve_device
from netviz.weights import resolve_weights

MANIFEST = "manifest.json"


def _module_name(section: str) -> str:
    return f"netviz.experiments.{section}"


class ModelCache:
    """Loads each model once per run (on the run's device); hashes weights files without loading them."""

    def __init__(self, config: dict, device: torch.device, data_dir: DataDir):
        self.config, self.device, self.data_dir = config, device, data_dir
        self._loaded: dict[str, LoadedModel] = {}
        self._weights: dict[str, tuple[str, str]] = {}

    def weights(self, name: str) -> tuple[str, str]:
        """(origin, sha256) of model ``name``'s weights file; the origin names it without machine paths."""
        if name not in self._weights:
            found = resolve_weights(name, self.config["models"]["weights"], self.data_dir)
            self._weights[name] = (found.source, store.hash_file(found.path))
        return self._weights[name]

    def weights_sha(self, name: str) -> str:
        return self.weights(name)[1]

    def __call__(self, name: str) -> LoadedModel:
        """Model ``name`` as ``run.fold_batchnorm`` and ``run.channels_last`` ask (defaults: folded, channels-last
        inputs as the methods pass them; otherwise the published network and/or contiguous NCHW inputs)."""
        if name not in self._loaded:
            run = self.config["run"]
            loaded = load_model(name, self.config["models"]["weights"], self.data_dir, self.device,
                                fold=bool(run.get("fold_batchnorm", True)))
            loaded.model.use_channels_last(bool(run.get("channels_last", True)))
            self._loaded[name] = loaded
        return self._loaded[name]


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """torch's CPU kernels on ``count`` threads while the context lasts (0: leave torch's default)."""
    saved = torch.get_num_threads()
    if count > 0:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


class LazyImages:
    """The run's image set, opened on first use (a run where everything is cached never opens it). A folder's
    images are decoded only when a job or a figure reads them; its files' sha256 come from the fingerprint."""

    def __init__(self, run_config: dict, data_dir: DataDir, file_sha256: dict[str, str] | None = None):
        self.run_config, self.data_dir, self.file_sha256 = run_config, data_dir, file_sha256
        self._images: ImageSet | None = None

    def get(self) -> ImageSet:
        if self._images is None:
            self._images = load_images(self.run_config, self.data_dir, self.file_sha256)
        return self._images


def key_parts(section: str, config: dict, data_sha: str, models: ModelCache, device: torch.device) -> dict:
    """Everything a section's results depend on, as a flat dict (see :mod:`netviz.cache`)."""
    module = _module_name(section)
    parts = {f"config {k}": v for k, v in cache.flatten(section_slice(config, section)).items()}
    parts.update(cache.code_parts(module))
    parts["data"] = data_sha
    for name in section_models(config, section):
        parts[f"weights {name}"] = models.weights_sha(name)
    parts.update({f"version {k}": v for k, v in cache.library_versions(cache.code_dependencies(module)).items()})
    parts["device"] = device.type
    if device.type == "cuda":
        parts["version cuda"] = torch.version.cuda
    return parts


def stored_problems(manifest: dict | None, root: Path) -> list[str]:
    """Why a stored result cannot be used although its key may match: files missing or changed since."""
    if manifest is None:
        return ["no earlier result"]
    if "outputs" not in manifest:
        return ["stored by an older netviz"]
    return store.check_files(manifest["outputs"], root)


DETERMINISM = {"deterministic_algorithms": True, "cudnn_benchmark": False, "seeded_before_each_section": True}


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels while an experiment runs (restored afterwards; see ``DETERMINISM``). Ops that have
    no deterministic CUDA kernel run anyway (``warn_only``; their warnings are silenced): grading tolerances
    cover them."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed by deterministic cuBLAS
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*deterministic.*")
            yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[2], saved[3]


def _selection(only: list[str] | None, force: list[str] | None) -> tuple[list[str], set[str]]:
    for name in [*(only or []), *(force or [])]:
        if name not in SECTIONS and name != "all":
            raise NetvizError(f"unknown section '{name}'; sections: {', '.join(SECTIONS)} (or 'all' for --force)")
    if only and "all" in only:
        raise NetvizError("--only takes section names; leave it out to run every section")
    sections = [s for s in SECTIONS if s in only] if only else list(SECTIONS)
    if force and "all" in force:
        return sections, set(sections)
    outside = [s for s in force or [] if s not in sections]
    if outside:
        raise NetvizError(f"--force {outside[0]}: that section is not selected by --only; add --only {outside[0]}")
    return sections, set(force or [])


def _decide(section: str, config: dict, data: dict, models: ModelCache, device: torch.device, root: Path,
            forced: set[str]) -> tuple[dict, list[str]]:
    """The section's key parts, and why it must run (empty when its stored result can be used)."""
    parts = key_parts(section, config, data["sha256"], models, device)
    old = _read_manifest(root / "results" / section)
    if old is not None and old.get("key") == cache.digest(parts):
        problems = stored_problems(old, root)
        return parts, ["forced"] if section in forced else problems
    return parts, ["forced"] if section in forced else cache.explain_changes(old and old.get("parts"), parts)


def plan(config: dict, root: Path = Path("."), only: list[str] | None = None,
         force: list[str] | None = None) -> dict[str, list[str]]:
    """What a run would do, without running: ``{section: reasons}``, reasons empty for a cached section."""
    root = Path(root)
    sections, forced = _selection(only, force)
    device, data_dir = resolve_device(config["run"]["device"]), resolve_data_dir(config["run"])
    data = data_fingerprint(config["run"], data_dir)
    models = ModelCache(config, device, data_dir)
    return {s: _decide(s, config, data, models, device, root, forced)[1] for s in sections}


def run_experiments(config: dict, root: Path = Path("."), only: list[str] | None = None,
                    force: list[str] | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the sections (all, or ``only``), skipping those whose stored result is current unless in ``force``
    (``"all"`` forces every selected one). Returns the provenance dict also written to
    ``results/provenance.json``."""
    root = Path(root)
    results_root, figures_root = root / "results", root / "figures"
    sections, forced = _selection(only, force)
    with store.exclusive(results_root):
        job_folders = sorted((results_root / JOBS_DIR).glob("*/")) if (results_root / JOBS_DIR).is_dir() else []
        leftovers = [p for parent in (results_root, figures_root, *job_folders) for p in store.clean_stale(parent)]
        if leftovers:
            log(f"removed {len(leftovers)} leftover(s) of an interrupted run: {', '.join(p.name for p in leftovers[:3])}"
                + (" …" if len(leftovers) > 3 else ""))
        device, data_dir = resolve_device(config["run"]["device"]), resolve_data_dir(config["run"])
        data = data_fingerprint(config["run"], data_dir)
        images = LazyImages(config["run"], data_dir, data.get("files"))
        models = ModelCache(config, device, data_dir)
        executor = None
        for section in sections:
            parts, why = _decide(section, config, data, models, device, root, forced)
            if not why:
                log(f"{section}: cached")
                continue
            log(f"{section}: re-running: {'; '.join(why[:4])}{'; …' if len(why) > 4 else ''}")
            if executor is None:
                executor = make_executor(config, _executor_models(config, device, models), device)
            with deterministic(), cpu_threads(int(config["run"].get("threads", 0))):
                _run_one(section, config, device, images.get(), models, parts, root, log, executor)
        if executor is not None:
            executor.close()  # lets go of the models it sent to Ray
        record = _provenance(config, root, data, models, device, DETERMINISM, log)
        path = results_root / "provenance.json"
        try:
            same = path.is_file() and store.read_json(path) == record
        except ValueError:  # damaged (it is written atomically, so by hand or by a bad copy): it is derived, rewrite it
            log(f"{path} was damaged; writing it again")
            same = False
        if not same:
            store.write_json(path, record)
    return record


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    try:
        return store.read_json(path) if path.exists() else None
    except ValueError:  # unreadable: treat as absent (it was written atomically, so this means hand edits)
        return None


def _provenance(config, root, data, models, device, determinism, log) -> dict:
    """Provenance from the stored manifests of every section (run now or earlier)."""
    experiments, weights, modules = {}, {}, set()
    for section in SECTIONS:
        manifest = _read_manifest(root / "results" / section)
        if manifest is None or "run" not in manifest:
            continue
        modules.update(cache.code_dependencies(_module_name(section)))
        try:
            current = cache.explain_changes(manifest.get("parts"), key_parts(section, config, data["sha256"], models, device))
        except NetvizError as err:  # e.g. weights of a section not run now cannot be found here
            current = [str(err)]
        experiments[section] = {**manifest["run"], "key": manifest["key"][:16], "current": not current,
                                **({"differs": current} if current else {})}
        for part, sha in manifest.get("parts", {}).items():
            if part.startswith("weights "):
                name = part.split(" ", 1)[1]
                entry = weights.setdefault(name, {"source": None, "sha256": sha, "sections": []})
                entry["sections"].append(section)
                try:
                    source, now = models.weights(name)
                    entry["source"] = source
                except NetvizError:
                    now = None
                if now != sha:
                    entry["sha256_now"] = now
    stale = [s for s, e in experiments.items() if not e["current"]]
    if stale:
        log(f"note: stored results of {', '.join(stale)} were made with another config or code "
            f"({experiments[stale[0]]['differs'][0]}); run without --only to bring them up to date")
    return provenance.collect(config, data, dict(sorted(weights.items())), device, experiments, sorted(modules),
                              determinism)


def _executor_models(config: dict, device: torch.device, models: ModelCache) -> ModelCache:
    """The models an executor sends its jobs: the run's (local), or loaded on CPU to be shipped to Ray workers."""
    if config["run"].get("executor", "local") == "ray" and device.type != "cpu":
        return ModelCache(config, torch.device("cpu"), models.data_dir)
    return models


def _run_one(section: str, config: dict, device: torch.device, images: ImageSet, models: ModelCache, parts: dict,
             root: Path, log: Callable[[str], None], executor=None) -> dict:
    module = importlib.import_module(_module_name(section))
    executor = executor or LocalExecutor(models, device)
    weights = {name: models.weights_sha(name) for name in section_models(config, section)}
    job_store = JobStore(root / "results", section)
    base = section_base(section, executor.device_type, weights)
    # how the networks are run changes their rounding: a job made one way is not reused the other way
    base["model form"] = {k: bool(config["run"].get(k, True)) for k in ("fold_batchnorm", "channels_last")}
    job_runner = JobRunner(section, executor, job_store, base, images, log=lambda msg: log(f"  {msg}"))
    # figures first, results last: the manifest in results lands last, and only then is the result complete
    with store.staged(root / "figures" / section, root / "results" / section) as (figures_stage, results_stage):
        ctx = Context(section, config, device, images, models, results_stage, figures_stage,
                      figure_prefix=f"figures/{section}", log=lambda msg: log(f"  {section}: {msg}"),
                      run_jobs=job_runner)
        seed_everything(ctx.seed)
        started = time.perf_counter()
        metrics = module.run(ctx)
        wall = time.perf_counter() - started
        git = provenance.git_state()
        run_info = {"wall_time_s": round(wall, 2), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "device": device.type, "seed": ctx.seed, "git_commit": git["commit"], "git_dirty": git["dirty"],
                    "executor": executor.name, "jobs": dict(job_runner.counts)}
        store.write_json(results_stage / "metrics.json", metrics)
        outputs = {f"results/{section}/{rel}": sha for rel, sha in store.hash_tree(results_stage, results_stage).items()}
        outputs.update({f"figures/{section}/{rel}": sha for rel, sha in store.hash_tree(figures_stage, figures_stage).items()})
        store.write_json(results_stage / MANIFEST, {
            "key": cache.digest(parts), "parts": parts, "figures": ctx.figures, "panels": ctx.panels,
            "outputs": outputs, "run": run_info,
        })
    if job_runner.used:  # results of jobs this configuration no longer has
        job_store.prune(job_runner.used)
    log(f"  {section}: done in {wall:.1f} s")
    return run_info
