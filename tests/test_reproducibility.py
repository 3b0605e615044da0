"""Reproducible builds: what re-runs and why, interruptions, provenance, identical results on CPU.

Besides the real saliency section, a tiny plug-in section ``probe`` (written into a temporary folder that joins
the ``netviz.experiments`` package) shows that a change to one section's config or code re-runs that section
only. Its module imports a helper module that the tests edit, as a developer would edit a method.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import netviz.experiments
from netviz import cache, store
from netviz.config import load_config
from netviz.errors import NetvizError
from netviz.experiments import runner

from conftest import CHEAP_BUILD, REPO

PROBE = '''
"""A tiny section for tests: a seeded random number, scaled, and a small figure."""
import numpy as np

from netviz.experiments.probe_lib import draw

TITLE = "Probe"


def run(ctx):
    value = float(ctx.section["scale"] * np.random.rand())
    path = ctx.save_figure(draw(value), "probe.png")
    return {"value": value, "figure": path}
'''

PROBE_LIB = '''
"""Helper of the probe section (the tests edit it)."""
import numpy as np

from netviz import plots


def draw(value):
    fig, ax = plots.plt.subplots(figsize=(2, 2))
    ax.imshow(np.full((8, 8), value), vmin=0, vmax=4, cmap="viridis")
    return fig
'''


class Build:
    """A build folder with the saliency section and the probe section, run in this process."""

    def __init__(self, root: Path, data_dir: Path):
        self.root, self.data_dir = root, data_dir
        self.log: list[str] = []

    def config(self, *overrides: str) -> dict:
        ours = [o for o in overrides if not o.startswith("probe.")]
        config = load_config(overrides=[*CHEAP_BUILD, f'run.data_dir="{self.data_dir}"', *ours])
        config["probe"] = {"scale": 1.0, "models": ["squeezenet1_1"]}
        for text in overrides:
            if text.startswith("probe.scale="):
                config["probe"]["scale"] = float(text.split("=", 1)[1])
        return config

    def run(self, *overrides: str, **kwargs) -> list[str]:
        self.log = []
        runner.run_experiments(self.config(*overrides), self.root, log=self.log.append, **kwargs)
        return [line for line in self.log if not line.startswith("  ")]

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    """The probe section's source folder, joined to the netviz.experiments package, with SECTIONS extended."""
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "probe.py").write_text(PROBE)
    (folder / "probe_lib.py").write_text(PROBE_LIB)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(netviz.experiments, "__path__", [*netviz.experiments.__path__, str(folder)])
        mp.setattr(runner, "SECTIONS", ("saliency", "probe"))  # other sections stay out of these cheap builds
        cache._module_file.cache_clear()
        yield folder
    for name in ("netviz.experiments.probe", "netviz.experiments.probe_lib"):
        sys.modules.pop(name, None)
    cache._module_file.cache_clear()


@pytest.fixture(scope="module")
def build(saliency_build, probe_dir, data_dir, tmp_path_factory) -> Build:
    root = tmp_path_factory.mktemp("repro") / "build"
    shutil.copytree(saliency_build, root)
    b = Build(root, data_dir)
    assert b.run() == ["saliency: cached", "probe: re-running: no earlier result"]
    return b


def test_unchanged_build_recomputes_nothing(build):
    provenance = build.read("results/provenance.json")
    assert build.run() == ["saliency: cached", "probe: cached"]
    assert build.read("results/provenance.json") == provenance  # rewritten identically, so the report stays cached


def test_one_key_reruns_that_section_only_and_says_why(build):
    first = json.loads(build.read("results/probe/metrics.json"))
    assert build.run("probe.scale=3") == ["saliency: cached", "probe: re-running: probe.scale: 1.0 -> 3.0"]
    assert json.loads(build.read("results/probe/metrics.json"))["value"] == pytest.approx(3 * first["value"])
    assert build.run() == ["saliency: cached", "probe: re-running: probe.scale: 3.0 -> 1.0"]
    assert json.loads(build.read("results/probe/metrics.json")) == first  # seeded: the same number again


