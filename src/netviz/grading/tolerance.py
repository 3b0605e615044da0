"""Tolerances and lab questions: the tolerance of each metric (:func:`tolerance_for`, :func:`per_image`), the
items shown but not graded by their exact value (a section's ``UNSTABLE`` patterns, or numbers the expected set's
variant builds showed to be chaotic), and which lab question each item answers (:func:`question_map`)."""

from __future__ import annotations

import fnmatch
import math
import string
from dataclasses import dataclass
from typing import Any

from netviz.config import section_models
from netviz.errors import NetvizError
from netviz.grading.expected import Build, leaves
from netviz.sections import REGISTRY

QUESTION_IDS = tuple(f"Q{i}" for i in range(1, 12))


@dataclass(frozen=True)
class Tolerance:
    abs: float
    rel: float
    skip: bool = False
    explicit: bool = False  # set by a [grade.tolerances] pattern (integers are otherwise compared exactly)
    images: float = 0.0  # also allow this many images' worth of a rate over the n images it counts (see per_image)

    def describe(self) -> str:
        return "skipped" if self.skip else f"±({self.abs:g} + {self.rel:g}·|expected|)"


def per_image(tol: Tolerance, key: str, leaves_of_section: dict[str, Any]) -> Tolerance:
    """``tol`` with ``images / n`` added to its absolute part, ``n`` being the count stored beside the item (the
    nearest ``n`` up its path: ``fooling.m.summary.n`` for ``fooling.m.summary.transfer_target.m``): a rate over
    n images that one image's chaotic outcome can move by 1/n."""
    if not tol.images:
        return tol
    parts = key.split(".")[:-1]
    while parts:
        n = leaves_of_section.get(".".join([*parts, "n"]))
        if is_number(n) and n > 0:
            return Tolerance(tol.abs + tol.images / n + 1e-9, tol.rel, tol.skip, tol.explicit)
        parts.pop()
    return tol


def tolerance_for(key: str, grade: dict) -> Tolerance:
    """The tolerance of metric ``key`` (``<section>.<path>``): the ``[grade]`` defaults, overridden by the
    last pattern of ``[grade.tolerances]`` that matches. Integers (counts) must be equal unless a pattern
    gives them a tolerance."""
    found = Tolerance(float(grade["abs_tol"]), float(grade["rel_tol"]))
    for pattern, spec in grade.get("tolerances", {}).items():
        if fnmatch.fnmatchcase(key, pattern):
            if not isinstance(spec, dict) or not set(spec) <= {"abs", "rel", "skip", "images"}:
                raise NetvizError(f"grade.tolerances.\"{pattern}\" must be a table of abs, rel, images and/or skip "
                                  f"(e.g. {{abs = 0.01}}), got {spec!r}")
            found = Tolerance(float(spec.get("abs", found.abs)), float(spec.get("rel", found.rel)),
                              bool(spec.get("skip", False)), explicit=True, images=float(spec.get("images", 0)))
    return found


def _declared_questions(section: str) -> dict:
    """A section's ``QUESTIONS`` (see :func:`declared`)."""
    return declared(section, "QUESTIONS")


def declared(section: str, name: str) -> dict:
    """A section's ``QUESTIONS`` or ``UNSTABLE`` table, from the registry (:mod:`netviz.sections`)."""
    entry = REGISTRY.get(section)
    if entry is None:
        return {}
    return {"QUESTIONS": entry.questions, "UNSTABLE": entry.unstable}[name]


def unstable_reason(name: str, unstable: dict) -> str | None:
    """Why item ``name`` (a metric key, or ``<figure file>:<panel label>``) is not graded by its exact value, from
    a section's ``UNSTABLE`` patterns (the last match wins; a ``None`` reason means graded after all)."""
    reason = None
    for pattern, why in unstable.items():
        if fnmatch.fnmatchcase(name, pattern):
            reason = why
    return reason


def measured_chaotic(expected: Any, moved: dict | None, grade_config: dict) -> str | None:
    """Why a number is not graded by its value although no section declared it: legitimate variant builds moved
    it by at least ``grade.chaotic_share`` of its own size (a class probability that goes from 0.003 to 0.1 when
    one thread replaces two), so no tolerance separates a correct build from a wrong one."""
    share = float(grade_config.get("chaotic_share", 0.5))
    if not moved or "spread" not in moved or not is_number(expected) or share <= 0:
        return None
    spread = float(moved["spread"])
    if math.isnan(expected) or spread < share * abs(expected):
        return None
    return (f"legitimate variant builds moved it by {spread:.3g} (expected {expected:.3g}): chaotic under float "
            "rounding, so it is shown and what covers it is graded")


OUTCOME_FIELDS = ("rank", "top", "pred", "predicted")  # fields that name the class a probability's image gets


def chaotic_outcomes(expected: Build, moved: dict, grade_config: dict) -> dict[str, str]:
    """Items that name an image's class (``rank``, ``top``, ``predicted…``) in a record whose probability
    (``p``, ``p_…``) the variants showed to be chaotic (:func:`measured_chaotic`): which class leads is then as
    chaotic as the probability. ``{"<section>.<key>": why}``."""
    records = set()
    for label, spec in moved.items():
        section, _, key = label.partition(".")
        parts = key.split(".")
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] == "p" or parts[i].startswith("p_"):
                value = leaves(expected.sections.get(section, {}).get("metrics", {})).get(key) \
                    if section in expected.sections else None
                if measured_chaotic(value, spec, grade_config):
                    records.add((section, ".".join(parts[:i])))
                break
    if not records:
        return {}
    out = {}
    for section, record in records:
        prefix = f"{record}." if record else ""
        for key in leaves(expected.sections[section]["metrics"]):
            field_name = key[len(prefix):].split(".")[0] if key.startswith(prefix) else ""
            if any(field_name == f or field_name.startswith(f + "_") for f in OUTCOME_FIELDS):
                out[f"{section}.{key}"] = (f"the class this image gets follows a probability ({record or section}) "
                                           "that legitimate variant builds showed to be chaotic")
    return out


def question_map(section: str, config: dict) -> dict[str, dict[str, list[str]]]:
    """A section's ``QUESTIONS`` with its patterns filled in (``{models[0]}`` -> the section's first model);
    a pattern whose field does not exist (no second model) is dropped."""
    declared = _declared_questions(section)
    try:
        fields = {"models": section_models(config, section)}
    except (KeyError, NetvizError):
        fields = {"models": []}
    resolved: dict[str, dict[str, list[str]]] = {}
    for question, spec in declared.items():
        entry = resolved.setdefault(question, {"metrics": [], "figures": []})
        for kind in ("metrics", "figures"):
            for pattern in spec.get(kind, []):
                try:
                    entry[kind].append(string.Formatter().vformat(pattern, (), fields))
                except (IndexError, KeyError):
                    continue
    return resolved


def questions_of(name: str, kind: str, mapping: dict) -> list[str]:
    return sorted((q for q, spec in mapping.items() if any(fnmatch.fnmatchcase(name, p) for p in spec[kind])),
                  key=question_order)


def question_order(question: str) -> tuple:
    return (0, int(question[1:])) if question[1:].isdigit() else (1, question)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
