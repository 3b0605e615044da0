"""The sections of the report: one light registry read by the runner, the report, grading and the templates.

Each :class:`Section` names its experiment module (``netviz.experiments.<name>``, which describes its work as
jobs and turns their results into metrics and figures), its title, the section it is a subsection of, which of
its stored metrics and figures answer which lab question, the items grading shows but does not judge by their
exact value, and the modules its jobs run (for job cache keys, :mod:`netviz.jobs`). Nothing here imports torch.

``questions``: ``{"Q5": {"metrics": [...], "figures": [...]}}``. Metric patterns are globs over the keys of the
section's ``metrics.json`` flattened with dots, list items numbered (``models.squeezenet1_1.per_image.3.hit``);
figure patterns are globs over figure file names. Patterns may use ``{models[i]}``, the section's i-th model
(``section_models``); a pattern naming a model the config does not have is dropped. A question with nothing
mapped to it is "not graded"; items no question claims are graded under "other". An item may serve several
questions. ``unstable``: pattern -> why the item is shown but not graded by its exact value (the last matching
pattern wins; None = graded after all).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    parent: str | None = None
    questions: dict = field(default_factory=dict)
    unstable: dict = field(default_factory=dict)
    job_code: tuple[str, ...] = ()


# Q3 (other uses of saliency maps) is answered in prose only: nothing to grade.
SALIENCY = Section(
    "saliency", "Saliency maps",
    questions={
        "Q1": {"metrics": ["images.*", "num_shown", "tolerance_px", "models.{models[0]}.*"],
               "figures": ["saliency_{models[0]}_*.png"]},
        "Q2": {"metrics": ["models.{models[0]}.hit_rate", "models.{models[0]}.center_hit_rate",
                           "models.{models[0]}.per_image.*.hit", "models.{models[0]}.per_image.*.top1pct_mass"],
               "figures": ["saliency_{models[0]}_all.png"]},
        "Q4": {"metrics": ["models.{models[1]}.*"], "figures": ["saliency_{models[1]}_*.png"]},
    },
    job_code=("netviz.methods.saliency",),
)

# Rendered as a subsection of Section 1: it extends the answer to Q2 (limits of the gradient).
SALIENCY_METHODS = Section(
    "saliency_methods", "Beyond the gradient: stronger methods, measured", parent="saliency",
    questions={"Q2": {"metrics": ["*"], "figures": ["*.png"]}},
    job_code=("netviz.experiments.saliency_methods.work", "netviz.methods.attribution", "netviz.methods.baselines",
              "netviz.methods.perturbation", "netviz.methods.randomization", "netviz.methods.common", "netviz.metrics"),
)

# The lab's attack stops at the first step past the decision boundary, so a difference in float rounding (another
# CPU, thread count or batch) can stop one image a step earlier or later, which moves its distances, the
# probabilities just past the boundary and whether its 8-bit PNG still fools.
ADVERSARIAL = Section(
    "adversarial", "Adversarial examples",
    questions={
        "Q5": {"metrics": ["fooling.*", "shown.*"], "figures": ["fooling_examples.png"]},
        "Q6": {"metrics": ["transfer.*", "transfer_matrix.*"], "figures": ["transfer.png"]},
        "Q7": {"metrics": ["sweep.*", "fooling.*.summary.*"], "figures": ["success_vs_eps.png"]},
    },
    unstable={
        "fooling.*.per_image.*": "the step an image's attack stops at moves with float rounding; graded through "
                                 "fooling.*.summary (success within the budget, mean steps and distances, PNG survival)",
        "shown.*": "the shown images' runs stop at a rounding-dependent step; graded through fooling.*.summary",
        "alone.*": "re-runs of the shown images stop at a rounding-dependent step; graded through fooling.*.summary",
        # still graded exactly: which image, its label and target, and that the attack reached the target in budget
        "fooling.*.per_image.*.index": None,
        "fooling.*.per_image.*.true": None,
        "fooling.*.per_image.*.target": None,
        "fooling.*.per_image.*.file": None,
        "fooling.*.per_image.*.success_float": None,
        "fooling.*.per_image.*.float.pred": None,
        "shown.*.model": None,
        "shown.*.variant": None,
        "shown.*.index": None,
        "shown.*.target": None,
        "shown.*.success_float": None,
        "alone.*.index": None,
        "alone.*.batch": None,
        "transfer_matrix.lab method*": "the lab method's stored images fool or not by a rounding-dependent step; "
                                       "graded through fooling.*.summary.transfer_target",
        "transfer.png:*lab method*": "the lab method's transfer rates move by whole images with rounding; graded "
                                     "through fooling.*.summary.transfer_target",
        "transfer.*.per_image.*.p_*": "an attacked image's probabilities after 8-bit and JPEG rounding move with float "
                                      "rounding (0.255 -> 0.212 on a one-thread build); graded through transfer.*.success",
        "fooling_examples.png:*difference*": "the amplified difference of an attack that stopped a step earlier or "
                                             "later; the original and adversarial panels are graded",
    },
    job_code=("netviz.experiments.adversarial.work", "netviz.methods.adversarial", "netviz.codecs"),
)

CLASSVIZ = Section(
    "classviz", "Class visualization",
    questions={
        "Q8": {"metrics": ["target.*", "per_model.{models[0]}.gallery.*", "per_model.{models[0]}.featured.*",
                           "per_model.{models[0]}.objective_*"],
               "figures": ["{models[0]}_gallery.png", "{models[0]}_featured.png"]},
        "Q9": {"metrics": ["per_model.{models[0]}.sweeps.*", "reference.*"],
               "figures": ["{models[0]}_sweep_*.png"]},
        "Q10": {"metrics": ["per_model.{models[0]}.starts.*"], "figures": ["{models[0]}_from_photographs.png"]},
        "Q11": {"metrics": ["per_model.{models[1]}.*"], "figures": ["{models[1]}_*.png"]},
    },
    job_code=("netviz.experiments.classviz.work", "netviz.methods.classviz"),
)

REGISTRY: dict[str, Section] = {s.name: s for s in (SALIENCY, SALIENCY_METHODS, ADVERSARIAL, CLASSVIZ)}
"""Every section, in the order of the report."""

SECTIONS: tuple[str, ...] = tuple(REGISTRY)

PARTS: dict[str, str] = {"claims": "Claims and how they were decided", "provenance": "Provenance", "speed": "Speed"}
"""Titles of the report's parts that no section's experiment makes, by anchor: the closing list of claims, the
provenance appendix and the speed appendix (``netviz bench``)."""
