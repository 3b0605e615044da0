"""Where jobs run: in this process (``run.executor = "local"``) or on a Ray cluster (``"ray"``).

An executor takes a list of :class:`~netviz.jobs.Job` and yields ``(position, result)`` as jobs finish; it never
writes files. The driver (:class:`JobRunner`) looks every job up in the job store first, sends only the missing
ones, stores each result as it arrives (so a killed run resumes with the jobs not yet done), and returns the
results in job order.

On Ray, an actor per model and worker keeps that network loaded: the driver loads each model once (on CPU),
puts it in Ray's object store and starts ``run.ray_workers`` actors for it (default: as many as the cluster's
CPUs allow at ``run.cpus_per_job`` each), each asking for ``run.gpus_per_job`` GPUs (fractions allowed). The
driver reads each job's images when it submits the job, at most two jobs per actor ahead, so an image set is
never all in memory and workers need no shared filesystem. Actors are restarted and their tasks retried when a
worker process dies (``max_restarts``, ``max_task_retries``): a job is a pure function of its spec and inputs,
so a retried job gives the same result. Scheduling, queues and retries are Ray's (``ray.util.ActorPool``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from netviz.errors import NetvizError
from netviz.jobs import Batch, Job, JobStore, cached_count_message, decode, encode, job_key

EXECUTORS = ("local", "ray")
RETRIES = 3  # restarts of a dead actor, and retries of the task it was running


def compute(job: Job, model, batch: Batch) -> dict:
    """Run one job: its section's ``compute`` with seeds set from the job and deterministic kernels."""
    from netviz.experiments.context import seed_everything
    from netviz.experiments.runner import deterministic

    module = importlib.import_module(f"netviz.experiments.{job.section}")
    seed_everything(int(job.get("seed", 0)))
    with deterministic():
        return module.compute(job, model, batch)


def host_batch(job: Job, images) -> tuple[np.ndarray | None, np.ndarray]:
    """A job's images (K×3×224×224 float32, read now, on CPU) and labels, as numpy arrays to send."""
    items = list(job.items)
    pixels = images.pixels(items).numpy() if job.pixels and items else None
    labels = images.labels[items].numpy() if items else np.zeros(0, np.int64)
    return pixels, labels


def to_batch(job: Job, pixels: np.ndarray | None, labels: np.ndarray, device: torch.device) -> Batch:
    return Batch(None if pixels is None else torch.from_numpy(pixels).to(device),
                 torch.from_numpy(labels), job.inputs or {}, device)


class LocalExecutor:
    """Runs jobs one after another in this process, on the run's device, with its models (loaded once)."""

    name = "local"

    def __init__(self, models: Callable[[str], object], device: torch.device):
        self.models, self.device = models, device
        self.device_type = device.type

    def run(self, jobs: Sequence[Job], images) -> Iterator[tuple[int, dict]]:
        for position, job in enumerate(jobs):
            model = self.models(job.model).model if job.model else None
            pixels, labels = host_batch(job, images)
            yield position, compute(job, model, to_batch(job, pixels, labels, self.device))

    def close(self) -> None:
        pass


class _JobActor:
    """A Ray actor: one network, loaded once, running jobs on it (the class is made remote on first use)."""

    def __init__(self, model_ref: list, device: str, threads: int):
        import ray

        if threads > 0:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        # the reference arrives wrapped in a list, so Ray passes it as is and the actor fetches the model itself
        # (the driver holds the reference for the whole run: a restarted actor fetches it again)
        loaded = ray.get(model_ref[0])
        self.model = loaded.model.to_device(self.device) if loaded is not None else None

    def run(self, position: int, job: Job, pixels, labels) -> tuple[int, dict]:
        return position, compute(job, self.model, to_batch(job, pixels, labels, self.device))

    def run_timed(self, position: int, job: Job, pixels, labels) -> tuple[int, dict, float]:
        """:meth:`run`, and the seconds the job took in this process (for the bench's per-job overhead)."""
        import time

        started = time.perf_counter()
        position, result = self.run(position, job, pixels, labels)
        return position, result, time.perf_counter() - started

    def pid(self) -> int:
        import os

        return os.getpid()


def runtime_env(address: str = "") -> dict:
    """Ray's runtime environment for netviz's workers: on this machine, the driver's netviz on their path (the
    same checkout, not another installed copy); on a cluster, the driver's netviz package shipped to them."""
    import os

    import netviz

    package = os.path.dirname(netviz.__path__[0])
    if address:
        return {"py_modules": [netviz.__path__[0]]}
    path = os.pathsep.join(p for p in (package, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path}}


def start_ray(address: str = "", num_cpus: int | None = None) -> bool:
    """Connect this process to Ray unless it already is: a new local instance (``address`` empty; ``num_cpus``
    CPUs, default all) or the cluster at ``address``. True when this call started or joined it."""
    import ray

    if ray.is_initialized():
        return False
    options: dict = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False,
                     "runtime_env": runtime_env(address)}
    if address:
        options["address"] = address
    elif num_cpus:
        options["num_cpus"] = num_cpus
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise NetvizError(f"cannot reach the Ray cluster at run.ray_address = {address!r} ({err}); start it "
                          "(ray start --head) or leave ray_address empty for a local instance") from None
    return True


