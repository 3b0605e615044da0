"""The classviz section's comparison: the lab's class visualization written as a notebook loop, one image at a
time, on the section's classes, sweep and photographs."""

from __future__ import annotations

from typing import Iterator

import torch

from netviz.bench.harness import Bench
from netviz.bench.timing import Variant, Workload
from netviz.config import section_models


def notebook_class_visualization(model, target: int, learning_rate: float, l2_reg: float, steps: int, seed: int,
                                 start: torch.Tensor | None = None, image_size: int = 224, blur_every: int = 10,
                                 blur_sigma: float = 0.5, max_jitter: int = 16) -> torch.Tensor:
    """The lab's class visualization for ONE image, as a notebook writes it (pixel space out, 1×3×H×W): start from
    seeded noise (normalized space) or ``start``; per step jitter, ascend score − λ‖z‖², unjitter, clamp, blur.
    Draws its noise and jitter from one generator seeded with ``seed``, in the order netviz does."""
    from torchvision.transforms.v2 import functional as TF

    generator = torch.Generator().manual_seed(seed)
    device = model.mean.device
    if start is None:
        z = torch.randn((3, image_size, image_size), generator=generator)[None].to(device)
    else:
        z = model.normalize(start[None])
    low, high = model.normalize(torch.zeros(1, 3, 1, 1, device=device)), model.normalize(torch.ones(1, 3, 1, 1, device=device))
    size = 2 * int(4 * blur_sigma + 0.5) + 1
    for t in range(steps):
        dy, dx = torch.randint(0, max_jitter + 1, (2,), generator=generator).tolist() if max_jitter > 0 else (0, 0)
        moved = torch.roll(z, (dy, dx), dims=(2, 3)).detach().requires_grad_(True)
        objective = model.net(moved)[0, target] - l2_reg * moved.pow(2).sum()  # the bare network, NCHW, as a notebook has it
        objective.backward()
        z = torch.roll(moved.detach() + learning_rate * moved.grad, (-dy, -dx), dims=(2, 3))
        z = torch.maximum(torch.minimum(z, high), low)
        if blur_every > 0 and blur_sigma > 0 and t % blur_every == 0:
            z = TF.gaussian_blur(z, [size, size], [blur_sigma, blur_sigma])
    return model.denormalize(z)


def classviz_workloads(b: Bench) -> Iterator[Workload]:
    """The per-image loop on the section's work per model (its classes and sweep from noise; two photographs),
    capped steps."""
    from netviz.data import class_index

    s, seed = b.config["classviz"], int(b.config["run"]["seed"])
    steps = b.steps(int(s["num_iterations"]))
    names = section_models(b.config, "classviz")
    sweep_models = s["sweep_models"] or names[:1]
    pixels = int(b.images.shape[-1])
    loop_common = dict(steps=steps, seed=seed, blur_every=s["blur_every"], blur_sigma=s["blur_sigma"],
                       max_jitter=s["max_jitter"], image_size=pixels)
    for name in names:
        plain = b.plain(name)
        classes = [class_index(s["target"])] + [class_index(c) for c in (s["gallery"] if name == names[0] else s["other_gallery"])]
        jobs = [(c, s["learning_rate"], s["l2_reg"]) for c in dict.fromkeys(classes)]
        if name in sweep_models:
            jobs += [(class_index(c), lr, l2) for c in s["sweep_classes"] for l2 in s["sweep_l2_regs"]
                     for lr in s["sweep_learning_rates"]]
        jobs = list(dict.fromkeys(jobs))

        def loop(m=plain, js=jobs, k=None):
            return torch.cat([notebook_class_visualization(m, c, lr, l2, **{**loop_common, "steps": k or steps})
                              for c, lr, l2 in js])

        yield Workload("classviz", "from noise", name, len(jobs) * steps, "image-step", [
            Variant("loop", "loop", loop, warmup=lambda js=jobs: loop(js=js[:1], k=1), batch_size=1)])
        starts = [s["start_image"], s["own_class_image"]]
        photos = b.images[starts]
        photo_targets = torch.tensor([class_index(s["start_target"]), int(b.labels[s["own_class_image"]])], device=b.device)

        def loop_photos(m=plain, k=None):
            return torch.cat([notebook_class_visualization(m, int(c), s["learning_rate"], s["l2_reg"], start=x,
                                                           **{**loop_common, "steps": k or steps})
                              for x, c in zip(photos, photo_targets)])

        yield Workload("classviz", "from photographs", name, len(starts) * steps, "image-step", [
            Variant("loop", "loop", loop_photos, warmup=lambda: loop_photos(k=1), batch_size=1)])
