"""Class visualization: gradient ascent on an image to raise one class score (Simonyan, Vedaldi & Zisserman 2014,
"Deep Inside Convolutional Networks"), with the implicit regularizers of Yosinski et al. 2015 ("Understanding
Neural Networks Through Deep Visualization"): random jitter, periodic Gaussian blur and clamping.

The optimisation runs, as in the course's lab, in the network's NORMALIZED input space ``z = model.normalize(x)``:
the objective is ``score_y(z) − λ‖z‖²`` and every step is a plain gradient-ascent step
``z ← z + lr · ∇_z objective`` (the lab's rule: no gradient normalisation, no momentum). Per step, in the lab's
order: roll the image by a random (dy, dx) in 0..max_jitter pixels, take the step, roll it back, clamp each
channel to the normalized image of the pixel range [0, 1], and blur after steps 1, 1 + k, 1 + 2k, ...

Composition, Lucent-style: an :class:`Objective` is a small per-image function of (logits, z) and objectives add,
subtract and scale (``class_score(y) - l2_reg * squared_norm()``); the image transforms applied after each step are
a list of small functions ``(z, step) -> z`` (:func:`clamp_to`, :func:`blur_every`). :func:`gradient_ascent` is the
loop; :func:`class_visualization` assembles the lab's objective and transforms around it. The loop is written here
rather than taken from Lucent (torch-lucent) because Lucent optimises one shared learning rate with a torch
optimizer over its own image parameterisations, while the lab's rule and the batched sweep need a plain step with
one learning rate, λ and random stream per image.

Every image of a batch carries its own target, learning rate, λ and seed (its own noise and jitter stream, drawn on
the CPU so results do not depend on the device), so a batched run gives the images of the same settings run one by
one, and a whole hyperparameter grid is a single batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple, Sequence

import torch
from torchvision.transforms.v2 import functional as TF

from netviz.methods.common import chunked, frozen_eval, gather_scores

Transform = Callable[[torch.Tensor, int], torch.Tensor]
"""An image transform applied after each step: ``(z N×3×H×W normalized, step index t from 0) -> z``."""

Progress = Callable[[Iterable[int]], Iterable[int]]
"""Wraps the iteration range (e.g. a tqdm bar); methods never print."""


class Objective:
    """A per-image objective: ``objective(logits N×C, z N×3×H×W normalized) -> N`` values to maximise.

    Objectives combine by arithmetic: ``a + b``, ``a - b``, ``-a``, ``w * a`` where ``w`` is a float or a tensor of
    shape N (one weight per image).
    """

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str = "objective"):
        self.fn, self.name = fn, name

    def __call__(self, logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.fn(logits, z)

    def __add__(self, other: Objective) -> Objective:
        return Objective(lambda logits, z: self(logits, z) + other(logits, z), f"{self.name} + {other.name}")

    def __sub__(self, other: Objective) -> Objective:
        return Objective(lambda logits, z: self(logits, z) - other(logits, z), f"{self.name} - {other.name}")

    def __neg__(self) -> Objective:
        return Objective(lambda logits, z: -self(logits, z), f"-{self.name}")

    def __mul__(self, weight: float | torch.Tensor) -> Objective:
        def weighted(logits: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            values = self(logits, z)
            return values * (weight.to(values) if isinstance(weight, torch.Tensor) else weight)

        return Objective(weighted, f"w·{self.name}")

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return f"Objective({self.name})"


def class_score(targets: torch.Tensor) -> Objective:
    """The target class's logit (pre-softmax score) of each image; targets: N class indices."""
    return Objective(lambda logits, z: gather_scores(logits, targets), "class score")


def squared_norm() -> Objective:
    """‖z‖², the squared L2 norm of each image in normalized space (the lab's regularizer, before λ)."""
    return Objective(lambda logits, z: z.pow(2).flatten(1).sum(1), "‖z‖²")


