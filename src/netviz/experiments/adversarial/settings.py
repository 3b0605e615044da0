"""The section's settings (``[adversarial]`` of the config), checked once, and the attacks they describe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from netviz.data import class_index
from netviz.errors import NetvizError
from netviz.experiments.adversarial.work import ATTACKS, build_attack
from netviz.experiments.context import Context
from netviz.methods.adversarial import Attack, Fooling
from netviz.methods.common import PRECISIONS


@dataclass(frozen=True)
class Settings:
    """The section's config values. Budgets (``eps_grid``, ``transfer_eps``) are in 8-bit levels: L∞ per value,
    L2 the norm of the whole perturbation (``eps_grid_l2``, ``transfer_eps_l2``). Image lists are positions in the
    image set; an empty one means every image.

    - the lab's fooling image: ``target`` (ImageNet class 0..999), ``fooling_images``, ``fooling_shown`` (the
      figure's images, among ``fooling_images``), step ``fooling_lr`` (L2 length in the model's normalised input
      space), at most ``fooling_max_iter`` steps, margin ``fooling_kappa`` in [0, 1) (0 = off) and
      ``kappa_compare`` in [0, 1) (the shown images again with that margin; 0 = skip);
    - the sweep: ``attacks`` (of :data:`ATTACKS`) over the budgets ``eps_grid`` / ``eps_grid_l2`` on
      ``sweep_images``, ``steps`` per iterative attack, PGD's step ``step_size`` × ε, PGD's ``random_start``,
      MI-FGSM's decay ``momentum``;
    - the transfer sets: ``transfer_attacks`` at ``transfer_eps`` (L2: ``transfer_eps_l2``), ``transfer_steps``;
    - ``precision`` of the attacks' passes (one of ``PRECISIONS``) and ``jpeg_quality`` (1..95) of the JPEG
      round trip.
    """

    target: int
    fooling_images: tuple
    fooling_shown: tuple
    fooling_lr: float
    fooling_max_iter: int
    fooling_kappa: float
    kappa_compare: float
    attacks: tuple
    eps_grid: tuple
    eps_grid_l2: tuple
    sweep_images: tuple
    steps: int
    step_size: float
    random_start: bool
    momentum: float
    transfer_attacks: tuple
    transfer_eps: float
    transfer_eps_l2: float
    transfer_steps: int
    precision: str
    jpeg_quality: int

    def lab_spec(self, kappa: float | None = None) -> Fooling:
        """The lab's method with the section's step and limit, at margin ``kappa`` (default ``fooling_kappa``)."""
        return Fooling(self.fooling_lr, self.fooling_max_iter, float(self.fooling_kappa if kappa is None else kappa))

    def attack_params(self, name: str, steps: int) -> dict:
        """The settings :func:`build_attack` reads for ``name`` (and nothing else, so that a job's key holds only them)."""
        if name in ("pgd_linf", "pgd_l2"):
            return {"steps": steps, "step_size": self.step_size, "random_start": self.random_start}
        if name == "mi_fgsm":
            return {"steps": steps, "momentum": self.momentum}
        return {}

    def attack(self, name: str, eps: float, steps: int, stop_on_success: bool = False) -> Attack:
        """The untargeted attack ``name`` at budget ``eps`` (levels) with ``steps`` steps."""
        return build_attack(name, eps, self.attack_params(name, steps), steps, stop_on_success=stop_on_success)

    def sweep_grid(self, name: str) -> list[float]:
        """The sweep's budgets for attack ``name`` (levels, increasing)."""
        return sorted(float(e) for e in (self.eps_grid_l2 if name == "pgd_l2" else self.eps_grid))

    def transfer_budget(self, name: str) -> float:
        """The transfer sets' budget for attack ``name`` (levels)."""
        return self.transfer_eps_l2 if name == "pgd_l2" else self.transfer_eps


def read_settings(ctx: Context) -> Settings:
    """The section's settings from ``ctx``, checked against the image set (a :class:`NetvizError` that says
    what to change otherwise)."""
    section, n_images = ctx.section, len(ctx.images)
    for key in ("attacks", "transfer_attacks"):
        for name in section[key]:
            if name not in ATTACKS:
                raise NetvizError(f"unknown attack '{name}' in adversarial.{key}; known: {', '.join(ATTACKS)}")
    for key in ("fooling_images", "fooling_shown", "sweep_images"):
        bad = [i for i in section[key] if not 0 <= i < n_images]
        if bad:
            example = "[0]'" if key == "fooling_shown" else "[]' (all images)"
            raise NetvizError(f"adversarial.{key} has image index {bad[0]}, but there are {n_images} images "
                              f"(0..{n_images - 1}); use indices in that range, e.g. --set 'adversarial.{key}={example}")
    chosen = set(section["fooling_images"] or range(n_images))
    missing = [i for i in section["fooling_shown"] if i not in chosen]
    if missing:
        raise NetvizError(f"adversarial.fooling_shown has image {missing[0]}, which is not in adversarial.fooling_images; add it there")
    if not 0 <= section["fooling_kappa"] < 1 or not 0 <= section["kappa_compare"] < 1:
        raise NetvizError("adversarial.fooling_kappa and kappa_compare are probabilities in [0, 1); 0 means off")
    if section.get("precision", "fp32") not in PRECISIONS:
        raise NetvizError(f"adversarial.precision = {section['precision']!r} is not known; use one of {', '.join(PRECISIONS)}")
    if not 1 <= section["jpeg_quality"] <= 95:
        raise NetvizError(f"adversarial.jpeg_quality must be in 1..95, got {section['jpeg_quality']}")
    return _settings(section)


def _settings(section: Mapping) -> Settings:
    """The checked section as :class:`Settings` (class names and indices resolved, numbers typed)."""
    return Settings(
        target=class_index(int(section["fooling_target"])), fooling_images=tuple(section["fooling_images"]),
        fooling_shown=tuple(section["fooling_shown"]), fooling_lr=float(section["fooling_lr"]),
        fooling_max_iter=int(section["fooling_max_iter"]), fooling_kappa=float(section["fooling_kappa"]),
        kappa_compare=float(section["kappa_compare"]), attacks=tuple(section["attacks"]),
        eps_grid=tuple(section["eps_grid"]), eps_grid_l2=tuple(section["eps_grid_l2"]),
        sweep_images=tuple(section["sweep_images"]), steps=int(section["steps"]),
        step_size=float(section["step_size"]), random_start=bool(section["random_start"]),
        momentum=float(section["momentum"]), transfer_attacks=tuple(section["transfer_attacks"]),
        transfer_eps=float(section["transfer_eps"]), transfer_eps_l2=float(section["transfer_eps_l2"]),
        transfer_steps=int(section["transfer_steps"]), precision=str(section.get("precision", "fp32")),
        jpeg_quality=int(section["jpeg_quality"]))

