"""Configuration: ``config/default.toml`` is both the defaults and the schema.

A config is a nested ``dict`` (section -> key -> value). Overlay files and ``--set key=value`` overrides may only
name keys that exist in the defaults, with a value of the same type; anything else is a :class:`NetvizError`
that lists the valid keys.
"""

from __future__ import annotations

import copy
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from netviz.errors import NetvizError

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout (in an installed package: its parent folders)
# config/default.toml, reached through the package's link to it so that an installed netviz carries it too.
DEFAULT_CONFIG = (Path(__file__).resolve().parent / "assets" / "default.toml").resolve()
TEMPLATES_DIR = (Path(__file__).resolve().parent / "assets" / "templates").resolve()  # likewise templates/

# Tables whose keys are free (user-chosen names), with the type every value must have.
FREE_TABLES: dict[str, type] = {"models.weights": str, "grade.tolerances": dict}


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric key (inclusive unless ``open_low``); a list key's every element must lie within."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def admits(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return self.high is None or value <= self.high

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"in {self.low}..{self.high}"
        if self.low is not None:
            return f"{'>' if self.open_low else '>='} {self.low}"
        return f"<= {self.high}"


AT_LEAST_0, AT_LEAST_1, POSITIVE = Range(0), Range(1), Range(0, open_low=True)
SHARE, CLASS = Range(0, 1), Range(0, 999)

# What each numeric key admits, checked whenever a config is loaded (every float anywhere must also be finite).
# A key missing here is only type- and finiteness-checked; sections check what depends on the image set.
CONSTRAINTS: dict[str, Range] = {
    "run.seed": Range(0, 2**32 - 1), "run.batch_size": AT_LEAST_0, "run.threads": AT_LEAST_0,
    "run.memory_budget_gb": POSITIVE, "run.gpu_memory_budget_gb": POSITIVE, "run.shard_size": AT_LEAST_0,
    "run.ray_workers": AT_LEAST_0, "run.cpus_per_job": POSITIVE, "run.gpus_per_job": AT_LEAST_0,
    "saliency.batch_size": AT_LEAST_0, "saliency.num_shown": AT_LEAST_1, "saliency.tolerance_px": AT_LEAST_0,
    "saliency_methods.batch_size": AT_LEAST_0, "saliency_methods.num_shown": AT_LEAST_1,
    "saliency_methods.tolerance_px": AT_LEAST_0, "saliency_methods.smoothgrad_samples": AT_LEAST_1,
    "saliency_methods.smoothgrad_sigma": AT_LEAST_0, "saliency_methods.ig_steps": AT_LEAST_1,
    "saliency_methods.ig_blur_sigma": POSITIVE, "saliency_methods.perturbation_steps": AT_LEAST_1,
    "saliency_methods.substrate_blur_sigma": POSITIVE, "saliency_methods.randomization_images": AT_LEAST_1,
    "saliency_methods.randomization_fractions": SHARE,
    "classviz.batch_size": AT_LEAST_0, "classviz.learning_rate": AT_LEAST_0, "classviz.l2_reg": AT_LEAST_0,
    "classviz.num_iterations": AT_LEAST_1, "classviz.blur_every": AT_LEAST_0, "classviz.blur_sigma": AT_LEAST_0,
    "classviz.max_jitter": AT_LEAST_0, "classviz.snapshots": AT_LEAST_0, "classviz.target": CLASS,
    "classviz.gallery": CLASS, "classviz.other_gallery": CLASS, "classviz.sweep_classes": CLASS,
    "classviz.sweep_learning_rates": AT_LEAST_0, "classviz.sweep_l2_regs": AT_LEAST_0,
    "classviz.start_image": AT_LEAST_0, "classviz.start_target": CLASS, "classviz.own_class_image": AT_LEAST_0,
    "classviz.chunk_size": AT_LEAST_0,
    "adversarial.batch_size": AT_LEAST_0, "adversarial.fooling_images": AT_LEAST_0,
    "adversarial.fooling_target": CLASS, "adversarial.fooling_shown": AT_LEAST_0, "adversarial.fooling_lr": POSITIVE,
    "adversarial.fooling_max_iter": AT_LEAST_1, "adversarial.fooling_kappa": Range(0, 1),
    "adversarial.kappa_compare": Range(0, 1), "adversarial.eps_grid": POSITIVE, "adversarial.eps_grid_l2": POSITIVE,
    "adversarial.sweep_images": AT_LEAST_0, "adversarial.steps": AT_LEAST_1, "adversarial.step_size": POSITIVE,
    "adversarial.momentum": AT_LEAST_0, "adversarial.transfer_eps": POSITIVE, "adversarial.transfer_eps_l2": POSITIVE,
    "adversarial.transfer_steps": AT_LEAST_1, "adversarial.jpeg_quality": Range(1, 95),
    "grade.ssim_min": Range(-1, 1), "grade.ssim_min_rescaled": Range(-1, 1), "grade.abs_tol": AT_LEAST_0,
    "grade.rel_tol": AT_LEAST_0, "grade.spread_factor": AT_LEAST_0, "grade.ssim_floor": Range(-1, 1),
    "grade.chaotic_share": AT_LEAST_0,
    "bench.images": AT_LEAST_0, "bench.repeats": AT_LEAST_1, "bench.time_limit_s": POSITIVE,
    "bench.max_steps": AT_LEAST_0, "bench.map_images": AT_LEAST_0, "bench.scaleout_images": AT_LEAST_1,
    "bench.scaleout_shard_size": AT_LEAST_1, "bench.overhead_jobs": AT_LEAST_1, "bench.projection_images": AT_LEAST_1,
    "bench.gpu_fp32_tflops": POSITIVE, "bench.gpu_share": Range(0, 1), "bench.precision_steps": AT_LEAST_1,
    "bench.memory_budgets_gb": POSITIVE, "bench.memory_images": AT_LEAST_1, "bench.memory_image_size": Range(32),
}


