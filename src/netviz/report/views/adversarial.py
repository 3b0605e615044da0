"""What the adversarial text states that ``metrics.json`` does not store.

:func:`derive` adds ``view`` to the section's metrics as loaded: the models in order, the attacks' display
names, the examples the prose quotes, maxima and minima, counts, the transfer comparison the claims make, the
rows of the tables (values, not yet formatted), and which phrasing each comparison of numbers selects.
"""

from __future__ import annotations

from netviz.report.derived import ratio

LABELS = {"fgsm": "FGSM", "pgd_linf": "PGD-L∞", "pgd_l2": "PGD-L2", "mi_fgsm": "MI-FGSM"}
"""How the text names each attack."""

ORDINALS = ["First", "Second", "Third", "Fourth", "Fifth", "Sixth"]


def derive(r: dict) -> None:
    """Add the section's derived numbers to its metrics as loaded (in place)."""
    for by_model in r.get("sweep", {}).values():
        for attack in by_model.get("attacks", {}).values():
            spec = attack.get("spec", {})
            spec["alpha_per_eps"] = ratio(spec.get("alpha"), spec.get("eps"))
    if not r.get("clean"):
        return
    names = list(r["clean"])
    view = r["view"] = {"names": names, "first": names[0], "others": names[1:], "others_plural": len(names) > 2,
                        "labels": LABELS}
    view.update(_examples(r, names[0]))
    view.update(_threat(r, names[0], names[1:]))
    view.update(_limits(r, names[0]))
    view.update(_alone(r))
    view.update(_sweep(r, names))
    view.update(_transfer(r, names))


def _examples(r: dict, first: str) -> dict:
    """Q5's quoted examples: the first model's first shown image, by the lab's method and with the margin κ."""
    def first_row(variant: str) -> dict | None:
        return next((s for s in r["shown"] if s["variant"] == variant and s["model"] == first), None)

    lab, kap = first_row("lab"), first_row("kappa")
    return {"lab": lab, "kap": kap, "lab_reached": lab is not None and lab["steps"] >= 0,
            "shown_name": r["images"][lab["index"]]["name"] if lab else "bird"}


def _threat(r: dict, first: str, others: list[str]) -> dict:
    """Q6: how far the lab's images reach the target on the other models, and the words that follow."""
    summary = r["fooling"][first]["summary"]
    hits = [summary["transfer_target"][o] for o in others if summary["transfer_target"][o] is not None]
    hits_max = max(hits, default=None)
    weak = (summary["survive_jpeg"] or 0) < 0.5 and (hits_max or 0) < 0.5
    flip = summary["transfer_flip"]
    reached = None if not hits else "never" if hits_max == 0 else "at most"
    return {"weak": weak, "hits_max": hits_max, "target_reached": reached,
            "flip_none": {o: flip[o] == 0 for o in others}}


def _limits(r: dict, first: str) -> dict:
    """Q7's list of the lab method's limits: ordinals, the PGD comparison, the boundary and the κ runs."""
    keys = ["budget", "boundary", "step"] + (["fragile"] if r.get("alone") else []) + ["one_score"]
    summary, per_image = r["fooling"][first]["summary"], r["fooling"][first]["per_image"]
    claim = r.get("claims", {}).get(f"pgd_smallest_eps/{first}")
    pgd = r["sweep"][first]["attacks"].get("pgd_linf")
    eps = pgd["rows"][0]["eps"] if pgd and pgd["rows"] else None
    kappa_rows = [s for s in r["shown"] if s["variant"] == "kappa"]
    kappa = None
    if kappa_rows:
        png, jpeg = sum(1 for s in kappa_rows if s["success_png"]), sum(1 for s in kappa_rows if s["success_jpeg"])
        kappa = {"kappa": kappa_rows[0]["kappa"], "n": len(kappa_rows), "png": png, "jpeg": jpeg,
                 "jpeg_short": jpeg < len(kappa_rows)}
    return {"ordinal": dict(zip(keys, ORDINALS)),
            "pgd_smallest": claim if claim and claim.get("n") else None,
            "pgd_first_eps": eps, "pgd_first_eps_plural": eps is not None and eps > 1,
            "p_target_min": min((row["float"]["p_target"] for row in per_image), default=None),
            "lost_measured": summary["survive_png"] is not None and summary.get("lost_png") is not None,
            "kappa": kappa}


