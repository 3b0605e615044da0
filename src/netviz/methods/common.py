"""Shared pieces of the methods: model state handling, chunking and class scores."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

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


def chunked(fn: Callable[..., torch.Tensor], batch_size: int | None, *tensors: torch.Tensor, **kwargs) -> torch.Tensor:
    """Apply ``fn(*chunk_tensors, **kwargs)`` to slices of at most ``batch_size`` rows and concatenate.

    Every method here treats rows independently, so the result equals the unchunked call (memory only grows
    with ``batch_size``). ``batch_size`` None or <= 0 means one chunk.
    """
    n = tensors[0].shape[0]
    if not batch_size or batch_size <= 0 or batch_size >= n:
        return fn(*tensors, **kwargs)
    return torch.cat([fn(*(t[i : i + batch_size] for t in tensors), **kwargs) for i in range(0, n, batch_size)])
