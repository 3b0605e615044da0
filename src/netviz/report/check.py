"""Check a rendered report against the stored results it was made from.

:func:`check_report` reads ``report/report.html`` and ``results/``, and returns a list of problems (empty when
the report is sound):

- every number in the text (the sections and the closing note; the provenance and speed appendices quote the
  machine, not the results) is found among the stored numbers, rounded as printed (a percentage ``88%`` is a
  stored 0.88, ``70–96%`` an interval, ``p = 0.12`` a stored 0.125); numbers the templates write themselves
  (years of citations, "95%" intervals, the sizes the prose explains) are allowed when they occur literally in
  the template sources;
- no broken phrase: "0 of 0", "1 images", a missing value printed as an en dash in prose, a missing space after
  punctuation, "None", "nan";
- every stored claim's verdict is recomputed from its stored inputs (:func:`netviz.claims.recompute`) and must
  agree, and the inputs of the saliency claims must be the per-image values stored beside them.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from netviz import claims

NUMBER = re.compile(r"(?<![\w.\-−/])([-−]?\d+(?:\.\d+)?(?:e-?\d+)?)(%?)")
RANGE_PCT = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)–(\d+(?:\.\d+)?)%")
PERCENTAGE_POINTS = re.compile(r"([-−]?\d+(?:\.\d+)?) to ([-−]?\d+(?:\.\d+)?) percentage points")
BROKEN = {
    "zero of zero": re.compile(r"\b0 of 0\b"),
    "plural after 1": re.compile(r"(?<![\d.,])\b1 (images|models|methods|steps|levels|classes|boxes)\b"),
    "missing value in prose": re.compile(r"(?<=[a-z ,(])–(?=[ .,;)])"),
    "missing space after punctuation": re.compile(r"[a-z)%][.,;:](?=[A-Za-z(])"),
    "None or nan": re.compile(r"\b(None|nan|undefined)\b"),
    "empty parentheses": re.compile(r"\(\s*\)"),
}
# dotted words that are not a missing space: abbreviations, file names, config keys, method names
DOTTED_OK = re.compile(r"\b(e\.g|i\.e|et al|vs|etc|[\w-]+\.(json|npz|png|pdf|tex|html|toml|py|pth|csv|md|j2)"
                       r"|[a-z_]+\.[a-z_]+(\.[a-z_]+)*)\b")


def report_text(report_html: str) -> str:
    """The prose and tables of the sections and the closing note, without figures, code and the appendices."""
    text = re.sub(r"<style>.*?</style>", " ", report_html, flags=re.S)
    text = re.sub(r"<nav>.*?</nav>", " ", text, flags=re.S)
    end = text.find('id="provenance"')
    text = text[: end if end >= 0 else len(text)]
    text = re.sub(r'<div class="build">.*?</div>', " ", text, flags=re.S)  # the summary quotes provenance
    text = re.sub(r"<code[^>]*>.*?</code>", " CODE ", text, flags=re.S)
    text = re.sub(r"<img[^>]*>", " ", text)
    text = re.sub(r"</(td|th|caption|p|h\d|li|figcaption)>", " \n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text)


def stored_numbers(results: dict) -> list[float]:
    """Every number in the stored results (nested dicts and lists), booleans left out."""
    found: list[float] = []

    def walk(value):
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, (int, float)):
            found.append(float(value))
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)

    walk(results)
    return found


def template_numbers(templates: Path) -> set[str]:
    """Numbers written literally in the templates' prose and string literals (not computed from results)."""
    out: set[str] = set()
    for path in Path(templates).rglob("*.j2"):
        source = re.sub(r"\{#.*?#\}", " ", path.read_text(), flags=re.S)
        for match in NUMBER.finditer(source):
            out.add(match.group(1).replace("−", "-"))
    return out


def _renderings(values: list[float], decimals: int, scale: float) -> set[str]:
    return {f"{scale * v:.{decimals}f}" for v in values} | {f"{round(scale * v, decimals):.{decimals}f}" for v in values}


