"""Grading a build against an expected set: figures by SSIM (panel by panel), metrics within tolerances, a
verdict per lab question.

An **expected set** (``netviz expected --out DIR``) is a snapshot of a finished build laid out like one:
``DIR/results/provenance.json``, ``DIR/results/<section>/{metrics,manifest}.json`` and every figure as
``DIR/figures/<section>/<name>.png``, plus ``DIR/expected.json`` that marks it. Arrays (``*.npz``) are left out.

**Grading** (``netviz grade --expected DIR [--actual DIR]``) compares a build with it:

- every metric: each leaf of each ``metrics.json`` (list items numbered, e.g.
  ``saliency.models.squeezenet1_1.per_image.3.hit``). Floats pass when
  ``|actual - expected| <= abs + rel * |expected|``; integers (counts), booleans, strings and nulls must be equal. ``abs`` and
  ``rel`` come from the ``[grade]`` config table; ``[grade.tolerances]`` overrides them per metric with glob
  patterns over those keys (the last matching pattern wins; ``{skip = true}`` leaves a metric out);
- every figure: SSIM of each panel. Panels are the axes boxes recorded when the figure was saved
  (:mod:`netviz.panels`); a figure saved without them is cut into tiles. A panel laid out exactly as expected is
  compared pixel for pixel against ``grade.ssim_min``; one whose layout moved (other fonts, another matplotlib)
  is compared at a coarse scale against ``grade.ssim_min_rescaled`` (see :func:`panel_ssim`). The figure passes
  when every panel does; the whole-figure SSIM is reported as well;
- a verdict per lab question Q1–Q11: each section module maps questions to its metrics and figures with
  ``QUESTIONS`` (see :mod:`netviz.experiments`); a question passes when everything mapped to it passes and
  is "not graded" when nothing is. Items mapped to no question are graded under "other". The build passes when
  everything does.

Differences in weights, data, configuration, device or library versions between the two builds are reported as
warnings: they explain failures but are not failures themselves.
"""

from __future__ import annotations

import base64
import fnmatch
import io
import json
import math
import os
import shutil
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from netviz import store
from netviz.config import TEMPLATES_DIR, section_models
from netviz.errors import NetvizError
from netviz.sections import REGISTRY, SECTIONS

QUESTION_IDS = tuple(f"Q{i}" for i in range(1, 12))
MARKER = "expected.json"
TILE = 192  # px: tile size for figures without recorded panels
COARSE = 32  # px: longer side at which panels of differing layouts are compared


# -- builds and expected sets -------------------------------------------------------------------------------

@dataclass
class Build:
    """The stored results of a build (or an expected set): provenance, and per section metrics + manifest."""

    root: Path
    provenance: dict
    sections: dict[str, dict] = field(default_factory=dict)  # name -> {"metrics": ..., "manifest": ...}
    variation: dict = field(default_factory=dict)  # expected sets: variation.json (see netviz.variation)

    def figures(self, section: str) -> list[str]:
        return list(self.sections[section]["manifest"].get("figures", []))

    def panels(self, section: str, figure: str) -> list[dict] | None:
        return self.sections[section]["manifest"].get("panels", {}).get(figure)


def load_build(root: Path, what: str = "build") -> Build:
    root = Path(root)
    provenance_path = root / "results" / "provenance.json"
    if not provenance_path.exists():
        raise NetvizError(f"no {what} in '{root}' (no results/provenance.json); run `make` there first, "
                          "or point to a folder that has one")
    build = Build(root, store.read_json(provenance_path))
    for name in sorted((root / "results").iterdir()) if (root / "results").is_dir() else []:
        metrics, manifest = name / "metrics.json", name / "manifest.json"
        if name.is_dir() and metrics.exists() and manifest.exists() and ".tmp-" not in name.name:
            build.sections[name.name] = {"metrics": store.read_json(metrics), "manifest": store.read_json(manifest)}
    return build


def load_expected(folder: Path) -> Build:
    folder = Path(folder)
    if not (folder / MARKER).exists():
        raise NetvizError(f"'{folder}' is not an expected set (no {MARKER}); make one with "
                          "`netviz expected --out DIR` (or `make expected`)")
    build = load_build(folder, "expected set")
    for name in sorted(p.name for p in (folder / "results").iterdir() if p.is_dir()):
        stored = build.sections.get(name)
        if stored is None:
            raise NetvizError(f"expected set '{folder}' is damaged: results/{name} lacks its metrics.json or "
                              "manifest.json; restore the set or make it again with `netviz expected`")
        problems = store.check_files(stored["manifest"].get("outputs", {}), folder)
        if problems:
            raise NetvizError(f"expected set '{folder}' is damaged: {problems[0]} since it was made; restore the "
                              "set or make it again with `netviz expected`")
    from netviz.variation import VARIATION

    if (folder / VARIATION).exists():
        build.variation = store.read_json(folder / VARIATION)
    return build


