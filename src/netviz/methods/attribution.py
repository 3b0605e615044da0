"""Saliency methods beyond the plain gradient: SmoothGrad, Integrated Gradients, Guided Backprop and Grad-CAM.

Two kinds of function, one input contract (images N×3×H×W float in pixel space [0, 1], targets N int64 class
indices; device and dtype follow the images; ``batch_size`` images per forward/backward pass, None = all):

- an *attribution* ``(model, images, targets, batch_size=None) -> N×3×H×W`` signed, per pixel and channel
  (:func:`gradient`, :func:`guided_backprop`, :func:`integrated_gradients`, and :func:`smoothgrad` of any of them);
- a *map method* ``(model, images, targets, batch_size=None) -> N×H×W`` non-negative, one value per pixel
  (:func:`grad_cam`, and :func:`as_map` of any attribution, which keeps |·| and the maximum over the colour
  channels: the lab's reduction, so every pixel-space map here is comparable with Section 1's).

Integrated Gradients, Guided Backprop and Grad-CAM are Captum's (Kokhlikyan et al. 2020; Guided Backprop widened to
ReLU6, see :func:`guided_backprop`): each call builds a fresh Captum object and runs it inside
:func:`~netviz.methods.common.frozen_eval` (eval mode, frozen parameters, both restored afterwards), and Captum
removes the hooks it sets before returning, even on error. The gradient is Section 1's (the same numbers as
Captum's ``Saliency``) and SmoothGrad is written out (see :func:`smoothgrad`); the tests compare all of them with
Captum's own output. Each image's result is independent of the others, so any ``batch_size`` gives the same maps
(up to float rounding).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from netviz.methods.baselines import Baseline, black
from netviz.methods.common import chunked, frozen_eval
from netviz.methods.saliency import input_gradient

Attribution = Callable[..., torch.Tensor]
MapMethod = Callable[..., torch.Tensor]

_CAPTUM_NOTICES = ("Setting backward hooks on ReLU", ".*did not already require gradients")


@contextmanager
def _captum_call(model: nn.Module) -> Iterator[None]:
    """Run a Captum method on ``model`` in :func:`frozen_eval`, without the notices Captum prints on every call
    (that it sets hooks it will remove, that inputs get ``requires_grad``): warnings only while it runs."""
    with warnings.catch_warnings(), frozen_eval(model):
        for notice in _CAPTUM_NOTICES:
            warnings.filterwarnings("ignore", message=notice)
        yield


def channel_max_abs(attribution: torch.Tensor) -> torch.Tensor:
    """N×3×H×W signed attribution -> N×H×W map: absolute value, maximum over the colour channels."""
    return attribution.abs().amax(dim=1)


def as_map(attribution: Attribution) -> MapMethod:
    """Turn an attribution into a map method with :func:`channel_max_abs`."""

    def map_method(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                   batch_size: int | None = None) -> torch.Tensor:
        return channel_max_abs(attribution(model, images, targets, batch_size=batch_size))

    map_method.__name__ = f"map_of_{getattr(attribution, '__name__', 'attribution')}"
    return map_method


def gradient(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
             batch_size: int | None = None) -> torch.Tensor:
    """d score[target] / d pixel (Simonyan et al. 2014), N×3×H×W, logit per unit of pixel value.
    The same computation as Captum's ``Saliency(model).attribute(x, target, abs=False)``."""
    return input_gradient(model, images, targets, batch_size)


def smoothgrad(attribution: Attribution, sigma: float = 0.15, samples: int = 16,
               seed: int | Sequence[int] = 0) -> Attribution:
    """SmoothGrad (Smilkov et al. 2017) around any attribution: its mean over ``samples`` noisy copies of the
    images, x + N(0, sigma²), with ``sigma`` in pixel units (0.15 = 15 % of the [0, 1] range, the paper's
    10-20 %). No clipping of the noisy images, like the paper and Captum.

    This is Captum's ``NoiseTunnel(method).attribute(x, nt_type="smoothgrad", stdevs=sigma)`` (signed mean), written
    out because NoiseTunnel only wraps Captum objects, not any function with this call. The noise comes from
    private generators (the global random state is untouched), drawn on the CPU, so the result does not depend on
    ``batch_size`` nor on the device. ``seed``: one seed for the whole call (one N×3×H×W draw per sample), or one
    seed per image (:func:`image_seeds`: each image's noise is its own, whichever other images share the call —
    what a job over a shard of a larger set needs).
    """
    if samples < 1:
        raise ValueError(f"smoothgrad needs samples >= 1, got {samples}")

    def smoothed(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                 batch_size: int | None = None) -> torch.Tensor:
        if isinstance(seed, int):
            generators = [torch.Generator().manual_seed(seed)]
        elif len(seed) == len(images):
            generators = [torch.Generator().manual_seed(int(s)) for s in seed]
        else:
            raise ValueError(f"smoothgrad has {len(seed)} image seeds for {len(images)} images")
        shape = images.shape if len(generators) == 1 else images.shape[1:]
        total = torch.zeros_like(images)
        for _ in range(samples):
            draws = [torch.randn(shape, generator=g, dtype=images.dtype) for g in generators]
            noise = draws[0] if len(generators) == 1 else torch.stack(draws)
            total += attribution(model, images + sigma * noise.to(images.device), targets, batch_size=batch_size)
        return total / samples

    smoothed.__name__ = f"smoothgrad_{getattr(attribution, '__name__', 'attribution')}"
    return smoothed


