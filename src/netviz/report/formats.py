"""Output formats for the shared section templates.

Section prose is written once (``templates/sections/*.j2``) and rendered twice. Everything a template needs
that differs between HTML and LaTeX goes through one of these helpers (figures, tables, emphasis, headings,
numbers), each returning markup that is not escaped again. Values interpolated with ``{{ ... }}`` are escaped
for the format: HTML by Jinja's autoescape, LaTeX by :func:`tex_escape` in the environment's ``finalize``.
"""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path
from typing import Any, Sequence

from markupsafe import Markup, escape

_TEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}
_TEX_RE = re.compile("|".join(re.escape(c) for c in _TEX_SPECIALS))


class TexRaw(str):
    """LaTeX source that must not be escaped again."""


def tex_escape(value: Any) -> str:
    """Escape text for LaTeX (``&``, ``%``, ``_``, ``\\`` ...); :class:`TexRaw` passes through."""
    if isinstance(value, TexRaw):
        return value
    escaped = _TEX_RE.sub(lambda m: _TEX_SPECIALS[m.group()], str(value))
    return TexRaw(re.sub(r"-(?=-)", "-{}", escaped))  # "--set" stays two hyphens (no en-dash ligature)


def _breakable(text: str, escape_char, mark: str, run: int, separators: str = "/_-.,:= ") -> str:
    """``text`` escaped character by character, with ``mark`` (a break opportunity) after each separator and
    after every ``run`` characters without one."""
    out, length = [], 0
    for char in text:
        out.append(str(escape_char(char)))
        length = 0 if char in separators else length + 1
        if length % run == 0:
            out.append(mark)
    return "".join(out)


def percent(value: float | None, digits: int = 0) -> str:
    """A fraction 0..1 as a percentage (``0.88`` -> ``88%``), None as an en dash."""
    return "–" if value is None else f"{100 * value:.{digits}f}%"


