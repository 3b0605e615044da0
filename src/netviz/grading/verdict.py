"""The grade of a build: every metric and figure of the expected set checked (:func:`grade`), a verdict per lab
question, and warnings where the two builds' provenance differs (weights, data, config, device, versions)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from netviz.grading.compare import Check, judge, show
from netviz.grading.expected import Build, leaves
from netviz.grading.figures import compare_figure
from netviz.grading.tolerance import (QUESTION_IDS, chaotic_outcomes, declared, measured_chaotic, per_image,
                                      question_map, question_order, questions_of, tolerance_for, unstable_reason)
from netviz.sections import SECTIONS

@dataclass
class Grade:
    checks: list[Check]
    verdicts: dict[str, str]  # question -> "pass" / "fail" / "not graded"
    warnings: list[str]
    extra: list[str]  # metrics / sections in the build but not in the expected set
    expected_root: Path
    actual_root: Path
    grade_config: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and bool(self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def grade(expected: Build, actual: Build, grade_config: dict, figures: bool = True) -> Grade:
    """Compare ``actual`` with ``expected`` (``figures=False``: metrics only)."""
    checks: list[Check] = []
    extra: list[str] = []
    moved_metrics = (expected.variation or {}).get("metrics", {})
    factor = float(grade_config.get("spread_factor", 3.0))
    outcomes = chaotic_outcomes(expected, moved_metrics, grade_config)
    for section, stored in sorted(expected.sections.items(), key=lambda kv: _section_order(kv[0])):
        mapping = question_map(section, expected.provenance.get("config", {}))
        unstable = declared(section, "UNSTABLE")
        e_leaves = leaves(stored["metrics"])
        a_leaves = leaves(actual.sections[section]["metrics"]) if section in actual.sections else {}
        for key, value in e_leaves.items():
            tol = per_image(tolerance_for(f"{section}.{key}", grade_config), key, e_leaves)
            if tol.skip:
                continue
            questions = questions_of(key, "metrics", mapping)
            if section not in actual.sections:
                checks.append(Check("metric", section, key, False, "section missing in the build", questions, value))
            elif key not in a_leaves:
                checks.append(Check("metric", section, key, False, "missing in the build", questions, value))
            else:
                moved = moved_metrics.get(f"{section}.{key}")
                ok, how = judge(value, a_leaves[key], tol, moved, factor)
                why = (unstable_reason(key, unstable) or measured_chaotic(value, moved, grade_config)
                       or outcomes.get(f"{section}.{key}"))
                detail = "" if ok else f"expected {show(value)}, got {show(a_leaves[key])}"
                if why is not None:  # shown, not graded by its exact value: what covers it is graded elsewhere
                    detail = f"not graded by its exact value ({why})" + (f"; {detail}" if detail else "")
                    ok = True
                checks.append(Check("metric", section, key, ok, detail, questions, value, a_leaves[key], how,
                                    unstable=why))
        extra.extend(f"{section}.{k}" for k in a_leaves if k not in e_leaves)
        for rel in expected.figures(section) if figures else []:
            checks.append(compare_figure(section, rel, expected, actual, grade_config,
                                         questions_of(Path(rel).name, "figures", mapping), unstable))
    extra.extend(f"section {s}" for s in actual.sections if s not in expected.sections)
    verdicts = {}
    for question in [*QUESTION_IDS, *sorted({q for c in checks for q in c.questions} - set(QUESTION_IDS), key=question_order), "other"]:
        items = [c for c in checks if (question in c.questions) or (question == "other" and not c.questions)]
        verdicts[question] = "not graded" if not items else ("pass" if all(c.passed for c in items) else "fail")
    return Grade(checks, verdicts, _warnings(expected, actual), extra, expected.root, actual.root, grade_config)


def _section_order(name: str) -> tuple:
    return (SECTIONS.index(name), name) if name in SECTIONS else (len(SECTIONS), name)


def _warnings(expected: Build, actual: Build) -> list[str]:
    E, A = expected.provenance, actual.provenance
    out = []
    e_w = {n: w.get("sha256") for n, w in E.get("weights", {}).items()}
    a_w = {n: w.get("sha256") for n, w in A.get("weights", {}).items()}
    for name in sorted(set(e_w) | set(a_w)):
        if name not in a_w:
            out.append(f"weights: {name} is in the expected set but not used by the build")
        elif name not in e_w:
            out.append(f"weights: {name} is used by the build but not by the expected set")
        elif e_w[name] != a_w[name]:
            out.append(f"weights: {name} differ (sha256 {a_w[name][:12]}… vs expected {e_w[name][:12]}…)")
    e_d, a_d = E.get("data", {}), A.get("data", {})
    if e_d.get("sha256") != a_d.get("sha256"):
        files = [f for f in set(e_d.get("files", {})) | set(a_d.get("files", {}))
                 if e_d.get("files", {}).get(f) != a_d.get("files", {}).get(f)]
        out.append(f"data differ from the expected set's ({', '.join(sorted(files)) or a_d.get('source', '?')})")
    from netviz.cache import flatten

    e_c, a_c = flatten(E.get("config", {})), flatten(A.get("config", {}))
    changed = [k for k in sorted(set(e_c) | set(a_c)) if e_c.get(k) != a_c.get(k)
               and not k.startswith(("grade.", "run.data_dir", "run.device", "run.batch_size", "run.threads",
                                     "run.fold_batchnorm", "run.channels_last"))]
    if changed:
        shown = ", ".join(f"{k}: {json.dumps(e_c.get(k))} -> {json.dumps(a_c.get(k))}" for k in changed[:4])
        out.append(f"config differs from the expected set's: {shown}" + (f" and {len(changed) - 4} more" if len(changed) > 4 else ""))
    e_dev, a_dev = E.get("device", {}).get("type"), A.get("device", {}).get("type")
    if e_dev != a_dev:
        out.append(f"device: the build ran on {a_dev}, the expected set on {e_dev} (small numeric differences are normal)")
    e_v, a_v = E.get("versions", {}), A.get("versions", {})
    libs = [k for k in ("torch", "torchvision", "numpy", "matplotlib", "python") if e_v.get(k) != a_v.get(k) and k in e_v]
    if libs:
        out.append("versions differ: " + ", ".join(f"{k} {a_v.get(k)} vs {e_v.get(k)}" for k in libs))
    return out
