"""Layouts 3 and 4 of :mod:`netviz.annotations`: ImageNet's validation boxes (one XML file per image, objects
named by WordNet synset id), Kaggle's ``LOC_val_solution.csv``, and Pascal VOC XML (VOC classes mapped to one
ImageNet class each by :data:`VOC_CLASSES`)."""

from __future__ import annotations

import csv
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree  # expat >= 2.4 refuses entity expansion attacks; no defusedxml needed

from netviz.data.images import IMAGE_SUFFIXES, class_index
from netviz.errors import NetvizError

LOC_CSV = "LOC_val_solution.csv"
VOC_OVERRIDES = "voc_classes.json"
SYNSET = re.compile(r"^n\d{8}$")
FloatBox = tuple[float, float, float, float]

# One representative ImageNet-1k class per Pascal VOC class (by name, checked by class_index). A VOC class is
# broader than any ImageNet class (118 dog breeds; no "person" class at all): a saliency map for the chosen class
# is a map for that class only. Override per folder with voc_classes.json.
VOC_CLASSES: dict[str, str | None] = {
    "aeroplane": "airliner", "bicycle": "mountain bike", "bird": "robin", "boat": "speedboat",
    "bottle": "water bottle", "bus": "school bus", "car": "beach wagon", "cat": "tabby", "chair": "folding chair",
    "cow": "ox", "diningtable": "dining table", "dog": "golden retriever", "horse": "sorrel",
    "motorbike": "moped", "person": None, "pottedplant": "pot", "sheep": "ram", "sofa": "studio couch",
    "train": "electric locomotive", "tvmonitor": "television",
}