class RayExecutor:
    """Runs jobs on Ray: a local instance (``run.ray_address = ""``) or a cluster (``"auto"``, ``"ray://host:10001"``)."""

    name = "ray"

    def __init__(self, run_config: dict, models: Callable[[str], object]):
        try:
            import ray
        except ImportError:
            raise NetvizError("run.executor = \"ray\" needs Ray: pip install 'netviz[ray]' (or pip install ray), "
                              "or use the local executor") from None
        self.ray = ray
        start_ray(run_config.get("ray_address", ""))
        self.models = models
        self.cpus = float(run_config.get("cpus_per_job", 1.0))
        self.gpus = float(run_config.get("gpus_per_job", 0.0))
        self.device_type = "cuda" if self.gpus > 0 else "cpu"
        threads = int(run_config.get("threads", 0))
        self.threads = threads if threads > 0 else max(1, int(self.cpus))
        available = float(ray.cluster_resources().get("CPU", 1.0))
        self.workers = int(run_config.get("ray_workers", 0)) or max(1, int(available // max(self.cpus, 1e-6)))
        self._refs: dict[str | None, object] = {}
        self._actor_class = ray.remote(_JobActor)
        self.pools: dict[str | None, list] = {}  # the actors of the model being run (tests kill one)

    def _model_ref(self, name: str | None):
        if name not in self._refs:
            loaded = self.models(name) if name else None
            self._refs[name] = self.ray.put(loaded)
        return self._refs[name]

    def _actors(self, name: str | None, count: int) -> list:
        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "max_restarts": RETRIES, "max_task_retries": RETRIES}
        return [self._actor_class.options(**options).remote([self._model_ref(name)], self.device_type, self.threads)
                for _ in range(count)]

    def run(self, jobs: Sequence[Job], images) -> Iterator[tuple[int, dict]]:
        """Jobs grouped by model, each group on its own actors (started for it, ended after it, so that the
        cluster's CPUs go to one model's actors at a time); results as they finish."""
        from ray.util import ActorPool

        by_model: dict[str | None, list[int]] = {}
        for position, job in enumerate(jobs):
            by_model.setdefault(job.model, []).append(position)
        for name, positions in by_model.items():
            actors = self._actors(name, min(self.workers, len(positions)))
            self.pools[name] = actors
            pool = ActorPool(actors)
            pending = iter(positions)
            in_flight = 0
            try:
                while True:
                    while in_flight < 2 * len(actors):  # read images only a little ahead of the workers
                        position = next(pending, None)
                        if position is None:
                            break
                        pixels, labels = host_batch(jobs[position], images)
                        pool.submit(lambda actor, v: actor.run.remote(*v), (position, jobs[position], pixels, labels))
                        in_flight += 1
                    if in_flight == 0:
                        break
                    yield pool.get_next_unordered()
                    in_flight -= 1
            finally:
                for actor in actors:
                    self.ray.kill(actor)
                self.pools.pop(name, None)

    def close(self) -> None:
        self._refs.clear()


def make_executor(config: dict, models: Callable[[str], object], device: torch.device):
    """The executor ``run.executor`` names (models: name -> LoadedModel, loaded on ``device`` for local runs)."""
    kind = config["run"].get("executor", "local")
    if kind == "local":
        return LocalExecutor(models, device)
    if kind == "ray":
        return RayExecutor(config["run"], models)
    raise NetvizError(f"run.executor = {kind!r} is not known; use one of {', '.join(EXECUTORS)}")


class JobRunner:
    """A section's jobs through the job store and an executor: cached results are read, missing jobs are run
    and stored as each finishes, and results come back in job order (as stored, so a resumed run and an
    uninterrupted one see the same values)."""

    def __init__(self, section: str, executor, store: JobStore, base: dict, images, log: Callable[[str], None],
                 progress: bool | None = None):
        self.section, self.executor, self.store, self.base = section, executor, store, base
        self.images, self.log, self.progress = images, log, progress
        self.used: set[str] = set()
        self.counts = {"jobs": 0, "cached": 0}

    def key(self, job: Job) -> str:
        hashes = [self.images.item_sha256(i) for i in job.items] if job.pixels else []
        return job_key(job, self.base, hashes)

    def __call__(self, jobs: Sequence[Job]) -> list[dict]:
        jobs = list(jobs)
        keys = [self.key(job) for job in jobs]
        results: list[dict | None] = [self.store.get(k) for k in keys]
        missing = [i for i, r in enumerate(results) if r is None]
        self.used.update(keys)
        self.counts["jobs"] += len(jobs)
        self.counts["cached"] += len(jobs) - len(missing)
        if jobs:
            self.log(cached_count_message(self.section, len(jobs) - len(missing), len(jobs), (j.kind for j in jobs)))
        if missing:
            from tqdm import tqdm

            bar = tqdm(total=len(missing), desc=f"{self.section} jobs", unit="job", file=sys.stderr, leave=False,
                       disable=self.progress is False or (self.progress is None and not sys.stderr.isatty()))
            try:
                for position, result in self.executor.run([jobs[i] for i in missing], self.images):
                    index = missing[position]
                    data = encode(result)
                    self.store.put(keys[index], data)
                    results[index] = decode(data)
                    bar.update(1)
            finally:
                bar.close()
        return results  # type: ignore[return-value]
