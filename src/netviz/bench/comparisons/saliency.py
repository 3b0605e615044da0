"""The saliency section's comparisons: the per-image loop a notebook would write and Captum's Saliency, on the
section's gradient maps, checked against netviz's job results."""

from __future__ import annotations

from typing import Iterator

import torch

from netviz.bench.harness import Bench
from netviz.bench.timing import Variant, Workload
from netviz.config import section_models


def notebook_saliency(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """|d score / d pixel|, max over channels, one image at a time: N×H×W."""
    maps = []
    for image, label in zip(images, labels):
        x = image[None].clone().requires_grad_(True)
        model(x)[0, label].backward()
        maps.append(x.grad.abs().amax(dim=1)[0])
    return torch.stack(maps)


def captum_saliency(model, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Captum's Saliency on the whole batch at once (abs), max over channels: N×H×W."""
    from captum.attr import Saliency

    return Saliency(model).attribute(images.clone().requires_grad_(True), target=labels, abs=True).amax(dim=1)


def saliency_workloads(b: Bench) -> Iterator[Workload]:
    """The per-image loop and Captum on the section's gradient maps, checked against netviz's job results."""
    import numpy as np

    x, y = b.images, b.labels
    for name in section_models(b.config, "saliency"):
        plain = b.plain(name)

        def reference(name=name):
            results = b.job_results.get(("saliency", name))
            return torch.from_numpy(np.concatenate([r["maps"] for r in results])) if results else None

        yield Workload("saliency", "vanilla gradient", name, len(x), "image", [
            Variant("loop", "loop", lambda m=plain: notebook_saliency(m, x, y),
                    warmup=lambda m=plain: notebook_saliency(m, x[:1], y[:1]), batch_size=1),
            Variant("captum", "library", lambda m=plain: captum_saliency(m, x, y),
                    warmup=lambda m=plain: captum_saliency(m, x[:2], y[:2]), batch_size=len(x)),
        ], reference=reference)
