"""What the bench appendix states that ``bench.json`` does not store: ratios of its numbers."""

from __future__ import annotations

from netviz.report.derived import ratio


def derive(bench: dict) -> None:
    """Add the appendix's ratios to ``bench.json`` as loaded (in place)."""
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
