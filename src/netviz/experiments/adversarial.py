"""Section 2: adversarial examples (Q5-Q7).

Three measurements, each on every model of the section:

- the lab's fooling image (targeted, unbounded, normalised gradient steps) on ``fooling_images``;
- a sweep of budgeted untargeted attacks (FGSM, PGD L∞/L2, MI-FGSM) over ε, on the images the model gets right;
- transfer sets: full-strength untargeted attacks at one budget.

Every adversarial image the results count is written as an 8-bit PNG under ``results/adversarial/images/``,
read back from disk and classified again (by every model, for the fooling and transfer sets): every "this image
fools model X" in the results is a statement about the stored file. Images of the fooling and transfer sets are
also put through a JPEG round trip and classified again.

The work runs as jobs (:mod:`netviz.jobs`, :func:`compute`): the clean predictions (model, shard); the attacks
(the lab's method per model and shard, its κ variant and the "alone" re-run of the shown images; the sweep per
model, attack and shard, the whole ε grid in one job; the transfer sets per attack, model and shard), each
returning its images as the 8-bit arrays the PNG files hold; then the judging of every stored set by every model
(the PNGs as read back, and their JPEG round trips). The driver (:func:`run`) writes and reads the files and
assembles the results.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from netviz import claims, codecs, metrics, plots
from netviz.data import class_index, imagenet_categories
from netviz.errors import NetvizError
from netviz.experiments.context import Context
from netviz.experiments.saliency import image_title
from netviz.jobs import Batch, Job
from netviz.methods.adversarial import Attack, Fooling, fgsm, fooling_image, mi_fgsm, pgd, projected_gradient
from netviz.methods.common import PRECISIONS, autocast
from netviz.tables import mean, rate


ATTACKS = ("fgsm", "pgd_linf", "pgd_l2", "mi_fgsm")


def build_attack(name: str, eps: float, section: dict, steps: int, targeted: bool = False,
                 stop_on_success: bool = False) -> Attack:
    """The attack ``name`` at budget ``eps`` (8-bit levels) with the section's step rules.

    PGD's step is ``step_size`` × ε (Madry et al. use about 2.5·ε/steps); MI-FGSM's is ε/steps (Dong et al.).
    """
    if name == "fgsm":
        return fgsm(eps, targeted=targeted)
    if name in ("pgd_linf", "pgd_l2"):
        return pgd(eps, float(section["step_size"]) * eps, steps, "linf" if name == "pgd_linf" else "l2",
                   bool(section["random_start"]), targeted, stop_on_success)
    if name == "mi_fgsm":
        return mi_fgsm(eps, eps / steps, steps, float(section["momentum"]), targeted=targeted,
                       stop_on_success=stop_on_success)
    raise NetvizError(f"unknown attack '{name}' in [adversarial]; known: {', '.join(ATTACKS)}")


def check_config(section: dict, n_images: int) -> None:
    for key in ("attacks", "transfer_attacks"):
        for name in section[key]:
            if name not in ATTACKS:
                raise NetvizError(f"unknown attack '{name}' in adversarial.{key}; known: {', '.join(ATTACKS)}")
    for key in ("fooling_images", "fooling_shown", "sweep_images"):
        bad = [i for i in section[key] if not 0 <= i < n_images]
        if bad:
            raise NetvizError(f"adversarial.{key} has image index {bad[0]}, but there are {n_images} images (0..{n_images - 1})")
    chosen = set(section["fooling_images"] or range(n_images))
    missing = [i for i in section["fooling_shown"] if i not in chosen]
    if missing:
        raise NetvizError(f"adversarial.fooling_shown has image {missing[0]}, which is not in adversarial.fooling_images; add it there")
    if not 0 <= section["fooling_kappa"] < 1 or not 0 <= section["kappa_compare"] < 1:
        raise NetvizError("adversarial.fooling_kappa and kappa_compare are probabilities in [0, 1); 0 means off")
    if section.get("precision", "fp32") not in PRECISIONS:
        raise NetvizError(f"adversarial.precision = {section['precision']!r} is not known; use one of {', '.join(PRECISIONS)}")
    if not 1 <= section["jpeg_quality"] <= 95:
        raise NetvizError(f"adversarial.jpeg_quality must be in 1..95, got {section['jpeg_quality']}")


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


def perturbation_stats(original: np.ndarray, adversarial: np.ndarray) -> dict:
    """Size of one stored perturbation (8-bit images H×W×3): L∞, L2 in levels, relative L2, SSIM."""
    return {"linf": round(metrics.linf_levels(original, adversarial), 2), "l2": round(metrics.l2_levels(original, adversarial), 2),
            "l2_rel": round(metrics.relative_l2(original, adversarial), 5), "ssim": round(metrics.ssim(original, adversarial), 4)}


# --- jobs: everything that runs a model (pure: no files, no context) ---------------------------------------------

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


def attack_params(name: str, section: dict, steps: int) -> dict:
    """The settings :func:`build_attack` reads for ``name`` (and nothing else, so that a job's key holds only them)."""
    if name in ("pgd_linf", "pgd_l2"):
        return {"steps": steps, "step_size": float(section["step_size"]), "random_start": bool(section["random_start"])}
    if name == "mi_fgsm":
        return {"steps": steps, "momentum": float(section["momentum"])}
    return {}


# --- the driver: plans jobs, stores their images, assembles the results -----------------------------------------

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
    """State shared by the parts of the section: config, labels, clean predictions, the job runner, storage."""

    def __init__(self, ctx: Context):
        self.ctx, self.sec = ctx, ctx.section
        check_config(self.sec, len(ctx.images))
        self.y = ctx.images.labels
        self.x8 = codecs.to_uint8(ctx.images.images)
        self.names = list(ctx.models())
        self.batch = ctx.batch_size
        self.quality = int(self.sec["jpeg_quality"])
        self.precision = str(self.sec.get("precision", "fp32"))
        self.timings: dict[str, dict[str, float]] = {}  # stage -> wall and CPU seconds of this process
        started = clock()
        clean = self.grouped({m: [self.job("clean", m, shard) for shard in ctx.shards()] for m in self.names})
        self.clean = {m: torch.from_numpy(np.concatenate([r["probs"] for r in clean[m]])) for m in self.names}
        self.correct = {name: (p.argmax(1) == self.y).numpy() for name, p in self.clean.items()}
        self.timed("clean", started)

    def job(self, kind: str, model: str, items, **params) -> Job:
        return Job.make(self.ctx.name, kind, model, items, batch_size=self.batch, seed=self.ctx.seed, **params)

    def attack_job(self, kind: str, model: str, items, **params) -> Job:
        return self.job(kind, model, items, precision=self.precision, **params)

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
                groups[(id(part), m)] = [self.job("judge", m, (), pixels=False, jpeg_quality=self.quality,
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


def fooling_part(run: Run, source: str, indices: list[int], target: int, spec: Fooling, tag: str) -> Part:
    """The lab's method (``spec``) by ``source`` on ``indices`` towards ``target``, a job per shard."""
    jobs = [run.attack_job("fooling", source, shard, target=target, lr=spec.lr, max_iter=spec.max_iter, kappa=spec.kappa)
            for shard in run.ctx.shards(indices)]
    return Part(tag, source, list(indices), jobs, target)


def fooling_set(run: Run, source: str, indices: list[int], target: int, spec: Fooling, tag: str) -> dict:
    """The lab's method on ``indices`` with ``source``: stored, re-read and judged by every model."""
    part = fooling_part(run, source, indices, target, spec, tag)
    run.execute([part])
    return fooling_result(run, part, spec)


def fooling_result(run: Run, part: Part, spec: Fooling) -> dict:
    """Per image and summary of one executed :func:`fooling_part`."""
    source, target, stored = part.source, part.target, part.stored
    steps = part.joined("steps") if part.results else np.zeros(0, np.int64)
    probs = torch.from_numpy(part.joined("probs")) if part.results else torch.zeros(0, 1000)
    targets = torch.full((len(part.indices),), target, dtype=torch.long)
    floats = verdicts(probs, run.y[part.indices], targets)
    rows = []
    for k, i in enumerate(part.indices):
        row = {"index": i, "true": int(run.y[i]), "target": target, "steps": int(steps[k]), "file": part.files[k],
               **perturbation_stats(run.x8[i], stored[k]), "float": floats[k],
               "png": {m: part.judged["png"][m][k] for m in run.names}, "jpeg": {m: part.judged["jpeg"][m][k] for m in run.names}}
        row["success_float"] = floats[k]["pred"] == target
        row["success_png"] = row["png"][source]["pred"] == target
        row["success_jpeg"] = row["jpeg"][source]["pred"] == target
        rows.append(row)
    return {"spec": asdict(spec), "per_image": rows, "summary": fooling_summary(run, rows, source, target)}


def fooling_summary(run: Run, rows: list[dict], source: str, target: int) -> dict:
    return {
        "n": len(rows),
        "success_float": rate(r["success_float"] for r in rows),
        "success_png": rate(r["success_png"] for r in rows),
        "success_jpeg": rate(r["success_jpeg"] for r in rows),
        "mean_steps": mean(r["steps"] for r in rows if r["steps"] >= 0),
        "max_steps_used": max((r["steps"] for r in rows), default=None),
        "mean_linf": mean(r["linf"] for r in rows), "mean_l2": mean(r["l2"] for r in rows),
        "mean_l2_rel": mean(r["l2_rel"] for r in rows), "mean_ssim": mean(r["ssim"] for r in rows),
        "mean_p_target_float": mean(r["float"]["p_target"] for r in rows),
        "mean_p_true_float": mean(r["float"]["p_true"] for r in rows),
        "mean_p_target_png": mean(r["png"][source]["p_target"] for r in rows),
        # survival: of the images that fooled the model as floats, the share whose stored file still does
        "survive_png": rate(r["success_png"] for r in rows if r["success_float"]),
        "survive_jpeg": rate(r["success_jpeg"] for r in rows if r["success_float"]),
        "lost_png": rate(not r["success_png"] for r in rows if r["success_float"]),
        "lost_jpeg": rate(not r["success_jpeg"] for r in rows if r["success_float"]),
        # on the other models: reaching the target (targeted transfer), or just leaving the true class
        "transfer_target": {m: rate(r["png"][m]["pred"] == target for r in rows) for m in run.names},
        "transfer_flip": {m: rate(r["png"][m]["pred"] != r["true"] for r in rows if run.correct[m][r["index"]]) for m in run.names},
    }


def sweep_grid(sec: dict, attack_name: str) -> list[float]:
    return sorted(float(e) for e in (sec["eps_grid_l2"] if attack_name == "pgd_l2" else sec["eps_grid"]))


def sweep_jobs(run: Run, name: str, indices: list[int]) -> dict:
    """The sweep's jobs of model ``name``: per attack, a job per shard of the images of ``indices`` it gets right."""
    sec = run.sec
    chosen = [i for i in indices if run.correct[name][i]]
    return {("sweep", name, a): [run.attack_job("sweep", name, shard, attack=a, eps_grid=sweep_grid(sec, a),
                                                **attack_params(a, sec, int(sec["steps"])))
                                 for shard in run.ctx.shards(chosen)] for a in sec["attacks"]}


def sweep(run: Run, name: str, indices: list[int], planned: dict, done: dict) -> dict:
    """The smallest budget of the grid at which each attack fools ``name`` with a storable image, for each of
    ``indices`` that ``name`` classifies correctly, and the success rate against ε that follows.

    Budgets are tried in increasing order, each image only until it is fooled, so the success rate at ε is the
    share of images the attack fools when run at some budget ≤ ε of the grid (the usual robust-accuracy reading:
    a perturbation found within a small budget is also within a larger one). An image stops at the first step
    where its 8-bit rounding is misclassified; it is then stored as a PNG, read back, and counts only if the
    file still fools the model (checked in the job on the same 8-bit values). The sizes recorded are those of
    the stored image, which can exceed the float budget (a change of half a level rounds to a full level).
    ``planned``, ``done``: the jobs of :func:`sweep_jobs` and their results, by group.
    """
    sec = run.sec
    chosen = [i for i in indices if run.correct[name][i]]
    out = {"n": len(chosen), "attacks": {}}
    for attack_name in sec["attacks"]:
        grid = sweep_grid(sec, attack_name)
        key = ("sweep", name, attack_name)
        found, first = sweep_found(run, name, attack_name, grid, planned[key], done[key])
        rows = sweep_rows(grid, chosen, found, first)
        minimal = [found[i]["eps"] for i in chosen if i in found]
        out["attacks"][attack_name] = {
            "spec": asdict(build_attack(attack_name, grid[-1], sec, int(sec["steps"]), stop_on_success=True)),
            "norm": "l2" if attack_name == "pgd_l2" else "linf", "rows": rows,
            "per_image": [found.get(i, {"index": i, "eps": None}) for i in chosen],
            "median_min_eps": float(np.median(minimal)) if len(minimal) == len(chosen) and minimal else None,
            "max_linf": max((f["linf"] for f in found.values()), default=None),
        }
    return out


def sweep_rows(grid: list[float], chosen: list[int], found: dict, first: dict) -> list[dict]:
    """Per budget of the grid (position j): how many images were attacked there (those not fooled at a smaller
    one), the share fooled at some budget up to it, and the largest stored L∞ among images first fooled there."""
    rows = []
    for j, eps in enumerate(grid):
        rows.append({"eps": eps, "attacked": sum(first.get(i, j) >= j for i in chosen),
                     "success": rate(i in first and first[i] <= j for i in chosen),
                     "max_linf_new": max((found[i]["linf"] for i in chosen if first.get(i) == j), default=None)})
    return rows


def sweep_found(run: Run, name: str, attack_name: str, grid: list[float], jobs: list[Job], results: list[dict]):
    """Store every image a sweep job stopped on as a PNG; returns the images the files fool ({index: record})
    and the grid position each was first fooled at."""
    found, first = {}, {}
    for job, result in zip(jobs, results):
        for m, (position, j) in enumerate(zip(result["position"], result["eps_index"])):
            i, eps = job.items[int(position)], grid[int(j)]
            files, stored = run.store(f"sweep_{attack_name}_{name}_eps{eps:g}", [i], result["images"][m : m + 1])
            if int(result["pred"][m]) != int(run.y[i]):
                found[i] = {"index": i, "eps": eps, "steps": int(result["steps"][m]), "file": files[0],
                            "linf": metrics.linf_levels(run.x8[i], stored[0]),
                            "l2": round(metrics.l2_levels(run.x8[i], stored[0]), 2)}
                first[i] = int(j)
    return found, first


def transfer_indices(run: Run) -> list[int]:
    """The images every model gets right (so every cell of the transfer matrix counts the same images)."""
    return [i for i in range(len(run.y)) if all(run.correct[m][i] for m in run.names)]


def transfer_spec(sec: dict, attack_name: str) -> tuple[float, Attack]:
    eps = float(sec["transfer_eps_l2"] if attack_name == "pgd_l2" else sec["transfer_eps"])
    return eps, build_attack(attack_name, eps, sec, int(sec["transfer_steps"]))


def transfer_part(run: Run, source: str, attack_name: str) -> Part:
    """Full-strength untargeted attack by ``source`` on the transfer set, a job per shard."""
    indices = transfer_indices(run)
    eps, _ = transfer_spec(run.sec, attack_name)
    jobs = [run.attack_job("transfer", source, shard, attack=attack_name, eps=eps,
                           **attack_params(attack_name, run.sec, int(run.sec["transfer_steps"])))
            for shard in run.ctx.shards(indices)]
    return Part(attack_name, source, indices, jobs)


def transfer_set(run: Run, part: Part) -> dict:
    """An executed :func:`transfer_part`: per image (stored, judged by all models) and the success matrix row."""
    rows = []
    for k, i in enumerate(part.indices):
        rows.append({"index": i, "true": int(run.y[i]), "file": part.files[k], **perturbation_stats(run.x8[i], part.stored[k]),
                     "png": {m: part.judged["png"][m][k] for m in run.names}, "jpeg": {m: part.judged["jpeg"][m][k] for m in run.names}})
    matrix = {m: {"n": len(rows), "png": rate(r["png"][m]["pred"] != r["true"] for r in rows),
                  "jpeg": rate(r["jpeg"][m]["pred"] != r["true"] for r in rows)} for m in run.names}
    return {"spec": asdict(transfer_spec(run.sec, part.tag)[1]), "per_image": rows, "success": matrix,
            "mean_linf": mean(r["linf"] for r in rows), "mean_l2": mean(r["l2"] for r in rows),
            "mean_ssim": mean(r["ssim"] for r in rows)}


def shown_indices(run: Run, target: int) -> list[int]:
    return [i for i in run.sec["fooling_shown"] if int(run.y[i]) != target]


def lab_spec(sec: dict, kappa: float | None = None) -> Fooling:
    return Fooling(float(sec["fooling_lr"]), int(sec["fooling_max_iter"]), float(sec["fooling_kappa"] if kappa is None else kappa))


def plan_parts(run: Run, target: int, fooling_indices: list[int]) -> dict:
    """Every stored-and-judged set of the section: the lab's method on ``fooling_indices`` ("fooling"), on the
    shown images with the κ margin ("kappa") and alone ("alone", only when that is another batch), and the
    transfer sets, each per model."""
    sec, shown, parts = run.sec, shown_indices(run, target), {}
    for m in run.names:
        parts[("fooling", m)] = fooling_part(run, m, fooling_indices, target, lab_spec(sec), "fooling")
    for m in run.names:
        if shown and sec["kappa_compare"] > 0:
            parts[("kappa", m)] = fooling_part(run, m, shown, target, lab_spec(sec, sec["kappa_compare"]), "shown_kappa")
    for m in run.names:
        if shown and len(fooling_indices) != len(shown):
            parts[("alone", m)] = fooling_part(run, m, shown, target, lab_spec(sec), "shown_alone")
    for attack_name in sec["transfer_attacks"]:
        for m in run.names:
            parts[("transfer", attack_name, m)] = transfer_part(run, m, attack_name)
    return parts


def shown_examples(run: Run, target: int, fooling: dict, parts: dict) -> list[dict]:
    """The lab-style figure's rows: for each model and shown image, the lab's method (and its κ variant)."""
    sec, rows = run.sec, []
    shown = shown_indices(run, target)
    for source in run.names if shown else []:
        runs = [("lab", lab_spec(sec), fooling[source])]
        if ("kappa", source) in parts:
            spec = lab_spec(sec, sec["kappa_compare"])
            runs.append(("kappa", spec, fooling_result(run, parts[("kappa", source)], spec)))
        for label, spec, result in runs:
            for r in result["per_image"]:
                if r["index"] in shown:
                    rows.append({"model": source, "variant": label, "kappa": spec.kappa, **r})
    return rows


def rerun_alone(run: Run, fooling: dict, parts: dict) -> dict:
    """The lab's method on the shown images alone instead of inside the batch of ``fooling_images``: the
    arithmetic differs only in float rounding (batch-dependent kernels), so any difference in the result
    measures how sensitive the method's path is to rounding."""
    out = {}
    for source in run.names:
        if ("alone", source) not in parts:
            continue
        batched = {r["index"]: r for r in fooling[source]["per_image"]}
        alone = fooling_result(run, parts[("alone", source)], lab_spec(run.sec))
        out[source] = []
        for r in alone["per_image"]:
            b = batched[r["index"]]
            one = codecs.load_png(run.ctx.results_dir / "images" / r["file"].rsplit("/", 1)[-1])
            other = codecs.load_png(run.ctx.results_dir / "images" / b["file"].rsplit("/", 1)[-1])
            out[source].append({"index": r["index"], "batch": len(batched), "steps": [b["steps"], r["steps"]],
                                "p_target_png": [b["png"][source]["p_target"], r["png"][source]["p_target"]],
                                "success_png": [b["success_png"], r["success_png"]],
                                "linf_between": metrics.linf_levels(other, one), "l2_between": round(metrics.l2_levels(other, one), 2)})
    return out


def section_indices(run: Run) -> tuple[int, list[int], list[int]]:
    """The fooling target, the images the lab's method attacks (not of the target class) and the sweep's images."""
    sec, n = run.sec, len(run.y)
    target = class_index(int(sec["fooling_target"]))
    fooling_indices = [i for i in (sec["fooling_images"] or range(n)) if int(run.y[i]) != target]
    return target, fooling_indices, list(sec["sweep_images"] or range(n))


def jobs(ctx: Context) -> list[Job]:
    """The section's heavy jobs (the attacks), after running the clean predictions they depend on."""
    state = Run(ctx)
    target, fooling_indices, sweep_indices = section_indices(state)
    parts = plan_parts(state, target, fooling_indices)
    sweeps = {k: v for m in state.names for k, v in sweep_jobs(state, m, sweep_indices).items()}
    return [job for part in parts.values() for job in part.jobs] + [job for js in sweeps.values() for job in js]


def run(ctx: Context) -> dict:
    state = Run(ctx)
    images, names = ctx.images, state.names
    target, fooling_indices, sweep_indices = section_indices(state)
    results: dict = {
        "images": [{"id": i, "label": int(l), "name": n, "title": image_title(k, i, n)}
                   for k, (i, n, l) in enumerate(zip(images.ids, images.names, images.labels))],
        "target": target, "target_name": imagenet_categories()[target], "jpeg_quality": state.quality,
        "clean": {m: {"top1": int(state.correct[m].sum()), "n": len(images), "correct": state.correct[m].tolist()} for m in names},
        "fooling": {}, "sweep": {}, "transfer": {}, "figures": {},
    }
    parts = plan_parts(state, target, fooling_indices)
    sweeps = {k: v for m in names for k, v in sweep_jobs(state, m, sweep_indices).items()}
    done = state.execute(list(parts.values()), sweeps)
    for m in names:
        result = results["fooling"][m] = fooling_result(state, parts[("fooling", m)], lab_spec(ctx.section))
        s = result["summary"]
        ctx.log(f"{m}: fooling {s['success_png']} (png) {s['success_jpeg']} (jpeg) of {s['n']}, mean steps {s['mean_steps']}")
    results["shown"] = shown_examples(state, target, results["fooling"], parts)
    results["alone"] = rerun_alone(state, results["fooling"], parts)
    for m in names:
        results["sweep"][m] = sweep(state, m, sweep_indices, sweeps, done)
        ctx.log(f"{m}: sweep " + ", ".join(f"{a} {[r['success'] for r in v['rows']]}" for a, v in results["sweep"][m]["attacks"].items()))
    for attack_name in ctx.section["transfer_attacks"]:
        results["transfer"][attack_name] = {m: transfer_set(state, parts[("transfer", attack_name, m)]) for m in names}
        ctx.log(f"transfer {attack_name}: " + "; ".join(f"{m}→" + ", ".join(f"{t} {v['png']}" for t, v in results['transfer'][attack_name][m]['success'].items()) for m in names))
    results["figures"]["examples"] = ctx.save_figure(plots.adversarial_rows(examples_for_plot(state, results)), "fooling_examples.png")
    results["figures"]["sweep"] = ctx.save_figure(plots.success_curves(curves_for_plot(results)), "success_vs_eps.png")
    matrices = transfer_matrices(results, names)
    results["transfer_matrix"] = matrices
    results["figures"]["transfer"] = ctx.save_figure(plots.transfer_matrices(matrices, names), "transfer.png")
    results["timings_s"] = state.timings
    results["claims"] = section_claims(results, names)
    return results


def transfer_flags(results: dict, attack: str, source: str, judge: str) -> list[bool]:
    """Per image of the transfer set: does the stored image made by ``attack`` on ``source`` fool ``judge``."""
    return [r["png"][judge]["pred"] != r["true"] for r in results["transfer"][attack][source]["per_image"]]


def section_claims(results: dict, names: list[str]) -> dict:
    """The statements of Q6 and Q7, decided on the stored per-image outcomes (see :mod:`netviz.claims`)."""
    out: dict = {}
    first, others = names[0], names[1:]
    pgd_sweep = results["sweep"][first]["attacks"].get("pgd_linf")
    if pgd_sweep and pgd_sweep["rows"]:
        eps = pgd_sweep["rows"][0]["eps"]
        flags = [r["eps"] is not None and r["eps"] <= eps for r in pgd_sweep["per_image"]]
        key = f"pgd_smallest_eps/{first}"
        out[key] = claims.rate_vs(key, f"PGD-L∞ fools most of the images {first} classifies correctly within ε = {eps:g} level",
                                  flags, 0.5, a_label="images fooled")
    if others and results["transfer"]:
        other = others[0]
        rates = {a: v[first]["success"][other]["png"] for a, v in results["transfer"].items()}
        if "pgd_linf" in rates and "mi_fgsm" in rates:
            key = f"momentum_vs_pgd/{first}->{other}"
            out[key] = claims.paired_hits(key, f"transfer from {first} to {other}: MI-FGSM against PGD-L∞",
                                          transfer_flags(results, "mi_fgsm", first, other),
                                          transfer_flags(results, "pgd_linf", first, other), "MI-FGSM", "PGD-L∞")
        ordered = sorted(rates, key=lambda a: rates[a])
        if len(ordered) > 1 and rates[ordered[0]] is not None:
            best, worst = ordered[-1], ordered[0]
            key = f"best_vs_worst_transfer/{first}->{other}"
            out[key] = claims.paired_hits(key, f"transfer from {first} to {other}: {best} against {worst}",
                                          transfer_flags(results, best, first, other),
                                          transfer_flags(results, worst, first, other), best, worst)
        off = [(a, m, t) for a in results["transfer"] for m in names for t in names
               if m != t and results["transfer"][a][m]["success"][t]["png"] is not None]
        if off:
            a, m, t = max(off, key=lambda c: results["transfer"][c[0]][c[1]]["success"][c[2]]["png"])
            key = "highest_transfer"
            out[key] = claims.rate_vs(key, f"the highest transfer rate ({a}, made on {m}, judged by {t}) against one half",
                                      transfer_flags(results, a, m, t), 0.5, a_label=f"{a} {m}->{t}")
    return out


def examples_for_plot(state: Run, results: dict) -> list[dict]:
    """Rows of (original, stored adversarial, captions) for the lab-style figure, read back from the PNGs."""
    names = imagenet_categories()
    rows = []
    for r in results["shown"]:
        i, source = r["index"], r["model"]
        clean = state.clean[source][i]
        stored = codecs.load_png(state.ctx.results_dir / "images" / r["file"].rsplit("/", 1)[-1])
        judged = r["png"][source]
        what = "lab method" if r["variant"] == "lab" else f"κ = {r['kappa']:g}"
        rows.append({
            "original": state.x8[i], "adversarial": stored,
            "label": f"{source}, image {i}, {what}",
            "captions": (f"{names[int(clean.argmax())]} {float(clean.max()):.2f}",
                         f"{judged['pred_name']} {judged['p_pred']:.2f}",
                         f"L∞ {r['linf']:g}, L2 {r['l2']:.0f} levels"),
        })
    return rows


def curves_for_plot(results: dict) -> dict:
    return {m: {a: {"norm": v["norm"], "eps": [row["eps"] for row in v["rows"]], "success": [row["success"] for row in v["rows"]]}
                for a, v in results["sweep"][m]["attacks"].items()} for m in results["sweep"]}


def transfer_matrices(results: dict, names: list[str]) -> dict:
    """{attack: {"png": [[source x target]], "jpeg": ...}} success rates; the lab's method (targeted: reaching
    the target class) first."""
    out = {"lab method (target reached)": {"png": [[results["fooling"][s]["summary"]["transfer_target"][t] for t in names] for s in names]}}
    for attack_name, by_source in results["transfer"].items():
        out[attack_name] = {kind: [[by_source[s]["success"][t][kind] for t in names] for s in names] for kind in ("png", "jpeg")}
    return out