def number(value: Any, digits: int = 2) -> str:
    """A number for prose: ints as is, floats with ``digits`` significant decimals, None as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}".replace(",", " ")
    if isinstance(value, float):
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.{max(digits - 1, 1)}e}"
        return f"{value:.{digits}f}"
    return str(value)


FIGURE_DPI = 110  # netviz.experiments.context.Context.save_figure's default
TEXT_WIDTH_IN = 6.5  # A4 with 2.2 cm margins (report.tex.j2)


class Format:
    """Helpers shared by both formats; subclasses say how each thing is written."""

    name = ""
    root: Path = Path(".")

    def __init__(self, root: Path):
        self.root = Path(root)

    def raw(self, text: str):  # pragma: no cover - overridden
        raise NotImplementedError

    def esc(self, text: Any) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    # numbers ---------------------------------------------------------------------------------------------
    def num(self, value: Any, digits: int = 2):
        return self.raw(self.esc(number(value, digits)))

    def pct(self, value: Any, digits: int = 0):
        """A fraction 0..1 as a percentage (``0.88`` -> ``88%``)."""
        if value is None:
            return self.raw("–")
        return self.raw(self.esc(percent(value, digits)))

    def frac(self, part: int, whole: int):
        return self.raw(self.esc(f"{part}/{whole}"))

    def many(self, count: int, singular: str, plural: str = ""):
        """``count`` and the noun in the right number: ``1 image``, ``3 images``."""
        return self.raw(self.esc(f"{number(count)} {singular if count == 1 else (plural or singular + 's')}"))

    def ci(self, interval) -> Any:
        """A 95 % interval of a rate as percentages (``70–96%``); an en dash when there is none."""
        if not interval:
            return self.raw("–")
        return self.raw(self.esc(f"{100 * interval[0]:.0f}–{100 * interval[1]:.0f}%"))

    def diff_ci(self, interval, scale: float = 100, unit: str = " percentage points", digits: int = 1) -> Any:
        """A 95 % interval of a difference (``-1.3 to -0.3 percentage points``): the stored interval times ``scale``."""
        if not interval:
            return self.raw("–")
        lo, hi = (f"{scale * v:.{digits}f}".replace("-", "−") for v in interval)
        return self.raw(self.esc(f"{lo} to {hi}{unit}"))

    def pval(self, p) -> Any:
        """A p-value for prose: ``p = 0.25``, ``p < 0.001``."""
        if p is None:
            return self.raw("–")
        return self.raw(self.esc("p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"))

    def fit(self, path: str, width: float) -> float:
        """The share of the text width a figure takes: ``width`` at most, and no more than its natural size
        (figures are saved at 110 dpi; the PDF's text is 6.5 in wide), so a two-image figure stays small."""
        from netviz.panels import png_size

        natural = png_size(self.root / path)[0] / FIGURE_DPI / TEXT_WIDTH_IN
        return min(width, natural)

    def globals(self) -> dict:
        names = ["raw", "num", "pct", "frac", "em", "code", "fig", "table", "section", "subsection", "question",
                 "items", "newline", "tt", "many", "ci", "pval", "diff_ci"]
        return {n: getattr(self, n) for n in names} | {"format": self.name}


class HtmlFormat(Format):
    name = "html"

    def raw(self, text: str) -> Markup:
        return Markup(text)

    def esc(self, text: Any) -> str:
        return str(escape(text))

    def em(self, text: Any) -> Markup:
        return Markup(f"<em>{escape(text)}</em>")

    def code(self, text: Any) -> Markup:
        return Markup(f"<code>{escape(text)}</code>")

    def newline(self) -> Markup:
        return Markup("<br>")

    def tt(self, text: Any) -> Markup:
        """Long machine text (a path, a hash, a JSON value) in monospace, which may wrap after a separator or
        every 24 characters (``<wbr>``)."""
        return Markup(f'<code class="long">{_breakable(str(text), escape, "<wbr>", 24, "/-.,:= ")}</code>')

    def section(self, title: str, anchor: str = "") -> Markup:
        return Markup(f'<h2 id="{escape(anchor)}">{escape(title)}</h2>')

    def subsection(self, title: str, anchor: str = "") -> Markup:
        ident = f' id="{escape(anchor)}"' if anchor else ""
        return Markup(f"<h3{ident}>{escape(title)}</h3>")

    def question(self, label: str, title: str) -> Markup:
        return Markup(f'<h4 class="question"><span class="qlabel">{escape(label)}</span> {escape(title)}</h4>')

    def items(self, entries: Sequence[Any]) -> Markup:
        return Markup("<ul>" + "".join(f"<li>{escape(e)}</li>" for e in entries) + "</ul>")

    def fig(self, path: str, caption: Any = "", width: float = 1.0) -> Markup:
        """Embed a PNG (path relative to the project root) so the HTML file stands alone."""
        data = base64.b64encode((self.root / path).read_bytes()).decode("ascii")
        return Markup(
            f'<figure style="max-width:{100 * self.fit(path, width):.0f}%"><img src="data:image/png;base64,{data}" alt="{escape(path)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )

    def table(self, header: Sequence[Any], rows: Sequence[Sequence[Any]], caption: Any = "", align: str = "",
              long: bool = False) -> Markup:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(number(c) if not isinstance(c, (Markup, str)) else c)}</td>" for c in row) + "</tr>" for row in rows)
        cap = f"<caption>{escape(caption)}</caption>" if caption else ""
        return Markup(f'<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


class TexFormat(Format):
    name = "tex"

    def raw(self, text: str) -> TexRaw:
        return TexRaw(text)

    def esc(self, text: Any) -> str:
        return tex_escape(text)

    def em(self, text: Any) -> TexRaw:
        return TexRaw(rf"\emph{{{tex_escape(text)}}}")

    def code(self, text: Any) -> TexRaw:
        return TexRaw(rf"\texttt{{{tex_escape(text)}}}")

    def newline(self) -> TexRaw:
        return TexRaw(r"\\")

    def tt(self, text: Any, run: int = 8) -> TexRaw:
        """Long machine text (a path, a hash, a JSON value) in small monospace, with a break allowed after
        every separator and every ``run`` characters, so it wraps in a ``p{}`` table column or a paragraph."""
        return TexRaw(r"{\ttfamily\footnotesize " + _breakable(str(text), tex_escape, r"\allowbreak{}", run) + "}")

    def section(self, title: str, anchor: str = "") -> TexRaw:
        # \floatsdone (report.tex.j2) puts out the figures and tables still waiting, so floats stay in their section
        return TexRaw(r"\floatsdone" + rf"\section{{{tex_escape(title)}}}" + (rf"\label{{sec:{anchor}}}" if anchor else ""))

    def subsection(self, title: str, anchor: str = "") -> TexRaw:
        return TexRaw(r"\floatsdone" + rf"\subsection{{{tex_escape(title)}}}" + (rf"\label{{sec:{anchor}}}" if anchor else ""))

    def question(self, label: str, title: str) -> TexRaw:
        return TexRaw(rf"\subsubsection*{{{tex_escape(label)}\quad {tex_escape(title)}}}")

    def items(self, entries: Sequence[Any]) -> TexRaw:
        return TexRaw("\\begin{itemize}\n" + "".join(rf"\item {tex_escape(e)}" + "\n" for e in entries) + "\\end{itemize}")

    def fig(self, path: str, caption: Any = "", width: float = 1.0) -> TexRaw:
        # latexmk runs in report/, so figures/ is one folder up
        return TexRaw(
            "\\begin{figure}[htbp]\\centering\n"
            rf"\includegraphics[width={self.fit(path, width):.2f}\linewidth,height=0.8\textheight,keepaspectratio]{{../{path}}}" + "\n"
            + (rf"\caption{{{tex_escape(caption)}}}" + "\n" if caption else "")
            + "\\end{figure}"
        )

    def table(self, header: Sequence[Any], rows: Sequence[Sequence[Any]], caption: Any = "", align: str = "",
              long: bool = False) -> TexRaw:
        """A booktabs table; ``align`` is a LaTeX column spec (``p{5cm}`` columns wrap); ``long`` makes a
        longtable that breaks across pages (for tables that can outgrow one)."""
        align = align or "l" + "r" * (len(header) - 1)
        cell = lambda c: tex_escape(number(c) if not isinstance(c, str) else c)  # noqa: E731
        head = " & ".join(cell(h) for h in header) + r" \\"
        body = [" & ".join(cell(c) for c in row) + r" \\" for row in rows]
        if long:
            lines = [
                "{\\small", rf"\begin{{longtable}}{{{align}}}",
                rf"\caption{{{tex_escape(caption)}}} \\" if caption else "",
                r"\toprule", head, r"\midrule", r"\endhead",
                r"\bottomrule", r"\endfoot",
                *body, r"\end{longtable}}",
            ]
            return TexRaw("\n".join(line for line in lines if line))
        lines = [
            "\\begin{table}[htbp]\\centering\\small",
            rf"\caption{{{tex_escape(caption)}}}" if caption else "",
            rf"\begin{{tabular}}{{{align}}}", r"\toprule",
            head, r"\midrule",
            *body,
            r"\bottomrule", r"\end{tabular}", r"\end{table}",
        ]
        return TexRaw("\n".join(line for line in lines if line))
