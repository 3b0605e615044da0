"""Grading a whole class at once, and measured tolerances in an expected set.

``netviz grade --expected DIR BUILD…`` writes one table (CSV and HTML) with a row per build and a column per
question; a build that is missing, half written or made with another configuration is a row that says so.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from netviz import grading
from netviz.cli import main
from netviz.config import load_config
from netviz.variation import VARIATION


@pytest.fixture(scope="module")
def expected(saliency_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("class-expected") / "set"
    grading.snapshot(saliency_build, out, log=lambda _: None, allow_partial=True)
    return out


def copy_build(source: Path, root: Path) -> Path:
    for folder in ("results", "figures"):
        shutil.copytree(source / folder, root / folder)
    return root


def edit_metrics(root: Path, change) -> None:
    path = root / "results/saliency/metrics.json"
    metrics = json.loads(path.read_text())
    change(metrics)
    path.write_text(json.dumps(metrics))


def test_a_class_table_with_every_kind_of_broken_build(expected, saliency_build, tmp_path, capsys):
    good = copy_build(saliency_build, tmp_path / "good")
    wrong = copy_build(saliency_build, tmp_path / "wrong")
    edit_metrics(wrong, lambda m: m["models"]["squeezenet1_1"].__setitem__("hit_rate", 0.1))
    no_figure = copy_build(saliency_build, tmp_path / "no-figure")
    next((no_figure / "figures/saliency").glob("*_all.png")).unlink()
    half = copy_build(saliency_build, tmp_path / "half")
    metrics = half / "results/saliency/metrics.json"
    metrics.write_bytes(metrics.read_bytes()[:200])  # cut short, as by a crash while copying
    truncated_png = copy_build(saliency_build, tmp_path / "truncated-png")
    figure = next((truncated_png / "figures/saliency").glob("*_all.png"))
    figure.write_bytes(figure.read_bytes()[:300])
    other = copy_build(saliency_build, tmp_path / "other-config")
    provenance = json.loads((other / "results/provenance.json").read_text())
    provenance["config"]["saliency"]["tolerance_px"] = 5
    (other / "results/provenance.json").write_text(json.dumps(provenance))
    empty = tmp_path / "empty"
    empty.mkdir()
    builds = [good, wrong, no_figure, half, truncated_png, other, empty, tmp_path / "absent"]
    out = tmp_path / "grades"
    status = main(["grade", "--expected", str(expected), *map(str, builds), "--out", str(out)])
    assert status == 1  # not every build passes
    rows = list(csv.DictReader((out / "grades.csv").open()))
    by_name = {Path(r["build"]).name: r for r in rows[:-1]}
    assert list(by_name) == [b.name for b in builds]
    assert by_name["good"]["overall"] == "pass" and by_name["good"]["Q1"] == "pass"
    assert by_name["wrong"]["overall"] == "fail" and by_name["wrong"]["Q2"] == "fail"
    assert "hit_rate" in by_name["wrong"]["note"]
    assert by_name["no-figure"]["overall"] == "fail" and "missing in the build" in by_name["no-figure"]["note"]
    assert by_name["half"]["overall"] == "not graded" and "half written" in by_name["half"]["note"]
    assert by_name["truncated-png"]["overall"] == "fail" and "unreadable" in by_name["truncated-png"]["note"]
    assert by_name["other-config"]["overall"] == "fail"
    assert "another configuration (saliency.tolerance_px: 15 -> 5" in by_name["other-config"]["note"]
    assert "not a build" in by_name["empty"]["note"] and by_name["absent"]["note"] == "no such folder"
    # the last row gives each question's pass rate over all the builds
    assert rows[-1]["build"] == "pass rate" and rows[-1]["overall"] == "1/8 (12%)"
    assert rows[-1]["Q1"] == f"{sum(r['Q1'] == 'pass' for r in rows[:-1])}/8 ({100 * sum(r['Q1'] == 'pass' for r in rows[:-1]) / 8:.0f}%)"
    html = (out / "grades.html").read_text()
    assert html.count("<tr>") == len(builds) + 2 and "half written" in html
    assert (out / "001-good.html").exists()  # each graded build's own page, linked from the table
    assert 'href="001-good.html"' in html
    assert "Traceback" not in capsys.readouterr().err


def with_variation(expected: Path, tmp_path: Path, variation: dict) -> Path:
    copy = tmp_path / "measured"
    shutil.copytree(expected, copy)
    (copy / VARIATION).write_text(json.dumps({"variants": {"v": {"overrides": {"run.threads": 1}}}, **variation}))
    return copy


def test_measured_spread_sets_the_tolerance(expected, saliency_build, tmp_path):
    key = "saliency.models.squeezenet1_1.hit_rate"
    measured = with_variation(expected, tmp_path, {"metrics": {key: {"spread": 0.02}}, "figures": {}})
    config = load_config()["grade"]  # spread_factor 3: ±0.06
    for change, passes in ((0.05, True), (0.07, False)):
        build = copy_build(saliency_build, tmp_path / f"build-{change}")
        edit_metrics(build, lambda m: m["models"]["squeezenet1_1"].__setitem__("hit_rate", m["models"]["squeezenet1_1"]["hit_rate"] + change))
        result = grading.grade(grading.load_expected(measured), grading.load_build(build), config, figures=False)
        check = next(c for c in result.checks if c.label == key)
        assert check.passed is passes, check
        assert "3 × spread 0.02" in check.tolerance
        # without the measurement the [grade] floor alone (0.001 + 1%) fails both
        bare = grading.grade(grading.load_expected(expected), grading.load_build(build), config, figures=False)
        assert not next(c for c in bare.checks if c.label == key).passed


def test_a_flipped_value_passes_only_when_a_variant_gave_it(expected, saliency_build, tmp_path):
    key = "saliency.models.squeezenet1_1.per_image.0.correct"
    build = copy_build(saliency_build, tmp_path / "flipped")
    edit_metrics(build, lambda m: m["models"]["squeezenet1_1"]["per_image"][0].__setitem__(
        "correct", not m["models"]["squeezenet1_1"]["per_image"][0]["correct"]))
    flipped = json.loads((build / "results/saliency/metrics.json").read_text())["models"]["squeezenet1_1"]["per_image"][0]["correct"]
    config = load_config()["grade"]
    measured = with_variation(expected, tmp_path, {"metrics": {key: {"values": [flipped]}}, "figures": {}})
    result = grading.grade(grading.load_expected(measured), grading.load_build(build), config, figures=False)
    assert next(c for c in result.checks if c.label == key).passed
    bare = grading.grade(grading.load_expected(expected), grading.load_build(build), config, figures=False)
    assert not next(c for c in bare.checks if c.label == key).passed


def test_panel_thresholds_follow_the_variants(expected):
    config = load_config()["grade"]
    assert grading.panel_minimum(0.95, config, None, False) == 0.95
    assert grading.panel_minimum(0.95, config, 0.99, False) == pytest.approx(0.95)  # 1 - 3 * 0.01 = 0.97 > 0.95
    assert grading.panel_minimum(0.95, config, 0.9, False) == pytest.approx(0.7)
    assert grading.panel_minimum(0.95, config, 0.6, False) == 0.5  # never below ssim_floor
    assert grading.measured_unstable(config, 0.6) is not None and grading.measured_unstable(config, 0.9) is None
    assert grading.panel_minimum(0.95, config, None, True) == 0.5


def test_a_number_the_variants_moved_by_half_its_size_is_shown_not_graded(expected, saliency_build, tmp_path):
    """A class probability that legitimate builds move by more than half its value is chaotic: it and the class
    named in the same record are shown with the reason, not graded; its neighbours still are."""
    row = "saliency.models.squeezenet1_1.per_image.0"
    value = json.loads((expected / "results/saliency/metrics.json").read_text())["models"]["squeezenet1_1"]["per_image"][0]
    measured = with_variation(expected, tmp_path, {"metrics": {f"{row}.p_true": {"spread": 0.6 * value["p_true"]}},
                                                   "figures": {}})
    build = copy_build(saliency_build, tmp_path / "moved")
    edit_metrics(build, lambda m: m["models"]["squeezenet1_1"]["per_image"][0].update(
        p_true=0.01, predicted=value["predicted"] + 1, predicted_name="something else", top1pct_mass=0.5))
    result = grading.grade(grading.load_expected(measured), grading.load_build(build), load_config()["grade"],
                           figures=False)
    checks = {c.label: c for c in result.checks}
    for field in ("p_true", "predicted", "predicted_name"):
        assert checks[f"{row}.{field}"].passed and checks[f"{row}.{field}"].unstable, field
    assert "chaotic" in checks[f"{row}.p_true"].unstable
    assert not checks[f"{row}.top1pct_mass"].passed  # not a probability's outcome: still graded
    assert [c.label for c in result.failures()] == [f"{row}.top1pct_mass"]
