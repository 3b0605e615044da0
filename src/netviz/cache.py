"""Cache keys: what a result was made from, and why it must be made again.

A result's key is a flat dict of parts, each named by kind:

- ``config <key>``: the config values the result depends on (:func:`netviz.config.section_slice`);
- ``code <file>``: a hash of each netviz module the experiment imports, transitively (found by reading the
  import statements with :mod:`ast`, never by importing). The hash is over the module's syntax tree without
  docstrings, so editing a comment, a docstring or the formatting does not re-run anything; changing code does;
- ``data`` and ``weights <model>``: sha256 of the inputs;
- ``version <library>``: the installed version of every third-party library those modules import, and python's;
- ``device``: the device type (cpu / cuda), since kernels differ.

A run compares the stored parts with the current ones; each difference is named (``saliency.tolerance_px:
15 -> 10``, ``netviz/methods/saliency.py changed``, ``torch 2.4.0 -> 2.5.1``). File times are never used.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import platform
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from netviz.store import sha256_bytes

PACKAGE = "netviz"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), sub, out)
    else:
        out[prefix] = value


def flatten(tree: dict) -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (an empty table stays one entry, ``{}``)."""
    out: dict[str, Any] = {}
    _flatten("", tree, out)
    return out


PACKAGE_DIR = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def _module_file(name: str) -> Path | None:
    """The source file of netviz module ``name``, found on disk without importing anything (importing a
    submodule to locate it would import torch and friends: seconds). A package already imported contributes
    the folders of its ``__path__`` (e.g. one extended with a plug-in folder)."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    dirs = [PACKAGE_DIR]
    if len(parts) == 1:
        return PACKAGE_DIR / "__init__.py"
    for depth, part in enumerate(parts[1:], start=1):
        imported = sys.modules.get(".".join(parts[:depth]))
        search = list(dict.fromkeys([*dirs, *(Path(p) for p in getattr(imported, "__path__", []) or [])]))
        if depth == len(parts) - 1:
            for folder in search:
                for candidate in (folder / f"{part}.py", folder / part / "__init__.py"):
                    if candidate.is_file():
                        return candidate
            return None
        dirs = [folder / part for folder in search if (folder / part).is_dir()]
        if not dirs:
            return None
    return None


class _AnalysisMemo:
    """What :func:`_analyse` found for each source content (by sha256), kept on disk between processes: parsing
    and dumping the syntax trees of the ~25 modules of a build takes about a second, most of a run where every
    section is cached. Keyed by content and the python version (whose ``ast`` makes the fingerprint), so an entry
    can never be stale; an unreadable file is ignored and rebuilt."""

    def __init__(self):
        self._entries: dict | None = None
        self._dirty = False

    @staticmethod
    def path() -> Path:
        root = os.environ.get("NETVIZ_CACHE_DIR") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "netviz")
        return Path(root) / f"code-analysis-py{sys.version_info[0]}{sys.version_info[1]}.json"

    def _load(self) -> dict:
        if self._entries is None:
            try:
                self._entries = json.loads(self.path().read_text())
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def get(self, key: str) -> tuple[frozenset[str], str] | None:
        entry = self._load().get(key)
        return (frozenset(entry[0]), entry[1]) if entry else None

    def put(self, key: str, imports: frozenset[str], fingerprint: str) -> None:
        self._load()[key] = [sorted(imports), fingerprint]
        path = self.path()
        try:  # written at once (atomically); another process writing too at worst drops an entry, recomputed later
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self._entries))
            os.replace(tmp, path)
        except OSError:
            pass


_MEMO = _AnalysisMemo()


@lru_cache(maxsize=256)
def _analyse(path: Path, source: bytes) -> tuple[frozenset[str], str]:
    """Parse a module once per content: the names it imports (see :func:`_imports`) and its code fingerprint."""
    key = sha256_bytes(source)
    known = _MEMO.get(key)
    if known is not None:
        return known
    found, fingerprint = _parse(path, source)
    _MEMO.put(key, found, fingerprint)
    return found, fingerprint


def _parse(path: Path, source: bytes) -> tuple[frozenset[str], str]:
    tree = ast.parse(source, filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(("." * node.level) + (node.module or ""))
            found.update(("." * node.level) + f"{node.module + '.' if node.module else ''}{alias.name}" for alias in node.names)
    stripped = _Docstrings().visit(tree)
    fingerprint = sha256_bytes(ast.dump(stripped, include_attributes=False).encode())[:16]
    return frozenset(found), fingerprint


def _resolve(name: str, package: str) -> str:
    """``..methods.x`` seen in package ``netviz.experiments`` -> ``netviz.methods.x``."""
    level = len(name) - len(name.lstrip("."))
    if not level:
        return name
    parts = package.split(".")
    rest = name[level:]
    return ".".join(parts[: len(parts) - level + 1] + ([rest] if rest else []))


def _imports(name: str, path: Path) -> set[str]:
    """Every module name that module ``name`` imports (absolute, relative resolved), anywhere in its body;
    for ``from a import b`` both ``a`` and ``a.b`` (b may be a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found, _ = _analyse(path, path.read_bytes())
    return {_resolve(m, package) for m in found}


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


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
        todo.extend({m for m in _imports(name, path) if _ours(m)} - seen)
    return sorted(seen)


def third_party_imports(modules: list[str]) -> list[str]:
    """Top-level names of the non-netviz, non-standard-library packages that ``modules`` import."""
    names: set[str] = set()
    for module in modules:
        path = _module_file(module)
        if path is not None:
            names.update(m.split(".")[0] for m in _imports(module, path) if m and not _ours(m))
    return sorted(n for n in names if n not in sys.stdlib_module_names and n != "__future__")


class _Docstrings(ast.NodeTransformer):
    """Drops docstrings (a string constant as a body's first statement); they do not change results."""

    def generic_visit(self, node):
        super().generic_visit(node)
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return node


def code_fingerprint(path: Path) -> str:
    """Hash of a Python file's code: its syntax tree without docstrings, comments, or layout (16 hex digits)."""
    return _analyse(Path(path), Path(path).read_bytes())[1]


def source_hash(module: str) -> str:
    """:func:`code_fingerprint` of an importable module (``"missing"`` when it has no source file)."""
    path = _module_file(module)
    return code_fingerprint(path) if path else "missing"


def _label(name: str) -> str:
    """A module as a path relative to ``src/`` (``netviz/methods/saliency.py``), else its dotted name."""
    path = _module_file(name)
    root = PACKAGE_DIR.parent
    try:
        return str(path.relative_to(root))
    except ValueError:  # a module found outside this checkout (e.g. a plug-in folder)
        return name


def code_parts(module: str) -> dict[str, str]:
    """``{"code netviz/methods/saliency.py": <hash>, ...}`` for a module and its netviz dependencies."""
    return {f"code {_label(name)}": source_hash(name) for name in code_dependencies(module)}


# Import names whose distribution is named otherwise (the general lookup, packages_distributions(), reads
# every installed package's file list: seconds, so it is only the last resort).
_DISTRIBUTION_OF = {"PIL": "pillow", "skimage": "scikit-image", "sklearn": "scikit-learn", "cv2": "opencv-python",
                    "yaml": "PyYAML"}


@lru_cache(maxsize=None)
def package_version(import_name: str) -> str | None:
    """The installed version of the distribution that provides ``import_name`` (``skimage`` -> scikit-image's),
    read from package metadata without importing it; None when it is not installed."""
    candidates = [_DISTRIBUTION_OF.get(import_name, import_name)]
    for attempt in range(2):
        for dist in candidates:
            try:
                return importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        if attempt == 0:
            candidates = importlib.metadata.packages_distributions().get(import_name, [])
    return None


def library_versions(modules: list[str] | None = None) -> dict[str, str]:
    """Versions of the third-party libraries ``modules`` import (default: the whole netviz package's core), plus
    python's. Read from package metadata, so nothing is imported."""
    if modules is None:
        modules = code_dependencies(f"{PACKAGE}.experiments.context")
    versions = {name: package_version(name) for name in third_party_imports(modules)}
    versions = {name: version for name, version in versions.items() if version}
    versions["python"] = platform.python_version()
    return versions


def digest(parts: Any) -> str:
    """sha256 of ``parts`` as canonical JSON (keys sorted; values JSON cannot hold written as ``str``): the one
    hash of structured values (cache keys, job keys, an image's key, the data fingerprint)."""
    return sha256_bytes(json.dumps(parts, sort_keys=True, default=str).encode())


# Reasons are listed in this order of kinds: what the user changed comes first, code last.
_KIND_ORDER = ("config", "input", "data", "weights", "device", "version", "template", "code", "output")


def _kind(key: str) -> str:
    return key.split(" ", 1)[0]


def explain_changes(old: dict[str, Any] | None, new: dict[str, Any], limit: int = 4) -> list[str]:
    """Human-readable reasons why ``new`` differs from ``old`` (empty when they are equal)."""
    if old is None:
        return ["no earlier result"]
    changed = [k for k in set(old) | set(new) if old.get(k) != new.get(k)]
    changed.sort(key=lambda k: (_KIND_ORDER.index(_kind(k)) if _kind(k) in _KIND_ORDER else len(_KIND_ORDER), k))
    reasons = []
    for key in changed:
        kind, _, name = key.partition(" ")
        if kind in ("code", "input", "template", "output"):
            reasons.append(f"{name} changed" if key in old and key in new else f"{name} {'added' if key in new else 'removed'}")
        elif kind == "config":
            reasons.append(f"{name}: {_short(old.get(key, '(unset)'))} -> {_short(new.get(key, '(unset)'))}")
        elif kind == "version":
            reasons.append(f"{name} {old.get(key, '(none)')} -> {new.get(key, '(none)')}")
        elif kind == "device":
            reasons.append(f"device {old.get(key)} -> {new.get(key)}")
        else:
            reasons.append(f"{key} changed")
    if len(reasons) > limit:
        reasons = reasons[:limit] + [f"and {len(reasons) - limit} more"]
    return reasons


def _short(value: Any, width: int = 40) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
