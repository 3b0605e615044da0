"""Shared fixtures: the real data (the files embedded in netviz, or $NETVIZ_DATA_DIR when set) and small models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from netviz.models import wrap

REPO = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path:
    """A folder laid out as a data directory with the real files: $NETVIZ_DATA_DIR when set, else the package's
    embedded assets (which have that layout)."""
    from netviz.assets import ASSETS_DIR

    configured = os.environ.get("NETVIZ_DATA_DIR")
    return Path(configured) if configured else ASSETS_DIR


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = real_data_dir()
    assert (path / "imagenet_val_25.npz").is_file() and (path / "weights/squeezenet1_1.pth").is_file(), \
        f"the real data is missing from {path}"
    return path


@pytest.fixture(scope="session")
def course_images():
    """The course's 25 images as netviz finds them (embedded, or $NETVIZ_DATA_DIR's copy)."""
    from netviz.config import resolve_data_dir
    from netviz.data import load_course_images

    return load_course_images(resolve_data_dir({"data_dir": ""}))


@pytest.fixture(scope="session")
def squeezenet():
    """The real ImageNet SqueezeNet 1.1 (a Classifier on pixel-space input), on CPU, as netviz finds it."""
    from netviz.config import resolve_data_dir
    from netviz.models import load_model

    return load_model("squeezenet1_1", {}, resolve_data_dir({"data_dir": ""})).model


class TinyNet(nn.Module):
    """A small conv net for 3×32×32 inputs with 10 classes (random weights, seeded)."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny_model():
    """A seeded TinyNet wrapped as a Classifier (ImageNet normalisation, pixel-space input)."""
    torch.manual_seed(0)
    return wrap("tiny", TinyNet())


@pytest.fixture
def tiny_images():
    """Four random 3×32×32 images in [0, 1] and their targets."""
    generator = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 32, 32, generator=generator), torch.tensor([0, 3, 5, 9])


# A cheap but real build (SqueezeNet saliency on the 25 course images), shared by the reproducibility and
# grading tests. Tests copy it before changing anything.
CHEAP_BUILD = ['saliency.models=["squeezenet1_1"]', "saliency.num_shown=2", "run.device=\"cpu\""]


@pytest.fixture(scope="session")
def saliency_build(tmp_path_factory, data_dir) -> Path:
    """A build folder (results/, figures/) made by the runner with ``CHEAP_BUILD`` overrides."""
    from netviz.config import load_config
    from netviz.experiments.runner import run_experiments

    root = tmp_path_factory.mktemp("build")
    config = load_config(overrides=[*CHEAP_BUILD, f'run.data_dir="{data_dir}"'])
    run_experiments(config, root, only=["saliency"], log=lambda _: None)
    return root
