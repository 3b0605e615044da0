"""Adversarial examples: one projected-gradient loop for every norm, and the lab's naive fooling image.

Input contract: ``images`` N×3×H×W float in pixel space [0, 1] (the model wrapper normalises), ``labels`` N
int64 class indices (the true class of untargeted attacks, the target class of targeted ones). Outputs are
pixel-space images in [0, 1], same shape, device and dtype.

Budgets and step sizes are given in **8-bit pixel levels** (``eps=8`` means 8/255 of the [0, 1] range), for L∞
per value and for L2 as the norm of the whole perturbation measured in levels; :func:`levels` is the one place
where they become pixel units.

- :func:`projected_gradient` is the loop: FGSM (Goodfellow et al. 2015) is its single step, PGD (Madry et al.
  2018) its multi-step form with or without a random start, momentum iterative FGSM (Dong et al. 2018) the same
  loop with ``momentum > 0``. Its updates are written exactly as torchattacks writes FGSM, PGD, PGDL2 and
  MIFGSM, which the tests check; we hand-write the loop (rather than call torchattacks) to have one loop for all
  of them, per-step success bookkeeping, early stopping and chunking.
- :func:`fooling_image` is the lab's method (cs231n "Network visualization"): targeted, unbounded, normalised
  gradient ascent on the target's score, each image stopping as soon as it is classified as the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from netviz.methods.common import chunked, frozen_eval, gather_scores

Norm = Literal["linf", "l2"]
Transform = Callable[[torch.Tensor], torch.Tensor]
NORMS = ("linf", "l2")
_DIVISION_EPS = 1e-10  # torchattacks' eps_for_division, kept so L2 steps match it


def levels(value: float | torch.Tensor) -> float | torch.Tensor:
    """8-bit pixel levels -> pixel units of the [0, 1] range (8 -> 8/255). The only conversion of budgets."""
    return value / 255.0


class Adversarial(NamedTuple):
    """What an attack returns.

    images: N×3×H×W adversarial images, pixel space [0, 1].
    steps: N int64, the number of gradient steps after which the image first counted as a success (0 when it
    already did before any step), -1 when it never did. For an attack that stops on success it is the number of
    steps used.
    """

    images: torch.Tensor
    steps: torch.Tensor


@dataclass(frozen=True)
class Attack:
    """Hyperparameters of one projected-gradient attack. Budgets in 8-bit levels (see the module docstring).

    norm: "linf" or "l2". eps: radius of the ball around the image. alpha: step length (L∞: per value, along
    the gradient's sign; L2: along the gradient scaled to unit L2 norm). steps: gradient steps.
    random_start: start from a random point of the ball (L∞: uniform; L2: a random direction at a uniform
    radius, as torchattacks does). momentum: Dong et al.'s decay μ (0 = plain PGD); the gradient is divided by
    its mean absolute value before it is accumulated. targeted: move towards ``labels`` instead of away.
    stop_on_success: freeze each image at the first iterate that succeeds (cheaper, smaller perturbations,
    but the image sits right at the decision boundary).
    """

    norm: Norm = "linf"
    eps: float = 8.0
    alpha: float = 2.0
    steps: int = 10
    random_start: bool = False
    momentum: float = 0.0
    targeted: bool = False
    stop_on_success: bool = False

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm '{self.norm}'; use one of {', '.join(NORMS)}")
        if self.eps < 0 or self.alpha < 0 or self.steps < 1 or self.momentum < 0:
            raise ValueError(f"eps, alpha, momentum must be >= 0 and steps >= 1, got {self}")


def fgsm(eps: float = 8.0, targeted: bool = False) -> Attack:
    """FGSM: one L∞ step of length ε from the clean image."""
    return Attack("linf", eps, eps, 1, targeted=targeted)


def pgd(eps: float = 8.0, alpha: float = 2.0, steps: int = 10, norm: Norm = "linf", random_start: bool = True,
        targeted: bool = False, stop_on_success: bool = False) -> Attack:
    """PGD under L∞ or L2 (torchattacks' defaults for L∞: ε = 8, α = 2, 10 steps, random start)."""
    return Attack(norm, eps, alpha, steps, random_start, 0.0, targeted, stop_on_success)


def mi_fgsm(eps: float = 8.0, alpha: float = 2.0, steps: int = 10, momentum: float = 1.0, norm: Norm = "linf",
            targeted: bool = False, stop_on_success: bool = False) -> Attack:
    """Momentum iterative FGSM (Dong et al. 2018; μ = 1 in the paper and in torchattacks)."""
    return Attack(norm, eps, alpha, steps, False, momentum, targeted, stop_on_success)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """Per-row L2 norm of an N×... tensor, shaped N×1×1×1 for broadcasting."""
    return t.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (t.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project each row of ``delta`` (N×3×H×W, pixel units) onto the ``norm`` ball of radius ``eps``
    (pixel units): clipping per value for L∞, rescaling rows longer than ``eps`` for L2."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        norms = _rows(delta)
        return delta * torch.minimum(eps / norms, torch.ones_like(norms))  # eps/0 = inf -> factor 1
    raise ValueError(f"unknown norm '{norm}'; use one of {', '.join(NORMS)}")


def steepest_direction(grad: torch.Tensor, norm: Norm) -> torch.Tensor:
    """The unit step that increases a linear function with gradient ``grad`` most: sign(g) under L∞,
    g/‖g‖₂ under L2 (per row)."""
    if norm == "linf":
        return grad.sign()
    if norm == "l2":
        return grad / (_rows(grad) + _DIVISION_EPS)
    raise ValueError(f"unknown norm '{norm}'; use one of {', '.join(NORMS)}")


def random_start(images: torch.Tensor, eps: float, norm: Norm, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random perturbation inside the ball (pixel units), drawn once for the whole batch so that chunking
    does not change it. L∞: uniform in [-ε, ε]; L2: a Gaussian direction scaled to a radius uniform in [0, ε]."""
    shape, kw = images.shape, {"device": images.device, "dtype": images.dtype, "generator": generator}
    if norm == "linf":
        return (torch.rand(shape, **kw) * 2 - 1) * eps
    direction = torch.randn(shape, **kw)
    radius = torch.rand((shape[0],) + (1,) * (len(shape) - 1), **kw) * eps
    return direction / _rows(direction) * radius


def succeeded(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """N bool: targeted -> the top-1 class is the label; untargeted -> it is not."""
    top1 = logits.argmax(1)
    return top1 == labels if targeted else top1 != labels


def _loss(logits: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """The attack's objective to maximise, summed over rows (each row's gradient is its own: no 1/N)."""
    ce = F.cross_entropy(logits, labels, reduction="none")
    return (-ce if targeted else ce).sum()


def _fooled(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, targeted: bool,
            stored_as: Transform | None) -> torch.Tensor:
    """N bool: the iterate ``x`` (with ``logits``) succeeds and, with ``stored_as``, so does ``stored_as(x)``,
    checked with one more forward of only the rows that succeed as they are."""
    ok = succeeded(logits.detach(), labels, targeted)
    if stored_as is None or not ok.any():
        return ok
    with torch.inference_mode():  # a check only: no autograd bookkeeping
        fooled = succeeded(model(stored_as(x.detach()[ok])), labels[ok], targeted)
    ok[ok.clone()] = fooled
    return ok


def _projected_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, start: torch.Tensor,
                        attack: Attack, stored_as: Transform | None) -> Adversarial:
    eps, alpha = levels(attack.eps), levels(attack.alpha)
    x = (images + start).clamp(0, 1) if attack.random_start else images.clone()
    momentum = torch.zeros_like(images)
    first = torch.full((len(images),), -1, dtype=torch.long, device=images.device)
    active = torch.ones(len(images), dtype=torch.bool, device=images.device)
    for step in range(attack.steps + 1):
        rows = active.nonzero().squeeze(1)
        if len(rows) == 0:
            break
        xa = x[rows].detach().requires_grad_(step < attack.steps)
        with torch.set_grad_enabled(step < attack.steps):
            logits = model(xa)
        ok = _fooled(model, xa, logits, labels[rows], attack.targeted, stored_as)
        new = ok & (first[rows] < 0)
        first[rows[new]] = step
        if attack.stop_on_success:
            active[rows[ok]] = False
        if step == attack.steps:  # the last forward only checks the final iterate
            break
        (grad,) = torch.autograd.grad(_loss(logits, labels[rows], attack.targeted), xa)
        if attack.momentum > 0:
            grad = grad / grad.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)  # an all-zero gradient stays 0
            grad = grad + momentum[rows] * attack.momentum
            momentum[rows] = grad
        moved = xa.detach() + alpha * steepest_direction(grad, attack.norm)
        moved = (images[rows] + project(moved - images[rows], eps, attack.norm)).clamp(0, 1)
        keep = ~ok if attack.stop_on_success else torch.ones_like(ok)
        x[rows[keep]] = moved[keep]
    return Adversarial(x.detach(), first)


def projected_gradient(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, attack: Attack,
                       batch_size: int | None = None, generator: torch.Generator | None = None,
                       stored_as: Transform | None = None) -> Adversarial:
    """Run ``attack`` on a batch: the one loop behind FGSM, PGD (L∞, L2) and MI-FGSM.

    Each step: g = ∇ₓ of the cross-entropy (of the true class, to increase; of the target, negated, when
    targeted); with momentum μ > 0, g ← μ·g_prev + g/mean|g|; x ← x + α·(sign g | g/‖g‖₂);
    x ← clip₀¹(x₀ + project(x − x₀, ε)). All images advance together in one batch per step (per chunk of
    ``batch_size``); with ``stop_on_success`` only the images not yet fooled are forwarded.

    images: N×3×H×W pixel space [0, 1]; labels: N (true classes, or targets when ``attack.targeted``).
    generator: the random start's RNG (default: torch's global one). stored_as: count an iterate as a success
    (for ``steps`` and ``stop_on_success``) only when ``stored_as(x)`` succeeds too, e.g. its rounding to 8
    bits, so that an image stops only once what will be stored fools the model (one more forward, of the rows
    that succeed as floats); the gradient is still taken at the float iterate. Returns :class:`Adversarial`. The model's mode and ``requires_grad`` flags are restored.
    """
    start = random_start(images, levels(attack.eps), attack.norm, generator) if attack.random_start else torch.zeros_like(images)
    with frozen_eval(model), torch.enable_grad():
        return chunked(lambda x, y, s: _projected_gradient(model, x, y, s, attack, stored_as), batch_size,
                       images.detach(), labels.to(images.device), start)


@dataclass(frozen=True)
class Fooling:
    """Hyperparameters of the lab's fooling image: step length ``lr`` in the model's normalised input space,
    at most ``max_iter`` steps, and the stopping margin ``kappa`` (0 = stop as soon as the target is top-1,
    the lab's rule; else also require softmax probability of the target ≥ kappa)."""

    lr: float = 1.0
    max_iter: int = 100
    kappa: float = 0.0


def _fooling(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, spec: Fooling) -> Adversarial:
    normalize = getattr(model, "normalize", lambda t: t)
    denormalize = getattr(model, "denormalize", lambda t: t)
    x = images.clone()
    used = torch.zeros(len(images), dtype=torch.long, device=images.device)
    done = torch.zeros(len(images), dtype=torch.bool, device=images.device)
    for step in range(spec.max_iter + 1):
        rows = (~done).nonzero().squeeze(1)
        if len(rows) == 0:
            break
        z = normalize(x[rows]).detach().requires_grad_(True)
        logits = model(denormalize(z))
        probs = logits.detach().softmax(1)
        hit = (probs.argmax(1) == targets[rows]) & (gather_scores(probs, targets[rows]) >= spec.kappa)
        done[rows[hit]] = True
        if step == spec.max_iter:
            break
        (g,) = torch.autograd.grad(gather_scores(logits, targets[rows]).sum(), z)
        z_new = z.detach() + spec.lr * g / (_rows(g) + _DIVISION_EPS)
        moved = denormalize(z_new).clamp(0, 1)
        go = ~hit
        x[rows[go]] = moved[go]
        used[rows[go]] += 1
    return Adversarial(x.detach(), torch.where(done, used, torch.full_like(used, -1)))


def fooling_image(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, spec: Fooling = Fooling(),
                  batch_size: int | None = None) -> Adversarial:
    """The lab's fooling image: x ← x + lr·g/‖g‖₂, g the gradient of the target's score (logit), until the
    model predicts the target (and, with ``kappa`` > 0, gives it probability ≥ κ) or ``max_iter`` steps.

    Space: as in the lab, where the network is fed normalised images, the step is taken in the model's
    normalised input space z = (x − mean)/std: g = ∂score/∂z, ‖g‖₂ over the whole image, so ``lr`` = 1 moves
    z by exactly 1 in L2 (in pixel units that is a per-channel rescaling by std). One addition to the lab:
    after every step the image is mapped back to pixel space and clipped to [0, 1] (the lab clips only for
    display); this changes only pixels that would leave the valid range. Models without ``normalize`` /
    ``denormalize`` are stepped in pixel space.

    images: N×3×H×W pixel space [0, 1]; targets: N target classes. Every image advances in one batch per step
    (per chunk); each stops on its own. Returns :class:`Adversarial` with ``steps`` = steps used, or -1 for
    images that did not reach the target within ``max_iter`` steps.
    """
    with frozen_eval(model), torch.enable_grad():
        return chunked(lambda x, t: _fooling(model, x, t, spec), batch_size, images.detach(), targets.to(images.device))
