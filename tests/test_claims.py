"""netviz.claims decides statements with the stated tests; netviz.report.check finds what a report gets wrong."""

import math

import pytest
from scipy import stats

from netviz import claims
from netviz.report.check import check_claims, check_numbers, check_phrases, check_tex


def test_wilson_interval_contains_the_rate_and_shrinks_with_n():
    lo, hi = claims.wilson(22, 25)
    assert lo < 22 / 25 < hi and 0 <= lo and hi <= 1
    lo_big, hi_big = claims.wilson(220, 250)
    assert hi_big - lo_big < hi - lo
    assert claims.wilson(0, 0) is None
    assert claims.wilson(0, 5)[0] == 0.0  # Wilson never leaves [0, 1]


def test_exact_mcnemar_uses_only_the_discordant_pairs():
    a = [True] * 20 + [True] * 9 + [False]
    b = [True] * 20 + [False] * 9 + [True]
    only_a, only_b, p = claims.mcnemar_exact(a, b)
    assert (only_a, only_b) == (9, 1)
    assert math.isclose(p, stats.binomtest(9, 10, 0.5).pvalue)
    assert claims.mcnemar_exact([True, False], [True, False]) == (0, 0, 1.0)


def test_paired_hits_verdicts():
    clear = claims.paired_hits("x", "x", [True] * 12 + [False] * 3, [False] * 12 + [False] * 3)
    assert clear["verdict"] == "a" and clear["p"] < 0.05 and (clear["a"], clear["b"], clear["n"]) == (12, 0, 15)
    reverse = claims.paired_hits("x", "x", [False] * 12, [True] * 12)
    assert reverse["verdict"] == "b"
    close = claims.paired_hits("x", "x", [True, True, False, True], [True, False, True, True])
    assert close["verdict"] == "no difference" and close["p"] == 1.0
    # images without a value (no boxes) are left out of both
    partial = claims.paired_hits("x", "x", [True, None, False], [True, True, None])
    assert partial["n"] == 1


def test_paired_means_is_seeded_and_finds_a_clear_shift():
    a = [0.1 * k + 0.05 for k in range(20)]
    b = [0.1 * k for k in range(20)]
    one = claims.paired_means("x", "x", a, b, seed=3)
    assert one == claims.paired_means("x", "x", a, b, seed=3)
    assert one["verdict"] == "a" and one["ci"][0] > 0
    noisy = claims.paired_means("x", "x", [1.0, -1.0, 1.0, -1.0, 0.5], [0.0] * 5, seed=0)
    assert noisy["verdict"] == "no difference" and noisy["ci"][0] <= 0 <= noisy["ci"][1]
    constant = claims.paired_means("x", "x", [1.0, 1.0], [1.0, 1.0], seed=0)
    assert constant["verdict"] == "no difference"


@pytest.mark.parametrize("hits, verdict", [([True] * 22 + [False] * 3, "above"), ([False] * 22 + [True] * 3, "below"),
                                           ([True, False, True], "undecided"), ([], "undecided")])
def test_rate_against_one_half(hits, verdict):
    assert claims.rate_vs("x", "x", hits, 0.5)["verdict"] == verdict


def test_recompute_reproduces_and_the_checker_catches_a_changed_verdict():
    stored = {"hits": claims.paired_hits("h", "h", [True] * 9 + [False], [False] * 9 + [True]),
              "means": claims.paired_means("m", "m", [2.0, 3.0, 4.0, 5.0], [1.0, 1.5, 2.0, 2.5], seed=0),
              "rate": claims.rate_vs("r", "r", [True] * 9, 0.5)}
    for claim in stored.values():
        assert claims.recompute(claim) == claim
    assert check_claims({"sec": {"claims": stored}}) == []
    stored["hits"] = {**stored["hits"], "verdict": "no difference"}
    assert any("verdict" in p for p in check_claims({"sec": {"claims": stored}}))


def test_number_checker():
    values = [0.88, 22, 25, 0.125, 45.6, 0.7004, 0.9583]
    assert check_numbers("It scores 88% (22 of 25; interval 70–96%), p = 0.12, 46 px.", values, set()) == []
    assert check_numbers("It scores 87%.", values, set()) != []
    assert check_numbers("half of 4.4 images", values, {"4.4"}) == []


def test_phrase_checker():
    for broken in ("lands off the object in 0 of 0 images", "for the 1 images where", "off it:in the game",
                   "a share.All of them", "scores – over", "value None here"):
        assert check_phrases(broken), broken
    assert check_phrases("See results/saliency/metrics.json, e.g. models.names; 1 image, 3 images.") == []


def test_tex_checker():
    assert check_tex("\\begin{document}\nrate 95% Wilson\n") != []
    assert check_tex("\\begin{document}\nrun \\texttt{-{}-set a=1} with 95\\% \n") == []
    assert check_tex("\\begin{document}\nrun --set a=1\n") != []
