"""The section's settings (``[saliency_methods]`` of the config) and the one function that checks them."""

from __future__ import annotations

from dataclasses import dataclass, fields

from netviz.errors import NetvizError
from netviz.experiments.context import Context
from netviz.methods.baselines import SUBSTRATES

# Share of pixels changed after step k of K deletion/insertion steps: (k / K) ** power.
SPACING_POWER = {"uniform": 1, "quadratic": 2}


def fractions_for(steps: int, spacing: str) -> list[float]:
    """Shares of pixels changed after each of ``steps`` deletion/insertion steps, 0 and 1 included (steps+1 values)."""
    power = SPACING_POWER[spacing]
    return [(k / steps) ** power for k in range(steps + 1)]


@dataclass(frozen=True)
class Settings:
    """What a run of the section is, as the config gives it (types as in ``config/default.toml``).

    target: the class the maps explain, "predicted" (each model's top-1) or "label".
    num_shown: images (the first N, >= 1) in the images × methods figure.
    tolerance_px: pointing game: a hit when the map's maximum lies within this many pixels (>= 0) of a box.
    smoothgrad_samples (>= 1), smoothgrad_sigma: SmoothGrad's noisy copies and their noise std (pixel units of [0, 1]).
    ig_steps (>= 1), ig_blur_sigma: Integrated Gradients' Gauss–Legendre points, and the std (px) of its blurred
    baseline.
    perturbation_steps (>= 1), perturbation_spacing ("uniform" or "quadratic"): deletion/insertion's steps.
    deletion_substrate, insertion_substrate: what deleted pixels become and what insertion starts from (one of
    :data:`netviz.methods.baselines.SUBSTRATES`); substrate_blur_sigma: the std (px) of the "blur" substrate.
    randomization_images (>= 1): the first images of the randomization check; randomization_fractions: its
    cascading stages, increasing shares in [0, 1] of the weight layers re-initialised from the top.
    """

    target: str
    num_shown: int
    tolerance_px: int
    smoothgrad_samples: int
    smoothgrad_sigma: float
    ig_steps: int
    ig_blur_sigma: float
    perturbation_steps: int
    perturbation_spacing: str
    deletion_substrate: str
    insertion_substrate: str
    substrate_blur_sigma: float
    randomization_images: int
    randomization_fractions: tuple[float, ...]

    @property
    def fractions(self) -> list[float]:
        """Shares of pixels changed at each point of the deletion/insertion curves (perturbation_steps + 1)."""
        return fractions_for(self.perturbation_steps, self.perturbation_spacing)

    def values(self, *keys: str) -> dict:
        """The named settings as the config holds them (lists for the tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(self, k)) for k in keys)}


def read_settings(ctx: Context) -> Settings:
    """The section's settings; values the code cannot use are refused, naming the key and what to do (ranges the
    config loader checks for every key, :data:`netviz.config.CONSTRAINTS`, are checked again here for a config
    built without it)."""
    section = ctx.section
    if section["perturbation_spacing"] not in SPACING_POWER:
        raise NetvizError("saliency_methods.perturbation_spacing must be \"uniform\" or \"quadratic\", "
                          f"got {section['perturbation_spacing']!r}")
    if section["target"] not in ("predicted", "label"):
        raise NetvizError(f"saliency_methods.target must be \"predicted\" or \"label\", got {section['target']!r}")
    for key in ("deletion_substrate", "insertion_substrate"):
        if section[key] not in SUBSTRATES:
            raise NetvizError(f"saliency_methods.{key} must be one of {', '.join(SUBSTRATES)}, got {section[key]!r}")
    for key in ("smoothgrad_samples", "ig_steps", "perturbation_steps", "num_shown", "randomization_images"):
        if section[key] < 1:
            raise NetvizError(f"saliency_methods.{key} must be at least 1, got {section[key]}")
    fractions = section["randomization_fractions"]
    if not fractions or any(not 0 <= f <= 1 for f in fractions) or sorted(fractions) != list(fractions):
        raise NetvizError(f"saliency_methods.randomization_fractions must be increasing shares in [0, 1], got {fractions}")
    values = {f.name: section[f.name] for f in fields(Settings)}
    return Settings(**{**values, "randomization_fractions": tuple(fractions)})
