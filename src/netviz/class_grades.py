"""Grading a whole class: many builds against one expected set, one table.

``netviz grade --expected DIR BUILD…`` grades each build as :func:`netviz.grading.grade` does and writes
``grades.csv`` and ``grades.html`` (a row per build, a column per question, the pass rate of each question over
the graded builds) and one grade page per build. A build that cannot be graded as it is (a missing folder, no
results, a half-written or unreadable file, another configuration) is a row that says so, never a crash.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from netviz import grading, store
from netviz.errors import NetvizError

IGNORED_CONFIG = ("grade.", "run.data_dir", "run.device", "run.batch_size", "run.threads", "run.fold_batchnorm",
                  "run.channels_last", "run.memory_budget_gb", "run.gpu_memory_budget_gb", "bench.", "models.weights")


@dataclass
class Row:
    """One build's line of the table."""

    build: str
    status: str  # "pass", "fail", "not graded"
    verdicts: dict[str, str] = field(default_factory=dict)  # question -> pass / fail / not graded
    checks: str = ""  # "passed/total"
    note: str = ""
    page: str | None = None  # the build's grade page, relative to the table


def config_differences(expected: dict, actual: dict) -> list[str]:
    """Config keys (flattened) that differ between two provenance configs, other than implementation choices."""
    from netviz.cache import flatten

    e, a = flatten(expected or {}), flatten(actual or {})
    return [f"{k}: {json.dumps(e.get(k))} -> {json.dumps(a.get(k))}" for k in sorted(set(e) | set(a))
            if e.get(k) != a.get(k) and not k.startswith(IGNORED_CONFIG)]


def _leftovers(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for parent in (root / "results", root / "figures") if parent.is_dir()
            for p in parent.iterdir() if ".tmp-" in p.name]


def grade_one(expected: grading.Build, root: Path, grade_config: dict, page: Path | None) -> Row:
    """Grade the build in ``root``; every problem becomes the row's status and note."""
    row = Row(str(root), "not graded")
    if not root.is_dir():
        row.note = "no such folder"
        return row
    if not (root / "results" / "provenance.json").is_file():
        row.note = "not a build: no results/provenance.json (not built, or the folder of something else)"
        return row
    try:
        build = grading.load_build(root)
    except (NetvizError, ValueError, OSError) as err:  # a metrics/manifest/provenance file cut short or unreadable
        row.note = f"half written: a results file cannot be read ({str(err)[:160]})"
        return row
    notes = []
    leftovers = _leftovers(root)
    if leftovers:
        notes.append(f"an interrupted run left {', '.join(leftovers[:2])}")
    differs = config_differences(expected.provenance.get("config", {}), build.provenance.get("config", {}))
    if differs:
        notes.append(f"made with another configuration ({'; '.join(differs[:3])}"
                     + (f"; {len(differs) - 3} more" if len(differs) > 3 else "") + ")")
    missing = [s for s in expected.sections if s not in build.sections]
    if missing:
        notes.append(f"section(s) missing: {', '.join(missing)}")
    try:
        result = grading.grade(expected, build, grade_config)
    except Exception as err:  # noqa: BLE001 - one broken build must not stop a class's grading
        row.note = "; ".join([*notes, f"could not be graded ({type(err).__name__}: {str(err)[:100]})"])
        return row
    row.verdicts = dict(result.verdicts)
    row.checks = f"{sum(c.passed for c in result.checks)}/{len(result.checks)}"
    row.status = "pass" if result.passed and not differs else "fail"
    failures = result.failures()
    if failures:
        first = failures[0]
        notes.append(f"{len(failures)} item(s) fail, e.g. {first.label}"
                     + (f" [{', '.join(first.questions)}]" if first.questions else "") + f": {first.detail[:100]}")
    row.note = "; ".join(notes)
    if page is not None:
        try:
            grading.write_html(result, page)
            row.page = page.name
        except Exception as err:  # noqa: BLE001
            row.note += f"; grade page not written ({type(err).__name__})"
    return row


