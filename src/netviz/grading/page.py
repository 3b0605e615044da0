"""A grade shown: the text table ``netviz grade`` prints (:func:`format_table`) and the self-contained HTML page
``report/grade.html`` (:func:`write_html`) with every figure expected | actual (| difference for failures)."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import numpy as np

from netviz import store
from netviz.errors import NetvizError
from netviz.grading.compare import Check
from netviz.grading.figures import read_rgb, resize
from netviz.grading.verdict import Grade

def _counts(checks: list[Check], kind: str) -> str:
    items = [c for c in checks if c.kind == kind]
    if not items:
        return "—"
    text = f"{sum(c.passed for c in items)}/{len(items)}"
    if kind == "figure":
        text += f" (min SSIM {min(min([p['ssim'] for p in c.panels] or [0.0]) for c in items):.3f})"
    return text


def summary_rows(result: Grade) -> list[list[str]]:
    rows = []
    for question, verdict in result.verdicts.items():
        items = [c for c in result.checks if (question in c.questions) or (question == "other" and not c.questions)]
        rows.append([question, _counts(items, "metric"), _counts(items, "figure"), verdict.upper() if verdict != "not graded" else verdict])
    return rows


def format_table(result: Grade, max_failures: int = 25) -> str:
    header = ["question", "metrics passed", "figures passed", "verdict"]
    rows = summary_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    failures = result.failures()
    figures = [c for c in failures if c.kind == "figure"]
    metrics = [c for c in failures if c.kind == "metric"]
    if failures:
        out.append("")
        out.append(f"failed: {len(figures)} figure(s), {len(metrics)} metric(s)")
        for c in (figures + metrics)[:max_failures]:
            where = f" [{', '.join(c.questions)}]" if c.questions else ""
            out.append(f"  FAIL {c.kind} {c.label}{where}: {c.detail}")
        if len(failures) > max_failures:
            out.append(f"  … and {len(failures) - max_failures} more (see the HTML page)")
    out.append("")
    out.append(f"overall: {'PASS' if result.passed else 'FAIL'} ({sum(c.passed for c in result.checks)}/{len(result.checks)} checks)")
    return "\n".join(out)


def _thumbnail(image: np.ndarray, boxes: list[list[int]], width: int = 760) -> str:
    """A PNG data URI of ``image`` scaled to ``width`` px, with ``boxes`` outlined in red."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for box in boxes:
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(230, 0, 0), width=3)
    if picture.width > width:
        picture = picture.resize((width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _difference(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Where two images differ: white where equal, darker with the largest channel difference (×4)."""
    if actual.shape != expected.shape:
        actual = resize(actual, (expected.shape[1], expected.shape[0]))
    diff = np.abs(expected.astype(np.int16) - actual.astype(np.int16)).max(axis=2)
    gray = (255 - np.clip(diff * 4, 0, 255)).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def grading_basis(result: Grade) -> dict:
    """Why items are graded as they are, for the grade page: how the tolerances were measured (the expected set's
    variants), how many items the measured spread widened or the variants' values admitted, and the items shown but
    not graded by their exact value, grouped by the reason their section gives."""
    from netviz.variation import VARIATION

    path = Path(result.expected_root) / VARIATION
    variation = store.read_json(path) if path.exists() else {}
    unstable: dict[str, list[str]] = {}
    for c in result.checks:
        if c.unstable:
            unstable.setdefault(c.unstable, []).append(c.label)
    panels = [(c.name, p["label"], p["unstable"]) for c in result.checks if c.kind == "figure"
              for p in c.panels if p.get("unstable")]
    return {
        "variants": variation.get("variants", {}),
        "measured": bool(variation),
        "widened": [c for c in result.checks if "spread" in c.tolerance],
        "envelope": [c for c in result.checks if "variant build" in c.tolerance],
        "figures_widened": sum(any(p.get("variant_ssim") is not None for p in c.panels) for c in result.checks),
        "unstable": {why: labels for why, labels in unstable.items()},
        "unstable_panels": panels,
    }


def write_html(result: Grade, path: Path) -> Path:
    """``report/grade.html``: verdicts, warnings, failed metrics, and every figure expected | actual (| difference
    for failures), failing panels outlined; self-contained."""
    from netviz.report.templating import template_environment  # jinja2 is loaded only when a page is written

    figures = []
    for c in sorted((c for c in result.checks if c.kind == "figure"), key=lambda c: c.passed):
        entry = {"check": c, "expected": None, "actual": None, "difference": None,
                 "expected_link": os.path.relpath(result.expected_root / c.name, Path(path).parent)}
        e_img = read_rgb(result.expected_root / c.name)
        bad = [p for p in c.panels if not p["passed"]]
        entry["expected"] = _thumbnail(e_img, [p["box"] for p in bad])
        try:
            a_img = read_rgb(result.actual_root / c.name) if (result.actual_root / c.name).is_file() else None
        except NetvizError:
            a_img = None  # damaged: its check already says so
        if a_img is not None:
            entry["actual"] = _thumbnail(a_img, [p["actual_box"] for p in bad])
            entry["actual_link"] = os.path.relpath(result.actual_root / c.name, Path(path).parent)
            if not c.passed:
                entry["difference"] = _thumbnail(_difference(e_img, a_img), [p["box"] for p in bad])
        figures.append(entry)
    how = grading_basis(result)
    html = template_environment().get_template("grade.html.j2").render(
        result=result, rows=summary_rows(result), figures=figures, how=how,
        spread_factor=result.grade_config.get("spread_factor", 3.0), ssim_floor=result.grade_config.get("ssim_floor", 0.5),
        failed_metrics=[c for c in result.checks if c.kind == "metric" and not c.passed],
        metric_count=sum(c.kind == "metric" for c in result.checks),
        expected_root=str(result.expected_root), actual_root=str(Path(result.actual_root).resolve()),
        created=time.strftime("%Y-%m-%d %H:%M"))
    store.write_text_atomic(Path(path), html)
    return Path(path)
