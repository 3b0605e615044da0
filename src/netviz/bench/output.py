"""The bench's tables: the summary per experiment (rates, shares of the matmul rate, ratios to the loop and the
libraries) and the CSV and markdown forms of the results."""

from __future__ import annotations

import csv
import io

from netviz.bench.timing import _sig

RESULTS = "bench.json"
FIGURE = "bench_speedup.png"
TARGET_SPEEDUP = 3.0  # the project's goal: batched >= 3x the per-image loop on the same work

COLUMNS = ["experiment", "task", "model", "variant", "kind", "batch_size", "units", "unit", "repeats", "median_s",
           "min_s", "units_per_s", "gflop", "gflop_per_s", "share_of_peak", "speedup", "max_abs_diff", "mean_abs_diff"]


def _rate(rows: list[dict]) -> tuple[float, float, float | None]:
    """(total seconds, total GFLOP, GFLOP/s) of some rows."""
    seconds, gflop = sum(r["median_s"] for r in rows), sum(r["gflop"] for r in rows)
    return seconds, gflop, (gflop / seconds if seconds > 0 else None)


def summarize(rows: list[dict]) -> list[dict]:
    """Per experiment: netviz's jobs (time, GFLOP/s, share of the matmul rate measured before each row: their
    GFLOP over the GFLOP that rate would do in their time), the loop's and the
    libraries' GFLOP/s and how many times netviz's rate they fall short of (``vs_loop``, ``vs_library``). Also sets
    each comparison row's ``speedup``: netviz's rate on the same experiment and model over the row's rate."""
    out = []
    for experiment in dict.fromkeys(r["experiment"] for r in rows):
        mine = [r for r in rows if r["experiment"] == experiment]
        netviz = [r for r in mine if r["kind"] == "batched"]
        by_model = {r["model"]: r["gflop_per_s"] for r in netviz}
        for r in mine:
            ours = by_model.get(r["model"])
            r["speedup"] = (1.0 if r["kind"] == "batched" else
                            _sig(ours / r["gflop_per_s"], 3) if ours and r["gflop_per_s"] else None)
        seconds, gflop, rate = _rate(netviz)
        capacity = sum(r["median_s"] * r["matmul_gflop_per_s"] for r in netviz)
        entry = {"experiment": experiment, "workloads": len(netviz), "jobs": sum(r.get("jobs", 0) for r in netviz),
                 "netviz_s": _sig(seconds) if netviz else None, "netviz_gflop": _sig(gflop),
                 "netviz_gflop_per_s": _sig(rate) if rate else None,
                 "share_of_peak": _sig(gflop / capacity) if capacity > 0 else None,
                 "loop_gflop_per_s": None, "vs_loop": None, "library_gflop_per_s": None, "vs_library": None,
                 "libraries": []}
        for kind, key in (("loop", "loop"), ("library", "library")):
            others = [r for r in mine if r["kind"] == kind and r["model"] in by_model]
            if not others:
                continue
            theirs = _rate(others)[2]
            ours = _rate([r for r in netviz if r["model"] in {o["model"] for o in others}])[2]
            entry[f"{key}_gflop_per_s"] = _sig(theirs) if theirs else None
            entry[f"vs_{key}"] = _sig(ours / theirs, 3) if ours and theirs else None
            if kind == "library":
                entry["libraries"] = sorted({r["variant"] for r in others})
        entry["meets_target"] = entry["vs_loop"] is not None and entry["vs_loop"] >= TARGET_SPEEDUP
        out.append(entry)
    return out


def to_csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value else f"{value:,.2f}"
    return str(value)