def roll(z: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each image circularly: z N×C×H×W, shifts N×2 integers (dy, dx) in pixels. ``roll(roll(z, s), -s) == z``
    exactly (a permutation of pixels). Used for the lab's jitter."""
    return torch.stack([torch.roll(image, (int(dy), int(dx)), dims=(1, 2)) for image, (dy, dx) in zip(z, shifts.tolist())])


def jitter_shifts(generators: Sequence[torch.Generator], max_jitter: int) -> torch.Tensor:
    """One random (dy, dx) per image, each uniform in 0..max_jitter, drawn from that image's own generator -> N×2."""
    if max_jitter <= 0:
        return torch.zeros(len(generators), 2, dtype=torch.long)
    return torch.stack([torch.randint(0, max_jitter + 1, (2,), generator=g) for g in generators])


def clamp_to(low: torch.Tensor, high: torch.Tensor) -> Transform:
    """Clamp each channel to [low, high] (tensors broadcastable to z, e.g. 1×3×1×1), every step."""
    return lambda z, step: torch.maximum(torch.minimum(z, high.to(z)), low.to(z))


def blur_every(every: int, sigma: float = 0.5) -> Transform:
    """Gaussian blur of standard deviation ``sigma`` pixels after steps 0, every, 2·every, ... (0-based step index,
    the lab's ``t % blur_every == 0``); ``every`` <= 0 never blurs. The kernel has scipy's default radius
    (int(4σ + 0.5), 5 taps for σ 0.5), applied per channel with reflected borders (torchvision)."""
    if every <= 0 or sigma <= 0:
        return lambda z, step: z
    size = 2 * int(4 * sigma + 0.5) + 1
    return lambda z, step: TF.gaussian_blur(z, [size, size], [sigma, sigma]) if step % every == 0 else z


def pixel_range(model) -> tuple[torch.Tensor, torch.Tensor]:
    """The normalized images of pixel values 0 and 1 for ``model`` (a :class:`~netviz.models.Classifier`): 1×3×1×1 each."""
    zeros = torch.zeros(1, 3, 1, 1, device=model.mean.device, dtype=model.mean.dtype)
    return model.normalize(zeros), model.normalize(zeros + 1)


def seeded_noise(seeds: Sequence[int], shape: tuple[int, int, int]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Standard normal images N×C×H×W (the lab's start, in normalized space), one CPU generator per seed; the
    generators are returned so the same streams go on to draw the jitter."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    return torch.stack([torch.randn(shape, generator=g) for g in generators]), generators


@dataclass
class Ascent:
    """What :func:`gradient_ascent` returns (all in normalized space, on the input's device).

    z: N×C×H×W final images. snapshots: {iteration: N×C×H×W}, iteration k = after k steps (0 = the start).
    objective: T×N objective value at each step, computed on the (jittered) image before the step.
    """

    z: torch.Tensor
    snapshots: dict[int, torch.Tensor] = field(default_factory=dict)
    objective: torch.Tensor = field(default_factory=lambda: torch.empty(0))


def gradient_ascent(net: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, objective: Objective, learning_rate: torch.Tensor,
                    num_iterations: int, transforms: Sequence[Transform] = (),
                    generators: Sequence[torch.Generator] | None = None, max_jitter: int = 0,
                    snapshots: Sequence[int] = (), progress: Progress | None = None) -> Ascent:
    """Maximise ``objective`` over the images ``z`` by plain gradient ascent through ``net``.

    net: a network taking normalized input (``Classifier.forward_normalized``, which also lays the input out
    channels-last). z: N×C×H×W start, normalized space.
    learning_rate: N step sizes (units: z per unit of objective gradient). Each step: roll each image by its own
    random shift (0..max_jitter px, from ``generators[i]``), ``z += lr · ∇z objective``, roll back, then apply the
    ``transforms`` in order. Rows are independent. ``snapshots`` lists iterations (0..num_iterations) to keep.
    """
    if generators is None:
        generators = [torch.Generator().manual_seed(0) for _ in range(len(z))]
    step_size = learning_rate.to(z).view(-1, 1, 1, 1)
    kept = {0: z.detach().clone()} if 0 in snapshots else {}
    history = []
    z = z.detach().clone()
    steps = range(num_iterations)
    for t in progress(steps) if progress else steps:
        shifts = jitter_shifts(generators, max_jitter)
        with torch.enable_grad():
            moved = roll(z, shifts).requires_grad_(True)
            values = objective(net(moved), moved)
            # rows are independent, so the gradient of the sum is each image's gradient of its own objective
            (grad,) = torch.autograd.grad(values.sum(), moved)
        history.append(values.detach())
        z = roll(moved.detach() + step_size * grad, -shifts)
        for transform in transforms:
            z = transform(z, t)
        if t + 1 in snapshots:
            kept[t + 1] = z.clone()
    objective_history = torch.stack(history) if history else torch.empty(0, len(z), device=z.device)
    return Ascent(z, kept, objective_history)


@dataclass
class Visualization:
    """What :func:`class_visualization` returns, in pixel space.

    images: N×3×H×W final images in [0, 1] (clamped by the optimisation itself, not afterwards).
    snapshots: {iteration: N×3×H×W}; iteration 0 is the start (noise starts lie outside [0, 1]).
    objective: T×N objective ``score − λ‖z‖²`` at each step.
    """

    images: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    objective: torch.Tensor

    def rows(self, index: slice | Sequence[int]) -> "Visualization":
        """The same result for a subset of the images (e.g. the noise starts and the photo starts of one batch)."""
        return Visualization(self.images[index], {k: v[index] for k, v in self.snapshots.items()},
                             self.objective[:, index])


def _per_image(value: float | Sequence[float] | torch.Tensor, n: int, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value, dtype=torch.float32).flatten()
    if tensor.numel() == 1:
        return tensor.expand(n).clone()
    if tensor.numel() != n:
        raise ValueError(f"{name} has {tensor.numel()} values for {n} images; give one value or one per image")
    return tensor


@dataclass(frozen=True)
class VizSettings:
    """What a class-visualization run does to each image; defaults are the course's (CS231n's lab: lr 25, 100 steps).

    learning_rate: step size in normalized space per unit of objective gradient; l2_reg: λ of the ``− λ‖z‖²`` term;
    each one value for every image or one per image (a sweep in one batch). num_iterations: steps (>= 1).
    blur_every: blur after steps 1, 1 + k, ... (k = blur_every); blur_sigma: its standard deviation in pixels (either
    0: never). max_jitter: the largest random shift per axis and step, pixels. snapshots: iterations (0..num_iterations,
    0 = the start) whose images to keep. image_size: H = W of noise starts when no images are given. batch_size:
    images per chunk (memory only: results are the same); None or <= 0 is one chunk.
    """

    learning_rate: float | tuple[float, ...] = 5.0
    l2_reg: float | tuple[float, ...] = 1e-3
    num_iterations: int = 200
    blur_every: int = 10
    blur_sigma: float = 0.5
    max_jitter: int = 16
    snapshots: tuple[int, ...] = ()
    image_size: int = 224
    batch_size: int | None = None

    def __post_init__(self):  # sequences become tuples, so that a settings value is immutable and hashable
        for name in ("learning_rate", "l2_reg", "snapshots"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)):
                object.__setattr__(self, name, tuple(value))

    def kept(self) -> list[int]:
        """The snapshot iterations that exist (0..num_iterations), sorted, each once."""
        return sorted({int(s) for s in self.snapshots if 0 <= int(s) <= self.num_iterations})


def _starts(model, images: torch.Tensor, noise_rows: torch.Tensor,
            seeds: Sequence[int]) -> tuple[torch.Tensor, list[torch.Generator]]:
    """Normalized starting images N×C×H×W and one generator per row, seeded by ``seeds``: rows marked in
    ``noise_rows`` start from :func:`seeded_noise` and their generators go on to draw the jitter, as the lab's
    noise start does; the other rows start from ``images`` (pixel space), with fresh generators."""
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    z = model.normalize(images)
    rows = noise_rows.nonzero().flatten().tolist()
    if rows:
        noise, noise_generators = seeded_noise([seeds[r] for r in rows], tuple(images.shape[1:]))
        z[rows] = noise.to(z)
        for r, generator in zip(rows, noise_generators):
            generators[r] = generator
    return z, generators


class _Rows(NamedTuple):
    """One chunk's result, rows first so that :func:`~netviz.methods.common.chunked` joins chunks along dim 0:
    images N×3×H×W, snapshots N×S×3×H×W (pixel space, the kept iterations in order), objective N×T."""

    images: torch.Tensor
    snapshots: torch.Tensor
    objective: torch.Tensor


def _visualize_rows(images: torch.Tensor, targets: torch.Tensor, noise_rows: torch.Tensor, seeds: torch.Tensor,
                    rates: torch.Tensor, lambdas: torch.Tensor, *, model, settings: VizSettings,
                    transforms: Sequence[Transform], progress: Progress | None) -> _Rows:
    """The ascent of one chunk of rows (arguments as in :func:`class_visualization`, one row each)."""
    device = images.device
    z, generators = _starts(model, images, noise_rows, seeds.tolist())
    objective = class_score(targets.to(device)) - lambdas.to(device) * squared_norm()
    kept = settings.kept()
    result = gradient_ascent(model.forward_normalized, z, objective, rates.to(device), settings.num_iterations,
                             transforms, generators, settings.max_jitter, kept, progress)
    final = model.denormalize(result.z)
    snapshots = [model.denormalize(result.snapshots[k]) for k in kept]
    stacked = torch.stack(snapshots, 1) if snapshots else final.new_empty(len(final), 0, *final.shape[1:])
    return _Rows(final, stacked, result.objective.T)


def class_visualization(model, images: torch.Tensor | None, targets: torch.Tensor,
                        settings: VizSettings = VizSettings(), *,
                        from_noise: torch.Tensor | Sequence[bool] | None = None,
                        seeds: int | Sequence[int] | torch.Tensor = 0,
                        progress: Progress | None = None) -> Visualization:
    """Images that ``model`` scores highly as ``targets``: the lab's class visualization, batched.

    model: a :class:`~netviz.models.Classifier` (uses ``.forward_normalized``, ``.normalize``, ``.denormalize``).
    images: N×3×H×W start in pixel space [0, 1], or None to start from seeded standard normal noise in normalized
    space (the lab's start; N = len(targets), H = W = ``settings.image_size``). targets: N class indices.
    settings: the run (:class:`VizSettings`: steps, learning rates and λ, blur, jitter, snapshots, chunk size).
    from_noise: N booleans, rows that start from seeded noise although ``images`` is given (their image rows are
    ignored): noise and photo starts then share one batch. None: every row starts from noise iff ``images`` is None.
    seeds: one value for all images or one per image (N); each image's seed drives its own noise and jitter
    stream. Device follows ``images`` (or ``targets``).
    """
    n, no_images = len(targets), images is None
    if no_images:  # pixel rows that only hold the place of the noise starts
        images = torch.zeros(n, 3, settings.image_size, settings.image_size, device=targets.device)
    noise_rows = torch.as_tensor([no_images] * n if from_noise is None else from_noise, dtype=torch.bool).cpu()
    if len(noise_rows) != n:
        raise ValueError(f"from_noise has {len(noise_rows)} values for {n} images")
    low, high = pixel_range(model)
    transforms = [clamp_to(low, high), blur_every(settings.blur_every, settings.blur_sigma)]
    with frozen_eval(model):
        rows = chunked(_visualize_rows, settings.batch_size, images, targets, noise_rows,
                       _per_image(seeds, n, "seeds").long(), _per_image(settings.learning_rate, n, "learning_rate"),
                       _per_image(settings.l2_reg, n, "l2_reg"), model=model, settings=settings,
                       transforms=transforms, progress=progress)
    snapshots = dict(zip(settings.kept(), rows.snapshots.unbind(1)))
    return Visualization(rows.images, snapshots, rows.objective.T.contiguous())
