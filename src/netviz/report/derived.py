"""Quantities the report's prose states that are not stored as such: ratios of stored numbers.

Templates only phrase numbers; every computation happens in a section's view (:mod:`netviz.report.views`), once,
on the results as loaded, and a ratio (:func:`ratio`) whose denominator is zero (a time rounded to 0 s on a fast
machine, a blank reference image) or missing is ``None``, which the template phrases (or leaves out) instead of
failing. The stored files are not changed: grading reads
them, not this view.
"""

from __future__ import annotations

from typing import Any


def ratio(numerator: Any, denominator: Any) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def derive(results: dict) -> dict:
    """Add what each section's text needs to the loaded results (in place; :mod:`netviz.report.views`) and
    return them."""
    from netviz.report import views
    from netviz.report.views import report as frame

    for name, metrics in results.get("sections", {}).items():
        if name in views.DERIVE:
            views.DERIVE[name](metrics)
    if results.get("bench"):
        views.DERIVE["bench"](results["bench"], results.get("provenance"))
    return frame.derive(results)  # the contents' numbering, claims, stale and missing sections
