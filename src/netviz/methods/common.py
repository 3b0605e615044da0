"""Shared pieces of the methods: model state handling, chunking and class scores."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Iterator

import torch
from torch import nn


@contextmanager
def frozen_eval(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with parameters that need no gradient; restore both on exit (even on error).

    Gradients still flow to the inputs, which is all the methods need.
    """
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        yield model
    finally:
        model.train(was_training)
        for param, flag in flags:
            param.requires_grad_(flag)


def gather_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The score of each row's target class: logits N×C, targets N -> N."""
    return logits.gather(1, targets.view(-1, 1).to(logits.device)).squeeze(1)


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


PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device | str, precision: str = "fp32") -> ContextManager:
    """A context for the forward passes of a method: ``"fp32"`` does nothing; ``"bf16"`` is torch's automatic
    mixed precision in bfloat16 on ``device``'s type (convolutions and matrix products in bf16, reductions such
    as softmax and cross-entropy in fp32). Inputs, their gradients and everything the methods return stay
    fp32. Fast on GPUs with bf16 units (Ampere and later); on CPUs without AVX512-BF16/AMX it is slower."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision '{precision}'; use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
