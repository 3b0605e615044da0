"""Deletion and insertion (Petsiuk, Das & Saenko 2018, "RISE"): does the model's confidence follow the map?

Deletion replaces the pixels of an image with a substrate (a baseline image, see
:mod:`netviz.methods.baselines`) in the order of the saliency map, most salient first; a map that finds the
evidence makes the class probability fall fast (small area under the curve). Insertion starts from the
substrate and puts the image's pixels back in the same order; a good map makes the probability rise fast
(large area). The whole pixel (all three channels) is swapped at once.

Written here rather than taken from a library: Captum has no deletion/insertion metric, and RISE's reference code
fixes the substrates, the step count and a batch layout that does not chunk over images.
"""

from __future__ import annotations

import torch
from torch import nn

from netviz.methods.baselines import layout_of
from netviz.methods.common import frozen_eval, gather_scores

MODES = ("deletion", "insertion")


def saliency_ranks(maps: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The rank of every pixel in its map, 0 = most salient: maps N×H×W -> N×(H·W) int64.

    Ties (flat regions, e.g. where Grad-CAM is zero) are broken in one seeded random order of the pixels, the same
    for every map, so no method is helped or hurt by a scan order (top-left first) that happens to suit the data.
    """
    n, pixels = maps.shape[0], maps[0].numel()
    shuffle = torch.randperm(pixels, generator=torch.Generator().manual_seed(seed)).to(maps.device)
    flat = maps.reshape(n, pixels)[:, shuffle]
    order = shuffle[torch.argsort(flat, dim=1, descending=True, stable=True)]  # pixel indices, most salient first
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(pixels, device=maps.device).expand(n, pixels).contiguous())
    return ranks


def perturbed(images: torch.Tensor, substrates: torch.Tensor, ranks: torch.Tensor, fraction: float,
              mode: str) -> torch.Tensor:
    """The images after deleting (or inserting) the top ``fraction`` (0..1) of pixels by rank.

    images, substrates: N×3×H×W pixel space [0, 1]; ranks: N×(H·W) from :func:`saliency_ranks`.
    Exactly round(fraction·H·W) pixels per image come from the substrate (deletion) or from the image (insertion).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    n, _, height, width = images.shape
    chosen = (ranks < round(fraction * height * width)).view(n, 1, height, width)
    if mode == "deletion":
        return torch.where(chosen, substrates, images)
    return torch.where(chosen, images, substrates)


def perturbation_curve(model: nn.Module, images: torch.Tensor, substrates: torch.Tensor, ranks: torch.Tensor,
                       classes: torch.Tensor, fractions: list[float] | torch.Tensor, mode: str,
                       batch_size: int | None = None) -> torch.Tensor:
    """Softmax probability of ``classes`` (N, normally the original top-1 class) after deleting or inserting each
    of ``fractions`` of the pixels: returns N×len(fractions), values in [0, 1].

    All (image, fraction) pairs go through the model in batches of ``batch_size`` perturbed images (None = all at
    once), without autograd, in the memory layout of ``images``; the model's mode and flags are restored afterwards.
    """
    fractions = [float(f) for f in fractions]
    pairs = [(i, j) for i in range(len(images)) for j in range(len(fractions))]
    step = batch_size if batch_size and batch_size > 0 else max(len(pairs), 1)
    out = torch.empty(len(images), len(fractions), dtype=images.dtype, device=images.device)
    with frozen_eval(model), torch.inference_mode():
        for start in range(0, len(pairs), step):
            batch = pairs[start : start + step]
            rows = torch.tensor([i for i, _ in batch], device=images.device)
            inputs = torch.cat([
                perturbed(images[i : i + 1], substrates[i : i + 1], ranks[i : i + 1], fractions[j], mode)
                for i, j in batch
            ]).contiguous(memory_format=layout_of(images))
            probs = gather_scores(model(inputs).softmax(dim=1), classes[rows])
            for (i, j), p in zip(batch, probs):
                out[i, j] = p
    return out
