"""The saliency_methods section's comparisons: its six maps with Captum's classes, image by image (the loop)
and on all images with Captum's internal batching (the library), and the loop on its deletion/insertion curves."""

from __future__ import annotations

from typing import Iterator

import torch

from netviz.bench.harness import Bench
from netviz.bench.timing import Variant, Workload
from netviz.experiments.saliency_methods.settings import fractions_for


def notebook_attributions(model, images: torch.Tensor, targets: torch.Tensor, settings: dict,
                          batch_size: int | None = None) -> list[torch.Tensor]:
    """The section's six maps with Captum's own classes, as a notebook calls them: image by image
    (``batch_size`` None) or, as the library comparison, on all images at once with Captum's internal batching
    set to ``batch_size`` rows. Returns the raw attributions of the methods, in the section's order."""
    from captum.attr import (GuidedBackprop, IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel,
                             Saliency)

    from netviz.methods.baselines import gaussian_blur

    saliency, ig, gbp = Saliency(model), IntegratedGradients(model), GuidedBackprop(model)
    smooth, cam = NoiseTunnel(saliency), LayerGradCam(model, model.layer())
    samples, steps = int(settings["smoothgrad_samples"]), int(settings["ig_steps"])
    parts = [(images, targets)] if batch_size else [(x[None], t[None]) for x, t in zip(images, targets)]
    rows = batch_size or steps
    out: list[list[torch.Tensor]] = [[] for _ in range(6)]
    for x, t in parts:
        x = x.clone().requires_grad_(True)
        results = [
            saliency.attribute(x, target=t, abs=False),
            smooth.attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=settings["smoothgrad_sigma"],
                             nt_samples_batch_size=max(1, rows // len(x)), target=t, abs=False),
            ig.attribute(x, baselines=torch.zeros_like(x), target=t, n_steps=steps, method="gausslegendre",
                         internal_batch_size=max(rows, len(x))),
            ig.attribute(x, baselines=gaussian_blur(x.detach(), settings["ig_blur_sigma"]), target=t, n_steps=steps,
                         method="gausslegendre", internal_batch_size=max(rows, len(x))),
            gbp.attribute(x, target=t),
            LayerAttribution.interpolate(cam.attribute(x, target=t, relu_attributions=True).detach(),
                                         tuple(x.shape[-2:]), "bilinear").squeeze(1),
        ]
        for store_, result in zip(out, results):
            store_.append(result.detach())
    return [torch.cat(parts_) for parts_ in out]


def saliency_methods_workloads(b: Bench) -> Iterator[Workload]:
    """The per-image loop and Captum on the section's maps (six methods; a subset of the images) and the loop on its
    deletion/insertion curves, per model."""
    import warnings

    from netviz.methods.baselines import substrate
    from netviz.methods.perturbation import perturbation_curve, saliency_ranks
    from netviz.methods.saliency import vanilla_gradient

    warnings.filterwarnings("ignore", message="(Setting backward hooks on ReLU|.*did not already require gradients)")
    s, seed = b.config["saliency_methods"], int(b.config["run"]["seed"])
    x = b.images
    k = int(b.settings["map_images"]) or len(x)  # the maps cost many gradient passes per image (below): a subset is timed
    images_m = b.images[:k]
    passes = len(x) * (3 + int(s["smoothgrad_samples"]) + 2 * int(s["ig_steps"]))  # gradient passes of the six methods
    steps = int(s["perturbation_steps"])
    fractions = fractions_for(steps, s["perturbation_spacing"])[1:-1]  # the loop re-scores only the inner steps
    for name, model in b.models("saliency_methods").items():
        plain = b.plain(name)
        size = b.batch_size("saliency_methods", model)
        with torch.inference_mode():
            logits = model(x)
        targets = logits.argmax(1) if s["target"] == "predicted" else b.labels  # outside: a normal tensor

        tm = targets[:k]
        yield Workload("saliency_methods", f"six maps ({k} images)", name, passes * k // len(x), "image-pass", [
            Variant("loop", "loop", lambda m=plain, t=tm: notebook_attributions(m, images_m, t, s),
                    warmup=lambda m=plain, t=tm: notebook_attributions(m, images_m[:1], t[:1], s), batch_size=1),
            Variant("captum", "library", lambda m=plain, t=tm, bs=size: notebook_attributions(m, images_m, t, s, bs),
                    warmup=lambda m=plain, t=tm, bs=size: notebook_attributions(m, images_m[:1], t[:1], s, bs),
                    batch_size=size),
        ], same_random=False, note="SmoothGrad noise differs between variants")
        # the loop's inputs (the order in which pixels change), made once with netviz's methods; not timed
        ranks = saliency_ranks(vanilla_gradient(model, x, targets, batch_size=size), seed=seed)
        substrates = substrate(s["deletion_substrate"], s["substrate_blur_sigma"])(x)

        def loop_curves(m=plain, t=targets, r=ranks, k=None):
            rows = range(k or len(x))
            return torch.stack([torch.cat([perturbation_curve(m, b.images[i : i + 1], substrates[i : i + 1], r[i : i + 1],
                                                              t[i : i + 1], [f], mode) for f in fractions], dim=1)
                                for mode in ("deletion", "insertion") for i in rows]).view(2, len(rows), -1)

        yield Workload("saliency_methods", "deletion/insertion (one method)", name, 2 * len(x) * len(fractions),
                       "image-pass", [
            Variant("loop", "loop", loop_curves, warmup=lambda: loop_curves(k=1), batch_size=1),
        ])
