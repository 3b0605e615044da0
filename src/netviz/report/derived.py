"""Quantities the report's prose states that are not stored as such: ratios of stored numbers.

Templates only phrase numbers; every division happens here, once, on the results as loaded, and a ratio whose
denominator is zero (a time rounded to 0 s on a fast machine, a blank reference image) or missing is ``None``,
which the template phrases (or leaves out) instead of failing. The stored files are not changed: grading reads
them, not this view.
"""

from __future__ import annotations

from typing import Any


def ratio(numerator: Any, denominator: Any) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def _bench(bench: dict) -> None:
    target = bench.get("target_speedup")
    for s in bench.get("summary", []):
        share = ratio(s.get("vs_loop"), target)
        s["short_of_target"] = None if share is None else 1.0 - share  # share of the goal still missing
    for p in bench.get("precision", []):
        p["bf16_over_fp32"] = ratio(p.get("bf16_s"), p.get("fp32_s"))
    projection = (bench.get("scaleout") or {}).get("projection")
    if projection:  # the projected GPU time per image in ms, as the text quotes it
        seconds = projection.get("projected_gpu_s_per_image")
        projection["projected_gpu_ms_per_image"] = None if seconds is None else 1000 * float(seconds)


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


def _classviz(r: dict) -> None:
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


def _adversarial(r: dict) -> None:
    for by_model in r.get("sweep", {}).values():
        for attack in by_model.get("attacks", {}).values():
            spec = attack.get("spec", {})
            spec["alpha_per_eps"] = ratio(spec.get("alpha"), spec.get("eps"))


def derive(results: dict) -> dict:
    """Add the ratios the templates need to the loaded results (in place) and return them."""
    sections = results.get("sections", {})
    if "classviz" in sections:
        _classviz(sections["classviz"])
    if "adversarial" in sections:
        _adversarial(sections["adversarial"])
    if results.get("bench"):
        _bench(results["bench"])
    return results
