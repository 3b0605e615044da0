"""What an experiment gets from the runner: its config, device, images, models and output folders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Sequence

import numpy as np
import torch

from netviz.config import section_models
from netviz.data import ImageSet
from netviz.errors import NetvizError
from netviz.jobs import Job, shards
from netviz import budget
from netviz.methods.common import PRECISIONS, autocast
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
    run_jobs: Callable[[Sequence[Job]], list[dict]] | None = None
    figures: list[str] = field(default_factory=list)
    panels: dict[str, list[dict]] = field(default_factory=dict)

    def jobs(self, jobs: Sequence[Job]) -> list[dict]:
        """Run ``jobs`` (through the job cache and the run's executor) and return their results in order."""
        if self.run_jobs is None:
            raise RuntimeError("this context has no job runner")
        return self.run_jobs(jobs)

    def shards(self, items: Sequence[int] | None = None) -> list[tuple[int, ...]]:
        """``items`` (default: every image) in shards of ``run.shard_size`` images, one job each."""
        items = list(range(len(self.images))) if items is None else list(items)
        return [tuple(items[i] for i in shard) for shard in shards(len(items), int(self.config["run"].get("shard_size", 0)))]

    @property
    def section(self) -> dict:
        return self.config[self.name]

    @property
    def seed(self) -> int:
        return int(self.config["run"]["seed"])

    @property
    def configured_batch_size(self) -> int:
        """The section's ``batch_size`` when set and not 0, else ``run.batch_size``; 0 means automatic."""
        return budget.configured_batch_size(self.config, self.name)

    @property
    def memory_budget(self) -> int:
        """The memory budget in bytes on this run's device (``run.memory_budget_gb`` / ``gpu_memory_budget_gb``)."""
        return budget.budget_bytes(self.config["run"], self.device)

    def batch_size_for(self, model, image_shape: tuple[int, int, int] | None = None) -> int:
        """Images per pass for ``model`` on images of ``image_shape`` (C×H×W, default the run's): the configured
        ``batch_size``, or when it is 0 the most that fit :attr:`memory_budget` (see
        :func:`netviz.budget.batch_size_for`; the same number on every run with the same config, model and device)."""
        return budget.batch_size_for(self.config, self.name, model, image_shape or self.images.image_shape, self.device)

    def autocast(self) -> ContextManager:
        """The section's ``precision`` ("fp32", or "bf16" for autocast in bfloat16) as a context for its
        optimisation passes (see :func:`netviz.methods.common.autocast`); evaluations stay fp32."""
        precision = self.section.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise NetvizError(f"{self.name}.precision = {precision!r} is not known; use one of {', '.join(PRECISIONS)}")
        return autocast(self.device, precision)

    @property
    def batch_size(self) -> int:
        """Images per pass that suit every model of the section (the smallest :meth:`batch_size_for`)."""
        if self.configured_batch_size > 0:
            return self.configured_batch_size
        return min(self.batch_size_for(loaded.model) for loaded in self.models().values())

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
        from netviz.plots import png_bytes

        target = self.figures_dir / filename
        target.write_bytes(png_bytes(fig, dpi))
        path = f"{self.figure_prefix}/{filename}"
        self.panels[path] = panel_boxes(fig, png_size(target))
        plt.close(fig)
        self.figures.append(path)
        return path