@lru_cache(maxsize=1)
def imagenet_synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k synset ids in class-index order, as timm ships them (no download)."""
    from timm.data import ImageNetInfo

    return tuple(ImageNetInfo("imagenet-1k").label_names())


@lru_cache(maxsize=1)
def _synset_indices() -> dict[str, int]:
    return {synset: index for index, synset in enumerate(imagenet_synsets())}


def synset_index(synset: str, where: str = "") -> int:
    """The ImageNet-1k class index of a synset id (``n01440764`` -> 0); a one-line error naming ``where`` if unknown."""
    index = _synset_indices().get(synset.strip())
    if index is None:
        raise NetvizError(f"{where}: synset '{synset}' is not one of ImageNet-1k's 1000 classes; "
                          "remove that object or give the folder a labels.csv")
    return index


def _box(values: list, where: str, name: str, one_based: bool) -> FloatBox:
    try:
        x0, y0, x1, y1 = (float(v) for v in values)
    except (TypeError, ValueError):
        raise NetvizError(f"{where}: object '{name}' has box {values}; give four numbers xmin ymin xmax ymax") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise NetvizError(f"{where}: object '{name}' has box {values} with a value that is not a finite number")
    if not (x0 < x1 and y0 < y1):
        raise NetvizError(f"{where}: object '{name}' has an inverted or empty box {values}; need xmin < xmax, ymin < ymax")
    return (x0 - 1, y0 - 1, x1, y1) if one_based else (x0, y0, x1, y1)


def read_xml(path: Path) -> tuple[list[tuple[str, FloatBox]], tuple[int, int] | None]:
    """The objects ``[(name, box)]`` and the ``<size>`` (width, height; None if absent) of one VOC-style XML file."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as err:
        raise NetvizError(f"{path} is not well-formed XML ({err}); fix or remove it") from None
    except OSError as err:
        raise NetvizError(f"{path} cannot be read ({err.strerror}); fix or remove it") from None
    objects = []
    for number, obj in enumerate(root.iter("object"), start=1):
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise NetvizError(f"{path}: object {number} has no <name>; give its class (a synset id or a VOC class)")
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise NetvizError(f"{path}: object {number} ('{name}') has no <bndbox>; give xmin, ymin, xmax, ymax")
        values = [bndbox.findtext(key) for key in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((name, _box(values, str(path), name, one_based=not SYNSET.match(name))))
    if not objects:
        raise NetvizError(f"{path} has no <object>; remove the file or annotate the image's object")
    return objects, _xml_size(root, path)


def _xml_size(root: ElementTree.Element, path: Path) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    try:
        width, height = int(size.findtext("width") or ""), int(size.findtext("height") or "")
    except ValueError:
        raise NetvizError(f"{path}: <size> needs whole numbers <width> and <height>; fix or remove it") from None
    return (width, height) if width > 0 and height > 0 else None  # VOC has a few 0×0 sizes: unknown


def voc_classes(folder: Path) -> dict[str, int | None]:
    """VOC class name -> ImageNet class index (None: no ImageNet class): :data:`VOC_CLASSES` updated by the
    folder's ``voc_classes.json``."""
    mapped = {name: None if label is None else class_index(label) for name, label in VOC_CLASSES.items()}
    path = folder / VOC_OVERRIDES
    if not path.is_file():
        return mapped
    try:
        extra = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NetvizError(f"{path} is not valid JSON ({err}); write {{\"dog\": \"beagle\", ...}}") from None
    if not isinstance(extra, dict):
        raise NetvizError(f"{path} must be a JSON object {{\"VOC class\": ImageNet class or null, ...}}")
    for name, label in extra.items():
        if isinstance(label, bool) or not isinstance(label, (str, int, type(None))):
            raise NetvizError(f"{path}: '{name}' maps to {label!r}; give an ImageNet class name, an index or null")
        try:
            mapped[name] = None if label is None else class_index(label)
        except NetvizError as err:
            raise NetvizError(f"{path}: '{name}': {err}") from None
    return mapped


def _classify(objects: list[tuple[str, FloatBox]], where: str,
              voc: dict[str, int | None] | None) -> tuple[int, list[FloatBox]]:
    """(label, boxes of that label) from an image's objects: label = the first object with an ImageNet class.
    ``voc``: VOC class -> ImageNet index (None: only synset ids are allowed)."""
    classes = []
    for name, _ in objects:
        if SYNSET.match(name) or voc is None:
            classes.append(synset_index(name, where))
        elif name in voc:
            classes.append(voc[name])
        else:
            raise NetvizError(f"{where}: object class '{name}' is neither an ImageNet synset id nor a VOC class; "
                              f"map it to an ImageNet class in {VOC_OVERRIDES}")
    label = next((c for c in classes if c is not None), None)
    if label is None:
        raise NetvizError(f"{where}: no object has an ImageNet class ({', '.join(sorted({n for n, _ in objects}))}); "
                          f"remove the image or map its class in {VOC_OVERRIDES}")
    return label, [box for (_, box), c in zip(objects, classes) if c == label]


def _image_index(folder: Path) -> dict[str, list[str]]:
    """Image files of ``folder`` (not recursive) by stem."""
    index: dict[str, list[str]] = {}
    for path in folder.iterdir():
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            index.setdefault(path.stem, []).append(path.name)
    return index


def _find_image(index: dict[str, list[str]], stem: str, image_dir: Path, where: str) -> str:
    found = index.get(stem, [])
    if len(found) != 1:
        what = "no image" if not found else f"{len(found)} images ({', '.join(sorted(found))})"
        raise NetvizError(f"{where}: {what} named '{stem}' with an image suffix in {image_dir}; "
                          "put exactly one there or remove the annotation")
    return found[0]


def read_loc_csv(folder: Path) -> dict[str, dict]:
    """Entries ``{image file: {"label", "boxes", "size", "source"}}`` from ``folder/LOC_val_solution.csv``."""
    path = folder / LOC_CSV
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (UnicodeDecodeError, csv.Error, OSError) as err:
        raise NetvizError(f"{path} cannot be read as UTF-8 CSV ({err}); save it as 'ImageId,PredictionString' rows") from None
    if not rows or [c.strip() for c in rows[0]] != ["ImageId", "PredictionString"]:
        raise NetvizError(f"{path} needs the header 'ImageId,PredictionString'; found {rows[0] if rows else 'nothing'}")
    index, entries = _image_index(folder), {}
    for number, row in enumerate(rows[1:], start=2):
        where = f"{path}, line {number}"
        if not row:
            continue
        tokens = row[1].split() if len(row) == 2 else []
        if len(row) != 2 or not re.fullmatch(r"[\w.-]+", row[0]) or not tokens or len(tokens) % 5:
            raise NetvizError(f"{where}: needs 'ImageId,synset xmin ymin xmax ymax [synset xmin ...]', got {row}")
        objects = [(tokens[k], _box(tokens[k + 1 : k + 5], where, tokens[k], one_based=False))
                   for k in range(0, len(tokens), 5)]
        name = _find_image(index, row[0], folder, where)
        if name in entries:
            raise NetvizError(f"{where}: '{row[0]}' is listed twice; keep one row per image")
        label, boxes = _classify(objects, where, None)
        entries[name] = {"label": label, "boxes": boxes, "size": None, "source": where}
    return entries


def xml_layout(folder: Path) -> tuple[Path, Path]:
    """(folder of the XML files, folder of the images) of an XML-annotated ``folder`` (see the module docstring)."""
    xml_dir = folder / "Annotations" if (folder / "Annotations").is_dir() else folder
    image_dir = folder / "JPEGImages" if (folder / "JPEGImages").is_dir() else folder
    return xml_dir, image_dir


def read_xml_folder(folder: Path) -> tuple[dict[str, dict], list[str]]:
    """Entries (as :func:`read_loc_csv`) and the annotation files (relative to ``folder``) of an XML folder."""
    xml_dir, image_dir = xml_layout(folder)
    xmls = sorted(p for p in xml_dir.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
    index, voc = _image_index(image_dir), voc_classes(folder)
    prefix = image_dir.relative_to(folder).as_posix() + "/" if image_dir != folder else ""
    entries = {}
    for xml in xmls:
        objects, size = read_xml(xml)
        name = prefix + _find_image(index, xml.stem, image_dir, str(xml))
        label, boxes = _classify(objects, str(xml), voc)
        entries[name] = {"label": label, "boxes": boxes, "size": size, "source": str(xml)}
    files = [p.relative_to(folder).as_posix() for p in xmls]
    return entries, files + ([VOC_OVERRIDES] if (folder / VOC_OVERRIDES).is_file() else [])


def read_folder(folder: Path) -> tuple[dict[str, dict], list[str]] | None:
    """Entries and annotation files of ``folder`` in layout 3 or 4 (module docstring); None when it has neither."""
    if (folder / LOC_CSV).is_file():
        return read_loc_csv(folder), [LOC_CSV]
    xml_dir, _ = xml_layout(folder)
    if any(p.suffix.lower() == ".xml" for p in xml_dir.iterdir()):
        return read_xml_folder(folder)
    return None
