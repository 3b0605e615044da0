"""Section 2: adversarial examples (Q5-Q7).

Three measurements, each on every model of the section:

- the lab's fooling image (targeted, unbounded, normalised gradient steps) on ``fooling_images``;
- a sweep of budgeted untargeted attacks (FGSM, PGD L∞/L2, MI-FGSM) over ε, on the images the model gets right;
- transfer sets: full-strength untargeted attacks at one budget.

Every adversarial image the results count is written as an 8-bit PNG under ``results/adversarial/images/``,
read back from disk and classified again (by every model, for the fooling and transfer sets): every "this image
fools model X" in the results is a statement about the stored file. Images of the fooling and transfer sets are
also put through a JPEG round trip and classified again.

The work runs as jobs (:mod:`netviz.jobs`, :func:`compute` in :mod:`.work`): the clean predictions (model, shard); the attacks
(the lab's method per model and shard, its κ variant and the "alone" re-run of the shown images; the sweep per
model, attack and shard, the whole ε grid in one job; the transfer sets per attack, model and shard), each
returning its images as the 8-bit arrays the PNG files hold; then the judging of every stored set by every model
(the PNGs as read back, and their JPEG round trips). The driver (:func:`run`) writes and reads the files and
assembles the results.

The package: :mod:`.settings` (the checked config), :mod:`.work` (the jobs: everything that runs a model),
:mod:`.state` (the run's state: clean predictions, storing and judging), :mod:`.plan` (which images each
measurement attacks), :mod:`.scores` and :mod:`.sweep` (the numbers of ``metrics.json`` and the claims),
:mod:`.figures`.
"""

from __future__ import annotations

from netviz.experiments.adversarial.figures import save_figures
from netviz.experiments.adversarial.plan import plan_parts
from netviz.experiments.adversarial.scores import (fooling_set, fooling_sets, overview, rerun_alone, section_claims,
                                                   shown_examples, transfer_matrices, transfer_sets)
from netviz.experiments.adversarial.settings import Settings, read_settings
from netviz.experiments.adversarial.state import Run
from netviz.experiments.adversarial.sweep import sweep_plan, sweeps
from netviz.experiments.adversarial.work import ATTACKS, build_attack, compute
from netviz.experiments.context import Context
from netviz.jobs import Job

__all__ = ["ATTACKS", "Run", "Settings", "build_attack", "compute", "fooling_set", "jobs", "read_settings", "run"]


def jobs(ctx: Context) -> list[Job]:
    """The section's heavy jobs (the attacks), after running the clean predictions they depend on."""
    state = Run(ctx)
    parts, planned = plan_parts(state), sweep_plan(state)
    return [job for part in parts.values() for job in part.jobs] + [job for js in planned.values() for job in js]


def run(ctx: Context) -> dict:
    """The section's results (``metrics.json``): the attacks run as jobs, every image stored, read back and
    judged, then the numbers, the figures and the claims."""
    state = Run(ctx)
    parts, planned = plan_parts(state), sweep_plan(state)
    done = state.execute(list(parts.values()), planned)
    results = {**overview(state), "fooling": fooling_sets(state, parts), "sweep": sweeps(state, planned, done),
               "transfer": transfer_sets(state, parts), "figures": {}}
    results["shown"] = shown_examples(state, results["fooling"], parts)
    results["alone"] = rerun_alone(state, results["fooling"], parts)
    results["transfer_matrix"] = transfer_matrices(results, state.names)
    results["figures"] = save_figures(state, results)
    results["timings_s"] = state.timings
    results["claims"] = section_claims(results, state.names)
    return results
