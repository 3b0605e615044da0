"""What the bench appendix states that ``bench.json`` does not store: ratios of its numbers."""

from __future__ import annotations

from netviz.report.derived import ratio


def derive(bench: dict, provenance: dict | None = None) -> None:
    """Add what the appendix states to ``bench.json`` as loaded (in place): ratios, which experiments meet the
    speed goal, the subsets each paragraph speaks of, and the build's memory budgets (``provenance``: the build's
    ``provenance.json``, whose commit and configuration the appendix compares with the bench's)."""
    run_config = ((provenance or {}).get("config") or {}).get("run", {})
    environment = bench.get("environment", {})
    environment["finished_text"] = str(environment.get("finished", "")).replace("T", " ")[:16]
    environment["commit_short"] = str(environment.get("git_commit", ""))[:10]
    build_commit = str(((provenance or {}).get("git") or {}).get("commit", ""))
    environment["other_commit"] = build_commit[:10] if environment.get("git_commit") != build_commit else None
    summary = bench.get("summary", [])
    bench["met"] = [s for s in summary if s.get("meets_target")]
    bench["missed"] = [s for s in summary if not s.get("meets_target")]
    bench["against_libraries"] = [s for s in summary if s.get("vs_library")]
    bench["budgets_gb"] = {"cpu": run_config.get("memory_budget_gb", 4.0), "gpu": run_config.get("gpu_memory_budget_gb", 8.0)}
    memory = bench.get("memory") or []
    bench["memory_budgeted"] = [m for m in memory if m.get("budget_gb")]
    bench["memory_whole"] = [m for m in memory if not m.get("budget_gb")]
    for m in bench["memory_budgeted"]:
        m["within_budget"] = m.get("peak_gb") is not None and m["peak_gb"] <= m["budget_gb"]
        m["per_image_digits"] = 0 if (m.get("per_image_mb") or 0) >= 10 else 1
    for p in bench.get("precision") or []:
        p["steps_text"] = str(p.get("work", "")).split("×")[-1].strip()  # "... × 40 steps" -> "40 steps"
    target = bench.get("target_speedup")
    for s in bench.get("summary", []):
        share = ratio(s.get("vs_loop"), target)
        s["short_of_target"] = None if share is None else 1.0 - share  # share of the goal still missing
    for p in bench.get("precision") or []:
        p["bf16_over_fp32"] = ratio(p.get("bf16_s"), p.get("fp32_s"))
    bench["precision_timed"] = [p for p in bench.get("precision") or [] if p["bf16_over_fp32"]]
    projection = (bench.get("scaleout") or {}).get("projection")
    if projection:  # the projected GPU time per image in ms, as the text quotes it
        seconds = projection.get("projected_gpu_s_per_image")
        projection["projected_gpu_ms_per_image"] = None if seconds is None else 1000 * float(seconds)
