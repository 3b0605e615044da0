"""A section's work as jobs: small hashable specs, run by an executor (:mod:`netviz.executors`), cached by content.

A :class:`Job` names what to compute, never how to store it: its section and kind, the model that runs it, the
images it reads (positions in the run's image set), and every setting its computation reads (``params``).
Running a job is a call of the section module's ``compute(job, model, batch) -> dict`` with the job's images
already in memory (:class:`Batch`); it touches no files and returns arrays (numpy) and JSON values.
So the same job gives the same result in the driver process, in the benchmark and on a Ray worker.

The job's cache key (:func:`job_key`) covers exactly what that result depends on: the job spec (so only the
config keys the job reads), the code it runs, its model's weights, the content of its own images and inputs,
library versions and the device type. A key that only changes how results are scored (the pointing game's
tolerance, figures) leaves every job cached; changing an image recomputes the jobs that read it.

:class:`JobStore` keeps each finished job's result in ``results/.jobs/<section>/<key>.npz`` (written atomically
by the driver as each job finishes), which is what lets a killed run resume with the jobs not yet done.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from netviz import cache, store

JOBS_DIR = ".jobs"
_JSON = "__json__"


@dataclass(frozen=True)
class Job:
    """One unit of a section's work.

    section, kind: which section's ``compute`` runs it and what part of the work it is ("gradient", "attack", ...).
    model: the network it runs (None for work without one). items: positions in the run's image set of the
    images it reads, in order. params: every setting the computation reads, as sorted (name, value) pairs of
    JSON values. pixels: whether the executor must load the items' pixels (False when the job reads ``inputs``
    only). inputs: arrays made by earlier jobs (e.g. adversarial images to judge); not part of the spec's
    equality, but part of its cache key (by content).
    """

    section: str
    kind: str
    model: str | None = None
    items: tuple[int, ...] = ()
    params: tuple[tuple[str, Any], ...] = ()
    pixels: bool = True
    inputs: Mapping[str, np.ndarray] | None = field(default=None, compare=False, hash=False, repr=False)

    @classmethod
    def make(cls, section: str, kind: str, model: str | None = None, items: Iterable[int] = (), *,
             pixels: bool = True, inputs: Mapping[str, np.ndarray] | None = None, **params: Any) -> "Job":
        """A job with ``params`` given as keywords (lists become tuples, so the job stays hashable)."""
        frozen = tuple(sorted((k, _freeze(v)) for k, v in params.items()))
        return cls(section, kind, model, tuple(int(i) for i in items), frozen, pixels, inputs)

    def __getitem__(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(f"job {self.label()} has no setting '{name}'")

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def spec(self) -> dict:
        """The job as JSON (what its cache key and logs use); inputs are named by their content hash."""
        return {"section": self.section, "kind": self.kind, "model": self.model, "items": list(self.items),
                "params": {k: v for k, v in self.params}, "pixels": self.pixels,
                "inputs": inputs_digest(self.inputs) if self.inputs else None}

    def label(self) -> str:
        """A short name for logs: ``saliency/gradient squeezenet1_1 images 0-24``."""
        items = ""
        if self.items:
            first, last = self.items[0], self.items[-1]
            items = f" image {first}" if len(self.items) == 1 else f" images {first}-{last} ({len(self.items)})"
        return f"{self.section}/{self.kind}{' ' + self.model if self.model else ''}{items}"


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


@dataclass
class Batch:
    """What a job computes on. pixels: K×3×224×224 float32 in [0, 1] (the job's items, on the worker's device;
    None when the job reads no pixels). labels: K int64 class indices of its items. inputs: the job's arrays."""

    pixels: torch.Tensor | None
    labels: torch.Tensor
    inputs: Mapping[str, np.ndarray]
    device: torch.device


def dispatch(job: Job, handlers: Mapping[str, Any], model, batch: Batch) -> dict:
    """Run ``job`` with the handler of its kind (a section's ``compute`` when it has several kinds of job)."""
    handler = handlers.get(job.kind)
    if handler is None:
        raise ValueError(f"{job.section} has no job kind '{job.kind}'; known: {', '.join(handlers)}")
    return handler(job, model, batch)


