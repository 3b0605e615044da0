"""Builds and expected sets: a build's stored results (:class:`Build`, :func:`load_build`, :func:`load_expected`),
the graded items of its metrics (:func:`leaves`), and a finished build copied as an expected set
(:func:`snapshot`, ``netviz expected``)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from netviz import store
from netviz.errors import NetvizError
from netviz.sections import SECTIONS

MARKER = "expected.json"


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
    with store.staged(out) as (stage,):
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
