"""Images, labels, class names and object boxes.

Every image set is returned as an :class:`ImageSet` whose ``images`` tensor is N×3×224×224, float32, RGB,
pixel values in [0, 1] (the model wrappers in :mod:`netviz.models` normalise from there). A folder of the user's
images is a :class:`FolderImageSet`: read lazily, its ``pixels(indices)`` decodes only the images asked for.
What a folder's annotations may look like is :mod:`netviz.annotations`' part.
Boxes are ``(x0, y0, x1, y1)`` in pixels of that 224×224 image, x0/y0 inclusive, x1/y1 exclusive.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from netviz import assets
from netviz.errors import NetvizError
from netviz.store import display_path, hash_file

IMAGE_SIZE = 224
COURSE_NPZ = assets.COURSE_NPZ.relpath
COURSE_URL = "http://cs231n.stanford.edu/imagenet_val_25.npz"
COURSE_SHA256 = assets.COURSE_NPZ.sha256
COURSE_BOXES = assets.COURSE_BOXES.path
DOWNLOAD_DIR = Path.home() / ".cache" / "netviz"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}

Box = tuple[int, int, int, int]


@dataclass
class ImageSet:
    """A batch of images with what the experiments need to know about them.

    images: N×3×224×224 float32 in [0, 1], RGB.  labels: N int64 ImageNet class indices (0..999).
    names: class name of each label.  ids: a short identifier per image (index or file name).
    boxes: per image, a list of object boxes (may be empty when not annotated).
    sha256: hash of the pixel and label content, for cache keys.
    A job reads its images with :meth:`pixels` and keys them with :meth:`item_sha256` (a folder set decodes only
    those, see :class:`FolderImageSet`).
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: list[str]
    ids: list[str]
    boxes: list[list[Box]] = field(default_factory=list)
    source: str = ""
    sha256: str = ""

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """C×H×W of every image of the set."""
        return tuple(self.images.shape[1:])

    def pixels(self, indices) -> torch.Tensor:
        """The images at ``indices`` (positions in the set), K×3×224×224 float32 in [0, 1]."""
        return self.images[list(indices)]

    def item_sha256(self, index: int) -> str:
        """A hash of image ``index``'s pixels, label and boxes (for job cache keys: a job is recomputed only when
        one of its own images changed)."""
        return _item_sha(_content_sha(self.images[index : index + 1], self.labels[index : index + 1]),
                         int(self.labels[index]), self.boxes[index] if index < len(self.boxes) else [])


def _item_sha(content: str, label: int, boxes: list) -> str:
    return hashlib.sha256(json.dumps([content, label, [list(b) for b in boxes]]).encode()).hexdigest()


def user_data_dir(configured: str = "") -> Path | None:
    """The data directory the user chose: the config's ``run.data_dir`` (set by ``--data-dir``), else
    ``$NETVIZ_DATA_DIR``; ``None`` when neither is set. Files found there override the embedded ones."""
    chosen = configured or os.environ.get("NETVIZ_DATA_DIR", "")
    return Path(chosen).expanduser() if chosen else None


def data_dir_label(configured: str, name: str) -> str:
    """How reports name ``name`` found in the user's data directory (which setting chose it, no machine path)."""
    how = "--data-dir" if configured else "$NETVIZ_DATA_DIR"
    return f"data directory ({how}): {name}"


@dataclass(frozen=True)
class DataFile:
    """A data file chosen for this run: where it is and how reports name it (no machine paths)."""

    path: Path
    source: str


def course_npz(configured_dir: str = "") -> DataFile:
    """The course's ``imagenet_val_25.npz``, checked against its sha256 before anything parses it.

    Looked up in order: the user's data directory (``run.data_dir`` / ``$NETVIZ_DATA_DIR``), the copy embedded in
    the package (:mod:`netviz.assets`), the download cache ``~/.cache/netviz``, then the course's URL (downloaded
    into that cache). A file that is present but has another sha256 is refused, never skipped.
    """
    chosen = user_data_dir(configured_dir)
    if chosen is not None and chosen.exists() and not chosen.is_dir():
        raise NetvizError(f"data dir '{chosen}' is a file, not a folder; point NETVIZ_DATA_DIR / --data-dir at a "
                          "folder (or leave it unset to use the embedded files)")
    if chosen is not None and (chosen / COURSE_NPZ).is_dir():
        raise NetvizError(f"{chosen / COURSE_NPZ} is a folder, not the course's npz file; remove it or put the file there")
    if chosen is not None and (chosen / COURSE_NPZ).is_file():
        path = chosen / COURSE_NPZ
        _check_course_sha(path, "replace it with the course's file or remove it to use the embedded copy")
        return DataFile(path, data_dir_label(configured_dir, COURSE_NPZ))
    if assets.COURSE_NPZ.path.exists():
        return DataFile(assets.verified(assets.COURSE_NPZ), f"embedded: {assets.COURSE_NPZ.label}")
    path = DOWNLOAD_DIR / COURSE_NPZ
    if not path.exists():
        download(COURSE_URL, path, COURSE_SHA256)
    _check_course_sha(path, "delete it so it is downloaded again")
    return DataFile(path, f"download cache: ~/.cache/netviz/{COURSE_NPZ} (from {COURSE_URL})")


def _check_course_sha(path: Path, remedy: str) -> None:
    # the file is unpickled later, so only the known file may pass
    assets.check_sha256(path, COURSE_SHA256, f"{path} is corrupt or not the course's file", remedy)


