"""Layouts 1 and 2 of :mod:`netviz.annotations`: ``labels.json`` (``{file: label}`` or ``{file: {"label",
"boxes"}}``) and ``labels.csv``, each entry checked (a safe file name inside the folder, a label, finite boxes)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from netviz.errors import NetvizError


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [key for key, _ in pairs]
    repeated = next((key for key in keys if keys.count(key) > 1), None)
    if repeated is not None:
        raise _Duplicate(repeated)
    return dict(pairs)


class _Duplicate(Exception):
    pass


def _safe_name(folder: Path, labels_file: Path, name: object) -> str:
    """``name`` if it is a file name relative to ``folder`` that stays inside it (no absolute path, no ``..``,
    no symlink leading out); else a :class:`NetvizError` naming the entry."""
    if not isinstance(name, str) or not name.strip():
        raise NetvizError(f"{labels_file}: entry {name!r} is not a file name; name each image by its file in {folder}")
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise NetvizError(f"{labels_file}: entry '{name}' points outside {folder}; name images by their path inside it")
    inside = folder.resolve()
    resolved = (folder / relative).resolve()
    if resolved != inside and inside not in resolved.parents:
        raise NetvizError(f"{labels_file}: entry '{name}' leads outside {folder} (a link to {resolved}); "
                          "copy the image into the folder instead")
    return name


def _check_label(labels_file: Path, name: str, label: object) -> str | int:
    if isinstance(label, bool) or not isinstance(label, (str, int)) or (isinstance(label, str) and not label.strip()):
        raise NetvizError(f"{labels_file}: entry '{name}' has label {label!r}; give an ImageNet class name or an "
                          "index 0..999")
    return label


def _check_boxes(labels_file: Path, name: str, boxes: object) -> list[tuple[float, float, float, float]]:
    """Boxes as a list of ``[x0, y0, x1, y1]`` with finite numbers and x0 < x1, y0 < y1, else one line naming them."""
    def bad(what: str) -> NetvizError:
        return NetvizError(f"{labels_file}: entry '{name}' has {what}; boxes are a list of [x0, y0, x1, y1] "
                           "in the image's pixels, x0 < x1 and y0 < y1")

    if not isinstance(boxes, list):
        raise bad(f"boxes {boxes!r}")
    checked = []
    for box in boxes:
        if not isinstance(box, list) or len(box) != 4:
            raise bad(f"box {box!r}" + (" (boxes must be a list of lists)" if not isinstance(box, list) else ""))
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) for v in box):
            raise bad(f"box {box!r} with a value that is not a finite number")
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x0 < x1 and y0 < y1):
            raise bad(f"inverted or empty box {box!r}")
        checked.append((x0, y0, x1, y1))
    return checked


def read_labels(folder: Path) -> dict[str, dict]:
    """Read ``labels.json`` ({file: label} or {file: {"label": ..., "boxes": [[x0,y0,x1,y1], ...]}}) or
    ``labels.csv`` (columns ``file,label``). Every entry is checked (file inside ``folder``, a label, well-formed
    boxes); a problem is a :class:`NetvizError` naming the labels file and the entry."""
    json_path, csv_path = folder / "labels.json", folder / "labels.csv"
    if json_path.exists():
        try:
            raw = json.loads(json_path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
        except _Duplicate as dup:
            raise NetvizError(f"{json_path} lists '{dup}' twice; keep one entry per image") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise NetvizError(f"{json_path} is not valid JSON ({err}); fix it (see README, 'Your own images')") from None
        except OSError as err:
            raise NetvizError(f"{json_path} cannot be read ({err.strerror}); fix it (see README, 'Your own images')") from None
        if not isinstance(raw, dict):
            raise NetvizError(f"{json_path} must be a JSON object {{\"file\": label, ...}}, not a {type(raw).__name__}")
        entries = {}
        for name, entry in raw.items():
            _safe_name(folder, json_path, name)
            if isinstance(entry, dict):
                unknown = sorted(set(entry) - {"label", "boxes"})
                if "label" not in entry or unknown:
                    what = f"unknown field '{unknown[0]}'" if unknown else "no 'label'"
                    raise NetvizError(f"{json_path}: entry '{name}' has {what}; write {{\"label\": ..., \"boxes\": [...]}}")
                entries[name] = {"label": _check_label(json_path, name, entry["label"]),
                                 "boxes": _check_boxes(json_path, name, entry.get("boxes", []))}
            else:
                entries[name] = {"label": _check_label(json_path, name, entry), "boxes": []}
        return entries
    if csv_path.exists():
        try:
            with open(csv_path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                rows, header = list(reader), reader.fieldnames or []
        except (UnicodeDecodeError, csv.Error, OSError) as err:
            raise NetvizError(f"{csv_path} cannot be read as UTF-8 CSV ({err}); save it as 'file,label' rows") from None
        if not {"file", "label"} <= set(header):
            raise NetvizError(f"{csv_path} needs a header 'file,label'; found {header}")
        entries = {}
        for number, row in enumerate(rows, start=2):  # line 1 is the header
            name, label = row["file"], row["label"]
            if name is None or label is None or not label.strip():
                raise NetvizError(f"{csv_path}, line {number}: needs 'file,label', got {name!r}, {label!r}")
            _safe_name(folder, csv_path, name)
            if name in entries:
                raise NetvizError(f"{csv_path}, line {number}: '{name}' is listed twice; keep one row per image")
            entries[name] = {"label": label, "boxes": []}
        return entries
    raise NetvizError(f"no labels.json or labels.csv in {folder}; add one giving a class per image (see README)")
