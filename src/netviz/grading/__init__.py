"""Grading a build against an expected set: figures by SSIM (panel by panel), metrics within tolerances, a
verdict per lab question.

An **expected set** (``netviz expected --out DIR``) is a snapshot of a finished build laid out like one:
``DIR/results/provenance.json``, ``DIR/results/<section>/{metrics,manifest}.json`` and every figure as
``DIR/figures/<section>/<name>.png``, plus ``DIR/expected.json`` that marks it. Arrays (``*.npz``) are left out.

**Grading** (``netviz grade --expected DIR [--actual DIR]``) compares a build with it:

- every metric: each leaf of each ``metrics.json`` (list items numbered, e.g.
  ``saliency.models.squeezenet1_1.per_image.3.hit``). Floats pass when
  ``|actual - expected| <= abs + rel * |expected|``; integers (counts), booleans, strings and nulls must be equal. ``abs`` and
  ``rel`` come from the ``[grade]`` config table; ``[grade.tolerances]`` overrides them per metric with glob
  patterns over those keys (the last matching pattern wins; ``{skip = true}`` leaves a metric out);
- every figure: SSIM of each panel. Panels are the axes boxes recorded when the figure was saved
  (:mod:`netviz.panels`); a figure saved without them is cut into tiles. A panel laid out exactly as expected is
  compared pixel for pixel against ``grade.ssim_min``; one whose layout moved (other fonts, another matplotlib)
  is compared at a coarse scale against ``grade.ssim_min_rescaled`` (see :func:`panel_ssim`). The figure passes
  when every panel does; the whole-figure SSIM is reported as well;
- a verdict per lab question Q1–Q11: each section module maps questions to its metrics and figures with
  ``QUESTIONS`` (see :mod:`netviz.experiments`); a question passes when everything mapped to it passes and
  is "not graded" when nothing is. Items mapped to no question are graded under "other". The build passes when
  everything does.

Differences in weights, data, configuration, device or library versions between the two builds are reported as
warnings: they explain failures but are not failures themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from netviz.grading.compare import Check, compare_value, judge
from netviz.grading.expected import MARKER, Build, leaves, load_build, load_expected, snapshot, snapshot_source
from netviz.grading.figures import compare_figure, measured_unstable, panel_minimum, panel_ssim, ssim
from netviz.grading.page import format_table, grading_basis, summary_rows, write_html
from netviz.grading.tolerance import QUESTION_IDS, Tolerance, is_number, question_map, tolerance_for
from netviz.grading.verdict import Grade, grade

__all__ = ["MARKER", "QUESTION_IDS", "Build", "Check", "Grade", "Tolerance", "compare_figure", "compare_value",
           "format_table", "grade", "grading_basis", "is_number", "judge", "leaves", "load_build", "load_expected",
           "measured_unstable", "panel_minimum", "panel_ssim", "question_map", "run_grade", "snapshot",
           "snapshot_source", "ssim", "summary_rows", "tolerance_for", "write_html"]


def run_grade(expected_dir: Path, actual_dir: Path, grade_config: dict, html: Path | None,
              log: Callable[[str], None] = print) -> Grade:
    """Grade, print the table and warnings, write the HTML page. Returns the result (``.passed``)."""
    expected = load_expected(expected_dir)
    actual = load_expected(actual_dir) if (Path(actual_dir) / MARKER).exists() else load_build(actual_dir)
    result = grade(expected, actual, grade_config)
    for warning in result.warnings:
        log(f"warning: {warning}")
    if result.extra:
        log(f"note: {len(result.extra)} item(s) in the build are not in the expected set "
            f"(e.g. {result.extra[0]}); they are not graded")
    log(format_table(result))
    if html is not None:
        log(f"grade: {write_html(result, html)}")
    return result
