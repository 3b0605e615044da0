"""The section's job computations, run by the executors without files: "optimise" (a model makes its images,
:func:`optimise`) and "score" (a model judges images, :func:`judge`); :func:`compute` runs either."""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from netviz.jobs import Batch, Job, dispatch
from netviz.methods.classviz import VizSettings, class_visualization
from netviz.methods.common import autocast


def progress_bar(label: str):
    """A tqdm wrapper for the iteration loop when stderr is a terminal; None (quiet) otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return lambda steps: tqdm(steps, desc=label, leave=False, file=sys.stderr, dynamic_ncols=True)


def optimise(job: Job, model, batch: Batch) -> dict:
    """Class visualizations of the job's rows in one batch (passes of ``batch_size`` images).

    Rows marked ``from_noise`` start from the seeded noise; the others, in order, from the job's photographs
    (``batch.pixels``). Returns images R×3×H×W float32 in [0, 1], snapshots S×R×3×H×W float32 (the iterations of
    ``snapshots`` in order; iteration 0 is the start), objective T×R float32 (score − λ‖z‖² before each step) and
    wall_s, the seconds it took."""
    started = time.perf_counter()
    from_noise = list(job["from_noise"])
    starts = torch.zeros(len(from_noise), *job["image_shape"])
    photo_rows = [r for r, noise in enumerate(from_noise) if not noise]
    if photo_rows:
        starts[photo_rows] = batch.pixels.cpu()
    settings = VizSettings(learning_rate=list(job["learning_rates"]), l2_reg=list(job["l2_regs"]),
                           num_iterations=job["num_iterations"], blur_every=job["blur_every"],
                           blur_sigma=job["blur_sigma"], max_jitter=job["max_jitter"],
                           snapshots=list(job["snapshots"]), batch_size=job["batch_size"])
    with autocast(batch.device, job["precision"]):  # "bf16": the optimisation's passes in bfloat16; scoring stays fp32
        result = class_visualization(
            model, starts.to(batch.device), torch.tensor(job["targets"], device=batch.device), settings,
            from_noise=from_noise, seeds=job["seed"],
            progress=progress_bar(f"classviz {job.model}: {len(from_noise) - len(photo_rows)} images from noise, "
                                  f"{len(photo_rows)} from photographs"))
    return {"images": result.images.float().cpu().numpy(),
            "snapshots": np.stack([result.snapshots[k].float().cpu().numpy() for k in job["snapshots"]]),
            "objective": result.objective.float().cpu().numpy(), "wall_s": time.perf_counter() - started}


def judge(job: Job, model, batch: Batch) -> dict:
    """Softmax probabilities (N×1000 float32) under the job's model: of each input array (N×3×H×W, pixel space),
    under the same name, and of the job's photographs as "before"; each array in passes of ``batch_size``."""
    probs = {name: model.predict(torch.from_numpy(np.array(images, dtype=np.float32)), job["batch_size"]).cpu().numpy()
             for name, images in batch.inputs.items()}
    if batch.pixels is not None:
        probs["before"] = model.predict(batch.pixels, job["batch_size"]).cpu().numpy()
    return probs


def compute(job: Job, model, batch: Batch) -> dict:
    """One job: "optimise" (:func:`optimise`) or "score" (:func:`judge`)."""
    return dispatch(job, {"optimise": optimise, "score": judge}, model, batch)
