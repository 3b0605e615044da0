"""Adversarial examples: the loop against torchattacks, budgets, the lab's fooling image on the real SqueezeNet,
chunking, 8-bit storage and the survival checks of the experiment."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netviz import codecs, metrics
from netviz.methods.adversarial import (Attack, Fooling, fgsm, fooling_image, levels, mi_fgsm, pgd, project,
                                        projected_gradient)
from netviz.models import wrap

torchattacks = pytest.importorskip("torchattacks")


def same(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


# Equality with torchattacks. Batches of 4 (or 2): torchattacks averages the loss over the batch, we sum it, and a
# power-of-two factor changes no gradient sign and no direction.

def test_fgsm_equals_torchattacks(tiny_model, tiny_images):
    x, y = tiny_images
    for eps in (0.5, 2.0, 8.0):
        ours = projected_gradient(tiny_model, x, y, fgsm(eps)).images
        theirs = torchattacks.FGSM(tiny_model, eps=eps / 255)(x, y)
        assert same(ours, theirs) <= 1e-5


@pytest.mark.parametrize("targeted", [False, True])
def test_pgd_linf_equals_torchattacks(tiny_model, tiny_images, targeted):
    x, y = tiny_images
    labels = (y + 1) % 10 if targeted else y
    ours = projected_gradient(tiny_model, x, labels, pgd(8, 2, 10, random_start=False, targeted=targeted)).images
    attack = torchattacks.PGD(tiny_model, eps=8 / 255, alpha=2 / 255, steps=10, random_start=False)
    if targeted:
        attack.set_mode_targeted_by_label(quiet=True)
    assert same(ours, attack(x, labels)) <= 1e-5


def test_pgd_l2_and_mi_fgsm_equal_torchattacks(tiny_model, tiny_images):
    # torchattacks flattens gradients with .view, which needs them contiguous; a channels-last Classifier hands
    # them back channels-last (its input layout), so both sides get the NCHW model here: the attacks' arithmetic
    # is what is compared.
    tiny_model.use_channels_last(False)
    x, y = tiny_images
    ours = projected_gradient(tiny_model, x, y, pgd(128, 32, 10, norm="l2", random_start=False)).images
    assert same(ours, torchattacks.PGDL2(tiny_model, eps=128 / 255, alpha=32 / 255, steps=10, random_start=False)(x, y)) <= 1e-5
    ours = projected_gradient(tiny_model, x, y, mi_fgsm(8, 0.8, 10)).images
    assert same(ours, torchattacks.MIFGSM(tiny_model, eps=8 / 255, alpha=0.8 / 255, steps=10, decay=1.0)(x, y)) <= 1e-5


@pytest.mark.slow
def test_fgsm_and_pgd_equal_torchattacks_on_squeezenet(squeezenet, course_images):
    x, y = course_images.images[:2], course_images.labels[:2]
    assert same(projected_gradient(squeezenet, x, y, fgsm(2)).images, torchattacks.FGSM(squeezenet, eps=2 / 255)(x, y)) <= 1e-5
    ours = projected_gradient(squeezenet, x, y, pgd(2, 0.5, 3, random_start=False)).images
    theirs = torchattacks.PGD(squeezenet, eps=2 / 255, alpha=0.5 / 255, steps=3, random_start=False)(x, y)
    assert same(ours, theirs) <= 1e-5


# Budgets ---------------------------------------------------------------------------------------------------

LINF_ATTACKS = [fgsm(4), pgd(4, 1, 5, random_start=False), pgd(4, 1, 5, random_start=True), mi_fgsm(4, 1, 5),
                pgd(4, 3, 5, targeted=True), Attack("linf", 0.5, 0.2, 4, random_start=True)]


@pytest.mark.parametrize("attack", LINF_ATTACKS, ids=lambda a: f"{a.norm}-eps{a.eps}-steps{a.steps}-rs{a.random_start}-mu{a.momentum}")
def test_linf_attacks_stay_in_budget(tiny_model, tiny_images, attack):
    x, y = tiny_images
    delta = projected_gradient(tiny_model, x, y, attack, generator=torch.Generator().manual_seed(0)).images - x
    assert delta.abs().amax(dim=(1, 2, 3)).max() <= levels(attack.eps) + 1e-6
    assert delta.abs().max() > levels(attack.eps) / 2  # it did move
    assert (x + delta).min() >= 0 and (x + delta).max() <= 1


@pytest.mark.parametrize("attack", [pgd(64, 20, 6, "l2", random_start=False), pgd(64, 20, 6, "l2", random_start=True),
                                    mi_fgsm(64, 20, 6, norm="l2"), pgd(16, 100, 2, "l2", targeted=True)])
def test_l2_attacks_stay_in_budget_per_image(tiny_model, tiny_images, attack):
    x, y = tiny_images
    delta = projected_gradient(tiny_model, x, y, attack, generator=torch.Generator().manual_seed(0)).images - x
    norms = delta.flatten(1).norm(dim=1)
    assert (norms <= levels(attack.eps) * (1 + 1e-5)).all()
    assert (norms > 0).all()


def test_project_on_hand_made_perturbations():
    delta = torch.zeros(2, 3, 2, 2)
    delta[0, 0, 0, 0], delta[0, 1, 1, 1] = 3.0, -4.0  # L2 norm 5
    delta[1, 2, 0, 1] = 0.5  # already inside
    l2 = project(delta, 1.0, "l2")
    assert torch.allclose(l2[0].flatten().norm(), torch.tensor(1.0))
    assert torch.allclose(l2[0, 0, 0, 0], torch.tensor(0.6)) and torch.equal(l2[1], delta[1])
    assert torch.equal(project(delta, 1.0, "linf").unique(), torch.tensor([-1.0, 0.0, 0.5, 1.0]))


def test_levels_is_the_8_bit_unit():
    assert levels(255) == 1.0 and levels(8) == pytest.approx(8 / 255)


# The loop's bookkeeping, chunking, state ---------------------------------------------------------------------

def test_chunked_equals_unchunked(tiny_model, tiny_images):
    x, y = tiny_images
    for attack in (pgd(8, 2, 4, random_start=True), mi_fgsm(8, 2, 4), pgd(8, 2, 4, stop_on_success=True)):
        whole = projected_gradient(tiny_model, x, y, attack, generator=torch.Generator().manual_seed(3))
        parts = projected_gradient(tiny_model, x, y, attack, batch_size=3, generator=torch.Generator().manual_seed(3))
        assert same(whole.images, parts.images) <= 1e-6 and torch.equal(whole.steps, parts.steps)
    targets = torch.tensor([1, 2, 3, 4])
    whole = fooling_image(tiny_model, x, targets, Fooling(lr=5, max_iter=20))
    parts = fooling_image(tiny_model, x, targets, Fooling(lr=5, max_iter=20), batch_size=1)
    assert same(whole.images, parts.images) <= 1e-6 and torch.equal(whole.steps, parts.steps)


def test_model_state_is_restored(tiny_model, tiny_images):
    x, y = tiny_images
    tiny_model.train()
    weight = tiny_model.net.fc.weight
    weight.requires_grad_(True)
    projected_gradient(tiny_model, x, y, pgd(4, 1, 2))
    assert tiny_model.training and weight.requires_grad and weight.grad is None


def test_steps_count_first_success_and_stop(tiny_model, tiny_images):
    x, y = tiny_images
    with torch.no_grad():
        already = tiny_model(x).argmax(1) != y
    run = projected_gradient(tiny_model, x, y, pgd(16, 4, 8, random_start=False, stop_on_success=True))
    assert (run.steps[already] == 0).all()  # misclassified before any step: success at step 0, left unchanged
    assert torch.equal(run.images[already], x[already])
    with torch.no_grad():
        fooled = tiny_model(run.images).argmax(1) != y
    assert torch.equal(fooled, run.steps >= 0)


# The lab's fooling image on the real SqueezeNet ----------------------------------------------------------------

@pytest.mark.slow
def test_fooling_image_reaches_the_target(squeezenet, course_images):
    x = course_images.images[[1, 4]]  # the lab's quail, and a second image
    targets = torch.tensor([6, 6])  # stingray
    result = fooling_image(squeezenet, x, targets, Fooling(lr=1.0, max_iter=100))
    with torch.no_grad():
        probs = squeezenet(result.images).softmax(1)
    assert (probs.argmax(1) == 6).all()
    assert ((result.steps > 0) & (result.steps <= 100)).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    # kappa: keep going until the target holds at least 0.9 of the probability
    margin = fooling_image(squeezenet, x[:1], targets[:1], Fooling(lr=1.0, max_iter=100, kappa=0.9))
    with torch.no_grad():
        assert squeezenet(margin.images).softmax(1)[0, 6] >= 0.9
    assert margin.steps[0] >= result.steps[0]


def test_fooling_step_is_taken_in_normalised_space():
    """One step of lr moves the normalised image by exactly lr in L2 (the lab's rule), not the pixel image."""
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2))
    torch.manual_seed(0)
    model = wrap("lin", net, mean=(0.5, 0.5, 0.5), std=(0.2, 0.3, 0.4))
    x = torch.full((1, 3, 4, 4), 0.5)
    target = torch.tensor([int(model(x).argmin())])
    one = fooling_image(model, x, target, Fooling(lr=0.05, max_iter=1)).images
    assert float((model.normalize(one) - model.normalize(x)).norm()) == pytest.approx(0.05, rel=1e-4)