def snapshot(root: Path, out: Path, log: Callable[[str], None] = print, allow_partial: bool = False,
             variation: dict | None = None) -> Path:
    """Copy the finished build in ``root`` into the expected set ``out`` (replaced atomically), with
    ``variation`` (how far legitimate variant builds moved each item, :mod:`netviz.variation`) when given."""
    root, out = Path(root), Path(out)
    build = snapshot_source(root, out, allow_partial)
    with store.exclusive(root / "results"):  # not while a run is replacing results
        _copy_build(root, build, out, variation)
    log(f"expected set: {out} ({len(build.sections)} section(s), "
        f"{sum(len(build.figures(s)) for s in build.sections)} figure(s), metrics and provenance)")
    return out


def snapshot_source(root: Path, out: Path, allow_partial: bool = False) -> Build:
    """The build in ``root``, checked as the source of an expected set in ``out`` (complete and current unless
    ``allow_partial``; ``out`` new, empty or an earlier expected set), before anything is built or copied."""
    root, out = Path(root), Path(out)
    build = load_build(root)
    missing = [s for s in SECTIONS if s not in build.sections]
    stale = [s for s, e in build.provenance.get("experiments", {}).items() if not e.get("current", True)]
    if (missing or stale) and not allow_partial:
        problem = (f"section(s) {', '.join(missing)} have no stored result" if missing else
                   f"stored results of {', '.join(stale)} do not match the recorded config and code")
        raise NetvizError(f"{problem}; run `netviz run` (without --only) first, or pass --allow-partial")
    if out.exists() and not out.is_dir():
        raise NetvizError(f"'{out}' is a file; give --out a folder (new, empty, or an earlier expected set)")
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise NetvizError(f"'{out}' exists and is not an expected set; choose an empty or new folder")
    return build


def _copy_build(root: Path, build: Build, out: Path, variation: dict | None = None) -> None:
    stage = store.staging_dir(out)
    try:
        figures = 0
        for section, stored in build.sections.items():
            manifest = dict(stored["manifest"])
            copied = {}
            for rel in manifest.get("figures", []):
                src = root / rel
                if not src.is_file():
                    raise NetvizError(f"figure {rel} listed in results/{section}/manifest.json is missing; "
                                      f"run `netviz run --force {section}`")
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, stage / rel)
                copied[rel] = store.hash_file(stage / rel)
                figures += 1
            metrics_rel = f"results/{section}/metrics.json"
            (stage / metrics_rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / metrics_rel, stage / metrics_rel)
            copied[metrics_rel] = store.hash_file(stage / metrics_rel)
            manifest["outputs"] = copied  # what the expected set holds (arrays are left out)
            store.write_json(stage / "results" / section / "manifest.json", manifest)
        shutil.copyfile(root / "results" / "provenance.json", stage / "results" / "provenance.json")
        if variation is not None:
            from netviz.variation import VARIATION

            store.write_json(stage / VARIATION, variation)
        P = build.provenance
        store.write_json(stage / MARKER, {
            "format": "netviz expected set 1",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "sections": sorted(build.sections),
            "figures": figures,
            "config_hash": P.get("config_hash"),
            "git": P.get("git"),
            "device": P.get("device"),
            "tolerances": ({"measured": True, "variants": variation.get("variants", {}),
                            "moved": variation.get("moved", {}), "file": "variation.json"} if variation is not None else
                           {"measured": False, "note": "[grade] floors only (made with --variants none)"}),
            "note": "made by `netviz expected`; compare a build with it: `netviz grade --expected <this folder>`",
        })
        store.swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


# -- tolerances and questions -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tolerance:
    abs: float
    rel: float
    skip: bool = False
    explicit: bool = False  # set by a [grade.tolerances] pattern (integers are otherwise compared exactly)
    images: float = 0.0  # also allow this many images' worth of a rate over the n images it counts (see per_image)

    def describe(self) -> str:
        return "skipped" if self.skip else f"±({self.abs:g} + {self.rel:g}·|expected|)"


def per_image(tol: Tolerance, key: str, leaves_of_section: dict[str, Any]) -> Tolerance:
    """``tol`` with ``images / n`` added to its absolute part, ``n`` being the count stored beside the item (the
    nearest ``n`` up its path: ``fooling.m.summary.n`` for ``fooling.m.summary.transfer_target.m``): a rate over
    n images that one image's chaotic outcome can move by 1/n."""
    if not tol.images:
        return tol
    parts = key.split(".")[:-1]
    while parts:
        n = leaves_of_section.get(".".join([*parts, "n"]))
        if _is_number(n) and n > 0:
            return Tolerance(tol.abs + tol.images / n + 1e-9, tol.rel, tol.skip, tol.explicit)
        parts.pop()
    return tol


