"""One graded item: a value judged against the expected one under its tolerance (:func:`compare_value`,
:func:`judge`), and the :class:`Check` that records how a metric or a figure fared."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from netviz.grading.tolerance import Tolerance, is_number

def compare_value(expected: Any, actual: Any, tol: Tolerance) -> bool:
    if isinstance(expected, int) and isinstance(actual, int) and is_number(expected) and is_number(actual) \
            and not tol.explicit:
        return expected == actual
    if is_number(expected) and is_number(actual):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return abs(actual - expected) <= tol.abs + tol.rel * abs(expected)
    return type(expected) is type(actual) and expected == actual or (expected is None and actual is None)


def judge(expected: Any, actual: Any, tol: Tolerance, moved: dict | None, factor: float) -> tuple[bool, str]:
    """Whether ``actual`` passes for ``expected``, and how it was judged: with ``moved`` (what variant builds gave,
    :mod:`netviz.variation`) a number may move ``max(floor, factor × spread)`` and anything else may take a
    variant's value; without it, :func:`compare_value` against the ``[grade]`` tolerance."""
    exact = "equal" if not (isinstance(expected, float) or (is_number(expected) and tol.explicit)) else tol.describe()
    if moved and "spread" in moved and is_number(expected) and is_number(actual) \
            and not (math.isnan(expected) or math.isnan(actual)):
        floor = tol.abs + tol.rel * abs(expected) if exact != "equal" else 0.0
        allowed = max(floor, factor * float(moved["spread"]))
        if allowed > floor:
            return abs(actual - expected) <= allowed, f"±{allowed:.4g} ({factor:g} × spread {moved['spread']:g} measured across variant builds)"
        return abs(actual - expected) <= allowed, exact
    if moved and "values" in moved:
        ok = compare_value(expected, actual, tol) or any(compare_value(v, actual, tol) for v in moved["values"])
        return ok, f"the expected value or a variant build's ({', '.join(show(v) for v in moved['values'][:3])})"
    return compare_value(expected, actual, tol), exact


def show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else f"{value:.6g}"
    return text if len(text) <= 60 else text[:59] + "…"


@dataclass
class Check:
    """One graded item: a metric or a figure."""

    kind: str  # "metric" or "figure"
    section: str
    name: str  # metric key within the section, or the figure's path
    passed: bool
    detail: str
    questions: list[str]
    expected: Any = None
    actual: Any = None
    tolerance: str = ""
    ssim: float | None = None
    panels: list[dict] = field(default_factory=list)  # figures: {"label", "ssim", "box", "actual_box", "passed"}
    unstable: str | None = None  # why the item is shown but not graded by its exact value (a section's UNSTABLE)

    @property
    def label(self) -> str:
        return self.name if self.kind == "figure" else f"{self.section}.{self.name}"
