"""Render ``report/report.html`` (self-contained) and ``report/report.tex`` -> ``report/report.pdf``.

Reads only what the experiments stored: ``results/<section>/metrics.json``, ``results/provenance.json`` and
the figures, and ``results/bench/bench.json`` (with its figure) when ``netviz bench`` was run (an appendix). Rendering is skipped when nothing it reads changed: the sha256 of those inputs, of the templates,
and the code of the report modules and section modules form a key stored with the outputs' hashes in
``report/.report-key.json`` (content hashes, never file times); it is written last, so an interrupted render
is redone.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
from markupsafe import Markup

from netviz import cache, store
from netviz.config import TEMPLATES_DIR
from netviz.errors import NetvizError
from netviz.sections import PARTS, REGISTRY, SECTIONS
from netviz.report.derived import derive
from netviz.report.formats import Format, HtmlFormat, TexFormat, tex_escape
from netviz.report.templating import template_environment

TEMPLATES = TEMPLATES_DIR
REPORT_KEY = ".report-key.json"


def _html_paragraphs(text: str) -> Markup:
    """Wrap blank-line separated blocks of prose in <p>; blocks that start with a tag are left alone."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", str(text)) if b.strip()]
    return Markup("\n".join(b if b.startswith("<") else f"<p>{b}</p>" for b in blocks))


def show(value) -> str:
    """A config or provenance value as text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def section_titles() -> dict[str, str]:
    return {name: section.title for name, section in REGISTRY.items()}


def section_parents() -> dict[str, str | None]:
    """The section each one is a subsection of (None for a top-level section)."""
    return {name: section.parent for name, section in REGISTRY.items()}


def report_subject() -> str:
    """What the report covers, phrased from the titles of its top-level sections in order: "Saliency maps,
    adversarial examples and class visualization"."""
    tops = [section.title for section in REGISTRY.values() if section.parent is None]
    words = tops[:1] + [title[:1].lower() + title[1:] for title in tops[1:]]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def environment(fmt: Format) -> jinja2.Environment:
    if fmt.name == "html":
        env = template_environment()
        env.filters["paragraphs"] = _html_paragraphs
    else:
        env = template_environment(autoescape=False, finalize=tex_escape)
        env.filters["paragraphs"] = lambda text: text
    env.globals.update(fmt.globals())
    env.filters["show"] = show
    env.globals["titles"] = section_titles()
    env.globals["parents"] = section_parents()
    env.globals["part_titles"] = PARTS
    env.globals["subject"] = report_subject()
    return env


def load_results(root: Path) -> dict:
    """The stored results, ``{"sections": {name: metrics}, "provenance": {...}, "order": [...], "bench": ...}``,
    with the ratios the prose states added (:func:`netviz.report.derived.derive`)."""
    results_root = Path(root) / "results"
    provenance_path = results_root / "provenance.json"
    if not provenance_path.exists():
        raise NetvizError(f"no results in {results_root}; run the experiments first (`make` or `netviz run`)")
    sections = {}
    for name in SECTIONS:
        path = results_root / name / "metrics.json"
        if path.exists():
            sections[name] = store.read_json(path)
    bench_path = results_root / "bench" / "bench.json"  # `netviz bench`'s timings, when it was run: an appendix
    return derive({"sections": sections, "provenance": store.read_json(provenance_path),
                   "order": [s for s in SECTIONS if s in sections],
                   "bench": store.read_json(bench_path) if bench_path.exists() else None})


def render(root: Path, fmt: Format, results: dict) -> str:
    template = environment(fmt).get_template(f"report.{fmt.name}.j2")
    return template.render(**results, S=results["sections"], P=results["provenance"])


def build_pdf(report_dir: Path, tex_name: str = "report.tex") -> Path:
    """Run latexmk on ``report_dir/tex_name`` in a build folder; the PDF replaces the old one atomically."""
    if shutil.which("latexmk") is None:
        raise NetvizError("latexmk not found: install TeX (see README, `make setup-tex`) or run `netviz report --no-pdf`")
    build = report_dir / ".build"
    build.mkdir(exist_ok=True)
    cmd = ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", f"-outdir={build.name}", tex_name]
    proc = subprocess.run(cmd, cwd=report_dir, capture_output=True, text=True)
    pdf = build / (Path(tex_name).stem + ".pdf")
    if proc.returncode != 0 or not pdf.exists():
        log = build / (Path(tex_name).stem + ".log")
        errors = [ln for ln in (log.read_text(errors="replace").splitlines() if log.exists() else []) if ln.startswith("!")]
        raise NetvizError(f"LaTeX failed on {report_dir / tex_name} ({errors[0] if errors else 'see ' + str(log)})")
    final = report_dir / (Path(tex_name).stem + ".pdf")
    store.write_bytes_atomic(final, pdf.read_bytes())
    return final


