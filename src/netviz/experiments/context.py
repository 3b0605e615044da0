"""What an experiment gets from the runner: its config, device, images, models and output folders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from netviz.config import section_models
from netviz.data import ImageSet
from netviz.models import LoadedModel


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class Context:
    """One experiment's view of a run.

    config: the full effective config; ``section`` is ``config[name]``.
    results_dir / figures_dir: staging folders, swapped into ``results/<name>`` and ``figures/<name>`` only
    when the experiment finishes. ``figure_prefix`` is the path figures will have once swapped in,
    relative to the project root (what the report uses).
    """

    name: str
    config: dict
    device: torch.device
    images: ImageSet
    load_model: Callable[[str], LoadedModel]
    results_dir: Path
    figures_dir: Path
    figure_prefix: str
    log: Callable[[str], None] = print
    figures: list[str] = field(default_factory=list)
    panels: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def section(self) -> dict:
        return self.config[self.name]

    @property
    def seed(self) -> int:
        return int(self.config["run"]["seed"])

    @property
    def batch_size(self) -> int:
        return int(self.section.get("batch_size", self.config["run"]["batch_size"]))

    @property
    def model_names(self) -> list[str]:
        return section_models(self.config, self.name)

    def models(self) -> dict[str, LoadedModel]:
        """The section's models, loaded (and cached across experiments of the run), in config order."""
        return {name: self.load_model(name) for name in self.model_names}

    def save_figure(self, fig, filename: str, dpi: int = 110) -> str:
        """Save a matplotlib figure into the staging folder; returns its final path (for the results).

        The pixel boxes of its panels (one per axes, see :mod:`netviz.panels`) go into the manifest, so that
        grading compares figures panel by panel."""
        import matplotlib.pyplot as plt

        from netviz.panels import panel_boxes, png_size

        target = self.figures_dir / filename
        fig.savefig(target, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
        path = f"{self.figure_prefix}/{filename}"
        self.panels[path] = panel_boxes(fig, png_size(target))
        plt.close(fig)
        self.figures.append(path)
        return path
