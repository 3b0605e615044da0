"""Gradient saliency: exact on a linear model, equal to Captum on the real SqueezeNet, batch-size invariant."""

import torch
from torch import nn

from netviz.methods.common import frozen_eval
from netviz.methods.saliency import input_gradient, vanilla_gradient
from netviz.models import wrap


def linear_classifier(classes=3, size=4):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, classes))
    return wrap("linear", net), net[1].weight.detach().view(classes, 3, size, size)


def test_linear_model_gradient_is_its_weights_over_std():
    model, weight = linear_classifier()
    images = torch.rand(2, 3, 4, 4)
    targets = torch.tensor([2, 0])
    std = model.std.view(1, 3, 1, 1)
    expected = (weight[targets] / std).abs().amax(dim=1)  # d(w·(x-m)/s)/dx = w/s, then |.| and max over channels
    torch.testing.assert_close(vanilla_gradient(model, images, targets), expected, rtol=1e-6, atol=1e-7)


def test_each_image_gets_its_own_targets_gradient(tiny_model, tiny_images):
    images, targets = tiny_images
    batched = input_gradient(tiny_model, images, targets)
    single = torch.cat([input_gradient(tiny_model, images[i : i + 1], targets[i : i + 1]) for i in range(len(images))])
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-7)


def test_chunked_equals_unchunked(tiny_model, tiny_images):
    images, targets = tiny_images
    torch.testing.assert_close(vanilla_gradient(tiny_model, images, targets, batch_size=3),
                               vanilla_gradient(tiny_model, images, targets), rtol=0, atol=1e-7)


def test_model_state_restored_after_use(tiny_images):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
    net.train()
    vanilla_gradient(net, *tiny_images)
    assert net.training and all(p.requires_grad for p in net.parameters())
    try:
        with frozen_eval(net):
            assert not net.training and not any(p.requires_grad for p in net.parameters())
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert net.training and all(p.requires_grad for p in net.parameters())


def test_squeezenet_matches_captum_and_top1(squeezenet, course_images):
    from captum.attr import Saliency

    images, labels = course_images.images, course_images.labels
    ours = vanilla_gradient(squeezenet, images, labels, batch_size=10)
    # Captum calls the same Classifier, which lays every input out channels-last for its network, in the same chunks
    # of 10, so both run the same convolution kernels on the same batch shapes: with another memory order or batch
    # size the kernels round differently (how depends on the CPU and thread count), and ties in max-pooling over
    # flat image regions then route the gradient to another pixel (seen with one thread on AMD EPYC: 0.5% of
    # pixels off by up to 2e-3).
    theirs = torch.cat([Saliency(squeezenet).attribute(images[i:i + 10], target=labels[i:i + 10], abs=True)
                        for i in range(0, len(images), 10)]).amax(dim=1)
    assert ours.shape == (25, 224, 224)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)
    with torch.inference_mode():
        top1 = squeezenet(images).argmax(1)
    assert int((top1 == labels).sum()) == 13
