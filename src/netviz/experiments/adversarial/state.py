"""The driver's state: the clean predictions, the job runner, and the stored, re-read and judged image sets."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from netviz import codecs
from netviz.data import imagenet_categories
from netviz.errors import NetvizError
from netviz.experiments.adversarial.settings import Settings, read_settings
from netviz.experiments.context import Context
from netviz.jobs import Job


def verdicts(probs: torch.Tensor, labels, targets=None) -> list[dict]:
    """Per image: top-1 class and its probability, the true class's probability (and the target's)."""
    names = imagenet_categories()
    rows = []
    for i, p in enumerate(probs):
        top = int(p.argmax())
        row = {"pred": top, "pred_name": names[top], "p_pred": round(float(p[top]), 4), "p_true": round(float(p[int(labels[i])]), 4)}
        if targets is not None:
            row["p_target"] = round(float(p[int(targets[i])]), 4)
        rows.append(row)
    return rows


@dataclass
class Part:
    """One set of attacked images stored as PNGs and judged by every model: the lab's method of one model
    (``target`` set) or a transfer set. ``jobs`` make the images of ``indices`` (in order, a shard each); the
    fields below are filled by :meth:`Run.execute`."""

    tag: str
    source: str
    indices: list[int]
    jobs: list[Job]
    target: int | None = None
    results: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    stored: np.ndarray | None = None
    judged: dict = field(default_factory=dict)  # {"png": {model: verdicts}, "jpeg": ...}

    def joined(self, key: str) -> np.ndarray:
        return np.concatenate([r[key] for r in self.results])


class Run:
    """State shared by the parts of the section: its :class:`Settings` (``settings``, checked on construction),
    labels ``y``, the 8-bit images ``x8`` (N×H×W×3 uint8), the clean predictions (``clean``: N×1000 probabilities
    per model; ``correct``: N booleans), the job runner, storage and judging."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.settings: Settings = read_settings(ctx)
        self.y = ctx.images.labels
        self.x8 = codecs.to_uint8(ctx.images.images)
        self.names = list(ctx.models())
        self.batch = ctx.batch_size
        self.timings: dict[str, dict[str, float]] = {}  # stage -> wall and CPU seconds of this process
        started = clock()
        clean = self.grouped({m: [self.job("clean", m, shard) for shard in ctx.shards()] for m in self.names})
        self.clean = {m: torch.from_numpy(np.concatenate([r["probs"] for r in clean[m]])) for m in self.names}
        self.correct = {name: (p.argmax(1) == self.y).numpy() for name, p in self.clean.items()}
        self.timed("clean", started)

    def job(self, kind: str, model: str, items, **params) -> Job:
        return Job.make(self.ctx.name, kind, model, items, batch_size=self.batch, seed=self.ctx.seed, **params)

    def attack_job(self, kind: str, model: str, items, **params) -> Job:
        return self.job(kind, model, items, precision=self.settings.precision, **params)

    def grouped(self, groups: dict) -> dict:
        """Run the jobs of every group in one call (so an executor can spread them); results by group."""
        results = iter(self.ctx.jobs([job for jobs in groups.values() for job in jobs]))
        return {key: [next(results) for _ in jobs] for key, jobs in groups.items()}

    def execute(self, parts: list[Part], more: dict | None = None) -> dict:
        """Run the parts' attack jobs (with the ``more`` groups of jobs beside them), store every part's
        images and have every model judge the files read back. Returns the results of ``more``."""
        started = clock()
        done = self.grouped({**{id(p): p.jobs for p in parts}, **(more or {})})
        self.timed("attacks", started)
        for part in parts:
            part.results = done.pop(id(part))
            images = part.joined("images") if part.results else self.x8[:0]
            part.files, part.stored = self.store(f"{part.tag}_{part.source}", part.indices, images)
        started = clock()
        self.judge(parts)
        self.timed("judging", started)
        return done

    def store(self, tag: str, indices: list[int], images: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Write each adversarial image (H×W×3 uint8) as a PNG, then read the files back (what all claims use)."""
        folder = self.ctx.results_dir / "images"
        folder.mkdir(exist_ok=True)
        names = [f"{tag}_{i:02d}.png" for i in indices]
        for name, image in zip(names, images):
            codecs.save_png(folder / name, image)
        reread = np.stack([codecs.load_png(folder / name) for name in names]) if names else self.x8[:0]
        if not np.array_equal(reread, images):
            raise NetvizError(f"the PNG files {tag}_*.png read back differ from what was written; check Pillow")
        return [f"results/{self.ctx.name}/images/{name}" for name in names], reread

    def judge(self, parts: list[Part]) -> None:
        """Classify each part's stored images (and their JPEG round trips) with every model."""
        groups = {}
        for part in parts:
            for m in self.names:
                groups[(id(part), m)] = [self.job("judge", m, (), pixels=False, jpeg_quality=self.settings.jpeg_quality,
                                                  inputs={"images": part.stored[list(shard)]})
                                         for shard in self.ctx.shards(range(len(part.stored)))]
        done = self.grouped(groups)
        for part in parts:
            labels = self.y[part.indices]
            targets = None if part.target is None else torch.full((len(labels),), part.target, dtype=torch.long)
            part.judged = {kind: {m: verdicts(torch.from_numpy(np.concatenate([r[kind] for r in done[(id(part), m)]]))
                                              if done[(id(part), m)] else torch.zeros(0, 1000), labels, targets)
                                  for m in self.names} for kind in ("png", "jpeg")}

    def timed(self, key: str, started: tuple[float, float]) -> None:
        """Add the wall and CPU seconds since ``started`` (a :func:`clock` reading) to part ``key``."""
        wall, cpu = clock()
        old = self.timings.get(key, {"wall_s": 0.0, "cpu_s": 0.0})
        self.timings[key] = {"wall_s": round(old["wall_s"] + wall - started[0], 2), "cpu_s": round(old["cpu_s"] + cpu - started[1], 2)}


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds: CPU time shows the cost when other jobs share the cores."""
    return time.perf_counter(), time.process_time()
