"""What the report's frame states that no single result stores: the numbering of the contents, which sections
make claims, which experiments are out of date, which sections were not run, and the versions table's columns."""

from __future__ import annotations

from netviz.sections import REGISTRY


def _numbering(order: list[str]) -> dict[str, str]:
    """Section name -> its number in the contents ("1", "1.1", "2"): subsections count within their parent."""
    numbers, top, sub = {}, 0, 0
    for name in order:
        entry = REGISTRY.get(name)
        if entry is not None and entry.parent:
            sub += 1
            numbers[name] = f"{top}.{sub}"
        else:
            top, sub = top + 1, 0
            numbers[name] = str(top)
    return numbers


def _halves(pairs: list) -> list[list]:
    """Rows of a two-column table: the first half of ``pairs`` on the left, the rest on the right ("" padded)."""
    half = (len(pairs) + 1) // 2
    return [[*pairs[i], *(pairs[i + half] if i + half < len(pairs) else ("", ""))] for i in range(half)]


def derive(results: dict) -> dict:
    """``results["view"]``: numbering, the sections with claims, stale and missing experiments, the versions
    table's rows (unformatted), and the configured models that have weights on record."""
    sections, provenance = results.get("sections", {}), results.get("provenance") or {}
    order = results.get("order", list(sections))  # a caller with only some sections (a test) gets their own order
    experiments = provenance.get("experiments") or {}
    stale = sorted(name for name, e in experiments.items() if e.get("current") is False)
    not_current = sorted(name for name, e in experiments.items() if not e.get("current"))
    results["view"] = {
        "numbers": _numbering(order),
        "claimed": [name for name in order if any(c.get("n") for c in (sections[name].get("claims") or {}).values())],
        "stale": stale,
        "stale_why": [f"{name} ({experiments[name]['differs'][0]})" for name in not_current],
        "not_run": [entry.title for name, entry in REGISTRY.items() if name not in order],
        "models": [m for m in ((provenance.get("config") or {}).get("models") or {}).get("names", [])
                   if m in (provenance.get("weights") or {})],
        # sorted as Jinja's dictsort does (case-insensitive), the order the table always had
        "version_rows": _halves(sorted((provenance.get("versions") or {}).items(), key=lambda kv: kv[0].lower())),
    }
    return results