def shards(count: int, size: int) -> list[tuple[int, ...]]:
    """Positions 0..count-1 in consecutive shards of at most ``size`` (0 = one shard of everything)."""
    size = count if size <= 0 else size
    return [tuple(range(start, min(start + size, count))) for start in range(0, count, max(size, 1))]


def inputs_digest(inputs: Mapping[str, np.ndarray] | None) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a job's input arrays."""
    digest = hashlib.sha256()
    for name in sorted(inputs or {}):
        array = np.ascontiguousarray(inputs[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def job_key(job: Job, base: Mapping[str, Any], item_hashes: Iterable[str]) -> str:
    """The content key of ``job``'s result: the job spec, ``base`` (code, versions, device: see
    :func:`section_base`), its model's weights sha256 (in ``base`` as ``weights <model>``) and its images'
    hashes."""
    parts = {"job": job.spec(), "items": list(item_hashes) if job.pixels else [],
             "weights": base.get(f"weights {job.model}") if job.model else None,
             **{k: v for k, v in base.items() if not k.startswith("weights ")}}
    return cache.digest(parts)


def section_base(section: str, device_type: str, weights: Mapping[str, str]) -> dict:
    """What every job of ``section`` depends on besides its spec: the code of the section module and of the
    modules its jobs run (its ``JOB_CODE``, transitively), the libraries they import, the device type and each
    model's weights (``weights <name>``)."""
    module = f"netviz.experiments.{section}"
    job_modules = _job_modules(section)
    parts = {f"code {module}": cache.source_hash(module)}
    for name in job_modules:
        parts.update(cache.code_parts(name))
    deps = sorted({d for name in job_modules for d in cache.code_dependencies(name)} | {module})
    parts.update({f"version {k}": v for k, v in cache.library_versions(deps).items()})
    parts["device"] = device_type
    parts.update({f"weights {name}": sha for name, sha in weights.items()})
    return parts


def _job_modules(section: str) -> list[str]:
    from netviz.sections import REGISTRY

    entry = REGISTRY.get(section)  # a plug-in section without an entry: its own module only
    return list(entry.job_code) if entry else []


# --- results on disk -------------------------------------------------------------------------------------------

def encode(result: Mapping[str, Any]) -> bytes:
    """A job result as npz bytes: numpy arrays and tensors as arrays, everything else as one JSON document
    (no pickle, so reading a result never runs code)."""
    arrays, other = {}, {}
    for name, value in result.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            arrays[name] = value
        else:
            other[name] = value
    buffer = io.BytesIO()
    np.savez(buffer, **arrays, **{_JSON: np.frombuffer(json.dumps(other, default=_json_default).encode(), np.uint8)})
    return buffer.getvalue()


def decode(data: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        out = {name: npz[name] for name in npz.files if name != _JSON}
        out.update(json.loads(npz[_JSON].tobytes().decode()))
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"a job result holds a {type(value).__name__}, which is neither an array nor JSON")


class JobStore:
    """Finished jobs' results of one section, by key, in ``<results>/.jobs/<section>/``."""

    def __init__(self, results_root: Path, section: str):
        self.folder = Path(results_root) / JOBS_DIR / section

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.npz"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result, or None when there is none or it cannot be read (then it is computed again)."""
        path = self.path(key)
        try:
            return decode(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, EOFError):  # damaged by hand or a bad copy: written atomically
            return None

    def put(self, key: str, data: bytes) -> None:
        """Store a result already :func:`encode`-d, atomically."""
        store.write_bytes_atomic(self.path(key), data)

    def prune(self, keep: set[str]) -> int:
        """Remove results whose key is not in ``keep`` (after the section has finished); returns how many."""
        removed = 0
        if self.folder.is_dir():
            for path in self.folder.glob("*.npz"):
                if path.stem not in keep:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


def cached_count_message(section: str, cached: int, total: int, kinds: Iterable[str] = ()) -> str:
    """``saliency_methods: 312 of 400 jobs cached, 88 to run (maps)``: the kinds of job in parentheses."""
    what = f" ({', '.join(dict.fromkeys(kinds))})" if kinds else ""
    return f"{section}: {cached} of {total} job{'s' if total != 1 else ''} cached, {total - cached} to run{what}"
