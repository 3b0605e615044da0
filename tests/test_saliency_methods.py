"""Saliency methods against Captum's own output, deletion/insertion on a model with a known answer, the
randomization check, chunking, model state, and the section end to end on a tiny model and user-like images."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from netviz import metrics
from netviz.methods import attribution as A
from netviz.methods.baselines import black, blurred, gaussian_blur, substrate
from netviz.methods.perturbation import perturbation_curve, perturbed, saliency_ranks
from netviz.methods.randomization import cascading_randomization, stage_sizes, weight_layers
from netviz.models import wrap

from conftest import TinyNet

ATOL = 1e-5


def captum_map(attribution: torch.Tensor) -> torch.Tensor:
    """The reduction every pixel-space map uses: |·|, max over channels."""
    return attribution.detach().abs().amax(dim=1)


def relative_close(a: torch.Tensor, b: torch.Tensor, tol: float = ATOL) -> bool:
    """Equal within ``tol`` relative to the larger map's scale (maps are in logit units of any size)."""
    a, b = a.detach(), b.detach()
    scale = max(float(a.abs().max()), float(b.abs().max()), 1e-12)
    return float((a - b).abs().max()) <= tol * scale


# --- each method equals Captum's ---------------------------------------------------------------------------------

def test_gradient_equals_captum_saliency(tiny_model, tiny_images):
    from captum.attr import Saliency

    x, y = tiny_images
    ours = A.as_map(A.gradient)(tiny_model, x, y)
    theirs = Saliency(tiny_model).attribute(x.clone(), target=y, abs=True).amax(dim=1)
    assert ours.shape == (4, 32, 32)
    assert relative_close(ours, theirs)


def test_smoothgrad_equals_captum_noise_tunnel_with_the_same_noise(tiny_model, tiny_images, monkeypatch):
    from captum.attr import NoiseTunnel, Saliency

    x, y = tiny_images
    samples, sigma, seed = 5, 0.2, 3
    ours = A.smoothgrad(A.gradient, sigma=sigma, samples=samples, seed=seed)(tiny_model, x, y)

    # Captum draws all noise in one torch.normal call, image-major (image i, sample s at row i*samples + s);
    # hand it the draws our wrapper makes (one N×3×H×W standard-normal draw per sample from its seeded generator).
    generator = torch.Generator().manual_seed(seed)
    draws = torch.stack([torch.randn(x.shape, generator=generator) for _ in range(samples)], dim=1)
    monkeypatch.setattr(torch, "normal", lambda mean, std: draws.reshape(-1, *x.shape[1:]) * std + mean)
    theirs = NoiseTunnel(Saliency(tiny_model)).attribute(x.clone(), nt_type="smoothgrad", nt_samples=samples,
                                                         nt_samples_batch_size=samples, stdevs=sigma, target=y, abs=False)
    monkeypatch.undo()
    assert relative_close(ours, theirs)
    assert relative_close(A.channel_max_abs(ours), captum_map(theirs))


def test_smoothgrad_with_image_seeds_does_not_depend_on_the_other_images(tiny_model, tiny_images):
    """Per-image seeds: an image's SmoothGrad is the same alone, in a batch, or in another order; the seeds come from
    the image's position in its set, and two positions get different noise."""
    x, y = tiny_images
    seeds = A.image_seeds(0, range(4))
    assert len(set(seeds)) == 4 and A.image_seeds(0, [2]) == [seeds[2]] and A.image_seeds(1, [2]) != [seeds[2]]
    together = A.smoothgrad(A.gradient, 0.2, 3, seed=seeds)(tiny_model, x, y)
    alone = A.smoothgrad(A.gradient, 0.2, 3, seed=seeds[2:3])(tiny_model, x[2:3], y[2:3])
    reordered = A.smoothgrad(A.gradient, 0.2, 3, seed=seeds[::-1])(tiny_model, x.flip(0), y.flip(0))
    assert torch.allclose(together[2:3], alone, atol=1e-6) and torch.allclose(together, reordered.flip(0), atol=1e-6)
    same_noise_for_all = A.smoothgrad(A.gradient, 0.2, 3, seed=[seeds[0]] * 4)(tiny_model, x, y)
    assert not torch.allclose(together[1:], same_noise_for_all[1:], atol=1e-4)
    with pytest.raises(ValueError, match="3 image seeds for 4 images"):
        A.smoothgrad(A.gradient, 0.2, 1, seed=seeds[:3])(tiny_model, x, y)


