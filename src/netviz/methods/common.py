"""Shared pieces of the methods: model state handling, class scores, autocast, and the chunk loop
(:func:`netviz.budget.chunked`, re-exported here)."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import ContextManager, Iterator

import torch
from torch import nn

from netviz.budget import chunked  # the one chunk loop, beside the batch sizes; re-exported for the methods

__all__ = ["PRECISIONS", "autocast", "chunked", "frozen_eval", "gather_scores"]


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
