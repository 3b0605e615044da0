"""What a build was made from: ``results/provenance.json``.

Written by the runner after every run from the stored manifests (not from what happened to run this time), so
a run that recomputes nothing writes the same file again, byte for byte, and the report stays cached.

Fields: ``git`` (commit of the code and whether tracked files had uncommitted changes), ``config_hash`` and
``config`` (the full effective config), ``data`` (source, sha256 of each file), ``weights`` (per model: file,
sha256, the sections that use it), ``versions`` (python, torch, torchvision, CUDA, cuDNN and every library the
experiments import), ``device`` (type, name, CPU threads), ``seeds`` (every ``*seed`` config key),
``determinism`` (the settings the runner enforces) and ``experiments`` (per section: wall time, when and
where it ran, the commit it ran at, and whether its stored result still matches the current config and code).
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

from netviz import cache
from netviz.config import PROJECT_ROOT


def git_state(root: Path = PROJECT_ROOT) -> dict:
    """``{"commit": sha or "unknown", "dirty": True/False (tracked files changed) or None}``."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "HEAD")
    return {"commit": commit or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if commit else None}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device) -> dict:
    import torch

    info = {"type": device.type}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1))
    else:
        info["name"] = cpu_name()
    info["cpu_threads"] = torch.get_num_threads()
    return info


def versions(device, modules: list[str]) -> dict:
    """Library versions: python, torch, torchvision, CUDA / cuDNN of the torch build (and the GPU driver when a
    GPU ran), and every third-party library of ``modules``."""
    import torch

    found = cache.library_versions(modules)
    out = {"python": found.pop("python"), "torch": torch.__version__,
           "torchvision": cache.package_version("torchvision"),
           "cuda": torch.version.cuda}
    if device.type == "cuda":
        out["cudnn"] = torch.backends.cudnn.version()
        out["gpu_driver"] = _nvidia_driver()
    out.update({name: version for name, version in sorted(found.items()) if name not in out})
    return out


def _nvidia_driver() -> str | None:
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
        return proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def seeds(config: dict) -> dict:
    """Every config key named ``seed`` or ``*_seed``: ``{"run.seed": 0, ...}``."""
    return {key: value for key, value in cache.flatten(config).items()
            if key.rsplit(".", 1)[-1] == "seed" or key.endswith("_seed")}


def collect(config: dict, data: dict, weights: dict, device, experiments: dict, modules: list[str],
            determinism: dict) -> dict:
    """The provenance dict (see the module docstring). ``experiments`` and ``weights`` come from the runner."""
    return {
        "git": git_state(),
        "config_hash": cache.digest(config)[:16],
        "config": config,
        "data": data,
        "weights": weights,
        "versions": versions(device, modules),
        "device": device_info(device),
        "seed": config["run"]["seed"],
        "seeds": seeds(config),
        "determinism": determinism,
        "experiments": experiments,
        "total_wall_time_s": round(sum(e["wall_time_s"] for e in experiments.values()), 2),
    }