# 8-bit storage and survival ----------------------------------------------------------------------------------

def test_quantize_equals_a_png_file_round_trip(tmp_path):
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    stored = codecs.to_uint8(x)
    for k, image in enumerate(stored):
        codecs.save_png(tmp_path / f"{k}.png", image)
        assert np.array_equal(codecs.load_png(tmp_path / f"{k}.png"), image)
        assert np.array_equal(codecs.png_roundtrip(image), image)
    assert torch.equal(codecs.quantize(x), codecs.from_uint8(stored))


def test_jpeg_erases_a_fine_perturbation():
    flat = np.full((32, 32, 3), 120, np.uint8)
    checker = flat.copy()
    checker[::2, ::2] += 2  # a one-pixel checkerboard of two levels: the kind of detail JPEG drops
    assert metrics.linf_levels(flat, codecs.jpeg_roundtrip(checker, 90)) < 2
    assert metrics.linf_levels(flat, codecs.png_roundtrip(checker)) == 2


class Threshold(nn.Module):
    """Class 1 when the mean value exceeds ``cut`` (pixel units), else class 0; 10 classes in all."""

    def __init__(self, cut: float):
        super().__init__()
        self.cut = cut
        self.bias = nn.Parameter(torch.zeros(10))  # a parameter, so frozen_eval has something to freeze

    def forward(self, z):
        logits = self.bias.expand(len(z), 10).clone()
        logits[:, 1] = 1e4 * (z.flatten(1).mean(1) - self.cut)
        return logits


