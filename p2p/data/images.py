"""Image helpers: reading any image as RGB, uint8 conversion, display of N bands, sample grids."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def to_uint8(image: np.ndarray) -> np.ndarray:
  """float [-1, 1] -> uint8 [0, 255]."""
  return np.clip(np.rint((np.asarray(image, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def grid(rows: Sequence[Sequence[np.ndarray]], pad: int = 4) -> np.ndarray:
  """Tiles equally sized HxWx3 uint8 images into rows with white gutters."""
  h, w = rows[0][0].shape[:2]
  cols = max(len(r) for r in rows)
  out = np.full((len(rows) * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
  for i, row in enumerate(rows):
    for j, image in enumerate(row):
      y, x = pad + i * (h + pad), pad + j * (w + pad)
      out[y:y + h, x:x + w] = image
  return out


def display(image: np.ndarray) -> np.ndarray:
  """H x W x C uint8 -> H x W x 3 to look at: gray repeated, the first three bands of more."""
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels in (1, 2):
    return np.repeat(image[..., :1], 3, axis=-1)
  return np.ascontiguousarray(image[..., :3])


def triplets(inputs: np.ndarray, generated: np.ndarray, targets: np.ndarray) -> np.ndarray:
  """A grid with one row per example: input | generated | target (floats in [-1, 1])."""
  return grid([[display(to_uint8(a)), display(to_uint8(b)), display(to_uint8(c))]
               for a, b, c in zip(inputs, generated, targets)])


def load_image(path: str | os.PathLike) -> np.ndarray:
  """Any PIL-readable image (RGB, RGBA, L, P, ...) as H x W x 3 uint8; transparency on white."""
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(path) as image:
      image.load()
      if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))
      return np.asarray(image.convert("RGB"))
  except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
    raise ValueError(f"{Path(path)} is not a readable image ({e}); pass a JPEG or PNG.") from None
