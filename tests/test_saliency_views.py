"""The report views of the saliency sections: what their text states beside the stored results."""

import pytest

from netviz.report.views import DERIVE


def method(insertion, deletion, energy=0.4, pointing=0.5, spearman=(0.95, 0.2), vanished=(0, 0)):
    return {"insertion_auc": insertion, "deletion_auc": deletion, "energy": energy, "pointing": pointing,
            "spearman": list(spearman), "vanished": list(vanished)}


def methods_results(order_first="Grad-CAM"):
    names = ["Gradient", "SmoothGrad", "IG (black)", "IG (blur)", "Guided BP", "Grad-CAM"]
    scores = {name: method(0.5, 0.2) for name in names}
    scores["Gradient"] = method(0.503, 0.1, energy=0.3, pointing=0.8)  # level with the prior under insertion
    scores["SmoothGrad"] = method(0.6, 0.2, energy=0.31)
    scores["Guided BP"] = method(0.5, 0.2, spearman=(0.99, 0.7), vanished=(0, 1))
    scores["Center prior"] = method(0.5, 0.3, energy=0.35, pointing=0.6, spearman=(1.0, 1.0))
    rankings = {"insertion_auc": {"order": [order_first, "Gradient"], "lead": 0.05, "lead_se": 0.01},
                "deletion_auc": {"order": ["Gradient", "IG (blur)"], "lead": 0.0004, "lead_se": 0.01},
                "pointing": {"order": ["Gradient", "SmoothGrad"], "lead": 0.0, "lead_se": 0.0},
                "energy": {"order": ["IG (blur)", "Gradient"], "lead": 0.02, "lead_se": None}}
    model = {"methods": scores, "rankings": rankings, "center_hit_rate": 0.6,
             "ig_completeness_error": {"IG (black)": 0.05, "IG (blur)": 0.3}}
    return {"methods": names, "baseline_method": "Center prior", "annotated": 3, "randomization_images": 2,
            "models": {"a": model}}


def test_saliency_methods_view_states_the_texts_bars():
    r = methods_results()
    DERIVE["saliency_methods"](r)
    m = r["models"]["a"]
    assert m["beat_center"] == ["Gradient"]  # the only pointing score above the center point's 0.6
    assert m["not_over_prior"] == 2  # the gradient's 0.30 and SmoothGrad's 0.31 energy: not above the prior's 0.35
    assert m["gradient_vs_prior"] == {"insertion": "level", "deletion": "better"}
    assert m["ig_convergence"] == "some"  # worst error 0.3: between 0.1 and 0.5
    assert m["keeps"] == ["Guided BP"] and m["flat"] == ["Guided BP"] and m["flat_maps"] == 1
    assert len(m["stiff"]) == 6  # every method's top-layer rho is above 0.9
    ranks = m["rankings"]
    assert ranks["insertion_auc"]["beyond_noise"] and not ranks["deletion_auc"]["beyond_noise"]
    assert ranks["deletion_auc"]["lead_tiny"] and ranks["pointing"]["tied"] and not ranks["energy"]["tied"]
    # a lead counts where it has a standard error other than 0: insertion (clear) and deletion (not)
    assert r["gaps"] == {"all": 2, "beyond_noise": 1, "unsettled": 1}
    assert r["cam_leads"] == {"models": 1, "all": True}
    assert r["first_model"]["smoothgrad"] == "more"  # 0.1 more insertion area than the gradient
    assert r["with_baseline"][-1] == "Center prior" and r["randomization_maps"] == 12


@pytest.mark.parametrize("first", ["Grad-CAM", "Gradient"])
def test_added_keys_read_as_values_in_a_template(first):
    """Jinja's ``x.name`` prefers a dict's method of that name: no key the view adds may shadow one."""
    import jinja2

    r = methods_results(first)
    DERIVE["saliency_methods"](r)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    text = env.from_string("{{ R.gaps.beyond_noise }} {{ R.cam_leads.models }} {{ R.cam_leads.all }}").render(R=r)
    assert text == f"1 {int(first == 'Grad-CAM')} {first == 'Grad-CAM'}"


def test_saliency_view_names_misses_and_counts():
    rows = [{"index": 0, "hit": True, "correct": True}, {"index": 1, "hit": False, "correct": False},
            {"index": 2, "hit": None, "correct": True}]
    r = {"models": {"a": {"n": 3, "scored": 2, "per_image": rows, "jobs": 2, "drawn": 3}},
         "claims": {"pointing/b_vs_a": {"data": {"only_a": 2, "only_b": 3}}, "on_object/a": {"data": {}}}}
    DERIVE["saliency"](r)
    m = r["models"]["a"]
    assert [row["index"] for row in m["misses"]] == [1]  # image 2 has no box: not a miss
    assert [row["index"] for row in m["wrong"]] == [1]
    assert m["unscored"] == 1 and not m["one_job"] and m["all_drawn"]
    assert r["claims"]["pointing/b_vs_a"]["data"]["discordant"] == 5
    assert "discordant" not in r["claims"]["on_object/a"]["data"]
