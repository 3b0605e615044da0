"""Grading a build against an expected set: identical builds pass; an altered figure or metric fails, named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from netviz import grading
from netviz.cli import main
from netviz.config import load_config
from netviz.errors import NetvizError

FIGURE = "figures/saliency/saliency_squeezenet1_1_all.png"


@pytest.fixture(scope="module")
def expected(saliency_build, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("expected") / "set"
    grading.snapshot(saliency_build, out, log=lambda _: None, allow_partial=True)
    return out


@pytest.fixture
def actual(saliency_build, tmp_path) -> Path:
    """A copy of the build that a test may alter."""
    root = tmp_path / "actual"
    shutil.copytree(saliency_build / "results", root / "results")
    shutil.copytree(saliency_build / "figures", root / "figures")
    return root


def grade(expected: Path, actual: Path, *overrides: str, figures: bool = True) -> grading.Grade:
    config = load_config(overrides=list(overrides))["grade"]
    return grading.grade(grading.load_expected(expected), grading.load_build(actual), config, figures=figures)


def test_expected_set_holds_figures_metrics_and_provenance(expected, saliency_build):
    assert (expected / grading.MARKER).exists()
    assert (expected / "results/provenance.json").read_bytes() == (saliency_build / "results/provenance.json").read_bytes()
    assert (expected / FIGURE).read_bytes() == (saliency_build / FIGURE).read_bytes()
    manifest = json.loads((expected / "results/saliency/manifest.json").read_text())
    assert manifest["panels"][FIGURE], "panels are recorded with the figure"
    assert not list(expected.rglob("*.npz"))  # arrays are not part of an expected set


def test_identical_build_passes(expected, actual, capsys):
    status = main(["grade", "--expected", str(expected), "--actual", str(actual)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "overall: PASS" in out and "warning" not in out
    html = (actual / "report/grade.html").read_text()
    assert "PASS" in html and FIGURE in html


def test_altered_figure_fails_and_is_named(expected, actual, capsys):
    panels = json.loads((actual / "results/saliency/manifest.json").read_text())["panels"][FIGURE]
    x0, y0, x1, y1 = panels[5]["box"]  # one panel of 50: the whole figure still looks much the same
    image = Image.open(actual / FIGURE).convert("RGB")
    ImageDraw.Draw(image).rectangle([x0 + 5, y0 + 5, x1 - 20, y1 - 20], fill=(0, 0, 255))
    image.save(actual / FIGURE)
    result = grade(expected, actual)
    failed = result.failures()
    assert [c.name for c in failed] == [FIGURE]
    assert failed[0].ssim > 0.95  # the whole-image SSIM alone would have missed it
    assert [p["label"] for p in failed[0].panels if not p["passed"]] == [panels[5]["label"]]
    assert result.verdicts["Q1"] == "fail" and result.verdicts["Q2"] == "fail"
    assert result.verdicts["Q4"] == "not graded"  # one model: the second network's patterns are dropped
    status = main(["grade", "--expected", str(expected), "--actual", str(actual)])
    out = capsys.readouterr().out
    assert status == 1
    assert f"FAIL figure {FIGURE}" in out and "overall: FAIL" in out
    assert "FAIL" in (actual / "report/grade.html").read_text()


def test_figure_without_recorded_panels_is_compared_by_tiles(expected, actual):
    manifest_path = actual / "results/saliency/manifest.json"
    image = Image.open(actual / FIGURE).convert("RGB")
    ImageDraw.Draw(image).rectangle([100, 100, 150, 150], fill=(0, 0, 255))
    image.save(actual / FIGURE)
    manifest = json.loads(manifest_path.read_text())
    manifest["panels"] = {}
    manifest_path.write_text(json.dumps(manifest))
    exp = grading.load_expected(expected)
    exp.sections["saliency"]["manifest"]["panels"] = {}
    result = grading.grade(exp, grading.load_build(actual), load_config()["grade"])
    assert [c.name for c in result.failures()] == [FIGURE]
    assert any(p["label"].startswith("tile") and not p["passed"] for p in result.failures()[0].panels)


def test_metric_outside_tolerance_fails_and_a_pattern_can_allow_it(expected, actual):
    path = actual / "results/saliency/metrics.json"
    metrics = json.loads(path.read_text())
    metrics["models"]["squeezenet1_1"]["hit_rate"] += 0.02
    metrics["models"]["squeezenet1_1"]["per_image"][0]["p_true"] += 0.0005  # within the default tolerance
    path.write_text(json.dumps(metrics))
    failed = grade(expected, actual, figures=False).failures()
    assert [c.label for c in failed] == ["saliency.models.squeezenet1_1.hit_rate"]
    assert failed[0].questions == ["Q1", "Q2"]
    loose = 'grade.tolerances={"saliency.models.*.hit_rate" = {abs = 0.05}}'
    assert not grade(expected, actual, loose, figures=False).failures()
    assert not grade(expected, actual, 'grade.tolerances={"saliency.*.hit_rate" = {skip = true}}', figures=False).failures()


def test_counts_and_missing_metrics_fail(expected, actual):
    path = actual / "results/saliency/metrics.json"
    metrics = json.loads(path.read_text())
    metrics["models"]["squeezenet1_1"]["top1"] += 1
    del metrics["tolerance_px"]
    path.write_text(json.dumps(metrics))
    failed = {c.label: c.detail for c in grade(expected, actual, figures=False).failures()}
    assert failed == {"saliency.models.squeezenet1_1.top1": f"expected {metrics['models']['squeezenet1_1']['top1'] - 1}, "
                                                            f"got {metrics['models']['squeezenet1_1']['top1']}",
                      "saliency.tolerance_px": "missing in the build"}


def test_different_weights_or_data_are_warned_about(expected, actual, capsys):
    path = actual / "results/provenance.json"
    provenance = json.loads(path.read_text())
    provenance["weights"]["squeezenet1_1"]["sha256"] = "0" * 64
    provenance["data"]["sha256"] = "1" * 64
    provenance["data"]["files"]["imagenet_val_25.npz"] = "1" * 64
    path.write_text(json.dumps(provenance))
    assert main(["grade", "--expected", str(expected), "--actual", str(actual), "--html", ""]) == 0
    out = capsys.readouterr().out
    assert "warning: weights: squeezenet1_1 differ" in out
    assert "warning: data differ from the expected set's (imagenet_val_25.npz)" in out


def test_bad_inputs_are_one_line_errors(expected, tmp_path, capsys):
    assert main(["grade", "--expected", str(tmp_path), "--actual", str(tmp_path)]) == 2
    assert "is not an expected set" in capsys.readouterr().err
    with pytest.raises(NetvizError, match="must be a table"):
        grading.tolerance_for("a.b", {"abs_tol": 0.1, "rel_tol": 0, "tolerances": {"a.*": 3}})
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(NetvizError, match="not an expected set"):
        grading.snapshot(expected, tmp_path, log=lambda _: None, allow_partial=True)


def test_panel_boxes_match_the_saved_pixels(tmp_path):
    """Each recorded box covers its axes' pixels: solid colours drawn in known axes are found inside them."""
    import torch

    from netviz import plots
    from netviz.experiments.context import Context

    colours = [(255, 0, 0), (0, 160, 0), (0, 0, 255), (200, 200, 0), (0, 200, 200), (120, 0, 120)]
    fig, axes = plots.plt.subplots(2, 3, figsize=(5, 3.5))
    for ax, colour in zip(axes.flat, colours):
        ax.imshow(np.full((10, 10, 3), colour, dtype=np.uint8))
        ax.set_title(str(colour))
        ax.set_xticks([])
    ctx = Context("t", {"run": {"seed": 0}, "t": {}}, torch.device("cpu"), None, None, tmp_path, tmp_path, "figures/t")
    path = ctx.save_figure(fig, "grid.png")
    image = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB")).astype(int)
    panels = ctx.panels[path]
    assert len(panels) == 6
    for panel, colour in zip(panels, colours):
        x0, y0, x1, y1 = panel["box"]
        inner = image[y0 + 2 : y1 - 2, x0 + 2 : x1 - 2].reshape(-1, 3)
        assert (np.abs(inner - colour).max(axis=1) <= 2).mean() > 0.99, panel
        assert panel["label"].endswith(str(colour))