def integrated_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                         batch_size: int | None = None, *, steps: int = 16, baseline: Baseline = black,
                         rule: str = "gausslegendre") -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al. 2017): (x − x') times the mean gradient on the straight path
    from the baseline x' = ``baseline(images)`` to x, with Captum's ``steps``-point quadrature ``rule``
    ("gausslegendre", or "riemann_trapezoid", "riemann_left", ...). Returns N×3×H×W, logit units: the
    attributions of an image sum to about score(x) − score(x') (completeness; the gap shrinks with ``steps``).

    Each forward/backward pass holds about ``batch_size`` points of the paths (images × steps, Captum's
    ``internal_batch_size``), so memory stays that of ``batch_size`` images; None runs all N × steps at once.
    """
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(model)

    def one_chunk(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return ig.attribute(x, baselines=baseline(x), target=t, n_steps=steps, method=rule,
                                internal_batch_size=max(len(x), batch_size or len(x) * steps))

    with _captum_call(model):
        return chunked(one_chunk, batch_size, images.detach(), targets)


def _guided_backprop_class():
    """Captum's GuidedBackprop extended to ReLU6.

    Captum overrides the backward pass of ``nn.ReLU`` modules only; ``nn.ReLU6`` (EfficientNet-Lite, MobileNetV2)
    is a Hardtanh, so Captum alone would return the plain gradient for those networks without a word. The rule
    Captum applies (keep the positive part of the gradient that the unit passes back) is the right one for ReLU6
    too, so this only widens the set of modules it hooks, with Captum's own hook helper.
    """
    from captum._utils.common import _register_backward_hook
    from captum.attr import GuidedBackprop

    class GuidedBackpropReLU6(GuidedBackprop):
        def _register_hooks(self, module: nn.Module) -> None:
            if isinstance(module, (nn.ReLU, nn.ReLU6)):
                self.backward_hooks.extend(_register_backward_hook(module, self._backward_hook, self))

    return GuidedBackpropReLU6


def guided_backprop(model: nn.Module, images: torch.Tensor, targets: torch.Tensor,
                    batch_size: int | None = None) -> torch.Tensor:
    """Guided Backpropagation (Springenberg et al. 2015): the input gradient with every ReLU / ReLU6 passing back
    only positive gradients. N×3×H×W. Rectifiers must be modules (not ``F.relu``) for the rule to apply; other
    activations (SiLU, GELU) keep their plain gradient. The hooks are removed afterwards, even on error."""
    gbp = _guided_backprop_class()(model)

    def one_chunk(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            return gbp.attribute(x.clone(), target=t)

    with _captum_call(model):
        return chunked(one_chunk, batch_size, images.detach(), targets)


def grad_cam(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, batch_size: int | None = None,
             layer: str | None = None, mode: str = "bilinear") -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017) on the model's last convolutional block (``model.layer(layer)``,
    default ``model.target_layer``): the block's channels weighted by their spatially averaged gradient,
    summed, ReLU, then upsampled to the image size (``mode``, Captum's ``LayerAttribution.interpolate``).

    Returns N×H×W, non-negative (logit units per activation unit). A map can be all zero when no channel
    speaks for the class.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    cam = LayerGradCam(model, model.layer(layer))

    def one_chunk(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            coarse = cam.attribute(x, target=t, relu_attributions=True)
        return LayerAttribution.interpolate(coarse.detach(), tuple(x.shape[-2:]), mode).squeeze(1)

    with _captum_call(model):
        return chunked(one_chunk, batch_size, images.detach(), targets)


def image_seeds(seed: int, positions: Sequence[int]) -> list[int]:
    """One seed per image from the run's ``seed`` and each image's position in its set (numpy's SeedSequence),
    so that an image's random draws do not depend on which shard or batch it is computed in."""
    return [int(np.random.SeedSequence([seed, int(p)]).generate_state(1)[0]) for p in positions]


def standard_methods(smoothgrad_sigma: float = 0.15, smoothgrad_samples: int = 16, ig_steps: int = 16,
                     ig_blur_sigma: float = 10.0, seed: int | Sequence[int] = 0) -> dict[str, tuple[str, Callable]]:
    """The methods compared in the report, by display name: ``(kind, function)`` with kind "attribution"
    (N×3×H×W, reduce with :func:`channel_max_abs`) or "map" (N×H×W already). ``seed``: SmoothGrad's (see
    :func:`smoothgrad`)."""
    from netviz.methods.baselines import blurred

    return {
        "Gradient": ("attribution", gradient),
        "SmoothGrad": ("attribution", smoothgrad(gradient, smoothgrad_sigma, smoothgrad_samples, seed)),
        "IG (black)": ("attribution", partial(integrated_gradients, steps=ig_steps, baseline=black)),
        "IG (blur)": ("attribution", partial(integrated_gradients, steps=ig_steps, baseline=blurred(ig_blur_sigma))),
        "Guided BP": ("attribution", guided_backprop),
        "Grad-CAM": ("map", grad_cam),
    }
