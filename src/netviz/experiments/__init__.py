"""The experiments, one module per report section (see :mod:`netviz.sections` for their titles and what they
answer). Each module describes its work as jobs (:mod:`netviz.jobs`), run by ``compute(job, model, batch)``,
and turns their results into metrics and figures in ``run(ctx) -> dict``. This is the only layer that reads
config and writes results; :mod:`netviz.experiments.runner` runs them with caching.
"""

from netviz.sections import SECTIONS

__all__ = ["SECTIONS"]
