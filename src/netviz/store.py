"""Writing results so that an interruption never leaves a partial result behind.

Files are written to a temporary name in the same folder and renamed into place (``os.replace`` is atomic on
POSIX). A whole experiment's output folders are built under staging names and swapped in at the end
(:func:`staged`). What an interrupted run leaves (staging folders, temporary files) carries a marker in its name
and is removed by the next run (:func:`clean_stale`); :func:`exclusive` keeps two runs from sharing one folder.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from netviz.errors import NetvizError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are then not protected from each other
    fcntl = None


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):  # 0-d torch tensors
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


TMP_SUFFIX = ".tmp"
STAGING_MARKERS = (".tmp-", ".old-")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600 files; results are ordinary files
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf; numpy and 0-d tensors too) replaced by None: JSON has
    no such numbers, and a bare ``NaN`` makes the file unreadable to strict parsers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, (float, np.floating)) or (hasattr(value, "item") and getattr(value, "ndim", None) == 0):
        number = value.item() if hasattr(value, "item") else value
        return None if isinstance(number, float) and not np.isfinite(number) else value
    return value


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically. numpy scalars/arrays and Paths are converted; NaN and
    infinities become ``null``."""
    text = json.dumps(_finite(data), indent=2, sort_keys=False, default=_json_default, allow_nan=False)
    write_text_atomic(path, text + "\n")


class CorruptFile(NetvizError, ValueError):
    """A stored JSON file that cannot be parsed (a hand edit, a damaged copy)."""


def read_json(path: Path) -> Any:
    """The JSON in ``path``; :class:`CorruptFile` (a one-line error that is also a ValueError) when it is not
    valid UTF-8 JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptFile(f"{path} is damaged (not valid JSON: {err}); restore it, or delete it and rebuild") from None


def staging_dir(final: Path) -> Path:
    """A fresh, empty staging folder beside ``final`` (``<name>.tmp-<pid>``)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    return staging


def swap_in(staging: Path, final: Path) -> None:
    """Replace folder ``final`` by ``staging``: the old folder is moved aside, then removed."""
    final = Path(final)
    old = final.with_name(f"{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged(*finals: Path) -> Iterator[tuple[Path, ...]]:
    """Build folders ``finals`` under staging names (:func:`staging_dir`, yielded in the same order) and swap
    them in (:func:`swap_in`) in that order when the block ends without error, so put last the folder whose
    arrival marks the result complete. On any error (KeyboardInterrupt included) the staging folders are removed,
    the old folders stay as they were, and the error propagates::

        with staged(root / "figures" / name, root / "results" / name) as (figures, results):
            ...  # write into figures and results
    """
    stages: list[Path] = []
    try:
        for final in finals:
            stages.append(staging_dir(final))
        yield tuple(stages)
        for stage, final in zip(stages, finals):
            swap_in(stage, final)
    except BaseException:
        for stage in stages:
            shutil.rmtree(stage, ignore_errors=True)
        raise


def clean_stale(parent: Path) -> list[Path]:
    """Remove what an interrupted run left in ``parent``: staging and moved-aside folders (``<name>.tmp-<pid>``,
    ``<name>.old-<pid>``) and temporary files (``.<name>.<random>.tmp``). Returns what was removed.
    Call it only while holding :func:`exclusive`, so that no running process still owns them."""
    parent = Path(parent)
    if not parent.is_dir():
        return []
    removed = []
    for entry in parent.iterdir():
        staged = any(marker in entry.name for marker in STAGING_MARKERS)
        temporary = entry.name.startswith(".") and entry.name.endswith(TMP_SUFFIX) and entry.is_file()
        if staged or temporary:
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def display_path(path: Path | str) -> str:
    """How a report names a file or folder without printing the build machine's layout: relative to the project
    (or the working directory) when inside it, ``~/…`` under the home folder, else the name alone."""
    path = Path(path).expanduser().resolve()
    from netviz.config import PROJECT_ROOT

    for base in (PROJECT_ROOT, Path.cwd().resolve()):
        if path == base or base in path.parents:
            return path.relative_to(base).as_posix() or "."
    home = Path.home().resolve()
    if home in path.parents:
        return "~/" + path.relative_to(home).as_posix()
    return f"…/{path.name}"


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def hash_tree(folder: Path, relative_to: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, keyed by its path relative to ``relative_to`` (POSIX style)."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {path.relative_to(relative_to).as_posix(): hash_file(path)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def check_files(recorded: dict[str, str], root: Path) -> list[str]:
    """What differs between files on disk and their recorded sha256 (``{relative path: sha256}``):
    ``["figures/a/x.png missing", "results/a/m.npz changed"]``; empty when all are as recorded."""
    problems = []
    for rel, sha in recorded.items():
        path = Path(root) / rel
        if not path.is_file():
            problems.append(f"{rel} missing")
        elif hash_file(path) != sha:
            problems.append(f"{rel} changed")
    return problems


class Busy(NetvizError):
    """Another process holds the folder's lock."""


@contextlib.contextmanager
def exclusive(folder: Path, what: str = "netviz run") -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (a ``.lock`` file in it) for the duration of the block.

    Raises :class:`Busy` at once when another process holds it. The operating system releases the lock when
    the process ends, however it ends (``kill -9`` included), so a stale lock file never blocks a later run.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            raise Busy(f"another {what} ({holder}) is writing {folder}; wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"pid {os.getpid()}".encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock
