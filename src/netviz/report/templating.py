"""The one Jinja environment over ``templates/``: the report (:mod:`netviz.report.render`, which adds each output
format's filters and globals) and the grade page (:mod:`netviz.grading.page`) are both rendered from it."""

from __future__ import annotations

from typing import Any, Callable

import jinja2

from netviz.config import TEMPLATES_DIR


def template_environment(autoescape: bool = True,
                         finalize: Callable[[Any], Any] | None = None) -> jinja2.Environment:
    """A Jinja environment loading ``templates/`` that fails on undefined names and trims the lines of block tags.
    HTML is autoescaped; another format passes ``autoescape=False`` and its own escaper as ``finalize``."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=autoescape, finalize=finalize,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