def _numbers(value: Any) -> list:
    """Every int or float in ``value`` (nested lists and tables included; booleans are not numbers)."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else []


def check_values(config: dict) -> None:
    """Refuse non-finite floats anywhere and numbers outside :data:`CONSTRAINTS`, naming the key and the range."""
    def walk(node: dict, prefix: str) -> None:
        for key, value in node.items():
            path = f"{prefix}{key}"
            if isinstance(value, dict):
                walk(value, f"{path}.")
                continue
            bad = [n for n in _numbers(value) if isinstance(n, float) and not math.isfinite(n)]
            if bad:
                raise NetvizError(f"config key '{path}' must be a finite number, got {value!r}")
            rule = CONSTRAINTS.get(path)
            if rule is not None:
                outside = [n for n in _numbers(value) if not rule.admits(n)]
                if outside:
                    shown = f"{outside[0]!r} in {value!r}" if isinstance(value, list) else repr(value)
                    raise NetvizError(f"config key '{path}' must be {rule.describe()}, got {shown}")

    walk(config, "")


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "list", dict: "table"}.get(
        type(value), type(value).__name__
    )


def _with_article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _check_value(path: str, default: Any, value: Any) -> Any:
    """Return ``value`` if it has the type of ``default`` (ints are accepted for floats), else raise."""
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(default, bool) and isinstance(value, bool)
    elif isinstance(default, float) and isinstance(value, int):
        return float(value)
    elif isinstance(default, list):
        ok = isinstance(value, list)
        if ok and default:
            # a list's elements must match the type of the default's elements (ints also pass for floats)
            value = [_check_value(f"{path}[{i}]", default[0], v) for i, v in enumerate(value)]
    else:
        ok = type(value) is type(default)
    if not ok:
        raise NetvizError(
            f"config key '{path}' must be {_with_article(_type_name(default))} (like {default!r}), got {value!r}"
        )
    return value


def _merge(base: dict, overlay: dict, prefix: str = "") -> None:
    """Merge ``overlay`` into ``base`` in place, checking every key and type against ``base``."""
    for key, value in overlay.items():
        path = f"{prefix}{key}"
        if prefix.rstrip(".") in FREE_TABLES:
            base[key] = _check_value(path, FREE_TABLES[prefix.rstrip(".")](), value)
            continue
        if key not in base:
            valid = ", ".join(sorted(base)) or "(none)"
            where = f"[{prefix.rstrip('.')}]" if prefix else "sections"
            raise NetvizError(f"unknown config key '{path}'; valid {where}: {valid}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise NetvizError(f"config key '{path}' is a table; set one of its keys, e.g. '{path}.{next(iter(base[key]), 'key')}'")
            _merge(base[key], value, f"{path}.")
        else:
            base[key] = _check_value(path, base[key], value)


def parse_override(text: str) -> dict:
    """Turn ``"section.key=VALUE"`` into a nested dict; VALUE is parsed as TOML, else taken as a bare string."""
    if "=" not in text:
        raise NetvizError(f"--set needs KEY=VALUE (e.g. saliency.num_shown=3), got '{text}'")
    key, raw = (part.strip() for part in text.split("=", 1))
    if not key or any(not part for part in key.split(".")):
        raise NetvizError(f"--set has an empty key in '{text}'")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # bare words such as cpu or /path/to/dir
    nested: dict = {}
    node = nested
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return nested


def read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise NetvizError(f"config file '{path}' not found; pass an existing file to --config") from None
    except IsADirectoryError:
        raise NetvizError(f"config file '{path}' is a folder; pass a TOML file to --config") from None
    except PermissionError:
        raise NetvizError(f"config file '{path}' cannot be read (permission denied); fix its permissions") from None
    except UnicodeDecodeError as err:
        raise NetvizError(f"config file '{path}' is not UTF-8 text (byte {err.start}); save it as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as err:
        raise NetvizError(f"config file '{path}' is not valid TOML: {err}") from None


def load_config(files: list[Path] | tuple = (), overrides: list[str] | tuple = (), extra: dict | None = None) -> dict:
    """Defaults, then each overlay file in order, then each ``--set`` override, then ``extra`` (a nested dict).

    Returns the effective config as a nested dict.
    """
    config = read_toml(DEFAULT_CONFIG)
    for path in files:
        if Path(path).resolve() != DEFAULT_CONFIG:
            _merge(config, read_toml(Path(path)))
    for text in overrides:
        _merge(config, parse_override(text))
    if extra:
        _merge(config, extra)
    check_values(config)
    return config


def section_models(config: dict, section: str) -> list[str]:
    """The models a section runs on: its own ``models`` list, or ``models.names`` when that is empty."""
    names = config[section].get("models") or config["models"]["names"]
    if not names:
        raise NetvizError(f"no models for [{section}]: set models.names or {section}.models")
    return list(names)


def section_slice(config: dict, section: str, exclude: tuple[str, ...] = ("batch_size",)) -> dict:
    """What of the config a section's results depend on (for its cache key): its own table, its models and
    the run settings that change results. Keys in ``exclude`` (e.g. ``batch_size``) do not change results."""
    own = {k: v for k, v in config[section].items() if k not in exclude}
    return {
        section: own,
        "models": section_models(config, section),
        "run.seed": config["run"]["seed"],
        "run.images": config["run"]["images"],
    }


@dataclass(frozen=True)
class DataDir:
    """The data directory the user chose, whose files override the embedded ones (course npz, ``weights/``).

    ``path``: the folder (``~`` expanded), ``None`` when none is chosen. ``setting``: what chose it, as reports
    name it (``--data-dir`` for ``run.data_dir``, else ``$NETVIZ_DATA_DIR``). Resolved once, where a run reads
    its config (:func:`resolve_data_dir`), and passed down; the loaders never read the environment.
    """

    path: Path | None = None
    setting: str = ""

    def label(self, name: str) -> str:
        """How reports name ``name`` found in this folder (which setting chose it, no machine path)."""
        return f"data directory ({self.setting}): {name}"


NO_DATA_DIR = DataDir()  # only the embedded files, the download cache and torchvision's


def resolve_data_dir(run: Mapping[str, Any], environ: Mapping[str, str] = os.environ) -> DataDir:
    """The data directory of a run: the ``[run]`` config's ``data_dir`` (set by ``--data-dir``), else
    ``$NETVIZ_DATA_DIR``; :data:`NO_DATA_DIR` when neither is set."""
    configured = run.get("data_dir", "")
    chosen = configured or environ.get("NETVIZ_DATA_DIR", "")
    if not chosen:
        return NO_DATA_DIR
    return DataDir(Path(chosen).expanduser(), "--data-dir" if configured else "$NETVIZ_DATA_DIR")


def deep_copy(config: dict) -> dict:
    return copy.deepcopy(config)
