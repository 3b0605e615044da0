"""What the class-visualization text states that ``metrics.json`` does not store."""

from __future__ import annotations

from typing import Any

from netviz.report.derived import ratio


def _with_tv(value: Any, tv_reference: Any) -> None:
    """Every dict below ``value`` that holds a TV gets ``tv_vs_photos``: its TV over the photographs' median."""
    if isinstance(value, dict):
        if isinstance(value.get("tv"), (int, float)):
            value["tv_vs_photos"] = ratio(value["tv"], tv_reference)
        for child in value.values():
            _with_tv(child, tv_reference)
    elif isinstance(value, list):
        for child in value:
            _with_tv(child, tv_reference)


def _levels(fraction: Any) -> float | None:
    """A share of the pixel range [0, 1] in 8-bit levels."""
    return None if fraction is None else float(fraction) * 255


def derive(r: dict) -> None:
    """Add the section's derived numbers to its metrics as loaded (in place)."""
    _with_tv(r, r.get("reference", {}).get("tv_median"))
    for m in r.get("per_model", {}).values():
        for sweep in m.get("sweeps", []):
            for cell in sweep.get("cells", []):
                # the share of the image the λ term keeps at each step (the decay 1 - 2·lr·λ)
                cell["keep_per_step"] = 1 - 2 * cell["learning_rate"] * cell["l2_reg"]
        for start in m.get("starts", []):  # the mean changes in 8-bit levels, as the text quotes them
            start["levels"] = {"mean": _levels(start.get("mean_abs_change")),
                               "in_boxes": _levels(start.get("mean_abs_change_in_boxes")),
                               "outside_boxes": _levels(start.get("mean_abs_change_outside_boxes"))}
    per_model = r.get("per_model", {})
    first = per_model.get(r.get("first"), {})
    first_std = first.get("input_std", [None, None])
    for m in per_model.values():
        # how much larger a step in normalized space is in pixels than on the first model (std, channel 0 over the
        # first model's middle channel, as the prose compares them)
        m["std_vs_first"] = ratio((m.get("input_std") or [None])[0], first_std[1] if len(first_std) > 1 else None)
