"""Chunking: every method family gives the same results in chunks as in one pass, and the automatic chunk size
keeps the estimated pass under the memory budget (VGG16 with random weights, small inputs)."""

import pytest
import torch
from torch import nn

from netviz.budget import (CPU_RUNTIME_BYTES, GB, SAFETY, Footprint, auto_batch_size, available_bytes,
                           batch_size_for, budget_bytes, probe_footprint, resolve_batch_size)
from netviz.models import random_model, wrap


@pytest.fixture(scope="module")
def vgg16():
    """VGG16 with seeded random weights (528 MB of weights; no download)."""
    return random_model("vgg16", seed=0)


@pytest.fixture(scope="module")
def small_batch():
    """Five random 3×32×32 images and targets (VGG16's adaptive pooling accepts 32 px)."""
    generator = torch.Generator().manual_seed(3)
    return torch.rand(5, 3, 32, 32, generator=generator), torch.tensor([1, 76, 113, 500, 999])


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float rounding (kernels for other batch sizes may sum in another order)."""
    scale = float(b.abs().max()) or 1.0
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * scale)


# --- the footprint probe and the automatic chunk size --------------------------------------------------------

def test_probe_counts_what_autograd_keeps_for_a_relu():
    # ReLU keeps its output for backward; the normalisation keeps only its own buffers (not counted per image)
    model = wrap("relu", nn.ReLU())
    footprint = probe_footprint(model, (3, 8, 8))
    assert footprint.saved == 3 * 8 * 8 * 4
    assert footprint.largest == 3 * 8 * 8 * 4
    assert footprint.fixed == 2 * 3 * 4  # the mean and std buffers
    assert footprint.per_image == footprint.saved + 2 * footprint.largest


def test_probe_scales_with_image_area_and_restores_the_model(vgg16):
    vgg16.train()
    small, large = probe_footprint(vgg16, (3, 32, 32)), probe_footprint(vgg16, (3, 64, 64))
    assert vgg16.training, "the probe must restore the model's mode"
    vgg16.eval()
    assert small.fixed == large.fixed > 500e6  # VGG16's 138 M float32 parameters
    # convolutional activations grow with the area (the classifier's part does not), so about 4x, at most 4x
    assert 3.0 < large.saved / small.saved <= 4.0


def test_auto_batch_size_is_the_largest_that_fits():
    footprint = Footprint(saved=100, largest=10, fixed=0)  # 120 bytes per image, 150 with the safety margin
    size = auto_batch_size(footprint, 1000)
    assert size == 6 and size * SAFETY * 120 <= 1000 < (size + 1) * SAFETY * 120
    assert auto_batch_size(footprint, 1000, n=4) == 4  # never more than there are images
    assert auto_batch_size(footprint, 10) == 1  # a single image is always tried


def test_vgg16_auto_chunk_stays_under_the_budget(vgg16):
    shape, budget = (3, 64, 64), int(2 * GB)
    footprint = probe_footprint(vgg16, shape)
    size = resolve_batch_size(0, vgg16, shape, budget, n=10_000)
    used = CPU_RUNTIME_BYTES + footprint.fixed + footprint.estimate(size)
    assert used <= budget < used + footprint.estimate(1)
    assert available_bytes(footprint, "cpu", budget) == budget - CPU_RUNTIME_BYTES - footprint.fixed
    assert resolve_batch_size(7, vgg16, shape, budget, n=5) == 5  # a configured size is kept (capped at n)
    assert resolve_batch_size(3, vgg16, shape, budget, n=5) == 3
    # 224 px VGG16 under the default 4 GB: passes of a dozen or more images, not 1 and not all 25 of a bigger set
    assert 8 <= resolve_batch_size(0, vgg16, (3, 224, 224), int(4 * GB), n=100) <= 30


def test_budget_and_batch_size_from_the_config(vgg16):
    """The run config gives the budget of the device the run uses, and a section's configured batch size wins over
    the run's; 0 in both means automatic under that budget."""
    from netviz.config import load_config

    config = load_config(overrides=["run.memory_budget_gb=2.5", "run.gpu_memory_budget_gb=6", "run.batch_size=0"])
    assert budget_bytes(config["run"], "cpu") == int(2.5 * GB)
    assert budget_bytes(config["run"], torch.device("cuda")) == int(6 * GB)  # a device name; no GPU needed
    shape = (3, 64, 64)
    config["saliency"]["batch_size"] = 0
    assert batch_size_for(config, "saliency", vgg16, shape, "cpu") == resolve_batch_size(0, vgg16, shape, int(2.5 * GB))
    assert batch_size_for(config, "saliency", vgg16, shape, "cpu", n=3) == 3  # automatic, capped at n
    config["run"]["batch_size"] = 4
    assert batch_size_for(config, "saliency", vgg16, shape, "cpu") == 4
    config["saliency"]["batch_size"] = 2
    assert batch_size_for(config, "saliency", vgg16, shape, "cpu") == 2