def test_real_section_key_change_and_identical_rerun(build):
    metrics, figure = build.read("results/saliency/metrics.json"), build.read("figures/saliency/saliency_squeezenet1_1_all.png")
    maps = np.load(build.root / "results/saliency/maps_squeezenet1_1.npz")["maps"]
    assert build.run("saliency.tolerance_px=10") == ["saliency: re-running: saliency.tolerance_px: 15 -> 10", "probe: cached"]
    assert build.read("results/saliency/metrics.json") != metrics
    assert build.run() == ["saliency: re-running: saliency.tolerance_px: 10 -> 15", "probe: cached"]
    # two CPU runs give identical metrics, figures and arrays
    assert build.read("results/saliency/metrics.json") == metrics
    assert build.read("figures/saliency/saliency_squeezenet1_1_all.png") == figure
    np.testing.assert_array_equal(np.load(build.root / "results/saliency/maps_squeezenet1_1.npz")["maps"], maps)


def test_batch_size_does_not_rerun(build):
    assert build.run("run.batch_size=5") == ["saliency: cached", "probe: cached"]


def test_code_change_in_a_method_reruns_the_sections_that_use_it(build, monkeypatch):
    real = cache.source_hash
    monkeypatch.setattr(cache, "source_hash", lambda m: "edited" if m == "netviz.methods.saliency" else real(m))
    assert runner.plan(build.config(), build.root) == {"saliency": ["netviz/methods/saliency.py changed"], "probe": []}
    # a module both sections import re-runs both
    monkeypatch.setattr(cache, "source_hash", lambda m: "edited" if m == "netviz.plots.common" else real(m))
    assert runner.plan(build.config(), build.root) == {"saliency": ["netviz/plots/common.py changed"],
                                                        "probe": ["netviz/plots/common.py changed"]}


def test_editing_a_helper_module_reruns_its_section(build, probe_dir):
    lib = probe_dir / "probe_lib.py"
    original = lib.read_text()
    try:
        lib.write_text(original.replace("(the tests edit it)", "(reworded)") + "\n# a comment changes nothing\n")
        assert build.run() == ["saliency: cached", "probe: cached"]  # comments and docstrings do not count
        lib.write_text(original.replace('cmap="viridis"', 'cmap="magma"'))
        sys.modules.pop("netviz.experiments.probe_lib", None)
        sys.modules.pop("netviz.experiments.probe", None)
        assert build.run() == ["saliency: cached", "probe: re-running: netviz.experiments.probe_lib changed"]
    finally:
        lib.write_text(original)
        sys.modules.pop("netviz.experiments.probe_lib", None)
        sys.modules.pop("netviz.experiments.probe", None)
    assert build.run()[1] == "probe: re-running: netviz.experiments.probe_lib changed"


def test_force(build):
    assert build.run(force=["probe"]) == ["saliency: cached", "probe: re-running: forced"]
    assert build.run(only=["probe"], force=["all"]) == ["probe: re-running: forced"]
    with pytest.raises(NetvizError, match="unknown section 'nope'"):
        build.run(force=["nope"])
    with pytest.raises(NetvizError, match="not selected by --only"):
        build.run(only=["probe"], force=["saliency"])


def test_missing_or_altered_output_is_made_again(build):
    (build.root / "figures/probe/probe.png").unlink()
    assert build.run() == ["saliency: cached", "probe: re-running: figures/probe/probe.png missing"]
    (build.root / "results/probe/metrics.json").write_text('{"value": 0}\n')
    assert build.run() == ["saliency: cached", "probe: re-running: results/probe/metrics.json changed"]


def test_leftovers_of_an_interrupted_run_are_removed(build):
    (build.root / "results/probe.tmp-99999").mkdir()
    (build.root / "figures/saliency.old-99999").mkdir()
    (build.root / "results/.provenance.json.abc.tmp").write_text("partial")
    jobs = build.root / "results/.jobs/saliency"
    stored = sorted(p.name for p in jobs.iterdir())
    (jobs / ".0123abcd.npz.xyz.tmp").write_text("a job result cut short by kill -9")
    lines = build.run()
    assert lines[0].startswith("removed 4 leftover(s)") and lines[1:] == ["saliency: cached", "probe: cached"]
    assert sorted(p.name for p in (build.root / "results").iterdir()) == [".jobs", ".lock", "probe", "provenance.json", "saliency"]
    assert sorted(p.name for p in jobs.iterdir()) == stored


def test_a_second_run_in_the_same_folder_is_refused(build):
    with store.exclusive(build.root / "results"):
        with pytest.raises(NetvizError, match="is writing"):
            build.run()


