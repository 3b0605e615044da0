"""The figure of ``netviz bench`` (the report's speed appendix)."""

from __future__ import annotations

import matplotlib.ticker

from netviz.plots.common import plt, short


def bench_speedups(rows: list[dict], target: float = 3.0):
    """``netviz bench``: for each workload (experiment, task, model) how many times longer the per-image loop and
    the libraries take than netviz's batched run (log scale), with the target ratio as a dashed line.
    rows: the benchmark's rows (keys experiment, task, model, variant, kind, speedup)."""
    workloads = list(dict.fromkeys((r["experiment"], r["task"], r["model"]) for r in rows))
    others = list(dict.fromkeys(r["variant"] for r in rows if r["kind"] != "batched"))
    colors = dict(zip(others, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    height = 0.8 / max(len(others), 1)
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.42 * len(workloads) * max(len(others), 1) ** 0.5))
    labelled: set[str] = set()
    for i, key in enumerate(workloads):
        for r in rows:
            if (r["experiment"], r["task"], r["model"]) != key or r["kind"] == "batched" or not r["speedup"]:
                continue
            y = i - 0.4 + height * (others.index(r["variant"]) + 0.5)
            ax.barh(y, r["speedup"], height=height * 0.9, color=colors[r["variant"]],
                    label=None if r["variant"] in labelled else r["variant"])
            labelled.add(r["variant"])
            ax.text(r["speedup"] * 1.03, y, f"{r['speedup']:.1f}×", va="center", fontsize=7)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(target, color="gray", linestyle="--", linewidth=0.8, label=f"target {target:g}×")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.5, 1, 2, 3, 5, 10, 20, 50, 100]))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_yticks(range(len(workloads)), [f"{e}: {t}\n{short(m, 22)}" for e, t, m in workloads])
    ax.invert_yaxis()
    ax.set_xlabel("time relative to netviz batched (×, log scale; > 1 = slower than netviz)")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    right = max([r["speedup"] for r in rows if r["speedup"]] + [target])
    ax.set_xlim(min([r["speedup"] for r in rows if r["speedup"]] + [1.0]) * 0.7, right * 1.6)
    fig.tight_layout()
    return fig

