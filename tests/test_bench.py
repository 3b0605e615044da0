"""`netviz bench` end to end on a tiny workload (a tiny model, 2 images), its outputs, and the report's appendix.
No timing is asserted: only that every variant ran, the table and figure were written, and the numbers add up."""

import csv
import io
import shutil

import pytest
import torch

from netviz.config import load_config
from netviz.data import ImageSet
from netviz.experiments import SECTIONS
from netviz.models import wrap

from conftest import TinyNet


def tiny_images(n: int = 2) -> ImageSet:
    generator = torch.Generator().manual_seed(5)
    return ImageSet(images=torch.rand(n, 3, 32, 32, generator=generator), labels=torch.tensor([1, 76][:n]),
                    names=["a", "b"][:n], ids=[str(i) for i in range(n)], boxes=[[] for _ in range(n)], sha256="test")


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    from netviz.bench import run_bench

    root = tmp_path_factory.mktemp("bench")
    config = load_config(overrides=[
        "run.device=cpu", "bench.repeats=2", "bench.max_steps=2", "bench.time_limit_s=5.0",
        'bench.memory_model="squeezenet1_1"', "bench.memory_images=2", "bench.memory_image_size=32",
        "bench.memory_budgets_gb=[2.0]", "classviz.own_class_image=1", "classviz.num_iterations=3",
        "saliency_methods.smoothgrad_samples=2", "saliency_methods.ig_steps=2", "saliency_methods.ig_blur_sigma=2.0",
        "saliency_methods.substrate_blur_sigma=2.0",
    ])
    torch.manual_seed(0)
    model = wrap("tiny", TinyNet(classes=1000))
    log: list[str] = []
    results = run_bench(config, root, log=log.append, images=tiny_images(), load=lambda name, fold=True: model)
    return root, results, log


def test_every_section_with_a_workload_ran_all_its_variants(bench_root):
    from netviz.bench import WORKLOADS

    _, results, _ = bench_root
    assert {s["experiment"] for s in results["summary"]} == {s for s in SECTIONS if s in WORKLOADS}
    for row in results["rows"]:
        assert row["repeats"] >= 1 and row["median_s"] > 0 and row["units"] > 0
        assert row["median_s"] == sorted(row["times_s"])[len(row["times_s"]) // 2] or len(row["times_s"]) == 2
        assert row["gflop"] > 0, "FlopCounterMode saw the convolutions"
    kinds = {(r["experiment"], r["task"], r["model"]): set() for r in results["rows"]}
    for r in results["rows"]:
        kinds[(r["experiment"], r["task"], r["model"])].add(r["kind"])
    assert all({"batched", "loop"} <= k for k in kinds.values())
    assert ("library" in kinds[("saliency", "vanilla gradient", "squeezenet1_1")])


def test_ratios_are_the_times_divided(bench_root):
    _, results, _ = bench_root
    for summary in results["summary"]:
        mine = [r for r in results["rows"] if r["experiment"] == summary["experiment"]]
        netviz = sum(r["median_s"] for r in mine if r["kind"] == "batched")
        loop = sum(r["median_s"] for r in mine if r["kind"] == "loop")
        assert summary["netviz_s"] == pytest.approx(netviz, abs=1e-3)
        if netviz == 0:  # a tiny workload on a fast machine can round to 0 s: no ratio, never "meets the goal"
            assert summary["vs_loop"] is None and not summary["meets_target"]
            continue
        assert summary["vs_loop"] == pytest.approx(loop / netviz, abs=0.005)  # stored rounded to 2 decimals
        assert summary["meets_target"] == (summary["vs_loop"] >= results["target_speedup"])


def test_loops_agree_with_netviz_where_they_draw_the_same_numbers(bench_root):
    _, results, _ = bench_root
    compared = [r for r in results["rows"] if r["max_abs_diff"] is not None]
    assert compared, "the saliency and class-visualization loops are compared with netviz"
    assert all(r["max_abs_diff"] < 1e-3 for r in compared), [(r["task"], r["variant"], r["max_abs_diff"]) for r in compared]


def test_outputs_written(bench_root):
    from netviz import store

    root, results, _ = bench_root
    rows = list(csv.DictReader(io.StringIO((root / "results/bench/bench.csv").read_text())))
    assert len(rows) == len(results["rows"]) and float(rows[0]["median_s"]) > 0
    markdown = (root / "results/bench/bench.md").read_text()
    assert "| experiment | netviz (s) | loop (s) |" in markdown and "| saliency |" in markdown
    assert store.read_json(root / "results/bench/bench.json") == results
    assert (root / results["figure"]).stat().st_size > 1000
    assert not (root / "results/bench/metrics.json").exists(), "grading must not pick up timings as a section"


def test_memory_check_ran_in_fresh_processes(bench_root):
    _, results, _ = bench_root
    budgeted, whole = results["memory"]
    assert budgeted["budget_gb"] == 2.0 and budgeted["batch_size"] == 2 and budgeted["estimate_gb"] > 0
    assert whole["budget_gb"] is None and whole["batch_size"] == 2
    assert all(m["peak_gb"] > 0.1 for m in results["memory"])  # a python process with torch loaded


def test_report_shows_the_appendix_only_with_bench_results(bench_root, saliency_build, tmp_path):
    from netviz.report.render import render_report

    root = tmp_path / "build"
    shutil.copytree(saliency_build, root)
    render_report(root, pdf=False, log=lambda _: None)
    assert 'id="speed"' not in (root / "report/report.html").read_text()
    for part in ("results/bench", "figures/bench"):
        shutil.copytree(bench_root[0] / part, root / part)
    render_report(root, pdf=False, log=lambda _: None)  # the bench results are an input: it renders again
    html, tex = (root / "report/report.html").read_text(), (root / "report/report.tex").read_text()
    assert 'id="speed"' in html and r"\section{Speed}" in tex
    assert "the goal of" in html and "per-image loop" in html
    assert "<p><table>" not in html.replace("\n", ""), "tables are not wrapped in paragraphs"


def test_appendix_phrases_times_that_round_to_zero(bench_root, saliency_build, tmp_path):
    """Ratios of measured times are computed in Python (netviz.report.derived), and a zero denominator gives no
    ratio rather than an error: the appendix renders with bf16 and fp32 times of 0 s and a summary without ratios."""
    from netviz import store
    from netviz.report.derived import ratio
    from netviz.report.render import render_report

    assert ratio(3.0, 2.0) == 1.5 and ratio(1.0, 0) is None and ratio(None, 2.0) is None and ratio(1.0, None) is None
    root = tmp_path / "build"
    shutil.copytree(saliency_build, root)
    for part in ("results/bench", "figures/bench"):
        shutil.copytree(bench_root[0] / part, root / part)
    bench = store.read_json(root / "results/bench/bench.json")
    assert bench["precision"], "the tiny bench measured bf16 against fp32"
    for p in bench["precision"]:
        p.update(fp32_s=0.0, bf16_s=0.0)
    for s in bench["summary"]:
        s.update(vs_loop=None, vs_library=None, meets_target=False)
    store.write_json(root / "results/bench/bench.json", bench)
    render_report(root, pdf=False, log=lambda _: None)
    html = (root / "report/report.html").read_text()
    assert 'id="speed"' in html and "the fp32 time" not in html and "short of it" not in html
    assert "No experiment reaches the goal" in html