def test_provenance_lists_everything_even_when_cached(build):
    build.run()
    P = json.loads(build.read("results/provenance.json"))
    assert set(P) >= {"git", "config_hash", "config", "data", "weights", "versions", "device", "seeds", "experiments"}
    assert P["weights"]["squeezenet1_1"]["sha256"] == store.hash_file(build.data_dir / "weights/squeezenet1_1.pth")
    assert P["weights"]["squeezenet1_1"]["sections"] == ["saliency", "probe"]
    assert P["data"]["files"]["imagenet_val_25.npz"] == store.hash_file(build.data_dir / "imagenet_val_25.npz")
    assert P["config"]["saliency"]["models"] == ["squeezenet1_1"] and P["seeds"] == {"run.seed": 0}
    assert {"torch", "torchvision", "cuda", "python", "numpy"} <= set(P["versions"])
    assert P["device"]["type"] == "cpu" and P["device"]["name"]
    for section in ("saliency", "probe"):
        assert P["experiments"][section]["current"] and P["experiments"][section]["wall_time_s"] >= 0
        assert P["experiments"][section]["git_commit"]
    # a section left out by --only, whose config changed since, is flagged as not current
    build.run("saliency.tolerance_px=9", only=["probe"])
    P = json.loads(build.read("results/provenance.json"))
    assert not P["experiments"]["saliency"]["current"]
    assert P["experiments"]["saliency"]["differs"] == ["saliency.tolerance_px: 15 -> 9"]
    build.run()


def test_report_is_rendered_only_when_its_inputs_change(build):
    from netviz.report.render import render_report

    log: list[str] = []
    render_report(build.root, pdf=False, log=log.append)
    assert log[0].startswith("report: rendering")
    log.clear()
    render_report(build.root, pdf=False, log=log.append)
    assert log == ["report: cached (%s, %s)" % (build.root / "report/report.html", build.root / "report/report.tex")]
    (build.root / "report/report.html").write_text("damaged")
    log.clear()
    render_report(build.root, pdf=False, log=log.append)
    assert log[0] == "report: rendering: report.html changed"
    metrics = build.root / "results/saliency/metrics.json"
    metrics.write_text(json.dumps(json.loads(metrics.read_text())) + "\n")  # same values, other bytes
    log.clear()
    render_report(build.root, pdf=False, log=log.append)
    assert log[0] == "report: rendering: results/saliency/metrics.json changed"
    build.run()  # the runner notices the edited file and makes it again


# -- interruptions: a real `netviz run` process, killed ----------------------------------------------------

def _netviz(root: Path, data_dir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "NETVIZ_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1"}
    sets = [a for s in CHEAP_BUILD for a in ("--set", s)]
    return subprocess.Popen([sys.executable, "-m", "netviz", "run", "--only", "saliency", *sets, *args], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_staging(root: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for parent in (root / "results", root / "figures"):
            if parent.is_dir() and any(".tmp-" in p.name for p in parent.iterdir()):
                return
        if proc.poll() is not None:
            pytest.fail(f"netviz run ended before staging anything:\n{proc.stdout.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("netviz run did not start staging in time")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_a_killed_run_is_finished_by_the_next_one_with_identical_results(sig, saliency_build, data_dir, tmp_path):
    proc = _netviz(tmp_path, data_dir)
    _wait_for_staging(tmp_path, proc)
    time.sleep(0.5)  # well inside the experiment
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 130), output
    assert not (tmp_path / "results/saliency/manifest.json").exists()  # nothing that looks complete
    if sig == signal.SIGINT:  # Ctrl-C cleans up after itself
        assert "interrupted" in output
        assert not [p for p in (tmp_path / "results").iterdir() if ".tmp-" in p.name]
        return
    finish = _netviz(tmp_path, data_dir)
    output = finish.communicate(timeout=600)[0]
    assert finish.returncode == 0, output
    assert "removed" in output and "saliency: re-running: no earlier result" in output
    for rel in ["results/saliency/metrics.json", *(f"figures/saliency/{p.name}" for p in (saliency_build / "figures/saliency").iterdir())]:
        assert (tmp_path / rel).read_bytes() == (saliency_build / rel).read_bytes(), rel
    np.testing.assert_array_equal(np.load(tmp_path / "results/saliency/maps_squeezenet1_1.npz")["maps"],
                                  np.load(saliency_build / "results/saliency/maps_squeezenet1_1.npz")["maps"])
    again = _netviz(tmp_path, data_dir)
    assert "saliency: cached" in again.communicate(timeout=300)[0]