def test_smoothgrad_averages_out_noise_and_leaves_global_rng_alone(tiny_model, tiny_images):
    x, y = tiny_images
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = A.smoothgrad(A.gradient, 0.1, 3, seed=0)(tiny_model, x, y)
    b = A.smoothgrad(A.gradient, 0.1, 3, seed=0)(tiny_model, x, y)
    c = A.smoothgrad(A.gradient, 0.1, 3, seed=1)(tiny_model, x, y)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("baseline", [black, blurred(3.0)], ids=["black", "blur"])
def test_integrated_gradients_equals_captum(tiny_model, tiny_images, baseline):
    from captum.attr import IntegratedGradients

    x, y = tiny_images
    ours = A.integrated_gradients(tiny_model, x, y, steps=12, baseline=baseline)
    theirs = IntegratedGradients(tiny_model).attribute(x.clone(), baselines=baseline(x), target=y, n_steps=12)
    assert relative_close(ours, theirs)
    assert relative_close(A.channel_max_abs(ours), captum_map(theirs))


def test_integrated_gradients_is_complete_on_a_linear_model():
    # score = w·x is linear, so IG's attributions are exactly (x - x')·w and sum to score(x) - score(x')
    torch.manual_seed(0)
    model = wrap("linear", nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4)))
    x, y = torch.rand(3, 3, 8, 8), torch.tensor([0, 1, 3])
    attr = A.integrated_gradients(model, x, y, steps=4)
    with torch.no_grad():
        gap = model(x)[torch.arange(3), y] - model(torch.zeros_like(x))[torch.arange(3), y]
    assert torch.allclose(attr.flatten(1).sum(1), gap, atol=1e-4)


def test_guided_backprop_equals_captum(tiny_model, tiny_images):
    from captum.attr import GuidedBackprop

    x, y = tiny_images
    ours = A.guided_backprop(tiny_model, x, y)
    theirs = GuidedBackprop(tiny_model).attribute(x.clone(), target=y)
    assert relative_close(ours, theirs)
    assert not torch.allclose(ours, A.gradient(tiny_model, x, y))  # the rule did change the backward pass


class TinyNet6(TinyNet):
    """TinyNet with ReLU6 (as EfficientNet-Lite uses) instead of ReLU."""

    def __init__(self):
        super().__init__()
        self.features[1], self.features[4] = nn.ReLU6(), nn.ReLU6()


def test_guided_backprop_also_rectifies_relu6(tiny_images):
    # Captum's GuidedBackprop hooks nn.ReLU only. With activations below 6, a ReLU6 net computes the same function
    # as its ReLU twin, so its guided map must equal Captum's on the twin.
    from captum.attr import GuidedBackprop

    x, y = tiny_images
    torch.manual_seed(0)
    relu_net = TinyNet()
    relu6_net = TinyNet6()
    relu6_net.load_state_dict(relu_net.state_dict())
    relu, relu6 = wrap("tiny", relu_net), wrap("tiny6", relu6_net)
    assert float(relu.net.features(relu.normalize(x)).max()) < 6
    ours = A.guided_backprop(relu6, x, y)
    assert relative_close(ours, GuidedBackprop(relu).attribute(x.clone(), target=y))
    assert not relative_close(ours, GuidedBackprop(relu6).attribute(x.clone(), target=y), tol=1e-3)  # Captum alone: plain gradient


def test_grad_cam_equals_captum_upsampled(tiny_model, tiny_images):
    from captum.attr import LayerAttribution, LayerGradCam

    x, y = tiny_images
    ours = A.grad_cam(tiny_model, x, y, layer="features")
    coarse = LayerGradCam(tiny_model, tiny_model.layer("features")).attribute(x.clone(), target=y, relu_attributions=True)
    theirs = LayerAttribution.interpolate(coarse, (32, 32), "bilinear").squeeze(1)
    assert ours.shape == (4, 32, 32) and coarse.shape == (4, 1, 16, 16)
    assert relative_close(ours, theirs)
    assert float(ours.min()) >= 0


