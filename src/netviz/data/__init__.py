"""Images, labels, class names and object boxes: the image set a run reads.

Every image set is an :class:`ImageSet` (:mod:`netviz.data.images`): N×3×224×224, float32, RGB, pixel values in
[0, 1], boxes ``(x0, y0, x1, y1)`` in pixels of that 224×224 image. Two sources make one:

- :mod:`netviz.data.course`: the course's 25 images (``imagenet_val_25.npz``), found in the user's data directory,
  embedded in netviz, or downloaded, and checked by sha256;
- :mod:`netviz.data.folder`: a folder of the user's own images, read lazily (:class:`FolderImageSet`); what its
  annotations may look like is :mod:`netviz.annotations`' part.

:func:`load_images` and :func:`data_fingerprint` choose between them from the ``[run]`` config.
"""

from __future__ import annotations

from pathlib import Path

from netviz import cache
from netviz.config import DataDir
from netviz.data.course import COURSE_NPZ, DataFile, course_files, course_npz, load_course_boxes, load_course_images
from netviz.data.folder import FolderImageSet, folder_files, load_image_folder
from netviz.data.images import IMAGE_SIZE, IMAGE_SUFFIXES, Box, ImageSet, class_index, imagenet_categories

__all__ = ["COURSE_NPZ", "IMAGE_SIZE", "IMAGE_SUFFIXES", "Box", "DataFile", "FolderImageSet", "ImageSet",
           "class_index", "course_npz", "data_fingerprint", "imagenet_categories", "load_course_boxes",
           "load_course_images", "load_image_folder", "load_images"]


def load_images(run_config: dict, data_dir: DataDir, file_sha256: dict[str, str] | None = None) -> ImageSet:
    """The image set chosen by the ``[run]`` config: a user folder (``images``, read lazily; ``file_sha256`` as in
    :func:`~netviz.data.folder.load_image_folder`) or the course's 25 images (``data_dir``'s copy first, see
    :func:`~netviz.data.course.course_npz`)."""
    if run_config.get("images"):
        return load_image_folder(Path(run_config["images"]).expanduser(), file_sha256)
    return load_course_images(data_dir)


def data_fingerprint(run_config: dict, data_dir: DataDir) -> dict:
    """What the image set chosen by ``[run]`` is made from, without decoding it (for cache keys and provenance).

    Returns ``{"source": where it came from (no machine paths), "files": {name: sha256}, "sha256": <hash over those>, "images": N}``: the
    course's npz and box annotations, or a folder's annotation files (labels file, CSV, XML files,
    ``voc_classes.json``) and every image they list.
    """
    if run_config.get("images"):
        files, count, source = folder_files(Path(run_config["images"]).expanduser())
    else:
        files, count, source = course_files(data_dir)
    return {"source": str(source), "files": files, "sha256": cache.digest(files), "images": count}
