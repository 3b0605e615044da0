"""The course's 25 ImageNet validation images (``imagenet_val_25.npz``) and their object boxes: where the file is
found (the user's data directory, the copy embedded in netviz, the download cache, the course's URL), its sha256
check before anything parses it, and the download."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from netviz import assets
from netviz.config import NO_DATA_DIR, DataDir
from netviz.data.images import IMAGE_SIZE, Box, ImageSet, content_sha, imagenet_categories
from netviz.errors import NetvizError
from netviz.store import hash_file

COURSE_NPZ = assets.COURSE_NPZ.relpath
COURSE_URL = "http://cs231n.stanford.edu/imagenet_val_25.npz"
COURSE_SHA256 = assets.COURSE_NPZ.sha256
COURSE_BOXES = assets.COURSE_BOXES.path
DOWNLOAD_DIR = Path.home() / ".cache" / "netviz"


@dataclass(frozen=True)
class DataFile:
    """A data file chosen for this run: where it is and how reports name it (no machine paths)."""

    path: Path
    source: str


def course_npz(data_dir: DataDir = NO_DATA_DIR) -> DataFile:
    """The course's ``imagenet_val_25.npz``, checked against its sha256 before anything parses it.

    Looked up in order: the user's data directory (``data_dir``, see :func:`netviz.config.resolve_data_dir`), the
    copy embedded in the package (:mod:`netviz.assets`), the download cache ``~/.cache/netviz``, then the course's
    URL (downloaded into that cache). A file that is present but has another sha256 is refused, never skipped.
    """
    chosen = data_dir.path
    if chosen is not None and chosen.exists() and not chosen.is_dir():
        raise NetvizError(f"data dir '{chosen}' is a file, not a folder; point NETVIZ_DATA_DIR / --data-dir at a "
                          "folder (or leave it unset to use the embedded files)")
    if chosen is not None and (chosen / COURSE_NPZ).is_dir():
        raise NetvizError(f"{chosen / COURSE_NPZ} is a folder, not the course's npz file; remove it or put the file there")
    if chosen is not None and (chosen / COURSE_NPZ).is_file():
        path = chosen / COURSE_NPZ
        _check_course_sha(path, "replace it with the course's file or remove it to use the embedded copy")
        return DataFile(path, data_dir.label(COURSE_NPZ))
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


def load_course_boxes(path: Path | None = None) -> dict[int, list[Box]]:
    """Object boxes of the 25 course images, by image index (the embedded annotations unless ``path``)."""
    with open(path or assets.verified(assets.COURSE_BOXES)) as fh:
        annotations = json.load(fh)
    return {int(item["index"]): [tuple(int(v) for v in box) for box in item["boxes"]] for item in annotations["images"]}


def load_course_images(data_dir: DataDir = NO_DATA_DIR) -> ImageSet:
    """The course's 25 ImageNet validation images (``imagenet_val_25.npz``), checked against its sha256.

    ``data_dir``: a data directory whose copy overrides the embedded one (see :func:`course_npz`).
    """
    chosen = course_npz(data_dir)
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
        sha256=content_sha(images, labels_t),
    )


def course_files(data_dir: DataDir = NO_DATA_DIR) -> tuple[dict[str, str], int, str]:
    """What the course set is made from, without parsing more than the npz's labels: ``({file name: sha256}, number
    of images, source)`` for the npz and the box annotations."""
    chosen = course_npz(data_dir)
    files = {COURSE_NPZ: hash_file(chosen.path), COURSE_BOXES.name: hash_file(assets.verified(assets.COURSE_BOXES))}
    with np.load(chosen.path, allow_pickle=False) as npz:
        return files, int(npz["y"].shape[0]), chosen.source
