"""Models by name: real weights where the data dir has them, clear errors where it doesn't."""

import pytest
import torch

from netviz import models, weights
from netviz.config import resolve_data_dir
from netviz.errors import NetvizError


def test_unknown_model_suggests_close_names():
    with pytest.raises(NetvizError, match=r"unknown model 'vgg61'.*vgg16"):
        weights.check_model_name("vgg61")


def test_vgg16_without_weights_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(NetvizError) as err:
        weights.resolve_weights("vgg16", {}, resolve_data_dir({"data_dir": str(tmp_path)}))
    message = str(err.value)
    assert "vgg16-397923af.pth" in message and "models.weights.vgg16" in message and "\n" not in message


def test_explicit_weights_path_must_exist(tmp_path):
    with pytest.raises(NetvizError, match="does not exist"):
        weights.resolve_weights("squeezenet1_1", {"squeezenet1_1": str(tmp_path / "nope.pth")},
                               resolve_data_dir({"data_dir": str(tmp_path)}))


def test_corrupt_weights_file(tmp_path):
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "squeezenet1_1.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(NetvizError, match="cannot be read"):
        models.load_model("squeezenet1_1", {}, resolve_data_dir({"data_dir": str(tmp_path)}))


def test_weights_of_another_model(tmp_path):
    (tmp_path / "weights").mkdir()
    torch.save(models.random_model("resnet18").net.state_dict(), tmp_path / "weights" / "squeezenet1_1.pth")
    with pytest.raises(NetvizError, match="does not fit squeezenet1_1"):
        models.load_model("squeezenet1_1", {}, resolve_data_dir({"data_dir": str(tmp_path)}))


def test_random_vgg16_is_a_frozen_pixel_space_classifier():
    model = models.random_model("vgg16", seed=0)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.target_layer == "features.29"
    assert isinstance(model.layer(), torch.nn.ReLU)
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 224, 224)).shape == (1, 1000)


def test_any_torchvision_classifier_by_name():
    model = models.random_model("mobilenet_v3_small")
    with torch.inference_mode():
        assert model(torch.rand(2, 3, 64, 64)).shape == (2, 1000)
    assert model.target_layer  # the last conv layer is found for Grad-CAM


def test_wrapper_normalises_inputs():
    model = models.random_model("squeezenet1_1")
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(model.denormalize(model.normalize(x)), x)


def test_efficientnet_lite0_loads_strictly_and_wants_x_times_2_minus_1(course_images):
    loaded = models.load_model("efficientnet_lite0")  # strict load of the renamed package weights
    x, y = course_images.images, course_images.labels
    with torch.inference_mode():
        right = int((loaded.model(x).argmax(1) == y).sum())
        # the same network fed ImageNet mean/std normalisation instead of x*2-1
        wrong_norm = models.wrap("efficientnet_lite0", loaded.model.net, models.IMAGENET_MEAN, models.IMAGENET_STD)
        wrong = int((wrong_norm(x).argmax(1) == y).sum())
    assert right == 17
    assert wrong < right


def test_device_resolution():
    assert models.resolve_device("cpu").type == "cpu"
    assert models.resolve_device("auto").type in {"cpu", "cuda"}
    if not torch.cuda.is_available():
        with pytest.raises(NetvizError, match="CUDA is not available"):
            models.resolve_device("cuda")
    with pytest.raises(NetvizError, match="unknown device"):
        models.resolve_device("tpu9")


def _unfolded_and_folded(name, net):
    import copy

    return models.wrap(name, copy.deepcopy(net), fold=False), models.wrap(name, net)


def _assert_same_function(plain, folded, x, targets):
    """Logits and input gradients of the folded model equal the plain one's up to float rounding."""
    x = x.clone().requires_grad_(True)
    logits_plain = plain(x)
    (grad_plain,) = torch.autograd.grad(logits_plain.gather(1, targets[:, None]).sum(), x)
    logits_folded = folded(x)
    (grad_folded,) = torch.autograd.grad(logits_folded.gather(1, targets[:, None]).sum(), x)
    scale = float(logits_plain.detach().abs().max())
    torch.testing.assert_close(logits_folded, logits_plain, atol=1e-4 * scale, rtol=0)
    # a gradient passes through thousands of ReLU/ReLU6 gates; the few units sitting within rounding of a kink can
    # flip, so gradients are compared as a whole (relative L2 error), not element by element
    error = float((grad_folded - grad_plain).norm() / grad_plain.norm())
    assert error < 2e-3, f"input gradients moved by {error:.2e} (relative L2)"
    assert torch.equal(logits_folded.argmax(1), logits_plain.argmax(1))


def test_batchnorm_folding_keeps_efficientnet_lite0_the_same_function(course_images):
    net, _, _ = models.build_network("efficientnet_lite0")
    net.load_state_dict(weights.read_state_dict("efficientnet_lite0", weights.resolve_weights("efficientnet_lite0", {}).path),
                        strict=True)  # the package's names, renamed to timm's
    plain, folded = _unfolded_and_folded("efficientnet_lite0", net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) == 49
    x = course_images.images[:4]
    _assert_same_function(plain, folded, x, course_images.labels[:4])
    # Grad-CAM's layer still exists and gives the same activations (batch norm + ReLU6 before, ReLU6 after folding)
    seen = {}
    for key, model in (("plain", plain), ("folded", folded)):
        handle = model.layer().register_forward_hook(lambda m, i, o, key=key: seen.__setitem__(key, o.detach()))
        with torch.inference_mode():
            model(x)
        handle.remove()
    torch.testing.assert_close(seen["folded"], seen["plain"], atol=1e-4 * float(seen["plain"].abs().max()), rtol=0)


def test_batchnorm_folding_in_torchvision_sequential_blocks():
    torch.manual_seed(0)
    net, _, _ = models.build_network("mobilenet_v3_small")
    for module in net.modules():  # trained-looking statistics, so that folding has something to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    plain, folded = _unfolded_and_folded("mobilenet_v3_small", net)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == 0
    _assert_same_function(plain, folded, torch.rand(2, 3, 64, 64), torch.tensor([3, 7]))


def test_predict_is_the_batched_softmax_of_forward_on_the_models_device():
    model = models.random_model("squeezenet1_1")
    x = torch.rand(5, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        logits = model(x)
    probs = model.predict(x, batch_size=2)  # chunks of 2, 2 and 1 rows
    assert probs.shape == (5, 1000) and probs.device == model.device and not probs.requires_grad
    torch.testing.assert_close(probs, logits.softmax(1), rtol=0, atol=1e-6)
    torch.testing.assert_close(model.predict(x, logits=True), logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(probs.sum(1), torch.ones(5))


def test_the_classifier_owns_the_input_layout():
    model = models.random_model("squeezenet1_1")
    seen = []
    model.net.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # contiguous NCHW from the caller
    channels_last = model(x)
    assert seen[-1].is_contiguous(memory_format=torch.channels_last) and not seen[-1].is_contiguous()
    model.use_channels_last(False)
    nchw = model(x.contiguous(memory_format=torch.channels_last))
    assert seen[-1].is_contiguous()
    model.forward_normalized(model.normalize(x))  # the normalized-space entry point (class visualization) too
    assert seen[-1].is_contiguous()
    torch.testing.assert_close(nchw, channels_last, rtol=0, atol=1e-4)
