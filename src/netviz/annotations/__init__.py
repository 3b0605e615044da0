"""Object annotations of an image folder as users have them: ``labels.json`` / ``labels.csv``, ImageNet validation
boxes, Kaggle's ``LOC_val_solution.csv`` and Pascal VOC XML (:mod:`netviz.imagenet_folder` writes such a folder).

:func:`read_annotations` (used by :func:`netviz.data.folder.load_image_folder`) reads ``--images DIR`` by the first of
these that ``DIR`` holds:

1. ``labels.json``, 2. ``labels.csv`` (:func:`read_labels`);
3. ``LOC_val_solution.csv`` (Kaggle's ImageNet localization form): header ``ImageId,PredictionString``, each
   prediction string repeated groups ``synset xmin ymin xmax ymax``; image = ``ImageId`` plus an image suffix
   (``.JPEG``, ``.png``, …) in ``DIR``;
4. XML annotations, one Pascal-VOC-style file per image: ``DIR/Annotations/*.xml`` when that folder exists, else
   ``DIR/*.xml``. The image of ``A.xml`` is ``A`` plus an image suffix in ``DIR/JPEGImages`` when that folder exists
   (VOC's layout), else in ``DIR``. An object ``<name>`` that is a WordNet synset id (``n01751748``: ImageNet's
   validation boxes as distributed) is the ImageNet class of that synset; any other name is a Pascal VOC class,
   mapped to one representative ImageNet class by :data:`VOC_CLASSES` (``DIR/voc_classes.json``, ``{"dog": "beagle",
   "person": null, "mycls": 123}``, overrides or extends that table; ``null`` = no ImageNet class).

An image's label is the class of its first object (in file order) that has an ImageNet class; its boxes are all its
objects of that class (difficult ones too). Boxes come out as ``(x0, y0, x1, y1)`` floats in the image's pixels,
x0/y0 inclusive, x1/y1 exclusive: ImageNet's coordinates are taken as they are, VOC's 1-based ``xmin``/``ymin`` lose 1.
A malformed file, a missing image, an unknown synset or class, or a bad box is a one-line :class:`NetvizError`.

Layouts 1–2 are read by :mod:`netviz.annotations.labels`, layouts 3–4 by :mod:`netviz.annotations.imagenet`.
"""

from __future__ import annotations

from pathlib import Path

from netviz.annotations.imagenet import (LOC_CSV, VOC_CLASSES, VOC_OVERRIDES, imagenet_synsets, read_folder,
                                         read_loc_csv, read_xml, read_xml_folder, synset_index, voc_classes,
                                         xml_layout)
from netviz.annotations.labels import read_labels
from netviz.errors import NetvizError

__all__ = ["LOC_CSV", "VOC_CLASSES", "VOC_OVERRIDES", "imagenet_synsets", "read_annotations", "read_folder",
           "read_labels", "read_loc_csv", "read_xml", "read_xml_folder", "synset_index", "voc_classes", "xml_layout"]


def read_annotations(folder: Path) -> tuple[dict[str, dict], list[str]]:
    """Entries ``{image file: {"label", "boxes", ...}}`` and the annotation files (relative to ``folder``) from the
    first layout ``folder`` holds (module docstring). Entries give ``label`` (a class name or index), ``boxes``
    (float boxes in the image's pixels), and from the XML/CSV readers ``size`` (the XML's, or None) and ``source``
    (the annotation file, for messages)."""
    for labels_file in (folder / "labels.json", folder / "labels.csv"):
        if labels_file.exists():
            return read_labels(folder), [labels_file.name]
    found = read_folder(folder)
    if found is None:
        raise NetvizError(f"no labels.json or labels.csv (nor {LOC_CSV} or XML annotations) in {folder}; "
                          "add one giving a class per image (see README, 'Your own images')")
    return found