def report_parts(root: Path) -> dict:
    """What the rendered report depends on, as cache-key parts (see :mod:`netviz.cache`)."""
    root = Path(root)
    parts: dict = {}
    inputs = [root / "results" / "provenance.json"]
    for name in SECTIONS:
        if (root / "results" / name / "metrics.json").exists():
            inputs.append(root / "results" / name / "metrics.json")
            inputs.extend(sorted(p for p in (root / "figures" / name).rglob("*") if p.is_file()))
    if (root / "results" / "bench" / "bench.json").exists():
        inputs.append(root / "results" / "bench" / "bench.json")
        inputs.extend(sorted(p for p in (root / "figures" / "bench").rglob("*") if p.is_file()))
    for path in inputs:
        if path.exists():
            parts[f"input {path.relative_to(root).as_posix()}"] = store.hash_file(path)
    for path in sorted(TEMPLATES.rglob("*")):
        if path.is_file() and path.name != "grade.html.j2":  # the grading page's template is not the report's
            parts[f"template {path.relative_to(TEMPLATES).as_posix()}"] = store.hash_file(path)
    module = "netviz.report.render"
    parts.update(cache.code_parts(module))
    parts.update(cache.code_parts("netviz.sections"))  # section titles
    parts.update({f"version {k}": v for k, v in cache.library_versions(cache.code_dependencies(module)).items()})
    return parts


def _outputs_needed(stored: dict | None, parts: dict, report_dir: Path, pdf: bool, force: bool) -> tuple[list[str], list[str]]:
    """(which of html / tex / pdf to make, why)."""
    wanted = ["html", "tex"] + (["pdf"] if pdf else [])
    if force:
        return wanted, ["forced"]
    if stored is None or stored.get("key") != cache.digest(parts):
        return wanted, cache.explain_changes(stored and stored.get("parts"), parts)
    recorded = stored.get("outputs", {})
    todo, why = [], []
    for fmt in wanted:
        name = f"report.{fmt}"
        problem = f"{name} missing" if name not in recorded else next(iter(store.check_files({name: recorded[name]}, report_dir)), None)
        if problem:
            todo.append(fmt)
            why.append(problem)
    if "tex" in todo and pdf and "pdf" not in todo:
        todo.append("pdf")
    return todo, why


def render_report(root: Path = Path("."), pdf: bool = True, force: bool = False, log=print) -> dict[str, Path]:
    """Render the HTML and TeX reports (and the PDF unless ``pdf`` is False), skipping those whose inputs are
    unchanged (unless ``force``). Returns the paths of the reports."""
    root = Path(root)
    report_dir = root / "report"
    if not (root / "results" / "provenance.json").exists():
        load_results(root)  # raises the error that says to run the experiments first
    parts = report_parts(root)
    key_path = report_dir / REPORT_KEY
    try:
        stored = store.read_json(key_path) if key_path.exists() else None
    except ValueError:
        stored = None
    todo, why = _outputs_needed(stored, parts, report_dir, pdf, force)
    names = ["html", "tex"] + (["pdf"] if pdf else [])
    paths = {fmt: report_dir / f"report.{fmt}" for fmt in names}
    if not todo:
        log(f"report: cached ({', '.join(str(p) for p in paths.values())})")
        return paths
    log(f"report: rendering: {'; '.join(why[:4])}{'; …' if len(why) > 4 else ''}")
    report_dir.mkdir(exist_ok=True)
    store.clean_stale(report_dir)
    outputs = dict(stored.get("outputs", {})) if stored and stored.get("key") == cache.digest(parts) else {}
    results = load_results(root) if {"html", "tex"} & set(todo) else None
    for fmt in (HtmlFormat(root), TexFormat(root)):
        if fmt.name in todo:
            text = render(root, fmt, results)
            store.write_text_atomic(paths[fmt.name], text)
            outputs[f"report.{fmt.name}"] = store.sha256_bytes(text.encode("utf-8"))
    if "pdf" in todo:
        outputs["report.pdf"] = store.hash_file(build_pdf(report_dir))
    store.write_json(key_path, {"key": cache.digest(parts), "parts": parts, "outputs": outputs})
    log("report: " + ", ".join(str(p) for p in paths.values()))
    return paths