def to_markdown(results: dict) -> str:
    env, peak = results["environment"], results["matmul"]
    lines = [f"# netviz bench ({env['finished']})", "",
             f"{env['device']} ({env['device_name']}), {env['threads']} threads, load average "
             f"{env['load_before'][0]:.2f} before / {env['load_after'][0]:.2f} after; torch {env['torch']}.", "",
             f"fp32 matrix multiply ({peak['size']}×{peak['size']}, {peak['threads']} threads): "
             f"{_cell(peak['gflop_per_s'])} GFLOP/s (the anchor of every share below).", "",
             "| experiment | jobs | netviz (s) | GFLOP/s | share of matmul | loop GFLOP/s | netviz / loop | "
             "library GFLOP/s | netviz / library |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in results["summary"]:
        lines.append(f"| {s['experiment']} | {s['jobs']} | {_cell(s['netviz_s'])} | {_cell(s['netviz_gflop_per_s'])} | "
                     f"{_cell(s['share_of_peak'])} | {_cell(s['loop_gflop_per_s'])} | {_cell(s['vs_loop'])} | "
                     f"{_cell(s['library_gflop_per_s'])} | {_cell(s['vs_library'])} |")
    lines += [f"- {note}" for note in results["notes"]]
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in COLUMNS) + " |" for r in results["rows"]]
    if results.get("scaleout"):
        lines += scaleout_markdown(results["scaleout"])
    if results["memory"]:
        lines += ["", "| model | images | budget (GB) | batch | estimate (GB) | peak (GB) | time (s) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {m['model']} | {_cell(m.get('images'))} | {_cell(m.get('budget_gb'))} | {_cell(m.get('batch_size'))} | "
                  f"{_cell(m.get('estimate_gb'))} | {_cell(m.get('peak_gb'))} | {_cell(m.get('wall_s'))} |"
                  for m in results["memory"]]
    if results["precision"]:
        keys = list(dict.fromkeys(k for p in results["precision"] for k in p))
        lines += ["", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(_cell(p.get(k)) for k in keys) + " |" for p in results["precision"]]
    return "\n".join(lines) + "\n"


def scaleout_markdown(scale: dict) -> list[str]:
    """The scale-out part as markdown lines: overhead, throughput table, projection."""
    o, t, p = scale["overhead"], scale["throughput"], scale["projection"]
    lines = ["", "## Scaling out (one CPU thread per job)", "",
             f"Per-job overhead of Ray: {_cell(o['overhead_per_job_ms'])} ms ({o['jobs']} jobs of {o['work']} on "
             f"{o['model']}, one at a time: round trip {_cell(o['ray_per_job_ms'])} ms, computation in the actor "
             f"{_cell(o['ray_compute_ms'])} ms, in this process {_cell(o['local_per_job_ms'])} ms; "
             f"actor start {_cell(o['ray_start_s'])} s, not counted).", "",
             f"Throughput of {t['section']} ({', '.join(t['kinds'])}; {t['jobs']} jobs of ≤ {t['shard_size']} images) "
             f"on {t['images']} images, {t['model']}:" + (f" {t['note']}." if t["note"] else ""), "",
             "| executor | workers | wall (s) | first result (s) | images/s | images/s once started |",
             "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['executor']} | {r['workers']} | {_cell(r['wall_s'])} | {_cell(r['first_result_s'])} | "
              f"{_cell(r['images_per_s'])} | {_cell(r['steady_images_per_s'])} |" for r in t["runs"]]
    lines += ["", f"Ratio to ideal scaling (Ray, 2 workers / 2 × 1 worker, once started): {_cell(t['ideal_ratio'])} "
              f"({_cell(t['ideal_ratio_with_start'])} with the actors' start). Measured: "
              f"{_cell(t['s_per_image'])} s per image on one core ({t['main_kind']} jobs), {_cell(t['gflop_per_image'])} GFLOP per image, "
              f"{_cell(t['share_of_matmul'])} of the one-thread matmul rate ({_cell(t['matmul_1thread_gflop_per_s'])} GFLOP/s).",
              "", f"Projection for {p['images']:,} images (CPU rows: measured cost per image, ideal scaling assumed; "
              f"GPU rows: projected from {_cell(p['assumed_gpu_fp32_tflops'])} TFLOP/s fp32 per GPU, of which the jobs "
              f"reach {_cell(p['assumed_gpu_share'])}, both {p['gpu_basis']}):",
              "", "| N | CPU workers (h) | GPUs (h) |", "|---:|---:|---:|"]
    lines += [f"| {r['n']} | {_cell(r['cpu_hours'])} | {_cell(r['gpu_hours'])} |" for r in p["rows"]]
    return lines
