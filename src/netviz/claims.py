"""Claims as data: what a report sentence compares, the numbers, the test and the verdict.

An experiment decides each qualitative statement its section's text makes ("the gradient beats the center
point", "momentum transfers better") with one of the functions below and stores the resulting dict in its
``metrics.json`` under ``"claims"``; templates only choose words by the verdict. Every function takes the
per-image values the section already stores, so a claim can be recomputed from the stored results
(:func:`recompute` does, for the report checker).

Tests: a rate carries a 95 % Wilson interval (statsmodels); two success flags on the same images are compared
with the exact McNemar test (a two-sided binomial test on the discordant pairs, scipy); two paired
measurements with a seeded paired bootstrap interval of the mean difference (scipy). Verdicts are fixed words:

- comparisons (:func:`paired_hits`, :func:`paired_means`): ``"a"`` (a is better / higher), ``"b"``, or
  ``"no difference"`` (no measurable difference on these images);
- a rate against a threshold (:func:`rate_vs`): ``"above"``, ``"below"`` or ``"undecided"`` (the interval
  contains the threshold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
COMPARISON_VERDICTS = ("a", "b", "no difference")
RATE_VERDICTS = ("above", "below", "undecided")


@dataclass(frozen=True)
class Claim:
    """One decided statement. ``a``/``b`` are the compared numbers (counts for hits, means otherwise), ``n`` the
    number of images, ``ci`` the 95 % interval of ``a`` (a rate) or of ``a - b`` (paired means)."""

    claim: str
    what: str
    a: float | int
    b: float | int | None
    n: int
    test: str
    p: float | None
    verdict: str
    ci: list[float] | None = None
    a_label: str = "a"
    b_label: str = "b"
    data: dict = field(default_factory=dict)  # the per-image inputs, so that the verdict can be recomputed

    def to_dict(self) -> dict:
        return asdict(self)


def wilson(k: int, n: int) -> list[float] | None:
    """95 % Wilson interval of the rate k/n (None when n is 0)."""
    if n == 0:
        return None
    lo, hi = proportion_confint(int(k), int(n), alpha=ALPHA, method="wilson")
    return [round(float(lo), 4), round(float(hi), 4)]


def mcnemar_exact(a_flags: list[bool], b_flags: list[bool]) -> tuple[int, int, float]:
    """(a only, b only, two-sided exact p) for paired success flags: a binomial test of the discordant pairs."""
    only_a = sum(bool(x) and not bool(y) for x, y in zip(a_flags, b_flags))
    only_b = sum(bool(y) and not bool(x) for x, y in zip(a_flags, b_flags))
    if only_a + only_b == 0:
        return only_a, only_b, 1.0
    return only_a, only_b, float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def paired_hits(claim: str, what: str, a_flags: list, b_flags: list, a_label: str = "a", b_label: str = "b") -> dict:
    """Compare two success flags on the same images (None in either: the image is left out)."""
    pairs = [(bool(x), bool(y)) for x, y in zip(a_flags, b_flags) if x is not None and y is not None]
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    only_a, only_b, p = mcnemar_exact(a, b)
    verdict = "no difference" if p >= ALPHA else ("a" if only_a > only_b else "b")
    return Claim(claim, what, sum(a), sum(b), len(pairs), "exact McNemar", round(p, 4), verdict,
                 wilson(sum(a), len(pairs)), a_label, b_label,
                 {"a": a, "b": b, "only_a": only_a, "only_b": only_b, "ci_b": wilson(sum(b), len(pairs))}).to_dict()


def paired_means(claim: str, what: str, a_values: list, b_values: list, seed: int, a_label: str = "a",
                 b_label: str = "b", digits: int = 4) -> dict:
    """Compare the means of two paired measurements by a seeded bootstrap of the mean difference (percentile
    interval; the p-value is the two-sided share of resampled differences on the other side of zero)."""
    pairs = [(float(x), float(y)) for x, y in zip(a_values, b_values)
             if x is not None and y is not None and not (np.isnan(x) or np.isnan(y))]
    diff = np.array([x - y for x, y in pairs])
    a_mean = round(float(np.mean([x for x, _ in pairs])), digits) if pairs else None
    b_mean = round(float(np.mean([y for _, y in pairs])), digits) if pairs else None
    if len(pairs) < 2 or np.ptp(diff) == 0:
        p, ci = (1.0, [round(float(diff[0]), digits)] * 2) if len(pairs) else (1.0, None)
        if len(pairs) and diff[0] != 0:
            p = 0.0
    else:
        result = stats.bootstrap((diff,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=1 - ALPHA,
                                 method="percentile", random_state=np.random.default_rng(seed))
        ci = [round(float(result.confidence_interval.low), digits), round(float(result.confidence_interval.high), digits)]
        dist = result.bootstrap_distribution
        p = min(1.0, 2 * min(float(np.mean(dist <= 0)), float(np.mean(dist >= 0))))
    if ci is None or ci[0] <= 0 <= ci[1]:
        verdict = "no difference"
    else:
        verdict = "a" if ci[0] > 0 else "b"
    return Claim(claim, what, a_mean, b_mean, len(pairs), f"paired bootstrap ({BOOTSTRAP_RESAMPLES} resamples, seed {seed})",
                 round(p, 4), verdict, ci, a_label, b_label,
                 {"a": [x for x, _ in pairs], "b": [y for _, y in pairs], "seed": seed, "resamples": BOOTSTRAP_RESAMPLES}).to_dict()


def rate_vs(claim: str, what: str, flags: list, threshold: float = 0.5, a_label: str = "rate") -> dict:
    """A rate against a fixed share (e.g. "more often than not": 0.5), decided by its Wilson interval."""
    kept = [bool(f) for f in flags if f is not None]
    k, n = sum(kept), len(kept)
    ci = wilson(k, n)
    if ci is None:
        verdict = "undecided"
    elif ci[0] > threshold:
        verdict = "above"
    elif ci[1] < threshold:
        verdict = "below"
    else:
        verdict = "undecided"
    return Claim(claim, what, k, threshold, n, "Wilson 95 % interval", None, verdict, ci, a_label, "threshold",
                 {"a": kept}).to_dict()


def recompute(stored: dict) -> dict:
    """The claim recomputed from its stored inputs (the report checker compares the verdicts)."""
    data, test = stored["data"], stored["test"]
    if test == "exact McNemar":
        return paired_hits(stored["claim"], stored["what"], data["a"], data["b"], stored["a_label"], stored["b_label"])
    if test.startswith("paired bootstrap"):
        return paired_means(stored["claim"], stored["what"], data["a"], data["b"], data["seed"], stored["a_label"],
                            stored["b_label"])
    if test.startswith("Wilson"):
        return rate_vs(stored["claim"], stored["what"], data["a"], stored["b"], stored["a_label"])
    raise ValueError(f"unknown test {test!r} in claim {stored['claim']!r}")
