"""What the adversarial text states that ``metrics.json`` does not store."""

from __future__ import annotations

from netviz.report.derived import ratio


def derive(r: dict) -> None:
    """Add the section's derived numbers to its metrics as loaded (in place)."""
    for by_model in r.get("sweep", {}).values():
        for attack in by_model.get("attacks", {}).values():
            spec = attack.get("spec", {})
            spec["alpha_per_eps"] = ratio(spec.get("alpha"), spec.get("eps"))
