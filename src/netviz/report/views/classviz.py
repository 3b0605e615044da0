"""What the class-visualization text states that ``metrics.json`` does not store: ratios and unit changes, the
images and sweep cells the prose picks, the comparisons that choose its phrases, the cells of its tables, and what
it says about particular classes and photographs (:mod:`netviz.report.views.classviz_notes`)."""

from __future__ import annotations

from typing import Any

from netviz.report.derived import ratio
from netviz.report.formats import number, percent
from netviz.report.views.classviz_notes import CLASSES, IMAGES


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


def _last(cell: dict) -> dict:
    return cell["by_iteration"][-1]


# --- Q8 / Q11: the featured class and the gallery ---------------------------------------------------------------

def _featured(featured: dict, num_iterations: int) -> None:
    """The first iteration at which the featured image's probability is at least 0.99, when that is before the
    last (``saturated_from``; None otherwise)."""
    saturated = next((t["iteration"] for t in featured["by_iteration"] if t["p"] >= 0.99), None)
    featured["saturated_from"] = saturated if saturated is not None and saturated < num_iterations else None


def _gallery_under(gallery: list[dict], judge: str) -> dict:
    """How ``judge`` reads a model's gallery: how many images it ranks first, the others (exceptions), the median
    (upper middle) and largest probability it gives the targets, and whether the class transfers: "none" (no image
    ranked first), "weak" (fewer than half) or "partial"."""
    top = sum(1 for g in gallery if g["rank"][judge] == 1)
    ps = sorted(g["p"][judge] for g in gallery)
    return {"top": top, "exceptions": [g for g in gallery if g["rank"][judge] != 1],
            "median_p": ps[len(ps) // 2] if ps else None, "max_p": max(ps) if ps else None,
            "transfer": "none" if top == 0 else ("weak" if top * 2 < len(gallery) else "partial")}


def _gallery_table(gallery: list[dict], judges: list[str]) -> dict:
    """The gallery table: the target's probability and rank under each of ``judges`` (the maker first), smoothness."""
    header = ["class"] + [h for j in judges for h in (f"p ({j})", "rank")] + ["TV", "HF"]
    rows = [[g["name"], *(c for j in judges for c in (number(g["p"][j], 3), g["rank"][j])), number(g["tv"], 3),
             percent(g["hf"])] for g in gallery]
    return {"header": header, "rows": rows}


# --- Q9: the sweep ----------------------------------------------------------------------------------------------

def _sweep_table(sweep: dict, others: list[str]) -> dict:
    """The sweep table: each cell's probability along the iterations, its last smoothness, its probability under
    the other models."""
    cells = sweep["cells"]
    header = ["lr", "λ", *(f"p @{t['iteration']}" for t in cells[0]["by_iteration"]), "TV", "HF",
              *(f"p ({o})" for o in others)] if cells else []
    rows = [["%g" % c["learning_rate"], "%g" % c["l2_reg"], *(number(t["p"], 3) for t in c["by_iteration"]),
             number(_last(c)["tv"], 3), percent(_last(c)["hf"]), *(number(c["final"]["p"][o], 3) for o in others)]
            for c in cells]
    return {"header": header, "rows": rows}


def _learning_rate_effect(cells: list[dict]) -> dict | None:
    """The cells at the default λ by learning rate (lowest to highest) and what a larger step does: reach a higher
    probability at the first snapshot, end rougher, fall back from its peak by more than 0.05 (the highest rate);
    None with fewer than two such cells."""
    if len(cells) < 2:
        return None
    lo, hi = cells[0], cells[-1]
    peak = max(t["p"] for t in hi["by_iteration"])
    tv_ratio = _last(lo).get("tv_vs_photos")
    return {"cells": cells, "low": lo, "high": hi, "sooner": hi["by_iteration"][0]["p"] > lo["by_iteration"][0]["p"],
            "rougher": _last(hi)["tv"] > _last(lo)["tv"], "high_peak": peak, "high_falls_back": _last(hi)["p"] < peak - 0.05,
            "low_tv_close_to_photos": None if tv_ratio is None else tv_ratio < 2}


def _l2_effect(cells: list[dict]) -> dict | None:
    """The cells at the default learning rate by λ (lowest to highest) and what a larger λ does: end smoother, at a
    lower probability, with a higher HF share although smoother; None with fewer than two such cells."""
    if len(cells) < 2:
        return None
    lo, hi = cells[0], cells[-1]
    smoother = _last(hi)["tv"] < _last(lo)["tv"]
    return {"cells": cells, "low": lo, "high": hi, "smoother": smoother, "costs_score": _last(hi)["p"] < _last(lo)["p"],
            "hf_against_tv": _last(hi)["hf"] > _last(lo)["hf"] and smoother}


def _sweep(sweep: dict, hyper: dict, others: list[str]) -> None:
    """One sweep's picks: the default cell, the learning-rate and λ rows through it, the cell with the lowest last
    probability, the smoothest cell its maker still gives p >= 0.9, its table; and each cell's decay per step."""
    cells = sweep["cells"]
    for cell in cells:
        # the share of the image the λ term keeps at each step (the decay 1 - 2·lr·λ)
        cell["keep_per_step"] = 1 - 2 * cell["learning_rate"] * cell["l2_reg"]
    default = next((c for c in cells if c["default"]), None)
    sweep["default_cell"] = default
    sweep["default_rougher_later"] = default is not None and _last(default)["tv"] > default["by_iteration"][0]["tv"]
    sweep["learning_rate_effect"] = _learning_rate_effect(
        sorted((c for c in cells if c["l2_reg"] == hyper["l2_reg"]), key=lambda c: c["learning_rate"]))
    sweep["l2_effect"] = _l2_effect(
        sorted((c for c in cells if c["learning_rate"] == hyper["learning_rate"]), key=lambda c: c["l2_reg"]))
    sweep["worst_cell"] = min(cells, key=lambda c: _last(c)["p"]) if cells else None
    best = None
    for c in cells:
        if _last(c)["p"] >= 0.9 and (best is None or _last(c)["tv"] < _last(best)["tv"]):
            best = c
    sweep["smoothest_confident"] = best
    sweep["table"] = _sweep_table(sweep, others)


# --- Q10 / Q11: the photo starts ---------------------------------------------------------------------------------

def _start(start: dict, first_starts: list[dict]) -> None:
    """One photo start: the change in 8-bit levels, whether the change is larger on the annotated objects (None
    without boxes), whether the maker gets the target before and after, the text's notes on the photograph, and the
    first model's mean change for the same start (None when it has none)."""
    start["levels"] = {"mean": _levels(start.get("mean_abs_change")),
                       "in_boxes": _levels(start.get("mean_abs_change_in_boxes")),
                       "outside_boxes": _levels(start.get("mean_abs_change_outside_boxes"))}
    inside, outside = start.get("mean_abs_change_in_boxes"), start.get("mean_abs_change_outside_boxes")
    start["on_objects"] = None if inside is None else inside > outside
    start["right_before"] = start["before"]["predicted"] == start["target"]
    start["reached"] = start["after"]["predicted"] == start["target"]
    note = IMAGES.get(start["image_name"], {})
    start["note"] = {"layout": note.get("layout"), "objects": note.get("objects"),
                     "becomes": note.get("becomes", {}).get(start["target"])}
    same = [s for s in first_starts if s["image"] == start["image"] and s["target"] == start["target"]]
    start["first_levels_mean"] = _levels(same[0].get("mean_abs_change")) if same else None


def _starts_table(starts: list[dict], judges: list[str]) -> dict:
    """The photo-start table: before and after under the maker, the result under each of ``judges`` (with its top
    class), the mean change in levels and the last smoothness."""
    header = ["start → target", "p before", "p after", "rank", *(f"p under {j}" for j in judges), "change", "TV after"]
    rows = [[f"{s['image_name']} → {s['target_name']}", number(s["before"]["p_target"], 3),
             number(s["after"]["p_target"], 3), f"{s['before']['rank_target']} → {s['after']['rank_target']}",
             *(f"{number(s['after']['p_target_under'][j], 3)} ({s['after']['predicted_under'][j]})" for j in judges),
             number(s["levels"]["mean"], 0), number(s["after"]["tv"], 3)] for s in starts]
    return {"header": header, "rows": rows}


def _head_start(m: dict) -> dict | None:
    """The photo start the text compares with the start from noise (the first toward another class, else the
    first): is it ahead of the featured image at the first snapshot, and does its probability dip by more than 0.05
    below its best so far along the way."""
    starts = m.get("starts", [])
    if not starts:
        return None
    start = next((s for s in starts if not s["own_class"]), starts[0])
    best, dips = 0, False
    for t in start["by_iteration"]:
        dips = dips or t["p"] < best - 0.05
        best = max(best, t["p"])
    return {"start": start, "ahead": start["by_iteration"][0]["p"] > m["featured"]["by_iteration"][0]["p"], "dips": dips}


# --- the section -------------------------------------------------------------------------------------------------

def _model(m: dict, name: str, r: dict) -> None:
    """Everything above for the images one model made (``name``; the first model is ``r["first"]``)."""
    first, others = r["first"], r["models"][1:]
    judges = [first, *others] if name == first else [name, first]
    _featured(m["featured"], r["hyperparameters"]["num_iterations"])
    m["gallery_under"] = {j: _gallery_under(m["gallery"], j) for j in r["models"]}
    m["gallery_described"] = [CLASSES[g["class"]]["gallery"] for g in m["gallery"]
                              if "gallery" in CLASSES.get(g["class"], {})]
    m["gallery_table"] = _gallery_table(m["gallery"], judges)
    for sweep in m.get("sweeps", []):
        _sweep(sweep, r["hyperparameters"], others)
    for start in m.get("starts", []):
        _start(start, r["per_model"][first].get("starts", []))
    m["starts_table"] = _starts_table(m.get("starts", []), judges[1:])
    m["head_start"] = _head_start(m)


def _against_first(m: dict, first: dict) -> None:
    """A model against the first: rougher last featured image, and the normalisation (std, channel 0 over the
    first model's middle channel, as the prose compares them): how much larger a step in normalized space is in
    pixels (``std_vs_first``), squared for the step's effect, and whether it differs by more than 10 %."""
    m["rougher_than_first"] = m["featured"]["by_iteration"][-1]["tv"] > first["featured"]["by_iteration"][-1]["tv"]
    first_std = first.get("input_std", [None, None])
    std = ratio((m.get("input_std") or [None])[0], first_std[1] if len(first_std) > 1 else None)
    m["std_vs_first"] = std
    m["std_differs"] = std is not None and (std > 1.1 or std < 0.9)
    m["step_vs_first"] = None if std is None else std ** 2


def derive(r: dict) -> None:
    """Add the section's derived numbers to its metrics as loaded (in place)."""
    reference = r.get("reference", {})
    _with_tv(r, reference.get("tv_median"))
    if "hf_median" in reference:
        reference["hf_median_percent"] = 100 * reference["hf_median"]
    r["others"] = r.get("models", [])[1:]
    r["iterations_shown"] = r.get("snapshots", [])[1:]
    if "target" in r:
        r["target"]["parts"] = CLASSES.get(r["target"]["index"], {}).get("parts")
    per_model = r.get("per_model", {})
    first = per_model.get(r.get("first"), {})
    for name, m in per_model.items():
        _model(m, name, r)
        _against_first(m, first)