def threshold_model(cut_level: float):
    return wrap("threshold", Threshold(cut_level / 255), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


def test_success_judged_on_the_stored_image():
    """An image 0.3 levels above a gray of 100 fools a model cut at 100.2 levels as floats, but rounds back to 100."""
    model = threshold_model(100.2)
    x, y = torch.full((1, 3, 8, 8), 100 / 255), torch.tensor([0])
    attack = Attack("linf", 0.3, 0.3, 1, stop_on_success=True)
    assert projected_gradient(model, x, y, attack).steps.item() == 1
    assert projected_gradient(model, x, y, attack, stored_as=codecs.quantize).steps.item() == -1
    # with a full level of budget the rounded image keeps the change and counts
    bigger = Attack("linf", 1.0, 1.0, 1, stop_on_success=True)
    assert projected_gradient(model, x, y, bigger, stored_as=codecs.quantize).steps.item() == 1


def _context(tmp_path, images, labels, models: dict, **section):
    from netviz.config import load_config
    from netviz.data import ImageSet
    from netviz.executors import JobRunner, LocalExecutor
    from netviz.experiments.context import Context
    from netviz.jobs import JobStore
    from netviz.models import LoadedModel

    config = load_config()
    config["models"]["names"] = list(models)
    config["adversarial"].update({"fooling_images": [], **section})  # [] = all of these few images
    image_set = ImageSet(images, labels, [str(int(v)) for v in labels], [str(i) for i in range(len(labels))],
                         [[] for _ in labels])
    for sub in ("results", "figures"):
        (tmp_path / sub).mkdir()
    load = lambda name: LoadedModel(models[name], "", "")  # noqa: E731
    device = torch.device("cpu")
    runner = JobRunner("adversarial", LocalExecutor(load, device), JobStore(tmp_path / "results", "adversarial"),
                       {}, image_set, log=lambda _: None)  # the section's jobs, run here and stored as a real run does
    return Context("adversarial", config, device, image_set, load, tmp_path / "results", tmp_path / "figures",
                   "figures/adversarial", run_jobs=runner)


def test_survival_is_judged_on_the_stored_files(tmp_path):
    """The lab's method crosses the cut by less than half a level: it fools as floats, not once stored as 8 bits."""
    from netviz.experiments import adversarial as experiment

    x, y = torch.full((2, 3, 8, 8), 100 / 255), torch.tensor([0, 0])
    ctx = _context(tmp_path, x, y, {"threshold": threshold_model(100.1)})
    run = experiment.Run(ctx)
    # the gradient of a mean is uniform, so a step of lr in L2 over 192 values moves each by lr/sqrt(192):
    # lr = 0.01 moves each value by 0.18 levels, past the cut at 100.1 but rounding back to 100
    result = experiment.fooling_set(run, "threshold", [0, 1], 1, Fooling(lr=0.01, max_iter=5), "t")
    summary = result["summary"]
    assert summary["success_float"] == 1.0 and summary["success_png"] == 0.0 and summary["survive_png"] == 0.0
    row = result["per_image"][0]
    stored = codecs.load_png(tmp_path / "results" / "images" / row["file"].rsplit("/", 1)[-1])
    assert np.array_equal(stored, codecs.to_uint8(x[:1])[0]) and row["linf"] == 0


def test_experiment_runs_end_to_end_on_tiny_models(tmp_path, tiny_images):
    """The whole section on two tiny models: every number comes from files it wrote and read back."""
    from netviz.experiments import adversarial as experiment
    from conftest import TinyNet

    x = codecs.quantize(torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(2)))  # 8-bit, like photos
    y = torch.tensor([0, 1, 2, 3, 4])
    torch.manual_seed(1)
    models = {"tiny_a": wrap("tiny_a", TinyNet()), "tiny_b": wrap("tiny_b", TinyNet())}
    with torch.no_grad():  # make the clean predictions right, so that every image is attacked
        y = models["tiny_a"](x).argmax(1)
    ctx = _context(tmp_path, x, y, models, fooling_shown=[1], fooling_target=6, fooling_max_iter=5, fooling_lr=5.0,
                   eps_grid=[1.0, 8.0], eps_grid_l2=[64.0], steps=2, transfer_steps=2, kappa_compare=0.5,
                   transfer_attacks=["fgsm", "pgd_l2"])
    results = experiment.run(ctx)
    assert not any(m.training for m in models.values())  # shared models come back in eval mode
    assert set(results["sweep"]) == set(models)
    sweep = results["sweep"]["tiny_a"]["attacks"]["pgd_linf"]
    assert [r["eps"] for r in sweep["rows"]] == [1.0, 8.0]
    assert sweep["rows"][0]["success"] <= sweep["rows"][1]["success"]
    assert all(r["linf"] <= r["eps"] for r in sweep["per_image"] if r["eps"] is not None)  # integer budgets: no rounding excess
    for r in sweep["per_image"]:
        if r["eps"] is not None:  # every counted success is a stored file that fools the model when read back
            stored = codecs.load_png(tmp_path / "results" / "images" / r["file"].rsplit("/", 1)[-1])
            with torch.no_grad():
                assert int(models["tiny_a"](codecs.from_uint8(stored[None])).argmax()) != int(y[r["index"]])
    fgsm_a = results["transfer"]["fgsm"]["tiny_a"]
    for row in fgsm_a["per_image"]:
        stored = codecs.load_png(tmp_path / "results" / "images" / row["file"].rsplit("/", 1)[-1])
        with torch.no_grad():
            pred = int(models["tiny_b"](codecs.from_uint8(stored[None])).argmax())
        assert pred == row["png"]["tiny_b"]["pred"]
        assert row["linf"] <= 8
    assert results["transfer"]["pgd_l2"]["tiny_a"]["spec"]["norm"] == "l2"
    bound = 256 + 0.5 * np.sqrt(3 * 32 * 32)  # rounding moves each value by at most half a level
    assert all(r["l2"] <= bound for r in results["transfer"]["pgd_l2"]["tiny_a"]["per_image"])
    assert {r["variant"] for r in results["shown"]} == {"lab", "kappa"}
    for path in results["figures"].values():
        assert (tmp_path / "figures" / path.rsplit("/", 1)[-1]).exists()
    # the JPEG quality is read only by the judging jobs: a re-run with another re-uses every clean and attack job
    executor, ran = ctx.run_jobs.executor, []
    run_jobs = executor.run
    executor.run = lambda jobs, images: (ran.extend(j.kind for j in jobs), run_jobs(jobs, images))[1]
    ctx.config["adversarial"]["jpeg_quality"] = 40
    again = experiment.run(ctx)
    assert ran and set(ran) == {"judge"}
    def png_only(rows):  # what the JPEG quality cannot change
        return [{k: v for k, v in r.items() if k not in ("jpeg", "success_jpeg")} for r in rows]

    assert png_only(again["fooling"]["tiny_a"]["per_image"]) == png_only(results["fooling"]["tiny_a"]["per_image"])


