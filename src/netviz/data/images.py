"""What every image set is: :class:`ImageSet`, its boxes, and the ImageNet class names its labels index.

Images are N×3×224×224, float32, RGB, pixel values in [0, 1] (the model wrappers in :mod:`netviz.models`
normalise from there). Boxes are ``(x0, y0, x1, y1)`` in pixels of that 224×224 image, x0/y0 inclusive,
x1/y1 exclusive.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

import torch

from netviz import cache
from netviz.errors import NetvizError

IMAGE_SIZE = 224
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
    those, see :class:`~netviz.data.folder.FolderImageSet`).
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
        return item_sha(content_sha(self.images[index : index + 1], self.labels[index : index + 1]),
                        int(self.labels[index]), self.boxes[index] if index < len(self.boxes) else [])


def item_sha(content: str, label: int, boxes: list) -> str:
    """The key of one image: a hash of its content hash (pixels or file), its label and its boxes."""
    return cache.digest([content, label, [list(b) for b in boxes]])


def content_sha(images: torch.Tensor, labels: torch.Tensor) -> str:
    """sha256 of the raw bytes of ``images`` (float32) followed by ``labels`` as little-endian int64.
    (Not :func:`netviz.jobs.inputs_digest`, which also hashes names, dtypes and shapes: the two give different
    values, and both are stored in cache keys.)"""
    digest = hashlib.sha256()
    digest.update(images.numpy().tobytes())
    digest.update(labels.numpy().astype("<i8").tobytes())
    return digest.hexdigest()


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
