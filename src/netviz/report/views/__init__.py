"""Per-section views: what a section's text states that its stored results do not hold as such.

Each module ``<section>.py`` has ``derive(metrics: dict) -> None``, which adds such values (ratios, unit changes,
orderings, the phrases a number selects) to the section's metrics as loaded, in place. Templates then only phrase
them. The stored files are never changed: grading reads them, not these views. :func:`netviz.report.derived.derive`
calls the view of every section that has one (and ``bench`` for the speed appendix), through :data:`DERIVE`.
"""

from netviz.report.views import adversarial, bench, classviz
from netviz.report.views import saliency, saliency_methods

DERIVE = {"adversarial": adversarial.derive, "classviz": classviz.derive, "bench": bench.derive}
DERIVE["saliency"] = saliency.derive
DERIVE["saliency_methods"] = saliency_methods.derive