def tolerance_for(key: str, grade: dict) -> Tolerance:
    """The tolerance of metric ``key`` (``<section>.<path>``): the ``[grade]`` defaults, overridden by the
    last pattern of ``[grade.tolerances]`` that matches. Integers (counts) must be equal unless a pattern
    gives them a tolerance."""
    found = Tolerance(float(grade["abs_tol"]), float(grade["rel_tol"]))
    for pattern, spec in grade.get("tolerances", {}).items():
        if fnmatch.fnmatchcase(key, pattern):
            if not isinstance(spec, dict) or not set(spec) <= {"abs", "rel", "skip", "images"}:
                raise NetvizError(f"grade.tolerances.\"{pattern}\" must be a table of abs, rel, images and/or skip "
                                  f"(e.g. {{abs = 0.01}}), got {spec!r}")
            found = Tolerance(float(spec.get("abs", found.abs)), float(spec.get("rel", found.rel)),
                              bool(spec.get("skip", False)), explicit=True, images=float(spec.get("images", 0)))
    return found


def _declared_questions(section: str) -> dict:
    """A section's ``QUESTIONS`` (see :func:`declared`)."""
    return declared(section, "QUESTIONS")


def declared(section: str, name: str) -> dict:
    """A section's ``QUESTIONS`` or ``UNSTABLE`` table, from the registry (:mod:`netviz.sections`)."""
    entry = REGISTRY.get(section)
    if entry is None:
        return {}
    return {"QUESTIONS": entry.questions, "UNSTABLE": entry.unstable}[name]


def unstable_reason(name: str, unstable: dict) -> str | None:
    """Why item ``name`` (a metric key, or ``<figure file>:<panel label>``) is not graded by its exact value, from
    a section's ``UNSTABLE`` patterns (the last match wins; a ``None`` reason means graded after all)."""
    reason = None
    for pattern, why in unstable.items():
        if fnmatch.fnmatchcase(name, pattern):
            reason = why
    return reason


def measured_chaotic(expected: Any, moved: dict | None, grade_config: dict) -> str | None:
    """Why a number is not graded by its value although no section declared it: legitimate variant builds moved
    it by at least ``grade.chaotic_share`` of its own size (a class probability that goes from 0.003 to 0.1 when
    one thread replaces two), so no tolerance separates a correct build from a wrong one."""
    share = float(grade_config.get("chaotic_share", 0.5))
    if not moved or "spread" not in moved or not _is_number(expected) or share <= 0:
        return None
    spread = float(moved["spread"])
    if math.isnan(expected) or spread < share * abs(expected):
        return None
    return (f"legitimate variant builds moved it by {spread:.3g} (expected {expected:.3g}): chaotic under float "
            "rounding, so it is shown and what covers it is graded")


OUTCOME_FIELDS = ("rank", "top", "pred", "predicted")  # fields that name the class a probability's image gets


def chaotic_outcomes(expected: Build, moved: dict, grade_config: dict) -> dict[str, str]:
    """Items that name an image's class (``rank``, ``top``, ``predicted…``) in a record whose probability
    (``p``, ``p_…``) the variants showed to be chaotic (:func:`measured_chaotic`): which class leads is then as
    chaotic as the probability. ``{"<section>.<key>": why}``."""
    records = set()
    for label, spec in moved.items():
        section, _, key = label.partition(".")
        parts = key.split(".")
        for i in range(len(parts) - 1, -1, -1):
            if parts[i] == "p" or parts[i].startswith("p_"):
                value = leaves(expected.sections.get(section, {}).get("metrics", {})).get(key) \
                    if section in expected.sections else None
                if measured_chaotic(value, spec, grade_config):
                    records.add((section, ".".join(parts[:i])))
                break
    if not records:
        return {}
    out = {}
    for section, record in records:
        prefix = f"{record}." if record else ""
        for key in leaves(expected.sections[section]["metrics"]):
            field_name = key[len(prefix):].split(".")[0] if key.startswith(prefix) else ""
            if any(field_name == f or field_name.startswith(f + "_") for f in OUTCOME_FIELDS):
                out[f"{section}.{key}"] = (f"the class this image gets follows a probability ({record or section}) "
                                           "that legitimate variant builds showed to be chaotic")
    return out


