"""Which images each measurement attacks, and the jobs that attack them."""

from __future__ import annotations

from netviz.experiments.adversarial.state import Part, Run
from netviz.methods.adversarial import Fooling


def fooling_indices(run: Run) -> list[int]:
    """The images the lab's method attacks: ``fooling_images`` (every image when empty), less the target class's."""
    s, n = run.settings, len(run.y)
    return [i for i in (s.fooling_images or range(n)) if int(run.y[i]) != s.target]


def shown_indices(run: Run) -> list[int]:
    """The images of the lab-style figure: ``fooling_shown``, less the target class's."""
    return [i for i in run.settings.fooling_shown if int(run.y[i]) != run.settings.target]


def transfer_indices(run: Run) -> list[int]:
    """The images every model gets right (so every cell of the transfer matrix counts the same images)."""
    return [i for i in range(len(run.y)) if all(run.correct[m][i] for m in run.names)]


def fooling_part(run: Run, source: str, indices: list[int], target: int, spec: Fooling, tag: str) -> Part:
    """The lab's method (``spec``) by ``source`` on ``indices`` towards ``target``, a job per shard."""
    jobs = [run.attack_job("fooling", source, shard, target=target, lr=spec.lr, max_iter=spec.max_iter, kappa=spec.kappa)
            for shard in run.ctx.shards(indices)]
    return Part(tag, source, list(indices), jobs, target)


def transfer_part(run: Run, source: str, attack_name: str) -> Part:
    """Full-strength untargeted attack by ``source`` on the transfer set, a job per shard."""
    s, indices = run.settings, transfer_indices(run)
    jobs = [run.attack_job("transfer", source, shard, attack=attack_name, eps=s.transfer_budget(attack_name),
                           **s.attack_params(attack_name, s.transfer_steps))
            for shard in run.ctx.shards(indices)]
    return Part(attack_name, source, indices, jobs)


def plan_parts(run: Run) -> dict:
    """Every stored-and-judged set of the section: the lab's method on :func:`fooling_indices` ("fooling"), on
    the shown images with the κ margin ("kappa") and alone ("alone", only when that is another batch), and the
    transfer sets, each per model."""
    s, chosen, shown, parts = run.settings, fooling_indices(run), shown_indices(run), {}
    for m in run.names:
        parts[("fooling", m)] = fooling_part(run, m, chosen, s.target, s.lab_spec(), "fooling")
    for m in run.names:
        if shown and s.kappa_compare > 0:
            parts[("kappa", m)] = fooling_part(run, m, shown, s.target, s.lab_spec(s.kappa_compare), "shown_kappa")
    for m in run.names:
        if shown and len(chosen) != len(shown):
            parts[("alone", m)] = fooling_part(run, m, shown, s.target, s.lab_spec(), "shown_alone")
    for attack_name in s.transfer_attacks:
        for m in run.names:
            parts[("transfer", attack_name, m)] = transfer_part(run, m, attack_name)
    return parts
