"""The experiments, one module per report section. Each module defines ``TITLE`` and ``run(ctx) -> dict``.

This is the only layer that reads config and writes results; :mod:`netviz.experiments.runner` runs them with
caching. Order here is the order of the report.

A section module may also define ``QUESTIONS``, which tells grading (:mod:`netviz.grading`) which of its
stored metrics and figures answer which lab question (Q1–Q11)::

    QUESTIONS = {
        "Q5": {"metrics": ["models.{models[0]}.success_rate", "eps_levels"],   # keys of its metrics.json
               "figures": ["adversarial_{models[0]}_*.png"]},                 # file names of its figures
    }

Metric patterns are globs over the keys of the section's ``metrics.json`` flattened with dots, list items
numbered (``models.squeezenet1_1.per_image.3.hit``); figure patterns are globs over figure file names. Patterns
may use ``{models[i]}``, the section's i-th model (``section_models``); a pattern naming a model the config does
not have is dropped. A question with nothing mapped to it is "not graded"; items no question claims are graded
under "other". An item may serve several questions.
"""

SECTIONS: tuple[str, ...] = ("saliency", "saliency_methods", "adversarial", "classviz")
