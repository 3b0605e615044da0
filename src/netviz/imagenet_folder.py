"""A folder in ImageNet's validation layout made from an image set (the course's 25 and mirrored and cropped copies),
for the bench and the tests: images plus one XML per image as :mod:`netviz.annotations` reads them."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image

from netviz import store
from netviz.annotations import imagenet_synsets
from netviz.data import ImageSet
from netviz.errors import NetvizError


def variant(copy: int, size: int = 224) -> tuple[bool, tuple[int, int, int, int]]:
    """The deterministic change of copy ``copy`` of an image (:func:`write_imagenet_folder`): (mirror left-right
    first?, crop window (left, top, right, bottom) of the ``size``×``size`` image after it). Copy 0 is the image
    itself, odd copies are mirrored, copies from 2 on lose ``cut`` = 16 px more of width and height every second
    copy (at most 96), their window's left and top offsets each 0, cut/2 or cut, cycling with the copy number."""
    cut = min(16 * (copy // 2), 96)
    left, top = (cut // 2 * (copy % 3)), (cut // 2 * ((copy + 1) % 3))
    return bool(copy % 2), (left, top, left + size - cut, top + size - cut)


def _moved(box: tuple[int, int, int, int], mirror: bool, window: tuple[int, int, int, int], size: int):
    x0, y0, x1, y1 = (size - box[2], box[1], size - box[0], box[3]) if mirror else box
    left, top, right, bottom = window
    clipped = (max(x0, left) - left, max(y0, top) - top, min(x1, right) - left, min(y1, bottom) - top)
    return clipped if clipped[0] < clipped[2] and clipped[1] < clipped[3] else None


def _annotation_xml(stem: str, width: int, height: int, synset: str, boxes: list) -> ElementTree.ElementTree:
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "val"
    ElementTree.SubElement(root, "filename").text = stem
    size = ElementTree.SubElement(root, "size")
    for key, value in (("width", width), ("height", height), ("depth", 3)):
        ElementTree.SubElement(size, key).text = str(value)
    for box in boxes:
        obj = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(obj, "name").text = synset
        bndbox = ElementTree.SubElement(obj, "bndbox")
        for key, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
            ElementTree.SubElement(bndbox, key).text = str(int(value))
    tree = ElementTree.ElementTree(root)
    ElementTree.indent(tree)
    return tree


def write_imagenet_folder(images: ImageSet, out_dir: Path, copies: int = 4, suffix: str = ".png") -> Path:
    """Write ``images`` (e.g. the course's 25, each with at least one box) ``copies`` times as a folder in
    ImageNet's validation layout: ``ILSVRC2012_val_<k>.png`` (or ``.JPEG``, quality 95) and ``<same stem>.xml``
    beside it with the image's synset and its boxes moved by the copy's mirror and crop (:func:`variant`). Image
    ``k = c·N + i + 1`` is copy ``c`` of image ``i``, so the first N are the images themselves. A box cropped
    away is dropped; a crop that would leave an image no box is not made (the copy is only mirrored).
    Built in a staging folder and swapped in: ``out_dir`` is replaced whole. Returns ``out_dir``."""
    synsets, size = imagenet_synsets(), int(images.pixels([0]).shape[-1])
    out_dir = Path(out_dir)
    unboxed = next((i for i in range(len(images)) if i >= len(images.boxes) or not images.boxes[i]), None)
    if unboxed is not None or copies < 1:
        raise NetvizError(f"write_imagenet_folder needs copies >= 1 (got {copies}) and a box for every image "
                          f"(image {unboxed} has none): the ImageNet layout gives every image an object")
    with store.staged(out_dir) as (staging,):  # a partial folder never replaces a complete one
        for i in range(len(images)):
            pixels = (images.pixels([i])[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            boxes = [tuple(int(v) for v in box) for box in images.boxes[i]]
            for copy in range(copies):
                mirror, window = variant(copy, size)
                moved = [b for b in (_moved(box, mirror, window, size) for box in boxes) if b is not None]
                if not moved:  # the crop removed every box: keep the whole (mirrored) image
                    window = (0, 0, size, size)
                    moved = [_moved(box, mirror, window, size) for box in boxes]
                array = pixels[:, ::-1] if mirror else pixels
                picture = Image.fromarray(np.ascontiguousarray(array[window[1] : window[3], window[0] : window[2]]))
                stem = f"ILSVRC2012_val_{copy * len(images) + i + 1:08d}"
                picture.save(staging / f"{stem}{suffix}", **({"quality": 95} if suffix.lower() != ".png" else {}))
                tree = _annotation_xml(stem, picture.width, picture.height, synsets[int(images.labels[i])], moved)
                tree.write(staging / f"{stem}.xml", encoding="utf-8", xml_declaration=False)
    return out_dir
