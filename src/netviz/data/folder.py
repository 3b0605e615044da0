"""A folder of the user's own images, read lazily (:class:`FolderImageSet`): decoding as the image is displayed,
the resize and center crop to 224×224, and the mapping of its boxes into that crop.

What a folder's annotations may look like is :mod:`netviz.annotations`' part; this module checks each listed
image against them (its displayed size from the header, its boxes inside it) and decodes only what a job asks for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from netviz.data.images import IMAGE_SIZE, IMAGE_SUFFIXES, Box, ImageSet, class_index, imagenet_categories, item_sha
from netviz.errors import NetvizError
from netviz.store import display_path, hash_file, sha256_bytes


def _resize_center_crop(image: Image.Image, size: int = IMAGE_SIZE) -> tuple[Image.Image, float, int, int]:
    """Resize the shorter side to ``size`` and crop the center square; returns the image, scale and offsets."""
    scale, new_w, new_h, left, top = _crop_geometry(*image.size, size)
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=None)
    return resized.crop((left, top, left + size, top + size)), scale, left, top


def _crop_geometry(width: int, height: int, size: int = IMAGE_SIZE) -> tuple[float, int, int, int, int]:
    """(scale, resized width, resized height, crop left, crop top) of :func:`_resize_center_crop`."""
    scale = size / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    return scale, new_w, new_h, (new_w - size) // 2, (new_h - size) // 2


def _map_box(box: Box, scale: float, left: int, top: int, size: int = IMAGE_SIZE) -> Box | None:
    x0, y0, x1, y1 = (float(v) for v in box)
    mapped = (
        int(np.clip(np.floor(x0 * scale - left), 0, size)),
        int(np.clip(np.floor(y0 * scale - top), 0, size)),
        int(np.clip(np.ceil(x1 * scale - left), 0, size)),
        int(np.clip(np.ceil(y1 * scale - top), 0, size)),
    )
    return mapped if mapped[2] > mapped[0] and mapped[3] > mapped[1] else None  # boxes cropped away vanish


def _as_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB copy of ``image`` as it is displayed: EXIF orientation applied, 16- and 32-bit gray scaled to
    8 bits (PIL's own convert clips them, turning most images white), transparency composed over white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image, dtype=np.float64)
        depth = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        gray = np.clip(np.round(values / depth * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray, mode="L").convert("RGB")
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(np.round(values * scale), 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _read_annotations(folder: Path) -> tuple[dict[str, dict], list[str]]:
    from netviz.annotations import read_annotations  # imported here: it builds on netviz.data.images

    return read_annotations(folder)


def _open_error(path: Path, err: Exception) -> NetvizError:
    if isinstance(err, FileNotFoundError):
        return NetvizError(f"{path} is listed in the labels file but does not exist")
    if isinstance(err, Image.DecompressionBombError):
        return NetvizError(f"{path} is too large to decode safely ({err}); shrink it first")
    return NetvizError(f"{path} cannot be read as an image ({err})")


_OPEN_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def _displayed_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image as displayed (after its EXIF orientation), from its header: no pixel is decoded."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            # a PNG's getexif() decodes the image when its header has no EXIF: such a PNG counts as upright
            # (an eXIf chunk after the pixels is caught by the size check when it is decoded)
            exif = img.getexif() if img.format != "PNG" or "exif" in img.info else {}
            orientation = exif.get(0x0112, 1)
    except _OPEN_ERRORS as err:
        raise _open_error(path, err) from None
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _decode_file(path: Path) -> Image.Image:
    """The image in ``path`` as displayed, 8-bit RGB (:func:`_as_rgb`); one-line errors for unreadable files."""
    try:
        with Image.open(path) as img:
            return _as_rgb(img)
    except _OPEN_ERRORS as err:
        raise _open_error(path, err) from None


class FolderImageSet(ImageSet):
    """An image folder read lazily: only metadata is held (labels, names, ids, mapped boxes, each file's displayed
    size); :meth:`pixels` decodes the requested files only. ``images`` decodes all of them once (for small sets).
    ``files``: each image's path; ``sizes``: each image's (width, height) as displayed, before resize and crop."""

    def __init__(self, folder: Path, ids: list[str], labels: list[int], boxes: list[list[Box]],
                 sizes: list[tuple[int, int]], file_sha256: dict[str, str] | None = None):
        categories = imagenet_categories()
        self.folder, self.ids, self.boxes, self.sizes = Path(folder), ids, boxes, sizes
        self.files = [self.folder / name for name in ids]
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.names = [categories[i] for i in labels]
        self.source = display_path(self.folder)
        self._file_sha = dict(file_sha256 or {})
        self._decoded: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"FolderImageSet({self.source!r}, {len(self)} images)"

    @property
    def images(self) -> torch.Tensor:
        """Every image decoded, N×3×224×224 float32 in [0, 1] (kept after the first call)."""
        if self._decoded is None:
            self._decoded = self.pixels(range(len(self)))
        return self._decoded

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """C×H×W of every image (each is resized and cropped to it), known without decoding any."""
        return (3, IMAGE_SIZE, IMAGE_SIZE)

    @property
    def sha256(self) -> str:
        """A hash over every item's :meth:`item_sha256` (reads every file once)."""
        return sha256_bytes("".join(self.item_sha256(i) for i in range(len(self))).encode())

    def pixels(self, indices) -> torch.Tensor:
        """The images at ``indices``, decoded now (or taken from ``images`` once that was decoded):
        K×3×224×224 float32 in [0, 1], the same values the whole-set decode gives."""
        chosen = [int(i) for i in indices]
        if self._decoded is not None:
            return self._decoded[chosen]
        if not chosen:
            return torch.empty(0, 3, IMAGE_SIZE, IMAGE_SIZE)
        return torch.stack([self._decode(i) for i in chosen]).float().div(255.0).contiguous()

    def _decode(self, index: int) -> torch.Tensor:
        path, image = self.files[index], _decode_file(self.files[index])
        if image.size != tuple(self.sizes[index]):
            raise NetvizError(f"{path} is {image.width}×{image.height} but was {self.sizes[index][0]}×"
                              f"{self.sizes[index][1]} when the folder was read; run again")
        cropped, _, _, _ = _resize_center_crop(image)
        return torch.from_numpy(np.asarray(cropped, dtype=np.uint8).copy()).permute(2, 0, 1)

    def item_sha256(self, index: int) -> str:
        """A hash of image ``index``'s file (its sha256, from ``file_sha256`` or read now), label and boxes;
        nothing is decoded."""
        name = self.ids[index]
        if name not in self._file_sha:
            self._file_sha[name] = hash_file(self.files[index])
        return item_sha(self._file_sha[name], int(self.labels[index]), self.boxes[index])


