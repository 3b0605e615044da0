"""bf16 autocast (``precision = "bf16"`` for class visualization and the attacks): how far it moves results from
fp32 on the real SqueezeNet, and the option's plumbing. bf16 autocast runs on CPU too, so this runs everywhere."""

import pytest
import torch
from torch import nn

from netviz.config import load_config
from netviz.errors import NetvizError
from netviz.experiments.context import Context
from netviz.methods.common import autocast


def test_autocast_fp32_is_plain_and_bf16_keeps_inputs_and_gradients_fp32():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(2))
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    with autocast("cpu", "fp32"):
        assert net(x).dtype == torch.float32
    with autocast("cpu", "bf16"):
        out = net(x)
    assert out.dtype == torch.bfloat16  # the products ran in bf16 ...
    (grad,) = torch.autograd.grad(out.float().sum(), x)
    assert grad.dtype == torch.float32  # ... and the gradient comes back in the input's dtype
    with pytest.raises(ValueError, match="fp16"):
        autocast("cpu", "fp16")


def test_a_wrong_precision_in_the_config_names_the_key(tmp_path):
    config = load_config(overrides=['classviz.precision="fp16"'])
    ctx = Context("classviz", config, torch.device("cpu"), images=None, load_model=None, results_dir=tmp_path,
                  figures_dir=tmp_path, figure_prefix="figures/classviz")
    with pytest.raises(NetvizError, match=r"classviz.precision = 'fp16'.*fp32, bf16"):
        ctx.autocast()


@pytest.mark.slow
def test_class_visualization_bf16_step_is_close_and_reaches_a_similar_objective(squeezenet):
    from netviz.methods.classviz import VizSettings, class_visualization

    targets = torch.tensor([76, 78, 113, 187])
    run = lambda: class_visualization(squeezenet, None, targets, VizSettings(num_iterations=10, snapshots=[1]), seeds=0)  # noqa: E731
    fp32 = run()
    with autocast("cpu", "bf16"):
        bf16 = run()
    assert bf16.images.dtype == torch.float32 and bf16.objective.dtype == torch.float32
    first_step = (bf16.snapshots[1] - fp32.snapshots[1]).abs() * 255  # 8-bit levels
    assert first_step.mean() < 0.5, f"one bf16 step moved pixels by {first_step.mean():.2f} levels on average"
    # the ascent amplifies differences (as it does any change of its start), but the objective it reaches is close
    final32, final16 = fp32.objective[-1], bf16.objective[-1]
    assert ((final16 - final32).abs() / final32.abs()).mean() < 0.2
    assert (bf16.images >= 0).all() and (bf16.images <= 1).all()


@pytest.mark.slow
def test_pgd_bf16_keeps_the_budget_and_about_the_same_success(squeezenet, course_images):
    from netviz.methods.adversarial import levels, pgd, projected_gradient

    x, y = course_images.images[:8], course_images.labels[:8]
    attack = pgd(8.0, 2.0, 5, random_start=True)
    run = lambda: projected_gradient(squeezenet, x, y, attack, generator=torch.Generator().manual_seed(0)).images  # noqa: E731
    fp32 = run()
    with autocast("cpu", "bf16"):
        bf16 = run()
    assert bf16.dtype == torch.float32
    assert (bf16 - x).abs().max() <= levels(8.0) + 1e-6 and (bf16 >= 0).all() and (bf16 <= 1).all()
    with torch.inference_mode():
        fooled32, fooled16 = squeezenet(fp32).argmax(1) != y, squeezenet(bf16).argmax(1) != y
    assert abs(int(fooled32.sum()) - int(fooled16.sum())) <= 1
    assert (bf16 - fp32).abs().mean() * 255 < 5.0  # levels; single pixels may differ by 2ε where a sign flips