def _slug(index: int, root: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", root.resolve().name or "build")[:60]
    return f"{index + 1:03d}-{name}.html"


def grade_class(expected_dir: Path, builds: list[Path], grade_config: dict, out: Path,
                log: Callable[[str], None] = print) -> list[Row]:
    """Grade every build in ``builds`` against ``expected_dir``; write ``out/grades.csv``, ``out/grades.html`` and a
    grade page per build. Returns the rows."""
    expected = grading.load_expected(expected_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, root in enumerate(builds):
        row = grade_one(expected, Path(root), grade_config, out / _slug(index, Path(root)))
        log(f"{row.status.upper():10s} {row.build}" + (f"  ({row.note})" if row.note else ""))
        rows.append(row)
    questions = question_columns(rows)
    store.write_text_atomic(out / "grades.csv", to_csv(rows, questions))
    store.write_text_atomic(out / "grades.html", to_html(rows, questions, expected_dir))
    log(f"grades: {out / 'grades.csv'}, {out / 'grades.html'}")
    log("pass rates: " + ", ".join(f"{q} {r}" for q, r in pass_rates(rows, questions).items()))
    return rows


def question_columns(rows: list[Row]) -> list[str]:
    seen = {q for r in rows for q, v in r.verdicts.items() if v != "not graded"}
    return [q for q in [*grading.QUESTION_IDS, "other"] if q in seen] or list(grading.QUESTION_IDS)


def pass_rates(rows: list[Row], questions: list[str]) -> dict[str, str]:
    """Per question (and overall): passed builds / builds, unreadable builds counting as not passed."""
    out = {}
    for q in [*questions, "overall"]:
        passed = sum((r.status == "pass") if q == "overall" else (r.verdicts.get(q) == "pass") for r in rows)
        out[q] = f"{passed}/{len(rows)}" + (f" ({100 * passed / len(rows):.0f}%)" if rows else "")
    return out


def to_csv(rows: list[Row], questions: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["build", "overall", *questions, "checks passed", "note"])
    for r in rows:
        writer.writerow([r.build, r.status, *(r.verdicts.get(q, "not graded") for q in questions), r.checks, r.note])
    rates = pass_rates(rows, questions)
    writer.writerow(["pass rate", rates["overall"], *(rates[q] for q in questions), "", ""])
    return buffer.getvalue()


def to_html(rows: list[Row], questions: list[str], expected_dir: Path) -> str:
    e = html.escape
    colour = {"pass": "#d8f0d8", "fail": "#f6d5d5", "not graded": "#eeeeee"}
    head = "".join(f"<th>{e(q)}</th>" for q in ["build", "overall", *questions, "checks", "note"])
    lines = []
    for r in rows:
        name = f'<a href="{e(r.page)}">{e(r.build)}</a>' if r.page else e(r.build)
        cells = [f'<td style="background:{colour.get(v, "#fff")}">{e(v)}</td>'
                 for v in [r.status, *(r.verdicts.get(q, "not graded") for q in questions)]]
        lines.append(f"<tr><td>{name}</td>{''.join(cells)}<td>{e(r.checks)}</td><td>{e(r.note)}</td></tr>")
    rates = pass_rates(rows, questions)
    lines.append("<tr><th>pass rate</th>" + "".join(f"<th>{e(rates[q])}</th>" for q in ["overall", *questions])
                 + "<th></th><th></th></tr>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>netviz grades</title>"
            "<style>body{font-family:sans-serif} td,th{border:1px solid #bbb;padding:3px 6px;font-size:13px}"
            "table{border-collapse:collapse}</style></head><body>"
            f"<h1>Grades against {e(str(expected_dir))}</h1><p>{len(rows)} build(s), {time.strftime('%Y-%m-%d %H:%M')}. "
            "A build that could not be graded says why in its note; it counts as not passed.</p>"
            f"<table><tr>{head}</tr>{''.join(lines)}</table></body></html>\n")