# --- chunked == unchunked, per method family ----------------------------------------------------------------

def test_saliency_chunked(vgg16, small_batch):
    from netviz.methods.saliency import vanilla_gradient

    x, y = small_batch
    close(vanilla_gradient(vgg16, x, y, batch_size=2), vanilla_gradient(vgg16, x, y))


def test_attribution_methods_chunked(vgg16, small_batch):
    from netviz.methods.attribution import standard_methods

    x, y = small_batch
    for name, (_, method) in standard_methods(smoothgrad_samples=2, ig_steps=2, ig_blur_sigma=2.0).items():
        chunked_, whole = method(vgg16, x, y, batch_size=2), method(vgg16, x, y)
        assert chunked_.shape[0] == len(x), name
        close(chunked_, whole)


def test_perturbation_curves_chunked(vgg16, small_batch):
    from netviz.methods.perturbation import perturbation_curve, saliency_ranks

    x, y = small_batch
    ranks = saliency_ranks(torch.rand(len(x), 32, 32, generator=torch.Generator().manual_seed(0)))
    substrates = torch.zeros_like(x)
    for mode in ("deletion", "insertion"):
        close(perturbation_curve(vgg16, x, substrates, ranks, y, [0.1, 0.5], mode, batch_size=3),
              perturbation_curve(vgg16, x, substrates, ranks, y, [0.1, 0.5], mode))


def test_class_visualization_chunked(vgg16, small_batch):
    from dataclasses import replace

    from netviz.methods.classviz import VizSettings, class_visualization

    _, y = small_batch
    settings = VizSettings(learning_rate=[1.0, 5.0, 5.0, 25.0, 5.0], num_iterations=3, blur_every=2, max_jitter=4,
                           image_size=32, snapshots=[1, 3])
    whole = class_visualization(vgg16, None, y, settings, seeds=[0, 1, 2, 3, 4])
    chunked_ = class_visualization(vgg16, None, y, replace(settings, batch_size=2), seeds=[0, 1, 2, 3, 4])
    close(chunked_.images, whole.images)
    close(chunked_.objective, whole.objective)
    for k in (1, 3):
        close(chunked_.snapshots[k], whole.snapshots[k])


def test_loops_in_the_benchmark_do_the_same_math(tiny_model, tiny_images):
    """The benchmark's per-image notebook loops compute what netviz computes (so its ratios compare equal work)."""
    from netviz.bench.comparisons.classviz import notebook_class_visualization
    from netviz.bench.comparisons.saliency import notebook_saliency
    from netviz.methods.classviz import VizSettings, class_visualization
    from netviz.methods.saliency import vanilla_gradient

    x, y = tiny_images
    close(notebook_saliency(tiny_model, x, y), vanilla_gradient(tiny_model, x, y))
    ours = class_visualization(tiny_model, None, y, VizSettings(learning_rate=[1.0, 2.0, 3.0, 4.0], l2_reg=1e-3,
                                                                num_iterations=4, blur_every=2, max_jitter=3, image_size=32),
                               seeds=0).images
    loop = torch.cat([notebook_class_visualization(tiny_model, int(t), lr, 1e-3, 4, 0, image_size=32, blur_every=2,
                                                   max_jitter=3) for t, lr in zip(y, [1.0, 2.0, 3.0, 4.0])])
    close(loop, ours)


def test_attacks_chunked(vgg16, small_batch):
    from netviz.methods.adversarial import Fooling, fgsm, fooling_image, mi_fgsm, pgd, projected_gradient

    x, y = small_batch
    for attack in (fgsm(8.0), pgd(8.0, 2.0, 3, random_start=True), pgd(64.0, 16.0, 2, norm="l2"),
                   mi_fgsm(8.0, 2.0, 3, stop_on_success=True)):
        run = lambda size: projected_gradient(vgg16, x, y, attack, size, torch.Generator().manual_seed(0))  # noqa: E731
        chunked_, whole = run(2), run(None)
        close(chunked_.images, whole.images)
        assert torch.equal(chunked_.steps, whole.steps), attack
    spec = Fooling(lr=1.0, max_iter=3)
    targets = torch.full((len(x),), 6)
    # Channels-last, oneDNN picks other convolution kernels for 2 and 5 images, and the fooling step (the gradient
    # scaled to unit L2 norm) amplifies their rounding on a random VGG16 to 4e-4 after 3 steps. What is tested here
    # is that chunks are independent rows, so this part runs NCHW, where the kernels differ less (2e-7).
    vgg16.use_channels_last(False)
    try:
        chunked_, whole = fooling_image(vgg16, x, targets, spec, batch_size=2), fooling_image(vgg16, x, targets, spec)
    finally:
        vgg16.use_channels_last(True)
    close(chunked_.images, whole.images)
    assert torch.equal(chunked_.steps, whole.steps)