def _alone(r: dict) -> dict:
    """Q7's re-run of the shown images on their own: the first image per model and whether anything moved."""
    runs = [{"model": m, "row": rows[0], "plural": rows[0]["linf_between"] != 1,
             "both_reached": min(rows[0]["steps"]) >= 0, "one_fools": rows[0]["success_png"][0] != rows[0]["success_png"][1]}
            for m, rows in r.get("alone", {}).items() if rows]
    moved = any(a["linf_between"] > 0 for rows in r.get("alone", {}).values() for a in rows)
    return {"alone": runs, "alone_batch": runs[0]["row"]["batch"] if runs else None, "alone_moved": moved}


def _sweep(r: dict, names: list[str]) -> dict:
    """The sweep's sub-level budget remark and its two tables (L∞ and L2 attacks), values per budget."""
    first = r["sweep"][names[0]]["attacks"]
    p0 = first["pgd_linf"]["rows"][0] if "pgd_linf" in first else None
    tables = {}
    for norm in ("linf", "l2"):
        shown = [v for v in first.values() if v["norm"] == norm]
        if not shown:
            tables[norm] = None
            continue
        eps = [row["eps"] for row in shown[0]["rows"]]
        rows = [{"model": m, "attack": LABELS[a], "success": [row["success"] for row in v["rows"]]}
                for m in names for a, v in r["sweep"][m]["attacks"].items() if v["norm"] == norm]
        tables[norm] = {"header": ["model", "attack"] + [f"ε = {e}" for e in eps], "align": "ll" + "r" * len(eps),
                        "rows": rows}
    sub_level = p0 is not None and p0["eps"] < 1
    return {"sub_level": p0 if sub_level else None,
            "sub_level_enlarged": sub_level and p0["max_linf_new"] is not None and p0["max_linf_new"] > p0["eps"],
            "sweep_tables": tables, "spec_rows": _spec_rows(r, names[0])}


def _spec_rows(r: dict, first: str) -> list[dict]:
    """The hyperparameter table: each transfer attack, then each sweep attack (its step per ε when it has one)."""
    rows = [{"name": f"{LABELS[a]} (transfer)", "spec": by[first]["spec"], "sweep": False, "step_per_eps": None}
            for a, by in r["transfer"].items()]
    for a, v in r["sweep"][first]["attacks"].items():
        per_eps = v["spec"]["alpha_per_eps"]
        rows.append({"name": f"{LABELS[a]} (sweep)", "spec": v["spec"], "sweep": True,
                     "step_per_eps": None if per_eps is None else f"{round(per_eps, 3)} ε"})
    return rows


def _transfer(r: dict, names: list[str]) -> dict:
    """The transfer paragraph (first model to the second, as the claims compare them) and the transfer table."""
    first, others, transfer, claims = names[0], names[1:], r["transfer"], r.get("claims", {})
    out: dict = {"transfer_n": None, "transfer_eps": None, "by_attack": {}, "offdiag_max": None,
                 "best": None, "worst": None, "best_vs_worst": None, "momentum": None, "pgd_overfits": False,
                 "transfer_rows": [{"attack": LABELS[a], "source": m, "judge": t, "own": m == t, **by[m]["success"][t],
                                    "mean_linf": by[m]["mean_linf"], "mean_ssim": by[m]["mean_ssim"]}
                                   for a, by in transfer.items() for m in names for t in names]}
    if not transfer:
        return out
    a0 = next(iter(transfer))
    out["transfer_n"], out["transfer_eps"] = transfer[a0][first]["success"][first]["n"], transfer[a0][first]["spec"]["eps"]
    if others:
        out["by_attack"] = {a: by[first]["success"][others[0]]["png"] for a, by in transfer.items()
                            if by[first]["success"][others[0]]["png"] is not None}
        out["momentum"] = claims.get(f"momentum_vs_pgd/{first}->{others[0]}")
        best_worst = out["best_vs_worst"] = claims.get(f"best_vs_worst_transfer/{first}->{others[0]}")
        if best_worst and out["by_attack"]:
            out["best"] = {"attack": best_worst["a_label"], "rate": out["by_attack"][best_worst["a_label"]]}
            out["worst"] = {"attack": best_worst["b_label"], "rate": out["by_attack"][best_worst["b_label"]]}
            out["pgd_overfits"] = best_worst["b_label"] == "pgd_linf" and best_worst["verdict"] == "a"
    off = [by[m]["success"][t]["png"] for by in transfer.values() for m in names for t in names
           if m != t and by[m]["success"][t]["png"] is not None]
    out["offdiag_max"] = max(off, default=None)
    return out
