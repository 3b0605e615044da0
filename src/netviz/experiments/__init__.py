"""The experiments, one module per report section. Each module defines ``TITLE`` and ``run(ctx) -> dict``.

This is the only layer that reads config and writes results; :mod:`netviz.experiments.runner` runs them with
caching. Order here is the order of the report.
"""

SECTIONS: tuple[str, ...] = ("saliency", "adversarial")