def test_unknown_attack_is_refused(tmp_path, tiny_images):
    from netviz.errors import NetvizError
    from netviz.experiments import adversarial as experiment

    x, y = tiny_images
    ctx = _context(tmp_path, x, y, {"tiny": wrap("tiny", nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10)))},
                   attacks=["pgd_linf", "cw"])
    with pytest.raises(NetvizError, match="unknown attack 'cw'"):
        experiment.Run(ctx)


def test_perturbation_metrics_on_a_hand_made_change():
    original = np.full((16, 16, 3), 100, np.uint8)
    changed = original.copy()
    changed[0, 0, 0], changed[5, 5, 1] = 103, 96  # +3 and -4 levels
    assert metrics.linf_levels(original, changed) == 4
    assert metrics.l2_levels(original, changed) == pytest.approx(5)
    assert metrics.relative_l2(original, changed) == pytest.approx(5 / (100 * np.sqrt(16 * 16 * 3)))
    assert metrics.ssim(original, original) == pytest.approx(1.0) and metrics.ssim(original, changed) < 1
    assert metrics.attack_success(6, 6, targeted=True) and metrics.attack_success(5, 6, targeted=False)


def test_image_indices_beyond_a_small_set_say_how_to_fix_them(tmp_path, tiny_model, tiny_images):
    """A folder of 4 photographs with the default config (which names the course images 0..9): one line that says
    which key and how to set it, from the section's one settings check."""
    from netviz.errors import NetvizError
    from netviz.experiments.adversarial import read_settings

    x, y = tiny_images
    for sub in "abc":
        (tmp_path / sub).mkdir()
    with pytest.raises(NetvizError, match=r"fooling_images has image index 4, but there are 4 images \(0\.\.3\); "
                                          r"use indices in that range, e\.g\. --set 'adversarial\.fooling_images=\[\]'"):
        read_settings(_context(tmp_path / "a", x, y, {"tiny": tiny_model}, fooling_images=list(range(10))))
    with pytest.raises(NetvizError, match=r"--set 'adversarial\.fooling_shown=\[0\]'$"):
        read_settings(_context(tmp_path / "b", x, y, {"tiny": tiny_model}, fooling_shown=[7]))
    assert read_settings(_context(tmp_path / "c", x, y, {"tiny": tiny_model}, fooling_shown=[3])).fooling_shown == (3,)
