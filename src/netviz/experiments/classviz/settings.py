"""The [classviz] config table as the section uses it: :class:`Settings` and the one function that checks it."""

from __future__ import annotations

from dataclasses import dataclass

from netviz.data import class_index
from netviz.errors import NetvizError
from netviz.methods.common import PRECISIONS


@dataclass(frozen=True)
class Settings:
    """The section's config values, checked (:func:`read_settings`). Numbers are kept as the config gives them.

    learning_rate, l2_reg: the default step size (normalized-input units per unit of gradient, >= 0) and λ (>= 0).
    num_iterations: gradient steps (>= 1). blur_every: blur after steps 1, 1 + k, ... (0 = never);
    blur_sigma: its standard deviation in pixels (>= 0). max_jitter: the largest random shift, pixels (>= 0).
    snapshots: the kept iterations, sorted, always with 0 (the start) and num_iterations, none beyond it.
    target: the featured class (Q8); gallery / other_gallery: the classes from noise on the first / other models;
    all class indices 0..999. sweep_classes, sweep_learning_rates, sweep_l2_regs: the Q9 grid (values >= 0);
    sweep_models: the models that run it (default the first). start_image / own_class_image: image indices of the
    Q10 photo starts, toward start_target / the image's own label. precision: "fp32" or "bf16".
    chunk_size: rows per optimise job (0 = one job per model).
    """

    learning_rate: float
    l2_reg: float
    num_iterations: int
    blur_every: int
    blur_sigma: float
    max_jitter: int
    snapshots: list[int]
    target: int
    gallery: list[int]
    other_gallery: list[int]
    sweep_classes: list[int]
    sweep_learning_rates: list[float]
    sweep_l2_regs: list[float]
    sweep_models: list[str]
    start_image: int
    own_class_image: int
    start_target: int
    precision: str
    chunk_size: int


def _check_ranges(s: dict) -> None:
    """The optimisation's numbers: NetvizError naming the first bad one."""
    if s["num_iterations"] < 1:
        raise NetvizError(f"classviz.num_iterations must be at least 1, got {s['num_iterations']}")
    if s["max_jitter"] < 0 or s["blur_sigma"] < 0:
        raise NetvizError("classviz.max_jitter and classviz.blur_sigma must be >= 0")
    for key in ("learning_rate", "l2_reg"):
        if s[key] < 0:
            raise NetvizError(f"classviz.{key} must be >= 0, got {s[key]}")
    for key in ("sweep_learning_rates", "sweep_l2_regs"):
        if not s[key] or any(v < 0 for v in s[key]):
            raise NetvizError(f"classviz.{key} must list at least one value >= 0, got {s[key]}")
    if s.get("precision", "fp32") not in PRECISIONS:
        raise NetvizError(f"classviz.precision = {s['precision']!r} is not known; use one of {', '.join(PRECISIONS)}")


def _check_choices(s: dict, n_images: int, names: list[str]) -> None:
    """The images and models the settings name: NetvizError naming the first that does not exist."""
    for key in ("start_image", "own_class_image"):
        if not 0 <= s[key] < n_images:
            raise NetvizError(f"classviz.{key} = {s[key]} is not an image index; the image set has images "
                              f"0..{n_images - 1}: choose one, e.g. --set classviz.{key}=0")
    unknown = [m for m in s["sweep_models"] if m not in names]
    if unknown:
        raise NetvizError(f"classviz.sweep_models names '{unknown[0]}', which is not among this section's models: {', '.join(names)}")


def read_settings(ctx) -> Settings:
    """Check the [classviz] table of ``ctx`` (a :class:`~netviz.experiments.context.Context`: its ``section``,
    ``images`` and ``model_names``) and return it as :class:`Settings`; a bad value raises NetvizError."""
    s, names = ctx.section, list(ctx.model_names)
    _check_ranges(s)
    _check_choices(s, len(ctx.images), names)
    T = s["num_iterations"]
    return Settings(
        learning_rate=s["learning_rate"], l2_reg=s["l2_reg"], num_iterations=T, blur_every=s["blur_every"],
        blur_sigma=s["blur_sigma"], max_jitter=s["max_jitter"],
        snapshots=sorted({0, T, *(k for k in s["snapshots"] if 0 < k <= T)}),
        target=class_index(s["target"]), gallery=[class_index(c) for c in s["gallery"]],
        other_gallery=[class_index(c) for c in s["other_gallery"]],
        sweep_classes=[class_index(c) for c in s["sweep_classes"]], sweep_learning_rates=s["sweep_learning_rates"],
        sweep_l2_regs=s["sweep_l2_regs"], sweep_models=s["sweep_models"] or names[:1],
        start_image=s["start_image"], own_class_image=s["own_class_image"],
        start_target=class_index(s["start_target"]), precision=s.get("precision", "fp32"),
        chunk_size=int(s.get("chunk_size", 0)),
    )