def judge(expected: Any, actual: Any, tol: Tolerance, moved: dict | None, factor: float) -> tuple[bool, str]:
    """Whether ``actual`` passes for ``expected``, and how it was judged: with ``moved`` (what variant builds gave,
    :mod:`netviz.variation`) a number may move ``max(floor, factor × spread)`` and anything else may take a
    variant's value; without it, :func:`compare_value` against the ``[grade]`` tolerance."""
    exact = "equal" if not (isinstance(expected, float) or (_is_number(expected) and tol.explicit)) else tol.describe()
    if moved and "spread" in moved and _is_number(expected) and _is_number(actual) \
            and not (math.isnan(expected) or math.isnan(actual)):
        floor = tol.abs + tol.rel * abs(expected) if exact != "equal" else 0.0
        allowed = max(floor, factor * float(moved["spread"]))
        if allowed > floor:
            return abs(actual - expected) <= allowed, f"±{allowed:.4g} ({factor:g} × spread {moved['spread']:g} measured across variant builds)"
        return abs(actual - expected) <= allowed, exact
    if moved and "values" in moved:
        ok = compare_value(expected, actual, tol) or any(compare_value(v, actual, tol) for v in moved["values"])
        return ok, f"the expected value or a variant build's ({', '.join(_show(v) for v in moved['values'][:3])})"
    return compare_value(expected, actual, tol), exact


def question_map(section: str, config: dict) -> dict[str, dict[str, list[str]]]:
    """A section's ``QUESTIONS`` with its patterns filled in (``{models[0]}`` -> the section's first model);
    a pattern whose field does not exist (no second model) is dropped."""
    declared = _declared_questions(section)
    try:
        fields = {"models": section_models(config, section)}
    except (KeyError, NetvizError):
        fields = {"models": []}
    resolved: dict[str, dict[str, list[str]]] = {}
    for question, spec in declared.items():
        entry = resolved.setdefault(question, {"metrics": [], "figures": []})
        for kind in ("metrics", "figures"):
            for pattern in spec.get(kind, []):
                try:
                    entry[kind].append(string.Formatter().vformat(pattern, (), fields))
                except (IndexError, KeyError):
                    continue
    return resolved


def _questions_of(name: str, kind: str, mapping: dict) -> list[str]:
    return sorted((q for q, spec in mapping.items() if any(fnmatch.fnmatchcase(name, p) for p in spec[kind])),
                  key=_question_order)


def _question_order(question: str) -> tuple:
    return (0, int(question[1:])) if question[1:].isdigit() else (1, question)


# -- comparisons --------------------------------------------------------------------------------------------

def leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf of nested dicts/lists: ``{"a": [{"b": 1}]}`` -> ``{"a.0.b": 1}``."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            out.update(leaves(sub, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and value:
        for index, sub in enumerate(value):
            out.update(leaves(sub, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def compare_value(expected: Any, actual: Any, tol: Tolerance) -> bool:
    if isinstance(expected, int) and isinstance(actual, int) and _is_number(expected) and _is_number(actual) \
            and not tol.explicit:
        return expected == actual
    if _is_number(expected) and _is_number(actual):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        return abs(actual - expected) <= tol.abs + tol.rel * abs(expected)
    return type(expected) is type(actual) and expected == actual or (expected is None and actual is None)


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, "white")
                image = Image.alpha_composite(background, image)
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as err:  # PIL: truncated, not an image, missing
        raise NetvizError(f"figure {path} cannot be read ({err}); restore it or rebuild it") from None


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two H×W×3 uint8 images of one size (scikit-image; 7×7 windows, smaller for tiny crops)."""
    from skimage.metrics import structural_similarity

    side = min(a.shape[0], a.shape[1])
    if side < 3:
        return 1.0 if np.array_equal(a, b) else 0.0
    window = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(a, b, channel_axis=2, data_range=255, win_size=window))


def tiles(shape: tuple[int, ...], size: int = TILE) -> list[dict]:
    height, width = shape[:2]
    ny, nx = max(1, round(height / size)), max(1, round(width / size))
    ys, xs = np.linspace(0, height, ny + 1).astype(int), np.linspace(0, width, nx + 1).astype(int)
    return [{"box": [int(xs[i]), int(ys[j]), int(xs[i + 1]), int(ys[j + 1])], "label": f"tile {j + 1},{i + 1}"}
            for j in range(ny) for i in range(nx)]


def _crop(image: np.ndarray, box: list[int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    return image[y0:y1, x0:x1]


def _scaled(box: list[int], sx: float, sy: float) -> list[int]:
    return [round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy)]


@dataclass
class Check:
    """One graded item: a metric or a figure."""

    kind: str  # "metric" or "figure"
    section: str
    name: str  # metric key within the section, or the figure's path
    passed: bool
    detail: str
    questions: list[str]
    expected: Any = None
    actual: Any = None
    tolerance: str = ""
    ssim: float | None = None
    panels: list[dict] = field(default_factory=list)  # figures: {"label", "ssim", "box", "actual_box", "passed"}
    unstable: str | None = None  # why the item is shown but not graded by its exact value (a section's UNSTABLE)

    @property
    def label(self) -> str:
        return self.name if self.kind == "figure" else f"{self.section}.{self.name}"


def _coarse(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def panel_ssim(expected: np.ndarray, actual: np.ndarray, same_grid: bool) -> tuple[float, bool]:
    """SSIM of two panel crops, and whether they had to be rescaled.

    On the same pixel grid (same box in same-sized figures: the same layout) they are compared at full
    resolution. Otherwise (another font or matplotlib version moved the layout by a few pixels) pixel-level
    comparison of noisy content such as saliency maps is meaningless after resampling, so both are averaged
    down to ``COARSE`` px on their longer side and compared there, against ``grade.ssim_min_rescaled``.
    """
    if same_grid and expected.shape == actual.shape:
        return ssim(expected, actual), False
    height, width = expected.shape[:2]
    scale = min(1.0, COARSE / max(height, width))
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    return ssim(_coarse(expected, size), _coarse(actual, size)), True


def panel_minimum(base: float, grade_config: dict, variant_ssim: float | None, unstable: bool) -> float:
    """The SSIM a panel must reach: ``base`` (``ssim_min`` or ``ssim_min_rescaled``), lowered to
    ``1 − spread_factor × (1 − variant_ssim)`` when variant builds moved the panel that far, and to
    ``ssim_floor`` for a panel a section declares unstable; never below ``ssim_floor``."""
    floor = float(grade_config.get("ssim_floor", 0.5))
    if unstable:
        return min(base, floor)
    if variant_ssim is not None:
        factor = float(grade_config.get("spread_factor", 3.0))
        return min(base, max(floor, 1.0 - factor * (1.0 - variant_ssim)))
    return base


def measured_unstable(grade_config: dict, variant_ssim: float | None) -> str | None:
    """Why a panel is not graded by SSIM although no section declared it: legitimate variant builds already moved
    it so far (``1 − spread_factor × (1 − SSIM)`` below ``ssim_floor``) that no threshold separates a correct build
    from a wrong one; the metrics of the same results are graded instead."""
    if variant_ssim is None:
        return None
    factor, floor = float(grade_config.get("spread_factor", 3.0)), float(grade_config.get("ssim_floor", 0.5))
    if 1.0 - factor * (1.0 - variant_ssim) >= floor:
        return None
    return (f"legitimate variant builds already differ here (panel SSIM {variant_ssim:.2f}): the image is chaotic "
            "under float rounding, so its metrics are graded instead")


def compare_figure(section: str, rel: str, expected: Build, actual: Build, grade_config: dict,
                   questions: list[str], unstable: dict | None = None) -> Check:
    """SSIM of figure ``rel`` per panel (per tile when no panels were recorded); the whole-figure SSIM is
    reported too. The figure passes when every panel does (each against :func:`panel_minimum`, from the expected
    set's measured variation and the section's ``UNSTABLE`` panels) and the panel layout matches."""
    strict, rescaled_min = float(grade_config["ssim_min"]), float(grade_config["ssim_min_rescaled"])
    lows = (expected.variation or {}).get("figures", {}).get(rel)
    check = Check("figure", section, rel, False, "", questions)
    if section not in actual.sections or not (actual.root / rel).is_file():
        check.detail = "missing in the build"
        return check
    e_img = _rgb(expected.root / rel)
    try:
        a_img = _rgb(actual.root / rel)
    except NetvizError:
        check.detail = "unreadable in the build (a damaged image); rebuild it"
        return check
    same_size = e_img.shape == a_img.shape
    check.ssim = ssim(e_img, a_img if same_size else _resize(a_img, (e_img.shape[1], e_img.shape[0])))
    sx, sy = a_img.shape[1] / e_img.shape[1], a_img.shape[0] / e_img.shape[0]
    e_panels = expected.panels(section, rel)
    a_panels = actual.panels(section, rel)
    notes = []
    layout_ok = True
    if e_panels:
        paired = a_panels is not None and len(a_panels) == len(e_panels)
        if not paired:
            layout_ok = False
            notes.append(f"{len(a_panels or [])} panels recorded, expected {len(e_panels)}")
        a_boxes = [p["box"] for p in a_panels] if paired else [_scaled(p["box"], sx, sy) for p in e_panels]
    else:
        e_panels = tiles(e_img.shape)
        a_boxes = [_scaled(p["box"], sx, sy) for p in e_panels]
    for index, (panel, a_box) in enumerate(zip(e_panels, a_boxes)):
        e_crop, a_crop = _crop(e_img, panel["box"]), _crop(a_img, a_box)
        if e_crop.size == 0 or a_crop.size == 0:
            value, rescaled = 0.0, False
        else:
            value, rescaled = panel_ssim(e_crop, a_crop, same_size and list(a_box) == list(panel["box"]))
        variant = lows[index] if lows and len(lows) == len(e_panels) else None
        why = unstable_reason(f"{Path(rel).name}:{panel['label']}", unstable or {}) or measured_unstable(grade_config, variant)
        minimum = panel_minimum(rescaled_min if rescaled else strict, grade_config, variant, why is not None)
        if why is not None and why.startswith("legitimate variant"):
            minimum = 0.0  # shown, not graded
        check.panels.append({"label": panel["label"], "ssim": value, "box": panel["box"], "actual_box": a_box,
                             "rescaled": rescaled, "min": minimum, "passed": value >= minimum,
                             "variant_ssim": variant, "unstable": why})
    if any(p["rescaled"] for p in check.panels):
        notes.append(f"layout differs from the expected figure's ({a_img.shape[1]}×{a_img.shape[0]} vs "
                     f"{e_img.shape[1]}×{e_img.shape[0]} px): panels compared at {COARSE} px")
    failing = sorted((p for p in check.panels if not p["passed"]), key=lambda p: p["ssim"])
    check.passed = layout_ok and not failing
    worst = failing[0] if failing else min(check.panels, key=lambda p: p["ssim"])
    if failing:
        check.detail = (f"SSIM {worst['ssim']:.3f} < {worst['min']:g} in panel '{worst['label']}'"
                        + (f" and {len(failing) - 1} more panel(s)" if len(failing) > 1 else ""))
    else:
        check.detail = f"panels SSIM ≥ {worst['ssim']:.3f}"
    check.detail += f"; whole figure {check.ssim:.3f}" + "".join(f"; {n}" for n in notes)
    return check


def _warnings(expected: Build, actual: Build) -> list[str]:
    E, A = expected.provenance, actual.provenance
    out = []
    e_w = {n: w.get("sha256") for n, w in E.get("weights", {}).items()}
    a_w = {n: w.get("sha256") for n, w in A.get("weights", {}).items()}
    for name in sorted(set(e_w) | set(a_w)):
        if name not in a_w:
            out.append(f"weights: {name} is in the expected set but not used by the build")
        elif name not in e_w:
            out.append(f"weights: {name} is used by the build but not by the expected set")
        elif e_w[name] != a_w[name]:
            out.append(f"weights: {name} differ (sha256 {a_w[name][:12]}… vs expected {e_w[name][:12]}…)")
    e_d, a_d = E.get("data", {}), A.get("data", {})
    if e_d.get("sha256") != a_d.get("sha256"):
        files = [f for f in set(e_d.get("files", {})) | set(a_d.get("files", {}))
                 if e_d.get("files", {}).get(f) != a_d.get("files", {}).get(f)]
        out.append(f"data differ from the expected set's ({', '.join(sorted(files)) or a_d.get('source', '?')})")
    from netviz.cache import flatten

    e_c, a_c = flatten(E.get("config", {})), flatten(A.get("config", {}))
    changed = [k for k in sorted(set(e_c) | set(a_c)) if e_c.get(k) != a_c.get(k)
               and not k.startswith(("grade.", "run.data_dir", "run.device", "run.batch_size", "run.threads",
                                     "run.fold_batchnorm", "run.channels_last"))]
    if changed:
        shown = ", ".join(f"{k}: {json.dumps(e_c.get(k))} -> {json.dumps(a_c.get(k))}" for k in changed[:4])
        out.append(f"config differs from the expected set's: {shown}" + (f" and {len(changed) - 4} more" if len(changed) > 4 else ""))
    e_dev, a_dev = E.get("device", {}).get("type"), A.get("device", {}).get("type")
    if e_dev != a_dev:
        out.append(f"device: the build ran on {a_dev}, the expected set on {e_dev} (small numeric differences are normal)")
    e_v, a_v = E.get("versions", {}), A.get("versions", {})
    libs = [k for k in ("torch", "torchvision", "numpy", "matplotlib", "python") if e_v.get(k) != a_v.get(k) and k in e_v]
    if libs:
        out.append("versions differ: " + ", ".join(f"{k} {a_v.get(k)} vs {e_v.get(k)}" for k in libs))
    return out


@dataclass
class Grade:
    checks: list[Check]
    verdicts: dict[str, str]  # question -> "pass" / "fail" / "not graded"
    warnings: list[str]
    extra: list[str]  # metrics / sections in the build but not in the expected set
    expected_root: Path
    actual_root: Path
    grade_config: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and bool(self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def grade(expected: Build, actual: Build, grade_config: dict, figures: bool = True) -> Grade:
    """Compare ``actual`` with ``expected`` (``figures=False``: metrics only)."""
    checks: list[Check] = []
    extra: list[str] = []
    moved_metrics = (expected.variation or {}).get("metrics", {})
    factor = float(grade_config.get("spread_factor", 3.0))
    outcomes = chaotic_outcomes(expected, moved_metrics, grade_config)
    for section, stored in sorted(expected.sections.items(), key=lambda kv: _section_order(kv[0])):
        mapping = question_map(section, expected.provenance.get("config", {}))
        unstable = declared(section, "UNSTABLE")
        e_leaves = leaves(stored["metrics"])
        a_leaves = leaves(actual.sections[section]["metrics"]) if section in actual.sections else {}
        for key, value in e_leaves.items():
            tol = per_image(tolerance_for(f"{section}.{key}", grade_config), key, e_leaves)
            if tol.skip:
                continue
            questions = _questions_of(key, "metrics", mapping)
            if section not in actual.sections:
                checks.append(Check("metric", section, key, False, "section missing in the build", questions, value))
            elif key not in a_leaves:
                checks.append(Check("metric", section, key, False, "missing in the build", questions, value))
            else:
                moved = moved_metrics.get(f"{section}.{key}")
                ok, how = judge(value, a_leaves[key], tol, moved, factor)
                why = (unstable_reason(key, unstable) or measured_chaotic(value, moved, grade_config)
                       or outcomes.get(f"{section}.{key}"))
                detail = "" if ok else f"expected {_show(value)}, got {_show(a_leaves[key])}"
                if why is not None:  # shown, not graded by its exact value: what covers it is graded elsewhere
                    detail = f"not graded by its exact value ({why})" + (f"; {detail}" if detail else "")
                    ok = True
                checks.append(Check("metric", section, key, ok, detail, questions, value, a_leaves[key], how,
                                    unstable=why))
        extra.extend(f"{section}.{k}" for k in a_leaves if k not in e_leaves)
        for rel in expected.figures(section) if figures else []:
            checks.append(compare_figure(section, rel, expected, actual, grade_config,
                                         _questions_of(Path(rel).name, "figures", mapping), unstable))
    extra.extend(f"section {s}" for s in actual.sections if s not in expected.sections)
    verdicts = {}
    for question in [*QUESTION_IDS, *sorted({q for c in checks for q in c.questions} - set(QUESTION_IDS), key=_question_order), "other"]:
        items = [c for c in checks if (question in c.questions) or (question == "other" and not c.questions)]
        verdicts[question] = "not graded" if not items else ("pass" if all(c.passed for c in items) else "fail")
    return Grade(checks, verdicts, _warnings(expected, actual), extra, expected.root, actual.root, grade_config)


def _section_order(name: str) -> tuple:
    return (SECTIONS.index(name), name) if name in SECTIONS else (len(SECTIONS), name)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else f"{value:.6g}"
    return text if len(text) <= 60 else text[:59] + "…"


# -- output -------------------------------------------------------------------------------------------------

def _counts(checks: list[Check], kind: str) -> str:
    items = [c for c in checks if c.kind == kind]
    if not items:
        return "—"
    text = f"{sum(c.passed for c in items)}/{len(items)}"
    if kind == "figure":
        text += f" (min SSIM {min(min([p['ssim'] for p in c.panels] or [0.0]) for c in items):.3f})"
    return text


def summary_rows(result: Grade) -> list[list[str]]:
    rows = []
    for question, verdict in result.verdicts.items():
        items = [c for c in result.checks if (question in c.questions) or (question == "other" and not c.questions)]
        rows.append([question, _counts(items, "metric"), _counts(items, "figure"), verdict.upper() if verdict != "not graded" else verdict])
    return rows


def format_table(result: Grade, max_failures: int = 25) -> str:
    header = ["question", "metrics passed", "figures passed", "verdict"]
    rows = summary_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    failures = result.failures()
    figures = [c for c in failures if c.kind == "figure"]
    metrics = [c for c in failures if c.kind == "metric"]
    if failures:
        out.append("")
        out.append(f"failed: {len(figures)} figure(s), {len(metrics)} metric(s)")
        for c in (figures + metrics)[:max_failures]:
            where = f" [{', '.join(c.questions)}]" if c.questions else ""
            out.append(f"  FAIL {c.kind} {c.label}{where}: {c.detail}")
        if len(failures) > max_failures:
            out.append(f"  … and {len(failures) - max_failures} more (see the HTML page)")
    out.append("")
    out.append(f"overall: {'PASS' if result.passed else 'FAIL'} ({sum(c.passed for c in result.checks)}/{len(result.checks)} checks)")
    return "\n".join(out)


def _thumbnail(image: np.ndarray, boxes: list[list[int]], width: int = 760) -> str:
    """A PNG data URI of ``image`` scaled to ``width`` px, with ``boxes`` outlined in red."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for box in boxes:
        draw.rectangle([box[0], box[1], box[2] - 1, box[3] - 1], outline=(230, 0, 0), width=3)
    if picture.width > width:
        picture = picture.resize((width, round(picture.height * width / picture.width)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _difference(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Where two images differ: white where equal, darker with the largest channel difference (×4)."""
    if actual.shape != expected.shape:
        actual = _resize(actual, (expected.shape[1], expected.shape[0]))
    diff = np.abs(expected.astype(np.int16) - actual.astype(np.int16)).max(axis=2)
    gray = (255 - np.clip(diff * 4, 0, 255)).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def grading_basis(result: Grade) -> dict:
    """Why items are graded as they are, for the grade page: how the tolerances were measured (the expected set's
    variants), how many items the measured spread widened or the variants' values admitted, and the items shown but
    not graded by their exact value, grouped by the reason their section gives."""
    from netviz.variation import VARIATION

    path = Path(result.expected_root) / VARIATION
    variation = store.read_json(path) if path.exists() else {}
    unstable: dict[str, list[str]] = {}
    for c in result.checks:
        if c.unstable:
            unstable.setdefault(c.unstable, []).append(c.label)
    panels = [(c.name, p["label"], p["unstable"]) for c in result.checks if c.kind == "figure"
              for p in c.panels if p.get("unstable")]
    return {
        "variants": variation.get("variants", {}),
        "measured": bool(variation),
        "widened": [c for c in result.checks if "spread" in c.tolerance],
        "envelope": [c for c in result.checks if "variant build" in c.tolerance],
        "figures_widened": sum(any(p.get("variant_ssim") is not None for p in c.panels) for c in result.checks),
        "unstable": {why: labels for why, labels in unstable.items()},
        "unstable_panels": panels,
    }


def write_html(result: Grade, path: Path) -> Path:
    """``report/grade.html``: verdicts, warnings, failed metrics, and every figure expected | actual (| difference
    for failures), failing panels outlined; self-contained."""
    import jinja2

    figures = []
    for c in sorted((c for c in result.checks if c.kind == "figure"), key=lambda c: c.passed):
        entry = {"check": c, "expected": None, "actual": None, "difference": None,
                 "expected_link": os.path.relpath(result.expected_root / c.name, Path(path).parent)}
        e_img = _rgb(result.expected_root / c.name)
        bad = [p for p in c.panels if not p["passed"]]
        entry["expected"] = _thumbnail(e_img, [p["box"] for p in bad])
        try:
            a_img = _rgb(result.actual_root / c.name) if (result.actual_root / c.name).is_file() else None
        except NetvizError:
            a_img = None  # damaged: its check already says so
        if a_img is not None:
            entry["actual"] = _thumbnail(a_img, [p["actual_box"] for p in bad])
            entry["actual_link"] = os.path.relpath(result.actual_root / c.name, Path(path).parent)
            if not c.passed:
                entry["difference"] = _thumbnail(_difference(e_img, a_img), [p["box"] for p in bad])
        figures.append(entry)
    how = grading_basis(result)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("grade.html.j2").render(
        result=result, rows=summary_rows(result), figures=figures, how=how,
        spread_factor=result.grade_config.get("spread_factor", 3.0), ssim_floor=result.grade_config.get("ssim_floor", 0.5),
        failed_metrics=[c for c in result.checks if c.kind == "metric" and not c.passed],
        metric_count=sum(c.kind == "metric" for c in result.checks),
        expected_root=str(result.expected_root), actual_root=str(Path(result.actual_root).resolve()),
        created=time.strftime("%Y-%m-%d %H:%M"))
    store.write_text_atomic(Path(path), html)
    return Path(path)


def run_grade(expected_dir: Path, actual_dir: Path, grade_config: dict, html: Path | None,
              log: Callable[[str], None] = print) -> Grade:
    """Grade, print the table and warnings, write the HTML page. Returns the result (``.passed``)."""
    expected = load_expected(expected_dir)
    actual = load_expected(actual_dir) if (Path(actual_dir) / MARKER).exists() else load_build(actual_dir)
    result = grade(expected, actual, grade_config)
    for warning in result.warnings:
        log(f"warning: {warning}")
    if result.extra:
        log(f"note: {len(result.extra)} item(s) in the build are not in the expected set "
            f"(e.g. {result.extra[0]}); they are not graded")
    log(format_table(result))
    if html is not None:
        log(f"grade: {write_html(result, html)}")
    return result