def check_numbers(text: str, values: list[float], allowed: set[str]) -> list[str]:
    problems = []
    cache: dict[tuple[int, float], set[str]] = {}

    def known(token: str, percent: bool) -> bool:
        token = token.replace("−", "-")
        if token in allowed or (token.lstrip("-") in allowed):
            return True
        decimals = len(token.split(".")[1]) if "." in token and "e" not in token else 0
        if "e" in token:
            return any(abs(v - float(token)) <= 1e-12 + 0.05 * abs(float(token)) for v in values)
        key = (decimals, 100.0 if percent else 1.0)
        if key not in cache:
            cache[key] = _renderings(values, *key) | {r.replace("-0.", "0.") if r.startswith("-0.0") else r for r in
                                                      _renderings(values, *key)}
        return token in cache[key] or (token.startswith("-") and token[1:] in cache[key])

    spans = []
    for match in RANGE_PCT.finditer(text):
        spans.append(match.span())
        for token in match.groups():
            if not known(token, True):
                problems.append(f"number {token}% (in {match.group()!r}) is not among the stored results")
    for match in PERCENTAGE_POINTS.finditer(text):
        spans.append(match.span())
        for token in match.groups():
            if not known(token, True):
                problems.append(f"number {token} percentage points is not among the stored results")
    for match in NUMBER.finditer(text):
        if any(a <= match.start() < b for a, b in spans):
            continue
        token, percent = match.group(1), bool(match.group(2))
        if not known(token, percent):
            context = text[max(0, match.start() - 40): match.end() + 20].replace("\n", " ")
            problems.append(f"number {token}{match.group(2)} is not among the stored results: …{context}…")
    return problems


def check_phrases(text: str) -> list[str]:
    problems = []
    cleaned = DOTTED_OK.sub("X", text)
    for name, pattern in BROKEN.items():
        source = cleaned if name == "missing space after punctuation" else text
        for match in pattern.finditer(source):
            context = source[max(0, match.start() - 40): match.end() + 30].replace("\n", " ")
            problems.append(f"{name}: …{context}…")
    return problems


def check_claims(sections: dict) -> list[str]:
    problems = []
    for name, results in sections.items():
        for key, stored in (results.get("claims") or {}).items():
            again = claims.recompute(stored)
            for field in ("a", "b", "n", "p", "ci", "verdict"):
                if again[field] != stored[field]:
                    problems.append(f"{name} claim {key}: stored {field} {stored[field]!r}, recomputed {again[field]!r}")
    saliency = sections.get("saliency")
    if saliency:
        for key, stored in saliency.get("claims", {}).items():
            kind, model = key.split("/", 1)
            if kind in ("on_object", "gradient_vs_center"):
                hits = [r["hit"] for r in saliency["models"][model]["per_image"] if r["hit"] is not None]
                if stored["data"]["a"] != hits:
                    problems.append(f"saliency claim {key}: its inputs are not the stored pointing-game hits")
    return problems


def check_report(root: Path, templates: Path | None = None) -> list[str]:
    """All problems found in ``root/report/report.html`` against ``root/results`` (see the module docstring)."""
    from netviz.report.render import TEMPLATES, load_results

    root = Path(root)
    results = load_results(root)
    text = report_text((root / "report" / "report.html").read_text())
    values = stored_numbers(results["sections"])
    allowed = template_numbers(templates or TEMPLATES)
    problems = check_numbers(text, values, allowed) + check_phrases(text) + check_claims(results["sections"])
    tex = root / "report" / "report.tex"
    if tex.exists():
        problems += check_tex(tex.read_text())
    return problems


def check_tex(source: str) -> list[str]:
    """Text the PDF would lose or misprint: an unescaped % (LaTeX drops the rest of the line) and a ``--`` that
    LaTeX would set as an en dash (command lines must keep their two hyphens)."""
    body = source[source.find("\\begin{document}"):]
    problems = []
    for number, line in enumerate(body.splitlines(), 1):
        if re.search(r"(?<!\\)%", line) and not line.lstrip().startswith("%"):
            problems.append(f"report.tex: unescaped % (the rest of the line is lost): {line.strip()[:80]}")
        if re.search(r"(?<![-{}])--(?!-)", line.replace("-{}-", "")):
            problems.append(f"report.tex: -- becomes an en dash: {line.strip()[:80]}")
    return problems


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - a convenience for people
    import sys

    problems = check_report(Path(argv[0] if argv else "."))
    print("\n".join(problems) or "report: no problems found")
    return 1 if problems and not sys.flags.interactive else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(__import__("sys").argv[1:]))