@lru_cache(maxsize=1)
def imagenet_categories() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order, as bundled with torchvision (no download)."""
    from torchvision.models import SqueezeNet1_1_Weights

    return tuple(SqueezeNet1_1_Weights.IMAGENET1K_V1.meta["categories"])


def class_index(label: str | int) -> int:
    """An ImageNet class index from an index (int or digits) or a class name (case-insensitive)."""
    categories = imagenet_categories()
    if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
        index = int(label)
        if not 0 <= index < len(categories):
            raise NetvizError(f"class index {index} is out of range; ImageNet classes are 0..{len(categories) - 1}")
        return index
    lowered = [c.lower() for c in categories]
    wanted = str(label).strip().lower()
    if wanted in lowered:
        return lowered.index(wanted)
    close = difflib.get_close_matches(wanted, lowered, n=3)
    hint = f"; did you mean {', '.join(repr(categories[lowered.index(c)]) for c in close)}?" if close else ""
    raise NetvizError(f"unknown class '{label}'{hint} (use an ImageNet class name or an index 0..999)")


def download(url: str, dest: Path, sha256: str) -> Path:
    """Download ``url`` to ``dest`` atomically and check its sha256; raise :class:`NetvizError` on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            shutil.copyfileobj(response, out)
        assets.check_sha256(Path(tmp), sha256, f"download of {url} is corrupt", "try again")
        os.replace(tmp, dest)
        return dest
    except OSError as err:
        raise NetvizError(
            f"{dest.name} is not in {dest.parent} and downloading {url} failed ({err}); "
            f"put the file there or point NETVIZ_DATA_DIR / --data-dir at a folder that has it"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _content_sha(images: torch.Tensor, labels: torch.Tensor) -> str:
    digest = hashlib.sha256()
    digest.update(images.numpy().tobytes())
    digest.update(labels.numpy().astype("<i8").tobytes())
    return digest.hexdigest()


def load_course_boxes(path: Path | None = None) -> dict[int, list[Box]]:
    """Object boxes of the 25 course images, by image index (the embedded annotations unless ``path``)."""
    with open(path or assets.verified(assets.COURSE_BOXES)) as fh:
        annotations = json.load(fh)
    return {int(item["index"]): [tuple(int(v) for v in box) for box in item["boxes"]] for item in annotations["images"]}


def load_course_images(data_dir: Path | str = "") -> ImageSet:
    """The course's 25 ImageNet validation images (``imagenet_val_25.npz``), checked against its sha256.

    ``data_dir``: a data directory whose copy overrides the embedded one (see :func:`course_npz`); "" = none.
    """
    chosen = course_npz(str(data_dir) if data_dir else "")
    path = chosen.path
    with np.load(path, allow_pickle=True) as npz:
        pixels, labels = npz["X"], npz["y"]
    if pixels.ndim != 4 or pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise NetvizError(f"{path}: images have shape {pixels.shape}, expected N×224×224×3")
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    labels_t = torch.from_numpy(labels.astype(np.int64))
    boxes = load_course_boxes()
    categories = imagenet_categories()
    return ImageSet(
        images=images,
        labels=labels_t,
        names=[categories[int(y)] for y in labels_t],
        ids=[str(i) for i in range(len(labels_t))],
        boxes=[boxes.get(i, []) for i in range(len(labels_t))],
        source=chosen.source,
        sha256=_content_sha(images, labels_t),
    )


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
    from netviz.annotations import read_annotations  # it builds on this module

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
        return hashlib.sha256("".join(self.item_sha256(i) for i in range(len(self))).encode()).hexdigest()

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
        return _item_sha(self._file_sha[name], int(self.labels[index]), self.boxes[index])


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


def load_images(run_config: dict, file_sha256: dict[str, str] | None = None) -> ImageSet:
    """The image set chosen by the ``[run]`` config: a user folder (``images``, read lazily; ``file_sha256`` as in
    :func:`load_image_folder`) or the course's 25 images."""
    if run_config.get("images"):
        return load_image_folder(Path(run_config["images"]).expanduser(), file_sha256)
    return load_course_images(run_config.get("data_dir", ""))


def data_fingerprint(run_config: dict) -> dict:
    """What the image set chosen by ``[run]`` is made from, without decoding it (for cache keys and provenance).

    Returns ``{"source": where it came from (no machine paths), "files": {name: sha256}, "sha256": <hash over those>, "images": N}``: the
    course's npz and box annotations, or a folder's annotation files (labels file, CSV, XML files,
    ``voc_classes.json``) and every image they list.
    """
    if run_config.get("images"):
        folder = Path(run_config["images"]).expanduser()
        if not folder.is_dir():
            raise NetvizError(f"image folder '{folder}' does not exist or is not a folder; pass a folder of images with a labels file or annotations")
        entries, annotation_files = _read_annotations(folder)
        names = [*annotation_files, *sorted(entries)]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise NetvizError(f"{folder / missing[0]} is listed in the labels file but does not exist")
        files = {name: hash_file(folder / name) for name in names}
        count, source = len(entries), display_path(folder)
    else:
        chosen = course_npz(run_config.get("data_dir", ""))
        files = {COURSE_NPZ: hash_file(chosen.path), COURSE_BOXES.name: hash_file(assets.verified(assets.COURSE_BOXES))}
        with np.load(chosen.path, allow_pickle=False) as npz:
            count, source = int(npz["y"].shape[0]), chosen.source
    combined = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {"source": str(source), "files": files, "sha256": combined, "images": count}
