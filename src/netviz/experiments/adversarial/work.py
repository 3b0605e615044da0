"""The section's jobs: everything that runs a model (pure: no files, no context; see :mod:`netviz.jobs`).

:func:`compute` runs one job; a job's params hold every setting it reads (for an attack, only those
:func:`build_attack` reads), so its cache key changes exactly when its result can.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from netviz import codecs
from netviz.errors import NetvizError
from netviz.jobs import Batch, Job
from netviz.methods.adversarial import Attack, Fooling, fgsm, fooling_image, mi_fgsm, pgd, projected_gradient
from netviz.methods.common import autocast

ATTACKS = ("fgsm", "pgd_linf", "pgd_l2", "mi_fgsm")


def build_attack(name: str, eps: float, section: Mapping, steps: int, targeted: bool = False,
                 stop_on_success: bool = False) -> Attack:
    """The attack ``name`` at budget ``eps`` (8-bit levels) with the step rules of ``section`` (a config section,
    :meth:`Settings.attack_params` or a job's params: ``step_size``, ``random_start``, ``momentum``).

    PGD's step is ``step_size`` × ε (Madry et al. use about 2.5·ε/steps); MI-FGSM's is ε/steps (Dong et al.).
    ``name`` is one of :data:`ATTACKS` (``read_settings`` checks the config's names, so another is a bug).
    """
    if name == "fgsm":
        return fgsm(eps, targeted=targeted)
    if name in ("pgd_linf", "pgd_l2"):
        return pgd(eps, float(section["step_size"]) * eps, steps, "linf" if name == "pgd_linf" else "l2",
                   bool(section["random_start"]), targeted, stop_on_success)
    if name == "mi_fgsm":
        return mi_fgsm(eps, eps / steps, steps, float(section["momentum"]), targeted=targeted,
                       stop_on_success=stop_on_success)
    raise ValueError(f"unknown attack '{name}' in [adversarial]; known: {', '.join(ATTACKS)}")


def compute(job: Job, model, batch: Batch) -> dict:
    """One job of the section (see :mod:`netviz.jobs`), by kind:

    - "clean": softmax probabilities (K×1000 float32) of the job's images.
    - "fooling": the lab's method towards ``target``: ``images`` K×H×W×3 uint8 (what the PNG files will hold),
      ``steps`` K int64 (-1: not reached), ``probs`` K×1000 of the float images.
    - "sweep": ``attack`` over ``eps_grid`` (increasing), each image only until its 8-bit rounding fools the
      model (see :func:`sweep_job`).
    - "transfer": the full-strength untargeted ``attack`` at ``eps``: ``images`` K×H×W×3 uint8.
    - "judge": ``png`` and ``jpeg`` K×1000 probabilities of the stored 8-bit ``inputs["images"]`` and of their
      JPEG round trips at ``jpeg_quality``.
    """
    if job.kind == "clean":
        return {"probs": model.predict(batch.pixels, job["batch_size"]).cpu().numpy()}
    if job.kind == "fooling":
        return fooling_job(job, model, batch)
    if job.kind == "sweep":
        return sweep_job(job, model, batch)
    if job.kind == "transfer":
        return transfer_job(job, model, batch)
    if job.kind == "judge":
        return judge_job(job, model, batch)
    raise NetvizError(f"adversarial has no job kind '{job.kind}'")


def seeded(job: Job, device: torch.device) -> torch.Generator:
    """The random starts' generator: a fresh one seeded with the run's seed for every call of an attack."""
    return torch.Generator(device=device).manual_seed(int(job["seed"]))


def fooling_job(job: Job, model, batch: Batch) -> dict:
    x, batch_size = batch.pixels, job["batch_size"]
    targets = torch.full((len(x),), int(job["target"]), dtype=torch.long)
    spec = Fooling(float(job["lr"]), int(job["max_iter"]), float(job["kappa"]))
    with autocast(batch.device, job["precision"]):  # "bf16": the attack's passes in bfloat16; judging stays fp32
        adv = fooling_image(model, x, targets.to(x.device), spec, batch_size=batch_size)
    return {"images": codecs.to_uint8(adv.images), "steps": adv.steps.cpu().numpy(),
            "probs": model.predict(adv.images, batch_size).cpu().numpy()}


def sweep_job(job: Job, model, batch: Batch) -> dict:
    """The sweep of one attack on one model's images (all classified correctly), budget after budget.

    At each ε of the grid the images not yet fooled are attacked (one call, a fresh seeded generator), each
    stopping at the first step where its 8-bit rounding is misclassified; those that stopped are rounded to
    8 bits (exactly the PNG's content) and classified again, and count as fooled at ε when that still holds.
    Returns, one row per image that stopped at some ε (a failed check does not retire the image): ``position``
    (in the job's items), ``eps_index``, ``steps``, ``pred`` (the 8-bit image's top-1 class) and ``images``
    M×H×W×3 uint8.
    """
    x, labels, batch_size = batch.pixels, batch.labels.to(batch.device), job["batch_size"]
    found = [False] * len(x)
    rows: dict[str, list] = {"position": [], "eps_index": [], "steps": [], "pred": [], "images": []}
    for j, eps in enumerate(job["eps_grid"]):
        remaining = [k for k in range(len(x)) if not found[k]]
        if not remaining:
            continue
        spec = build_attack(job["attack"], eps, dict(job.params), int(job.get("steps", 1)), stop_on_success=True)
        with autocast(batch.device, job["precision"]):
            adv = projected_gradient(model, x[remaining], labels[remaining], spec, batch_size, seeded(job, x.device),
                                     stored_as=codecs.quantize)
        fooled = [k for k in range(len(remaining)) if adv.steps[k] >= 0]
        if not fooled:
            continue
        stored = codecs.to_uint8(adv.images[fooled])
        pred = model.predict(codecs.from_uint8(stored, x.device), batch_size).argmax(1)
        for k, f in enumerate(fooled):
            position = remaining[f]
            found[position] = int(pred[k]) != int(batch.labels[position])
            rows["position"].append(position), rows["eps_index"].append(j)
            rows["steps"].append(int(adv.steps[f])), rows["pred"].append(int(pred[k]))
        rows["images"].append(stored)
    size = (x.shape[2], x.shape[3], x.shape[1])
    out = {k: np.asarray(v, dtype=np.int64) for k, v in rows.items() if k != "images"}
    out["images"] = np.concatenate(rows["images"]) if rows["images"] else np.zeros((0, *size), np.uint8)
    return out


def transfer_job(job: Job, model, batch: Batch) -> dict:
    x = batch.pixels
    spec = build_attack(job["attack"], float(job["eps"]), dict(job.params), int(job.get("steps", 1)))
    with autocast(batch.device, job["precision"]):
        adv = projected_gradient(model, x, batch.labels.to(x.device), spec, job["batch_size"], seeded(job, x.device))
    return {"images": codecs.to_uint8(adv.images)}


def judge_job(job: Job, model, batch: Batch) -> dict:
    stored = batch.inputs["images"]
    jpeg = np.stack([codecs.jpeg_roundtrip(im, int(job["jpeg_quality"])) for im in stored])
    return {"png": model.predict(codecs.from_uint8(stored, batch.device), job["batch_size"]).cpu().numpy(),
            "jpeg": model.predict(codecs.from_uint8(jpeg, batch.device), job["batch_size"]).cpu().numpy()}
