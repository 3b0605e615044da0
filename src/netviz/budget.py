"""Memory budgets and chunk sizes: how many images fit in one forward + backward pass within the run's budget.

The one place that turns the run config into a budget in bytes (:func:`budget_bytes`) and a number of images
per pass (:func:`batch_size_for`); the experiments' context and the benchmark both call these. Not a method (it
reads the config): the methods only take the resulting ``batch_size``, and loop over chunks of it with
:func:`chunked`, the one chunk loop of netviz (also :meth:`netviz.models.Classifier.predict`).

Every method takes a ``batch_size`` (images per pass; rows are independent, so the results do not depend on
it). ``batch_size = 0`` in the config means "automatic": :func:`resolve_batch_size` picks the largest chunk that
keeps the whole process within the budget on its device (``[run] memory_budget_gb``, 4 GB, on CPU: the
resident set, libraries and weights included; ``gpu_memory_budget_gb``, 8 GB, on CUDA: what torch holds there).

The per-image cost comes from one probe pass of a single blank image through the model
(:func:`probe_footprint`): the bytes autograd keeps for the backward pass (counted exactly, by storage, with
``torch.autograd.graph.saved_tensors_hooks``), plus twice the largest of them for the transient activation and
its gradient during backward, times :data:`SAFETY`. The probe is hand-written because neither Captum nor
torchattacks sizes chunks (Captum's ``internal_batch_size`` is a number the user must pick); it is cached per
model, image shape, dtype and device.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import asdict, dataclass
from itertools import chain
from typing import Any, Callable

import torch
from torch import nn

GB = 1e9  # budgets are given in decimal gigabytes, as memory is sold and as `free -g` does not (it uses GiB)

# Allocator slack and transient buffers (oneDNN reorders, cuDNN workspaces) not seen by the probe. Calibrated on
# VGG16, SqueezeNet and EfficientNet-Lite0 at 224 px on CPU: measured peak / estimate stayed below 1.2 (see the
# benchmark's memory table), so 1.25 keeps the measured peak under the budget.
SAFETY = 1.25

# Resident memory of a netviz process before any pass on CPU: python, torch, torchvision, timm, matplotlib and
# the course images (measured: 0.97-1.02 GB on Linux with torch 2.x).
CPU_RUNTIME_BYTES = int(1.0 * GB)


@dataclass(frozen=True)
class Footprint:
    """Memory of a gradient pass through a model, in bytes.

    saved: what autograd keeps for backward, per image (activations, the input itself).
    largest: the largest single saved tensor per image (lives twice during backward: value and gradient).
    fixed: parameters and buffers, paid once whatever the batch size.
    """

    saved: int
    largest: int
    fixed: int

    @property
    def per_image(self) -> int:
        """Estimated bytes per image of one forward + backward pass (before :data:`SAFETY`)."""
        return self.saved + 2 * self.largest

    def estimate(self, batch_size: int) -> int:
        """Bytes a pass of ``batch_size`` images is expected to add, with :data:`SAFETY` (weights excluded)."""
        return math.ceil(SAFETY * self.per_image * batch_size)

    def as_dict(self) -> dict:
        return {**asdict(self), "per_image": self.per_image}


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _storage_key(t: torch.Tensor) -> tuple[str, int]:
    return (t.device.type, t.untyped_storage().data_ptr())


def _model_device(model: nn.Module) -> torch.device:
    first = next(chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def probe_footprint(model: nn.Module, image_shape: tuple[int, int, int] = (3, 224, 224),
                    device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> Footprint:
    """Measure :class:`Footprint` of ``model`` for images of ``image_shape`` (C×H×W, pixel space), with one
    forward pass of a single zero image that requires grad (no backward, no random numbers drawn, model state
    unchanged). ``device`` defaults to the model's. Cached per (model, shape, dtype, device)."""
    device = torch.device(device) if device is not None else _model_device(model)
    key = (tuple(image_shape), dtype, str(device))
    per_model = _CACHE.setdefault(model, {})
    if key in per_model:
        return per_model[key]
    owned = {_storage_key(t) for t in chain(model.parameters(), model.buffers())}
    fixed = sum(t.untyped_storage().nbytes() for t in {_storage_key(t): t for t in chain(model.parameters(), model.buffers())}.values())
    seen: dict[tuple[str, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        k = _storage_key(t)
        if k not in owned:
            seen[k] = t.untyped_storage().nbytes()
        return t

    x = torch.zeros((1, *image_shape), device=device, dtype=dtype, requires_grad=True)
    was_training = model.training
    try:
        model.eval()
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = model(x)
        seen.setdefault(_storage_key(out), out.untyped_storage().nbytes())
    finally:
        model.train(was_training)
    footprint = Footprint(saved=sum(seen.values()), largest=max(seen.values(), default=0), fixed=fixed)
    per_model[key] = footprint
    return footprint


def available_bytes(footprint: Footprint, device: torch.device | str, budget_bytes: int) -> int:
    """What the passes through a model may use on ``device`` so that the process stays within ``budget_bytes``
    there: the budget less the model's weights and, on CPU, less :data:`CPU_RUNTIME_BYTES` for the interpreter
    and its libraries; on CUDA also at most 90 % of the memory free on the device now. Computed from fixed
    numbers (not the process's current size) on CPU, so a configuration always gives the same chunks there."""
    device = torch.device(device)
    available = budget_bytes - footprint.fixed
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        available = min(available, int(0.9 * free))
    else:
        available -= CPU_RUNTIME_BYTES
    return max(available, 0)


def auto_batch_size(footprint: Footprint, available: int, n: int | None = None) -> int:
    """The largest number of images whose pass (``SAFETY`` × per-image bytes each) fits in ``available`` bytes;
    at least 1 (a single image is always tried), at most ``n`` when given."""
    if footprint.per_image <= 0:
        return n or 1
    size = max(1, int(available // (SAFETY * footprint.per_image)))
    return min(size, n) if n else size


def resolve_batch_size(batch_size: int, model: nn.Module, image_shape: tuple[int, int, int], budget_bytes: int,
                       n: int | None = None, device: torch.device | str | None = None) -> int:
    """``batch_size`` when positive (capped at ``n``); else (0 = automatic) the largest chunk of images of
    ``image_shape`` (C×H×W) whose gradient pass through ``model`` keeps this process within ``budget_bytes`` on
    ``device`` (default: the model's)."""
    if batch_size and batch_size > 0:
        return min(batch_size, n) if n else batch_size
    footprint = probe_footprint(model, image_shape, device)
    device = device if device is not None else _model_device(model)
    return auto_batch_size(footprint, available_bytes(footprint, device, budget_bytes), n)


def budget_bytes(run: dict, device: torch.device | str) -> int:
    """The memory budget in bytes on ``device`` from the run config ``run`` (``config["run"]``):
    ``gpu_memory_budget_gb`` on CUDA, ``memory_budget_gb`` elsewhere (decimal GB, see :data:`GB`)."""
    cuda = torch.device(device).type == "cuda"
    return int(GB * (run["gpu_memory_budget_gb"] if cuda else run["memory_budget_gb"]))


def configured_batch_size(config: dict, section: str) -> int:
    """``section``'s ``batch_size`` when set and not 0, else ``run.batch_size``; 0 means automatic."""
    return int(config[section].get("batch_size") or config["run"]["batch_size"])


def batch_size_for(config: dict, section: str, model: nn.Module, image_shape: tuple[int, int, int],
                   device: torch.device | str, n: int | None = None) -> int:
    """Images per pass for ``section`` on ``model`` with images of ``image_shape`` (C×H×W) on ``device``: the
    configured ``batch_size`` (:func:`configured_batch_size`), or when it is 0 the most that keep the process
    within :func:`budget_bytes` (the same number on every run with the same config, model and device); at most
    ``n`` when given."""
    return resolve_batch_size(configured_batch_size(config, section), model, tuple(image_shape),
                              budget_bytes(config["run"], device), n=n, device=device)


def chunked(fn: Callable[..., Any], batch_size: int | None, *tensors: torch.Tensor, **kwargs) -> Any:
    """Apply ``fn(*chunk_tensors, **kwargs)`` to slices of at most ``batch_size`` rows and concatenate along rows.

    The one chunk loop of netviz (methods, :meth:`netviz.models.Classifier.predict`). ``fn`` returns a tensor or
    a named tuple of tensors (each field is concatenated). Every caller treats rows independently, so the result
    equals the unchunked call (memory only grows with ``batch_size``). ``batch_size`` None or <= 0 means one chunk.
    """
    n = tensors[0].shape[0]
    if not batch_size or batch_size <= 0 or batch_size >= n:
        return fn(*tensors, **kwargs)
    parts = [fn(*(t[i : i + batch_size] for t in tensors), **kwargs) for i in range(0, n, batch_size)]
    if isinstance(parts[0], tuple):  # a named tuple: concatenate field by field
        return type(parts[0])(*(torch.cat(field) for field in zip(*parts)))
    return torch.cat(parts)
