"""Checking and adapting one input image for a trained generator (translate and serve share it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from p2p.data.errors import DataError
from p2p.data.folder import adapt_channels
from p2p.data.io import SUFFIXES, pillow_unlimited, probe, read_image


def check_pixels(path: str | os.PathLike, max_pixels: int, flag: str = "--max_pixels") -> None:
  """A DataError, from the header alone, when the image holds more than max_pixels pixels."""
  info = probe(path)
  pixels = info.height * info.width
  if max_pixels > 0 and pixels > max_pixels:
    raise DataError(f"{Path(path).name} is {info.width}x{info.height} ({pixels:,} pixels), "
                    f"over the limit of {max_pixels:,}; pass a smaller image or raise {flag}.")


def read_input(path: str | os.PathLike, max_pixels: int = 0,
               flag: str = "--max_pixels") -> np.ndarray:
  """An image file as H x W x C in its own dtype, refused when over max_pixels (0 = no limit)."""
  path = Path(path)
  if path.suffix.lower() not in SUFFIXES:
    raise DataError(f"{path.name}: p2p reads {' '.join(SUFFIXES)} images, not "
                    f"{path.suffix or 'files without a suffix'}; convert it to PNG or TIFF.")
  if max_pixels <= 0:
    return read_image(path)
  check_pixels(path, max_pixels, flag)
  with pillow_unlimited():  # within the limit the user chose
    return read_image(path)


def model_input(image: np.ndarray, channels: int, source: object) -> np.ndarray:
  """The image in the model's input channels, or a DataError naming the file."""
  try:
    return adapt_channels(image, channels, source, "channels")
  except DataError:
    raise DataError(f"{source} has {image.shape[-1]} channel(s) but this run's model takes "
                    f"{channels}; p2p converts only RGB(A) -> 1, 1 -> 3 and RGBA -> 3. Convert "
                    f"the file, or use a run trained on such images.") from None