@pytest.mark.slow
def test_real_squeezenet_maps_equal_captum(squeezenet, course_images):
    from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam, Saliency

    x, y = course_images.images[:2], course_images.labels[:2]
    assert squeezenet.target_layer == "features"
    assert relative_close(A.as_map(A.gradient)(squeezenet, x, y),
                          Saliency(squeezenet).attribute(x.clone(), target=y, abs=True).amax(1))
    assert relative_close(A.as_map(A.guided_backprop)(squeezenet, x, y),
                          captum_map(GuidedBackprop(squeezenet).attribute(x.clone(), target=y)))
    from captum.attr import IntegratedGradients

    blur = blurred(10.0)
    assert relative_close(A.integrated_gradients(squeezenet, x, y, steps=4, baseline=blur),
                          IntegratedGradients(squeezenet).attribute(x.clone(), baselines=blur(x), target=y, n_steps=4))
    coarse = LayerGradCam(squeezenet, squeezenet.layer()).attribute(x.clone(), target=y, relu_attributions=True)
    cam = A.grad_cam(squeezenet, x, y)
    assert coarse.shape[-2:] == (13, 13) and cam.shape == (2, 224, 224)
    assert relative_close(cam, LayerAttribution.interpolate(coarse, (224, 224), "bilinear").squeeze(1))


# --- chunking and model state ----------------------------------------------------------------------------------

def small_suite():
    return A.standard_methods(smoothgrad_sigma=0.1, smoothgrad_samples=2, ig_steps=3, ig_blur_sigma=2.0)


@pytest.mark.parametrize("name", list(small_suite()))
def test_chunked_equals_unchunked(tiny_model, tiny_images, name):
    kind, method = small_suite()[name]
    x, y = tiny_images
    whole = method(tiny_model, x, y, batch_size=None)
    pieces = method(tiny_model, x, y, batch_size=3)  # chunks of 3 and 1 images
    assert whole.shape == pieces.shape == ((4, 3, 32, 32) if kind == "attribution" else (4, 32, 32))
    assert relative_close(whole, pieces, tol=1e-6)


def model_state(model: nn.Module) -> dict:
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                   len(m._backward_pre_hooks)) for m in model.modules()],
        "params": [p.detach().clone() for p in model.parameters()],
    }


def assert_same_state(a: dict, b: dict) -> None:
    assert a["training"] == b["training"] and a["requires_grad"] == b["requires_grad"] and a["hooks"] == b["hooks"]
    assert all(torch.equal(p, q) for p, q in zip(a["params"], b["params"]))


@pytest.mark.parametrize("name", list(small_suite()))
def test_model_state_is_restored(tiny_images, name):
    torch.manual_seed(0)
    model = wrap("tiny", TinyNet())
    model.train()
    model.net.fc.requires_grad_(True)  # a mixed state that frozen_eval must put back exactly
    before = model_state(model)
    _, method = small_suite()[name]
    method(model, *tiny_images, batch_size=2)
    assert_same_state(before, model_state(model))


@pytest.mark.parametrize("method", [A.guided_backprop, A.grad_cam, A.integrated_gradients], ids=["gbp", "cam", "ig"])
def test_model_state_is_restored_after_an_error(tiny_model, tiny_images, method):
    x, _ = tiny_images
    before = model_state(tiny_model)
    with pytest.raises(Exception):
        method(tiny_model, x, torch.tensor([0, 1, 2, 99]))  # class 99 does not exist
    assert_same_state(before, model_state(tiny_model))


# --- deletion and insertion on a model with a known answer ----------------------------------------------------

class KeptPixels(nn.Module):
    """Two classes; P(class 0) = share of the pixels in ``important`` (a set of pixel indices) still equal to
    the image's value 1 (mean over channels), clamped to [eps, 1 - eps]. Images are all ones, substrates zero."""

    def __init__(self, important: list[int], eps: float = 1e-7):
        super().__init__()
        self.important, self.eps = torch.tensor(important), eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kept = x.mean(1).flatten(1)[:, self.important].mean(1).clamp(self.eps, 1 - self.eps)
        return torch.stack([kept.log(), (1 - kept).log()], dim=1)  # softmax gives (kept, 1 - kept)


def toy_curves(saliency: torch.Tensor, important: list[int], mode: str, fractions: list[float]) -> np.ndarray:
    images = torch.ones(1, 3, 4, 4)
    ranks = saliency_ranks(saliency.view(1, 4, 4))
    return perturbation_curve(KeptPixels(important), images, torch.zeros_like(images), ranks, torch.tensor([0]),
                              fractions, mode, batch_size=2)[0].numpy()


