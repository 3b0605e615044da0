"""The adversarial section's comparisons: the lab's fooling image and untargeted L∞ attacks written as notebook
loops, one image at a time, and torchattacks on the transfer attacks."""

from __future__ import annotations

from typing import Iterator

import torch
import torch.nn.functional as F

from netviz.bench.harness import Bench
from netviz.bench.timing import Variant, Workload


def notebook_fooling(model, images: torch.Tensor, targets: torch.Tensor, lr: float, max_iter: int) -> torch.Tensor:
    """The lab's fooling image, one image at a time: normalised-space steps lr·g/‖g‖ on the target's score until
    the target is top-1 (or ``max_iter`` steps), each step mapped back to pixels and clipped to [0, 1]."""
    out = []
    for image, target in zip(images, targets):
        x = image[None].clone()
        for step in range(max_iter + 1):
            z = model.normalize(x).detach().requires_grad_(True)
            logits = model(model.denormalize(z))
            if logits.argmax(1).item() == int(target) or step == max_iter:
                break
            logits[0, target].backward()
            x = model.denormalize(z.detach() + lr * z.grad / (z.grad.norm() + 1e-10)).clamp(0, 1)
        out.append(x)
    return torch.cat(out)


def notebook_attack(model, images: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float, steps: int,
                    momentum: float = 0.0, random_start: bool = False, generator: torch.Generator | None = None
                    ) -> torch.Tensor:
    """Untargeted L∞ FGSM / PGD / MI-FGSM (budgets in pixel units), one image at a time, as a notebook writes it:
    x ← clip(x₀ + clip(x + α·sign(g) − x₀, ±ε), 0, 1), g the cross-entropy gradient (with momentum: the running
    sum of g/mean|g|)."""
    out = []
    for image, label in zip(images, labels):
        x0 = image[None]
        x = x0.clone()
        if random_start:
            x = (x0 + (torch.rand(x0.shape, generator=generator, device=x0.device) * 2 - 1) * eps).clamp(0, 1)
        velocity = torch.zeros_like(x0)
        for _ in range(steps):
            x = x.detach().requires_grad_(True)
            F.cross_entropy(model(x), label[None]).backward()
            grad = x.grad
            if momentum > 0:
                velocity = momentum * velocity + grad / grad.abs().mean()
                grad = velocity
            x = (x0 + (x.detach() + alpha * grad.sign() - x0).clamp(-eps, eps)).clamp(0, 1)
        out.append(x.detach())
    return torch.cat(out)


def adversarial_workloads(b: Bench) -> Iterator[Workload]:
    """The per-image loop (and torchattacks) on the lab's fooling images and the transfer attacks (FGSM, PGD,
    MI-FGSM at the transfer budget, run to the end) per model. The ε sweep is the transfer loop again with early stopping, so it is not timed separately."""
    import torchattacks

    from netviz.experiments.adversarial import build_attack
    from netviz.methods.adversarial import Fooling, levels

    s, seed = b.config["adversarial"], int(b.config["run"]["seed"])
    target = int(s["fooling_target"])
    fooling_idx = [i for i in (s["fooling_images"] or range(len(b.images))) if i < len(b.images) and int(b.labels[i]) != target]
    spec = Fooling(float(s["fooling_lr"]), b.steps(int(s["fooling_max_iter"])), float(s["fooling_kappa"]))
    models = b.models("adversarial")
    with torch.inference_mode():
        correct = torch.stack([m(b.images).argmax(1) == b.labels for m in models.values()]).all(0)
    transfer_idx = correct.nonzero().squeeze(1).tolist() or list(range(len(b.images)))
    xt, yt = b.images[transfer_idx], b.labels[transfer_idx]
    steps = b.steps(int(s["transfer_steps"]))
    for name in models:
        plain = b.plain(name)
        xf = b.images[fooling_idx]
        tf = torch.full((len(fooling_idx),), target, dtype=torch.long, device=b.device)
        yield Workload("adversarial", f"fooling image (≤ {spec.max_iter} steps)", name, len(fooling_idx), "image", [
            Variant("loop", "loop", lambda m=plain: notebook_fooling(m, xf, tf, spec.lr, spec.max_iter),
                    warmup=lambda m=plain: notebook_fooling(m, xf[:1], tf[:1], spec.lr, 1), batch_size=1),
        ])
        for attack_name in s["transfer_attacks"]:
            if attack_name == "pgd_l2":
                continue  # the notebook loop and the comparison here are L∞ only
            attack = build_attack(attack_name, float(s["transfer_eps"]), s, steps)
            eps, alpha = levels(attack.eps), levels(attack.alpha)
            library = {"fgsm": lambda m: torchattacks.FGSM(m, eps=eps),
                       "pgd_linf": lambda m: torchattacks.PGD(m, eps=eps, alpha=alpha, steps=attack.steps,
                                                              random_start=attack.random_start),
                       "mi_fgsm": lambda m: torchattacks.MIFGSM(m, eps=eps, alpha=alpha, steps=attack.steps,
                                                                decay=attack.momentum)}[attack_name]

            def loop(m=plain, a=attack, k=None):
                return notebook_attack(m, xt[:k], yt[:k], levels(a.eps), levels(a.alpha), a.steps, a.momentum,
                                       a.random_start, torch.Generator(device=b.device).manual_seed(seed))

            task = {"fgsm": "FGSM", "pgd_linf": "PGD L∞", "mi_fgsm": "MI-FGSM"}[attack_name]
            yield Workload("adversarial", f"{task} (ε {attack.eps:g}, {attack.steps} steps)", name,
                           len(transfer_idx) * attack.steps, "image-step", [
                Variant("loop", "loop", loop, warmup=lambda a=attack: loop(a=a, k=1), batch_size=1),
                Variant("torchattacks", "library", lambda m=plain, make=library: make(m)(xt, yt),
                        warmup=lambda m=plain, make=library: make(m)(xt[:2], yt[:2]), batch_size=len(xt)),
            ], same_random=not attack.random_start, note="random starts differ" if attack.random_start else "")
