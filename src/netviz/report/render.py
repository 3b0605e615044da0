"""Render ``report/report.html`` (self-contained) and ``report/report.tex`` -> ``report/report.pdf``.

Reads only what the experiments stored: ``results/<section>/metrics.json`` and ``results/provenance.json``.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
from markupsafe import Markup

from netviz import store
from netviz.config import PROJECT_ROOT
from netviz.errors import NetvizError
from netviz.experiments import SECTIONS
from netviz.report.formats import Format, HtmlFormat, TexFormat, tex_escape

TEMPLATES = PROJECT_ROOT / "templates"


def _html_paragraphs(text: str) -> Markup:
    """Wrap blank-line separated blocks of prose in <p>; blocks that start with a tag are left alone."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", str(text)) if b.strip()]
    return Markup("\n".join(b if b.startswith("<") else f"<p>{b}</p>" for b in blocks))


def show(value) -> str:
    """A config or provenance value as text: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def section_titles() -> dict[str, str]:
    return {name: importlib.import_module(f"netviz.experiments.{name}").TITLE for name in SECTIONS}


def section_parents() -> dict[str, str | None]:
    """The section each one is a subsection of (its module's ``PARENT``; None for a top-level section)."""
    return {name: getattr(importlib.import_module(f"netviz.experiments.{name}"), "PARENT", None) for name in SECTIONS}


def environment(fmt: Format) -> jinja2.Environment:
    if fmt.name == "html":
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["paragraphs"] = _html_paragraphs
    else:
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False, finalize=tex_escape,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["paragraphs"] = lambda text: text
    env.globals.update(fmt.globals())
    env.filters["show"] = show
    env.globals["titles"] = section_titles()
    env.globals["parents"] = section_parents()
    return env


def load_results(root: Path) -> dict:
    """The stored results: ``{"sections": {name: metrics}, "provenance": {...}, "order": [...]}``."""
    results_root = Path(root) / "results"
    provenance_path = results_root / "provenance.json"
    if not provenance_path.exists():
        raise NetvizError(f"no results in {results_root}; run the experiments first (`make` or `netviz run`)")
    sections = {}
    for name in SECTIONS:
        path = results_root / name / "metrics.json"
        if path.exists():
            sections[name] = store.read_json(path)
    return {"sections": sections, "provenance": store.read_json(provenance_path),
            "order": [s for s in SECTIONS if s in sections]}


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


def render_report(root: Path = Path("."), pdf: bool = True, log=print) -> dict[str, Path]:
    """Render the HTML and TeX reports (and the PDF unless ``pdf`` is False). Returns the written paths."""
    root = Path(root)
    results = load_results(root)
    report_dir = root / "report"
    report_dir.mkdir(exist_ok=True)
    written = {}
    for fmt in (HtmlFormat(root), TexFormat(root)):
        path = report_dir / f"report.{fmt.name}"
        store.write_text_atomic(path, render(root, fmt, results))
        written[fmt.name] = path
    if pdf:
        written["pdf"] = build_pdf(report_dir)
    log("report: " + ", ".join(str(p) for p in written.values()))
    return written