def test_deletion_and_insertion_auc_on_a_toy_model_with_a_known_answer():
    # 16 pixels, 4 of them matter (indices 0, 5, 10, 15); 4 steps of 4 pixels (fractions 0, 1/4, ..., 1).
    important, fractions = [0, 5, 10, 15], [0, 0.25, 0.5, 0.75, 1]
    perfect = torch.zeros(16)
    perfect[important] = torch.tensor([4.0, 3.0, 2.0, 1.0])  # ranks the 4 important pixels first
    perfect[[1, 2, 3, 4, 6, 7, 8, 9, 11, 12, 13, 14]] = torch.linspace(0.9, 0.1, 12)
    worst = -perfect  # ranks them last
    # Deletion, perfect map: the first step removes all 4 important pixels -> P = 1, 0, 0, 0, 0;
    # trapezoids of width 1/4: (1 + 0)/2 * 1/4 = 0.125. Worst map: P = 1, 1, 1, 1, 0 -> 3/4 + 1/8 = 0.875.
    # Insertion mirrors it: perfect 0, 1, 1, 1, 1 -> 0.875; worst 0, 0, 0, 0, 1 -> 0.125.
    expected = {("deletion", "perfect"): ([1, 0, 0, 0, 0], 0.125), ("deletion", "worst"): ([1, 1, 1, 1, 0], 0.875),
                ("insertion", "perfect"): ([0, 1, 1, 1, 1], 0.875), ("insertion", "worst"): ([0, 0, 0, 0, 1], 0.125)}
    for (mode, which), (curve, auc) in expected.items():
        got = toy_curves(perfect if which == "perfect" else worst, important, mode, fractions)
        np.testing.assert_allclose(got, curve, atol=1e-6)
        assert metrics.curve_auc(got, fractions) == pytest.approx(auc, abs=1e-6)


def test_partial_steps_and_uneven_fractions_on_the_toy_model():
    # fractions 0, 1/16, 1/8, 1/2, 1 (1, 2, 8, 16 pixels); a map ranking the important pixels 1st, 3rd, 5th, 7th
    important = [0, 5, 10, 15]
    saliency = torch.zeros(16)
    order = [0, 1, 5, 2, 10, 3, 15, 4, 6, 7, 8, 9, 11, 12, 13, 14]  # most salient first
    saliency[order] = torch.arange(16, 0, -1, dtype=torch.float32)
    fractions = [0, 1 / 16, 1 / 8, 1 / 2, 1]
    # deleting 1, 2, 8, 16 pixels removes 1, 1, 4, 4 important ones: P = 1, 3/4, 3/4, 0, 0
    got = toy_curves(saliency, important, "deletion", fractions)
    np.testing.assert_allclose(got, [1, 0.75, 0.75, 0, 0], atol=1e-6)
    by_hand = (1 + 0.75) / 2 / 16 + 0.75 / 16 + (0.75 + 0) / 2 * (3 / 8) + 0
    assert metrics.curve_auc(got, fractions) == pytest.approx(by_hand, abs=1e-6)


