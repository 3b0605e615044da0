"""Model-randomization sanity check (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Re-initialise the network's weight layers one stage at a time, from the output down (cascading), and recompute
the maps: a method whose maps barely change when the weights it explains are destroyed is showing the image
(edges, contrast), not the model. The original model is never touched: the stages act on a deep copy.
"""

from __future__ import annotations

import copy
import math
from typing import Iterator, Sequence

import torch
from torch import nn


def weight_layers(model: nn.Module) -> list[str]:
    """Names of the modules that hold their own parameters (convolutions, linear layers, batch norms), in
    registration order, which is input-to-output order for the sequential CNNs used here."""
    return [name for name, module in model.named_modules() if any(True for _ in module.parameters(recurse=False))]


def reinitialize(module: nn.Module) -> None:
    """Fresh random weights for one layer.

    Convolutions and linear layers get He-normal weights (std √(2 / fan_in), He et al. 2015) and zero biases: the
    scale that keeps activations alive through a deep ReLU network, so a fully re-drawn model still produces a usable
    score and gradient. (PyTorch's default ``reset_parameters`` shrinks activations layer by layer; on SqueezeNet,
    whose class scores pass a final ReLU, the score of the class then dies and its maps go flat.) Normalisation layers
    use their own reset (scale 1, shift 0, running mean 0 and variance 1); any other layer with parameters gets
    N(0, 0.01²) weights and zero biases.
    """
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:
        for name, param in module.named_parameters(recurse=False):
            if "bias" in name:
                nn.init.zeros_(param)
            else:
                nn.init.normal_(param, 0.0, 0.01)


def stage_sizes(num_layers: int, fractions: Sequence[float]) -> list[int]:
    """How many top layers each stage has re-initialised: max(1, ⌈f·L⌉) of the L weight layers for each f in
    ``fractions`` (0..1, increasing; 0 means the top layer alone)."""
    sizes = [min(num_layers, max(1, math.ceil(f * num_layers - 1e-9))) for f in fractions]
    if any(b < a for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"randomization fractions must increase, got {list(fractions)}")
    return sizes


def cascading_randomization(model: nn.Module, fractions: Sequence[float], seed: int = 0
                            ) -> Iterator[tuple[int, list[str], nn.Module]]:
    """Yield ``(k, names, randomized)`` for each stage: a copy of ``model`` whose top ``k`` weight layers
    (``names``, output side first) have fresh random weights. Stages are cumulative, as in the paper.

    The copy keeps the model's mode and flags; stage i draws its random weights from a forked generator seeded with
    ``seed + i``, so the caller's random state is unchanged and the stages are reproducible.
    """
    randomized = copy.deepcopy(model)
    modules = dict(randomized.named_modules())
    top_first = weight_layers(randomized)[::-1]
    devices = [p.device for p in randomized.parameters() if p.device.type == "cuda"][:1]
    done = 0
    for stage, k in enumerate(stage_sizes(len(top_first), fractions)):
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed + stage)
            for name in top_first[done:k]:
                reinitialize(modules[name])
        done = k
        yield k, top_first[:k], randomized
