"""What the text on the stronger saliency methods states that ``metrics.json`` does not store: which methods
pass a bar (beat the center point, keep their maps under randomization), how close two numbers must be to be
called level, whether a ranking's lead is beyond noise, and counts over models and rankings.

The bars are the text's: a lead counts as clear beyond twice its standard error; the gradient is level with the
center prior within 0.005 of area; SmoothGrad gives "nearly the same evidence" as the gradient within 0.02 of
insertion area and 0.03 of box energy; a map "barely moves" above ρ = 0.9 and is "made by the image" above 0.5
after all layers are re-drawn; IG's completeness error is far from converged above 0.5 and still moving above 0.1.
No key added here may be named like a dict method (``clear``, ``items``, ...): the template's ``x.clear`` would
read the method.
"""

from __future__ import annotations

CLEAR_LEAD = 2  # standard errors
LEVEL_AUC = 0.005
TINY_LEAD = 0.001
SAME_INSERTION, SAME_ENERGY = 0.02, 0.03
STIFF_RHO, KEEPS_RHO = 0.9, 0.5
FAR_COMPLETENESS, SOME_COMPLETENESS = 0.5, 0.1


def _above(value, bar) -> bool:
    """``value > bar``, False where either is missing."""
    return value is not None and bar is not None and value > bar


def _versus(a: float, b: float, higher: str, lower: str) -> str:
    """"level" when ``a`` and ``b`` differ by less than :data:`LEVEL_AUC`, else ``higher`` or ``lower``."""
    if abs(a - b) < LEVEL_AUC:
        return "level"
    return higher if a > b else lower


def _rankings(m: dict) -> None:
    """Per ranking: ``tied`` (a lead of exactly 0), ``lead_tiny`` (under 0.001) and ``beyond_noise`` (a lead over twice its standard error)."""
    for rk in m.get("rankings", {}).values():
        lead, se = rk.get("lead"), rk.get("lead_se")
        rk["tied"] = lead is not None and lead == 0
        rk["lead_tiny"] = lead is not None and abs(lead) < TINY_LEAD
        rk["beyond_noise"] = se is not None and lead > CLEAR_LEAD * se


def _model(m: dict, methods: list[str], base: str) -> None:
    """One model's derived values (in place)."""
    scores = m["methods"]
    prior = scores[base]
    m["beat_center"] = [n for n in methods if _above(scores[n]["pointing"], m["center_hit_rate"])]
    m["not_over_prior"] = len([n for n in methods if not _above(scores[n]["energy"], prior["energy"])])
    gradient = scores["Gradient"]
    m["gradient_vs_prior"] = {
        "insertion": _versus(gradient["insertion_auc"], prior["insertion_auc"], "above", "below"),
        "deletion": _versus(prior["deletion_auc"], gradient["deletion_auc"], "better", "worse")}
    errors = m.get("ig_completeness_error")
    worst = max(errors["IG (black)"], errors["IG (blur)"]) if errors else None
    m["ig_convergence"] = None if worst is None else (
        "far" if worst > FAR_COMPLETENESS else "some" if worst > SOME_COMPLETENESS else "close")
    m["stiff"] = [n for n in methods if _above(scores[n]["spearman"][0], STIFF_RHO)]
    m["keeps"] = [n for n in methods if _above(scores[n]["spearman"][-1], KEEPS_RHO)]
    m["flat"] = [n for n in methods if scores[n]["vanished"][-1]]
    m["flat_maps"] = sum(s["vanished"][-1] for s in scores.values())  # the center prior's included (never flat)
    _rankings(m)


def _first_model(r: dict, first: dict) -> dict:
    """How the first model's methods compare, as the closing paragraph states it."""
    scores = first["methods"]
    sg, gr = scores["SmoothGrad"], scores["Gradient"]
    igb, igk = scores["IG (blur)"], scores["IG (black)"]
    same = abs(sg["insertion_auc"] - gr["insertion_auc"]) < SAME_INSERTION and (
        not r.get("annotated") or abs(sg["energy"] - gr["energy"]) < SAME_ENERGY)
    return {"smoothgrad": "same" if same else "more" if sg["insertion_auc"] > gr["insertion_auc"] else "less",
            "ig_blur_insertion_better": igb["insertion_auc"] > igk["insertion_auc"],
            "ig_blur_energy_more": _above(igb["energy"], igk["energy"])}


def derive(r: dict) -> None:
    """Add the section's derived values to its metrics as loaded (in place)."""
    models, methods, base = r.get("models", {}), r.get("methods", []), r.get("baseline_method")
    for m in models.values():
        _model(m, methods, base)
    r["with_baseline"] = [*methods, base]  # the rows of the table: every method, then the center prior
    r["randomization_maps"] = len(methods) * r.get("randomization_images", 0)  # maps the check recomputes per stage
    cam_leads = sum(m["rankings"]["insertion_auc"]["order"][:1] == ["Grad-CAM"] for m in models.values())
    r["cam_leads"] = {"models": cam_leads, "all": cam_leads == len(models)}
    ranked = [rk for m in models.values() for rk in m["rankings"].values() if rk["lead"] is not None and rk["lead_se"]]
    beyond = sum(rk["lead"] > CLEAR_LEAD * rk["lead_se"] for rk in ranked)
    r["gaps"] = {"all": len(ranked), "beyond_noise": beyond, "unsettled": len(ranked) - beyond}
    if models:
        r["first_model"] = _first_model(r, next(iter(models.values())))