def test_saliency_ranks_order_and_seeded_tie_breaking():
    maps = torch.tensor([[[0.1, 0.9], [0.5, 0.3]]])
    assert saliency_ranks(maps).tolist() == [[3, 0, 1, 2]]
    flat = torch.zeros(1, 8, 8)
    a, b, c = saliency_ranks(flat, seed=0), saliency_ranks(flat, seed=0), saliency_ranks(flat, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sorted(a[0].tolist()) == list(range(64))  # a permutation
    assert not torch.equal(a[0], torch.arange(64))  # ties are not broken in scan order


def test_perturbed_swaps_exactly_the_top_pixels():
    image, sub = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    ranks = torch.tensor([[2, 0, 3, 1]])
    deleted = perturbed(image, sub, ranks, 0.5, "deletion")
    assert deleted[0, :, 0, 1].eq(0).all() and deleted[0, :, 1, 1].eq(0).all() and deleted.sum() == 6
    inserted = perturbed(image, sub, ranks, 0.25, "insertion")
    assert inserted.sum() == 3 and inserted[0, :, 0, 1].eq(1).all()


# --- randomization sanity check --------------------------------------------------------------------------------

def test_stage_sizes():
    assert stage_sizes(20, [0.0, 0.25, 1.0]) == [1, 5, 20]
    with pytest.raises(ValueError):
        stage_sizes(20, [0.5, 0.25])


def test_cascading_randomization_leaves_the_model_alone(tiny_model):
    before = model_state(tiny_model)
    torch.manual_seed(5)
    rng = torch.random.get_rng_state()
    names = weight_layers(tiny_model)
    assert names == ["net.features.0", "net.features.3", "net.fc"]
    stages = []
    for k, layers, randomized in cascading_randomization(tiny_model, [0.0, 0.5, 1.0], seed=0):
        changed = [n for n, m in randomized.named_modules() if n in names
                   and not torch.equal(m.weight, tiny_model.get_submodule(n).weight)]
        stages.append((k, layers, sorted(changed)))
        assert not randomized.training and not any(p.requires_grad for p in randomized.parameters())
    assert stages == [(1, ["net.fc"], ["net.fc"]), (2, ["net.fc", "net.features.3"], sorted(["net.fc", "net.features.3"])),
                      (3, names[::-1], sorted(names))]
    assert_same_state(before, model_state(tiny_model))
    assert torch.equal(torch.random.get_rng_state(), rng)


def gradient_similarity(model, x, y, fractions) -> list[float]:
    original = A.as_map(A.gradient)(model, x, y).numpy()
    out = []
    for _, _, randomized in cascading_randomization(model, fractions, seed=0):
        maps = A.as_map(A.gradient)(randomized, x, y).numpy()
        out.append(float(np.mean([metrics.rank_correlation(a, b, flat=0.0) for a, b in zip(original, maps)])))
    return out


def test_randomization_drops_gradient_similarity_on_a_small_model(tiny_model, tiny_images):
    x, y = tiny_images
    same = gradient_similarity(tiny_model, x, y, [])  # no stage: nothing to compare
    assert same == []
    rho = gradient_similarity(tiny_model, x, y, [0.0, 1.0])
    assert rho[-1] < 0.5, rho  # all weights re-drawn: the ranking of pixels is mostly gone
    # the center prior ignores the model: identical maps, correlation 1
    prior = metrics.center_prior((32, 32))
    assert metrics.rank_correlation(prior, prior) == pytest.approx(1.0)


@pytest.mark.slow
def test_randomization_drops_gradient_similarity_on_real_squeezenet(squeezenet, course_images):
    x, y = course_images.images[:2], course_images.labels[:2]
    rho = gradient_similarity(squeezenet, x, y, [0.0, 1.0])
    assert rho[-1] < rho[0] - 0.1 and rho[-1] < 0.7, rho  # a clear drop, though a random net keeps some image structure


# --- metrics and baselines -------------------------------------------------------------------------------------

def test_energy_in_boxes():
    box = [(0, 0, 10, 20)]  # 200 of 400 pixels
    assert metrics.energy_in_boxes(np.ones((20, 20)), box) == pytest.approx(metrics.box_area_fraction(box, (20, 20)))
    inside = np.zeros((20, 20))
    inside[5, 5] = 2.0
    inside[15, 15] = -3.0  # negative mass is ignored
    assert metrics.energy_in_boxes(inside, box) == pytest.approx(1.0)
    inside[5, 15] = 2.0
    assert metrics.energy_in_boxes(inside, box) == pytest.approx(0.5)
    assert math.isnan(metrics.energy_in_boxes(np.zeros((20, 20)), box))


def test_curve_auc_and_similarity_metrics():
    assert metrics.curve_auc([1, 0.5, 0]) == pytest.approx(0.5)
    assert metrics.curve_auc([0, 1], [0, 1]) == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    a = rng.random((16, 16))
    assert metrics.rank_correlation(a, a**3) == pytest.approx(1.0)  # monotone: same ranking
    assert metrics.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert math.isnan(metrics.rank_correlation(a, np.zeros_like(a)))
    assert metrics.rank_correlation(a, np.zeros_like(a), flat=0.0) == 0.0
    assert metrics.map_ssim(a, 7 * a) == pytest.approx(1.0)  # units do not matter
    assert metrics.map_ssim(a, rng.random((16, 16))) < 0.3
    assert metrics.argmax_point(metrics.center_prior((224, 224))) == metrics.center_point((224, 224))
    diff, se = metrics.paired_difference([1.0, 2.0, 3.0], [0.0, 1.0, 1.0])
    assert diff == pytest.approx(4 / 3) and se == pytest.approx(np.std([1, 1, 2], ddof=1) / np.sqrt(3))


def test_gaussian_blur_equals_torchvision():
    from torchvision.transforms.functional import gaussian_blur as tv_blur

    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    for sigma in (1.0, 4.0):
        size = 2 * math.ceil(3 * sigma) + 1
        assert torch.allclose(gaussian_blur(x, sigma), tv_blur(x, size, sigma), atol=1e-6)
    flat = torch.full((1, 3, 40, 40), 0.3)
    assert torch.allclose(gaussian_blur(flat, 10.0), flat, atol=1e-6)  # kernel clipped to the image, mean kept


def test_unknown_substrate_is_named():
    from netviz.errors import NetvizError

    with pytest.raises(NetvizError, match="unknown baseline 'white'"):
        substrate("white")


# --- the section end to end, on a tiny model and user-like images (some without boxes) -------------------------

def section_context(tmp_path, config, images, model, figures, prefix="figures/x"):
    """A Context for the section whose jobs run here, through a job store in ``tmp_path/results`` (as a run does);
    the runner is returned too, for its counts of cached jobs."""
    from netviz.executors import JobRunner, LocalExecutor
    from netviz.experiments.context import Context
    from netviz.jobs import JobStore, section_base
    from netviz.models import LoadedModel

    load = lambda name: LoadedModel(model, "", "0" * 64)  # noqa: E731
    names = config["saliency_methods"]["models"]
    runner = JobRunner("saliency_methods", LocalExecutor(load, torch.device("cpu")),
                       JobStore(tmp_path / "results", "saliency_methods"),
                       section_base("saliency_methods", "cpu", {name: "0" * 64 for name in names}), images,
                       log=lambda msg: None, progress=False)
    (tmp_path / "r").mkdir(parents=True, exist_ok=True)
    figures.mkdir(parents=True, exist_ok=True)
    ctx = Context("saliency_methods", config, torch.device("cpu"), images, load, tmp_path / "r", figures, prefix,
                  log=lambda msg: None, run_jobs=runner)
    return ctx, runner

def test_section_runs_on_user_images_with_missing_boxes(tmp_path, tiny_model):
    from netviz import store
    from netviz.config import load_config
    from netviz.data import ImageSet
    from netviz.experiments import SECTIONS, saliency_methods

    assert SECTIONS[SECTIONS.index("saliency") + 1] == "saliency_methods"
    generator = torch.Generator().manual_seed(0)
    images = ImageSet(images=torch.rand(3, 3, 32, 32, generator=generator), labels=torch.tensor([1, 2, 3]),
                      names=["a", "b", "c"], ids=["a.jpg", "b.jpg", "c.jpg"],
                      boxes=[[(0, 0, 16, 16)], [], [(8, 8, 30, 30)]])
    config = load_config(overrides=["saliency_methods.smoothgrad_samples=2", "saliency_methods.ig_steps=2",
                                    "saliency_methods.perturbation_steps=3", "saliency_methods.randomization_images=2",
                                    "saliency_methods.ig_blur_sigma=2.0", "saliency_methods.substrate_blur_sigma=2.0",
                                    "saliency_methods.num_shown=2", 'saliency_methods.models=["tiny"]'])
    ctx, _ = section_context(tmp_path, config, images, tiny_model, tmp_path / "f")
    before = model_state(tiny_model)
    out = saliency_methods.run(ctx)
    assert_same_state(before, model_state(tiny_model))
    store.write_json(tmp_path / "r" / "metrics.json", out)  # JSON-clean (no NaN, numpy types)
    json.loads((tmp_path / "r" / "metrics.json").read_text())
    result = out["models"]["tiny"]
    assert out["annotated"] == 2
    for name in [*out["methods"], out["baseline_method"]]:
        per = result["per_image"][name]
        assert per["pointing"][1] is None and per["energy"][1] is None  # image b has no box: skipped
        assert per["pointing"][0] is not None and len(per["deletion_auc"]) == 3  # deletion/insertion on all images
        assert 0 <= result["methods"][name]["insertion_auc"] <= 1
        assert len(result["methods"][name]["spearman"]) == len(config["saliency_methods"]["randomization_fractions"])
    assert len(out["fractions"]) == 4 and out["fractions"][1] == pytest.approx(1 / 9)  # quadratic spacing
    assert result["methods"]["Center prior"]["spearman"] == [1.0] * 3
    assert len(list((tmp_path / "f").glob("*.png"))) == 4
    from netviz.tables import read_table

    table = read_table(next((tmp_path / "r").glob("per_image_tiny.*")))  # Parquet or CSV
    assert len(table) == 7 * 3 and list(table.columns[:4]) == ["method", "image", "id", "label"]
    row = table[(table["method"] == "Grad-CAM") & (table["image"] == 2)].iloc[0]
    assert row["id"] == "c.jpg" and row["insertion_auc"] == result["per_image"]["Grad-CAM"]["insertion_auc"][2]
    assert table[table["image"] == 1]["pointing"].isna().all()  # image b has no box


@pytest.mark.parametrize("with_boxes", [True, False], ids=["boxes", "no-boxes"])
def test_section_renders_in_both_formats(tmp_path, tiny_model, with_boxes):
    from netviz.config import load_config
    from netviz.data import ImageSet
    from netviz.experiments import saliency_methods
    from netviz.report.derived import derive
    from netviz.report.formats import HtmlFormat, TexFormat
    from netviz.report.render import environment

    generator = torch.Generator().manual_seed(0)
    boxes = [[(0, 0, 16, 16)], [], [(8, 8, 30, 30)]] if with_boxes else [[], [], []]
    images = ImageSet(torch.rand(3, 3, 32, 32, generator=generator), torch.tensor([1, 2, 3]), ["a", "b", "c"],
                      ["a", "b", "c"], boxes)
    config = load_config(overrides=["saliency_methods.smoothgrad_samples=1", "saliency_methods.ig_steps=1",
                                    "saliency_methods.perturbation_steps=2", "saliency_methods.randomization_images=1",
                                    "saliency_methods.num_shown=1", 'saliency_methods.models=["tiny", "tiny2"]'])
    ctx, _ = section_context(tmp_path, config, images, tiny_model, tmp_path / "figures" / "saliency_methods",
                             "figures/saliency_methods")
    results = json.loads(json.dumps(saliency_methods.run(ctx)))
    derive({"sections": {"saliency_methods": results}})  # what the text states beside the stored results, as a report adds
    for fmt in (HtmlFormat(tmp_path), TexFormat(tmp_path)):
        text = environment(fmt).get_template("sections/saliency_methods.j2").render(S={"saliency_methods": results})
        assert "Guided Backprop" in text and "tiny2" in text
        assert ("In the pointing game" in text) is with_boxes
        if fmt.name == "tex":
            assert "\\subsection{" in text and "\\textbackslash" not in text  # a subsection, no double escaping


def small_section(tmp_path, tiny_model, *overrides):
    """The section on three user-like images (one without a box) with small settings, in ``tmp_path``."""
    from netviz.config import load_config
    from netviz.data import ImageSet
    from netviz.experiments import saliency_methods

    generator = torch.Generator().manual_seed(0)
    images = ImageSet(torch.rand(3, 3, 32, 32, generator=generator), torch.tensor([1, 2, 3]), ["a", "b", "c"],
                      ["a", "b", "c"], [[(0, 0, 16, 16)], [], [(8, 8, 30, 30)]])
    config = load_config(overrides=["saliency_methods.smoothgrad_samples=2", "saliency_methods.ig_steps=2",
                                    "saliency_methods.perturbation_steps=3", "saliency_methods.randomization_images=2",
                                    "saliency_methods.ig_blur_sigma=2.0", "saliency_methods.substrate_blur_sigma=2.0",
                                    'saliency_methods.models=["tiny"]', *overrides])
    ctx, runner = section_context(tmp_path, config, images, tiny_model, tmp_path / "f")
    return saliency_methods.run(ctx), runner.counts


def test_scoring_keys_rescore_from_cached_jobs(tmp_path, tiny_model):
    first, counts = small_section(tmp_path, tiny_model, "saliency_methods.tolerance_px=0")
    assert counts == {"jobs": 2, "cached": 0}  # one maps job (one shard) and one randomization job
    again, counts = small_section(tmp_path, tiny_model, "saliency_methods.tolerance_px=40",
                                  "saliency_methods.num_shown=1")
    assert counts == {"jobs": 2, "cached": 2}
    a, b = first["models"]["tiny"], again["models"]["tiny"]
    for name in [*first["methods"], first["baseline_method"]]:
        for metric in ("energy", "deletion_auc", "insertion_auc"):  # not a matter of tolerance
            assert a["per_image"][name][metric] == b["per_image"][name][metric]
        assert a["methods"][name]["spearman"] == b["methods"][name]["spearman"]
        # a 40 px tolerance around boxes that reach into every 32×32 image's middle: every map hits
        assert b["per_image"][name]["pointing"] == [1.0, None, 1.0]
    _, counts = small_section(tmp_path, tiny_model, "saliency_methods.perturbation_steps=2")
    assert counts == {"jobs": 2, "cached": 1}  # the maps job reads the steps, the randomization job does not


def test_shards_give_the_results_of_one_job(tmp_path, tiny_model):
    whole, counts = small_section(tmp_path / "a", tiny_model, "run.shard_size=0")
    assert counts["jobs"] == 2
    sharded, counts = small_section(tmp_path / "b", tiny_model, "run.shard_size=2")
    assert counts["jobs"] == 3  # images 0-1 and 2, and the randomization job
    a, b = whole["models"]["tiny"], sharded["models"]["tiny"]
    # every method, SmoothGrad included: its noise is drawn per image, whichever shard the image is in
    for name in [*whole["methods"], whole["baseline_method"]]:
        for metric, values in a["per_image"][name].items():
            assert b["per_image"][name][metric] == pytest.approx(values, abs=1e-3, nan_ok=True)
        assert b["methods"][name]["spearman"] == pytest.approx(a["methods"][name]["spearman"], abs=1e-3)
    assert b["top1"] == a["top1"] and b["cam_grid"] == a["cam_grid"] == [16, 16]


def test_jobs_for_the_bench_are_the_runs_jobs(tmp_path, tiny_model):
    from netviz.config import load_config
    from netviz.data import ImageSet
    from netviz.executors import compute, host_batch, to_batch
    from netviz.experiments import saliency_methods

    images = ImageSet(torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([1, 2]),
                      ["a", "b"], ["a", "b"], [[(0, 0, 16, 16)], []])
    config = load_config(overrides=["saliency_methods.smoothgrad_samples=1", "saliency_methods.ig_steps=1",
                                    "saliency_methods.perturbation_steps=2", "saliency_methods.randomization_images=1",
                                    "saliency_methods.randomization_fractions=[1.0]", 'saliency_methods.models=["tiny"]'])
    ctx, runner = section_context(tmp_path, config, images, tiny_model, tmp_path / "f")
    found = saliency_methods.jobs(ctx)
    assert [(j.kind, j.items) for j in found] == [("maps", (0, 1)), ("randomization", (0,))]
    stored = ctx.jobs(found)  # the maps job ran for jobs(); the randomization job runs now
    assert runner.counts == {"jobs": 3, "cached": 1}
    job = found[1]
    again = compute(job, tiny_model, to_batch(job, *host_batch(job, images), torch.device("cpu")))
    assert again["stages"] == stored[1]["stages"] == [3] and again["weight_layers"] == 3
    assert np.array_equal(again["maps"], stored[1]["maps"]) and again["maps"].shape == (1, 6, 1, 32, 32)


def test_perturbation_curve_without_inner_fractions_is_empty():
    images = torch.ones(2, 3, 4, 4)
    ranks = saliency_ranks(torch.rand(2, 4, 4))
    out = perturbation_curve(KeptPixels([0]), images, torch.zeros_like(images), ranks, torch.tensor([0, 0]), [],
                             "deletion")
    assert out.shape == (2, 0)


@pytest.mark.parametrize("override, key", [
    ('saliency_methods.perturbation_spacing="cubic"', "perturbation_spacing"),
    ('saliency_methods.target="random"', "target"),
    ('saliency_methods.insertion_substrate="white"', "insertion_substrate"),
    ("saliency_methods.randomization_fractions=[1.0, 0.25]", "randomization_fractions"),
])
def test_read_settings_names_the_bad_key(override, key):
    from types import SimpleNamespace

    from netviz.config import load_config
    from netviz.errors import NetvizError
    from netviz.experiments.saliency_methods import read_settings

    good = read_settings(SimpleNamespace(section=load_config()["saliency_methods"]))
    assert good.fractions[0] == 0 and good.fractions[-1] == 1 and len(good.fractions) == good.perturbation_steps + 1
    with pytest.raises(NetvizError, match=f"saliency_methods.{key} must"):
        read_settings(SimpleNamespace(section=load_config(overrides=[override])["saliency_methods"]))
