"""8-bit images: rounding pixel-space tensors to what an image file holds, PNG files, and JPEG round trips.

Tensors are N×3×H×W float in [0, 1] (pixel space); 8-bit arrays are N×H×W×3 (or H×W×3) uint8, RGB.
A value v in [0, 1] is stored as round(255·v) (round half to even, as torch and numpy round), which is what
saving a float image as PNG means; PNG itself is lossless, so ``png_roundtrip(to_uint8(x)) == to_uint8(x)``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def quantize(images: torch.Tensor) -> torch.Tensor:
    """Pixel-space images rounded to the nearest 8-bit level, still as floats in [0, 1]: exactly the values
    ``from_uint8(to_uint8(images))`` and a PNG file give back, without leaving the device."""
    return images.mul(255).round().clamp(0, 255).div(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """N×3×H×W float in [0, 1] -> N×H×W×3 uint8 (nearest 8-bit level; values outside [0, 1] are clipped)."""
    return images.detach().mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def from_uint8(array: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """N×H×W×3 uint8 -> N×3×H×W float32 in [0, 1] on ``device``."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).float().div(255).to(device)


def save_png(path: Path, image: np.ndarray) -> None:
    """Write one H×W×3 uint8 image as an RGB PNG (no metadata, so equal images give equal files)."""
    Image.fromarray(image, "RGB").save(path, format="PNG", optimize=False)


def load_png(path: Path) -> np.ndarray:
    """Read an image file back as H×W×3 uint8 RGB."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def _roundtrip(image: np.ndarray, **save_args) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image, "RGB").save(buffer, **save_args)
    buffer.seek(0)
    with Image.open(buffer) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


def png_roundtrip(image: np.ndarray) -> np.ndarray:
    """H×W×3 uint8 through an in-memory PNG (lossless: returns an equal array)."""
    return _roundtrip(image, format="PNG")


def jpeg_roundtrip(image: np.ndarray, quality: int = 90) -> np.ndarray:
    """H×W×3 uint8 through an in-memory JPEG at ``quality`` (PIL/libjpeg defaults otherwise: 4:2:0 chroma
    subsampling), as a photo sharing or upload pipeline would store it."""
    return _roundtrip(image, format="JPEG", quality=int(quality))
