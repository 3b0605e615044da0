"""Files that travel inside netviz as package data, so that a fresh machine needs no download.

- ``imagenet_val_25.npz``: the course's 25 ImageNet validation images (``X`` 25×224×224×3 uint8 RGB, ``y`` class
  indices, ``label_map``). Loading it needs ``allow_pickle=True``, so it is only opened after its sha256 matches.
- ``weights/squeezenet1_1.pth``: ImageNet SqueezeNet 1.1 as a torchvision ``state_dict`` (standard ImageNet
  normalisation of RGB in [0, 1]).
- ``imagenet_val_25_boxes.json``: object boxes of the 25 images (xyxy, 224-px coordinates) for the pointing game.

Where each file comes from, its licence terms and how the weights were converted: ``PROVENANCE.md`` beside this
file. The folder has the layout of a data directory (``imagenet_val_25.npz``, ``weights/<model>.pth``), so the
same lookup code serves it, ``$NETVIZ_DATA_DIR`` and ``--data-dir``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netviz.errors import NetvizError
from netviz.store import hash_file

ASSETS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Asset:
    """One embedded file: its path inside :data:`ASSETS_DIR` and the sha256 it must have."""

    relpath: str
    sha256: str

    @property
    def path(self) -> Path:
        return ASSETS_DIR / self.relpath

    @property
    def label(self) -> str:
        """How reports and errors name it: relative to the package, never a machine path."""
        return f"netviz/assets/{self.relpath}"


COURSE_NPZ = Asset("imagenet_val_25.npz", "35141609d22457c791e8fbe10c2d3b09ed0d6a04b669173e9fbebb0b4915cd3c")
COURSE_BOXES = Asset("imagenet_val_25_boxes.json", "e9c5626c28457186f9217ef472e1c4624bd3c5c57945cf4a7bfecf54fb26ab32")
WEIGHTS = {
    "squeezenet1_1": Asset("weights/squeezenet1_1.pth", "dbf419d4a276af5844e0a4db7f5ac127e45d011f4f0a4e8d1f70d55de9a17dd5"),
}


def check_sha256(path: Path, expected: str, subject: str, remedy: str) -> Path:
    """``path`` when its sha256 is ``expected``; else a one-line :class:`NetvizError`: ``subject`` (what the file
    is said to be), both hashes, and ``remedy``. Call it before anything parses the file."""
    got = hash_file(path)
    if got != expected:
        raise NetvizError(f"{subject} (sha256 {got[:12]}…, expected {expected[:12]}…); {remedy}")
    return path


def verified(asset: Asset) -> Path:
    """The embedded file's path after checking its sha256; a missing or altered copy is a :class:`NetvizError`
    (the file is never parsed before this check)."""
    if not asset.path.is_file():
        raise NetvizError(f"the embedded file {asset.label} is missing from this installation; "
                          "reinstall netviz (or check out the repository again)")
    return check_sha256(asset.path, asset.sha256, f"the embedded file {asset.label} is altered",
                        f"restore it with `git checkout -- src/{asset.label}` or reinstall netviz")