def _checked_item(folder: Path, name: str, entry: dict) -> tuple[int, list[Box], tuple[int, int]]:
    """(label, boxes mapped to 224×224, displayed size) of one entry, its boxes checked against the image's header."""
    path = folder / name
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise NetvizError(f"{path}: not an image file ({', '.join(sorted(IMAGE_SUFFIXES))})")
    width, height = _displayed_size(path)
    where = entry.get("source", path)
    if entry.get("size") and tuple(entry["size"]) != (width, height):
        raise NetvizError(f"{where}: <size> says {entry['size'][0]}×{entry['size'][1]} but {path} is {width}×{height}; "
                          "fix the annotation or replace the image")
    outside = [b for b in entry["boxes"] if b[0] < 0 or b[1] < 0 or b[2] > width or b[3] > height]
    if outside:
        raise NetvizError(f"{where}: box {list(outside[0])} is outside the "
                          f"{width}×{height} image {path.name}; give boxes in the image's pixels (after its EXIF orientation)")
    try:
        label = class_index(entry["label"])
    except NetvizError as err:
        raise NetvizError(f"{path}: {err}") from None
    scale, _, _, left, top = _crop_geometry(width, height)
    mapped = [_map_box(b, scale, left, top) for b in entry["boxes"]]
    return label, [b for b in mapped if b is not None], (width, height)


def load_image_folder(folder: Path, file_sha256: dict[str, str] | None = None) -> FolderImageSet:
    """The user's own images, read lazily (:class:`FolderImageSet`): every image the folder's annotations list
    (:func:`netviz.annotations.read_annotations`), to be resized (shorter side 224) and center-cropped to 224×224 when decoded.
    Boxes are in the pixels of the image as displayed (after its EXIF orientation) and are mapped; a box that does
    not lie inside its image is refused now, from the image's header. ``file_sha256``: ``{file name: sha256}``
    already known (``data_fingerprint(...)["files"]``), so that :meth:`FolderImageSet.item_sha256` need not read
    the files again."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NetvizError(f"image folder '{folder}' does not exist or is not a folder; pass a folder of images with a labels file or annotations")
    entries, _ = _read_annotations(folder)
    if not entries:
        raise NetvizError(f"the labels file in {folder} lists no images")
    ids, labels, boxes, sizes = sorted(entries), [], [], []
    for name in ids:
        label, mapped, size = _checked_item(folder, name, entries[name])
        labels.append(label)
        boxes.append(mapped)
        sizes.append(size)
    return FolderImageSet(folder, ids, labels, boxes, sizes, file_sha256)


def folder_files(folder: Path) -> tuple[dict[str, str], int, str]:
    """What a folder's image set is made from, without decoding it: ``({file name: sha256}, number of images,
    source)`` over its annotation files (labels file, CSV, XML files, ``voc_classes.json``) and every image they
    list."""
    if not folder.is_dir():
        raise NetvizError(f"image folder '{folder}' does not exist or is not a folder; pass a folder of images with a labels file or annotations")
    entries, annotation_files = _read_annotations(folder)
    names = [*annotation_files, *sorted(entries)]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise NetvizError(f"{folder / missing[0]} is listed in the labels file but does not exist")
    files = {name: hash_file(folder / name) for name in names}
    return files, len(entries), display_path(folder)
