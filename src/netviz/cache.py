"""Cache keys: what a result was made from, and why it must be made again.

A result's key is a flat dict of parts (config values, source hashes of the modules it uses, data and weights
sha256, library versions, device type). A run compares the stored parts with the current ones; any difference
is named (``config saliency.tolerance_px: 15 -> 10``, ``code netviz/methods/saliency.py``). File times are
never used.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE = "netviz"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def flatten(tree: dict) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    _flatten("", tree, out)
    return out


@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):  # `from module import function` names no module
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


def _imports_of(name: str, path: Path) -> set[str]:
    """The netviz modules that module ``name`` imports (absolute or relative)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def code_dependencies(module: str) -> list[str]:
    """``module`` and every netviz module it imports, transitively (sorted names)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name)
        if path is None:
            continue
        seen.add(name)
        todo.extend(_imports_of(name, path) - seen)
    return sorted(seen)


def source_hash(module: str) -> str:
    path = _module_file(module)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path else "missing"


def code_parts(module: str) -> dict[str, str]:
    """``{"code netviz/methods/saliency.py": <hash>, ...}`` for a module and its netviz dependencies."""
    root = _module_file(PACKAGE).parent.parent
    return {f"code {_module_file(name).relative_to(root)}": source_hash(name) for name in code_dependencies(module)}


def library_versions() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__}
    try:
        import timm

        versions["timm"] = timm.__version__
    except ImportError:
        pass
    # the saliency methods are Captum's; rank correlation and SSIM are scipy's and scikit-image's
    for name, module in (("captum", "captum"), ("scipy", "scipy"), ("scikit-image", "skimage")):
        try:
            versions[name] = importlib.import_module(module).__version__
        except ImportError:
            pass
    return versions


def digest(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def explain_changes(old: dict[str, Any] | None, new: dict[str, Any], limit: int = 4) -> list[str]:
    """Human-readable reasons why ``new`` differs from ``old`` (empty when they are equal)."""
    if old is None:
        return ["no earlier result"]
    reasons = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key.startswith("code "):
            reasons.append(f"{key[5:]} changed" if key in old and key in new else f"{key[5:]} {'added' if key in new else 'removed'}")
        elif key.startswith("config "):
            reasons.append(f"{key[7:]}: {old.get(key)!r} -> {new.get(key)!r}")
        else:
            reasons.append(f"{key} changed")
    if len(reasons) > limit:
        reasons = reasons[:limit] + [f"and {len(reasons) - limit} more"]
    return reasons