def test_other_layout_passes_but_other_content_fails(expected, actual, course_images):
    """A figure re-drawn at another resolution (as other fonts or matplotlib would shift it) still passes,
    compared at a coarse scale; the same figure with its two saliency maps swapped fails."""
    import torch

    from netviz import plots
    from netviz.experiments.context import Context

    rel = "figures/saliency/saliency_squeezenet1_1_first2.png"
    maps = np.load(actual / "results/saliency/maps_squeezenet1_1.npz")["maps"][:2]
    manifest_path = actual / "results/saliency/manifest.json"
    for order, should_pass in (([0, 1], True), ([1, 0], False)):
        ctx = Context("saliency", {"run": {"seed": 0}, "saliency": {}}, torch.device("cpu"), None, None,
                      actual / "figures/saliency", actual / "figures/saliency", "figures/saliency")
        ctx.save_figure(plots.images_over_maps(course_images.images[:2], maps[order], course_images.names[:2]),
                        Path(rel).name, dpi=97)
        manifest = json.loads(manifest_path.read_text())
        manifest["panels"][rel] = ctx.panels[rel]
        manifest_path.write_text(json.dumps(manifest))
        check = next(c for c in grade(expected, actual).checks if c.name == rel)
        assert all(p["rescaled"] for p in check.panels)
        assert check.passed == should_pass, check.detail
