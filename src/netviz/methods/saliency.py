"""Gradient saliency (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks")."""

from __future__ import annotations

import torch
from torch import nn

from netviz.methods.common import chunked, frozen_eval, gather_scores


def _input_gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        scores = gather_scores(model(x), targets)  # the Classifier lays x out for its network
        # rows are independent, so the gradient of the sum gives each image the gradient of its own score
        (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad


def input_gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                   batch_size: int | None = None) -> torch.Tensor:
    """d score[target] / d image, for every image in one backward pass per chunk.

    images: N×3×H×W pixel space [0, 1]; targets: N class indices. Returns N×3×H×W (units: logit per pixel
    value). The model's mode and ``requires_grad`` flags are restored afterwards.
    """
    with frozen_eval(model):
        return chunked(lambda x, t: _input_gradient(model, x, t), batch_size, images, targets)


def vanilla_gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                     batch_size: int | None = None) -> torch.Tensor:
    """The lab's saliency map: |d score[target] / d pixel|, max over the colour channels.

    images: N×3×H×W pixel space [0, 1]; targets: N. Returns N×H×W, non-negative, unnormalised.
    """
    return input_gradient(model, images, targets, batch_size).abs().amax(dim=1)
