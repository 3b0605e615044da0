"""The section's figures: the lab-style examples, success against ε, and the transfer matrices."""

from __future__ import annotations

from netviz import codecs, plots
from netviz.data import imagenet_categories
from netviz.experiments.adversarial.state import Run


def examples_for_plot(run: Run, results: dict) -> list[dict]:
    """Rows of (original, stored adversarial, captions) for the lab-style figure, read back from the PNGs."""
    names = imagenet_categories()
    rows = []
    for r in results["shown"]:
        i, source = r["index"], r["model"]
        clean = run.clean[source][i]
        stored = codecs.load_png(run.ctx.results_dir / "images" / r["file"].rsplit("/", 1)[-1])
        judged = r["png"][source]
        what = "lab method" if r["variant"] == "lab" else f"κ = {r['kappa']:g}"
        rows.append({
            "original": run.x8[i], "adversarial": stored,
            "label": f"{source}, image {i}, {what}",
            "captions": (f"{names[int(clean.argmax())]} {float(clean.max()):.2f}",
                         f"{judged['pred_name']} {judged['p_pred']:.2f}",
                         f"L∞ {r['linf']:g}, L2 {r['l2']:.0f} levels"),
        })
    return rows


def curves_for_plot(results: dict) -> dict:
    """{model: {attack: {"norm", "eps", "success"}}}: the sweep's success rate against ε, for the plot."""
    return {m: {a: {"norm": v["norm"], "eps": [row["eps"] for row in v["rows"]], "success": [row["success"] for row in v["rows"]]}
                for a, v in results["sweep"][m]["attacks"].items()} for m in results["sweep"]}


def save_figures(run: Run, results: dict) -> dict:
    """Draw the section's three figures from its results (``shown``, ``sweep``, ``transfer_matrix``); returns
    their paths by name, as ``results["figures"]`` holds them."""
    ctx = run.ctx
    return {"examples": ctx.save_figure(plots.adversarial_rows(examples_for_plot(run, results)), "fooling_examples.png"),
            "sweep": ctx.save_figure(plots.success_curves(curves_for_plot(results)), "success_vs_eps.png"),
            "transfer": ctx.save_figure(plots.transfer_matrices(results["transfer_matrix"], run.names), "transfer.png")}
