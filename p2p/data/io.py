"""Image files of any channel count and bit depth: JPEG, PNG (8/16-bit), TIFF (multi-band,
GeoTIFF tags kept) and .npy arrays, always as H x W x C arrays in the file's own dtype."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from p2p.data.errors import DataError

SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".npy")
# GeoTIFF georeferencing: ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory,
# GeoDoubleParams, GeoAsciiParams, GDAL_METADATA, GDAL_NODATA.
GEO_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113)
_PIL_MODES = {"1": (1, "uint8"), "L": (1, "uint8"), "LA": (2, "uint8"), "RGB": (3, "uint8"),
              "RGBA": (4, "uint8"), "CMYK": (3, "uint8"), "YCbCr": (3, "uint8"),
              "I;16": (1, "uint16"), "I;16L": (1, "uint16"), "I;16B": (1, "uint16"),
              "F": (1, "float32")}
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels (3, palette: from PIL)


@dataclasses.dataclass(frozen=True)
class ImageInfo:
  """What a file's header says: size, channels and sample type."""

  height: int
  width: int
  channels: int
  dtype: str


@contextlib.contextmanager
def pillow_unlimited() -> Iterator[None]:
  """Lifts Pillow's decompression-bomb limit (179 MP) where p2p checked the size itself
  (headers, and inputs within --max_pixels)."""
  from PIL import Image
  limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
  try:
    yield
  finally:
    Image.MAX_IMAGE_PIXELS = limit


def is_image(path: str | os.PathLike) -> bool:
  """Whether p2p reads this file (by suffix; hidden files never)."""
  path = Path(path)
  return path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def _bad(path: Any, why: str) -> DataError:
  return DataError(f"{path} {why}. Replace or delete the file.")


def _kind(path: Path) -> str:
  suffix = path.suffix.lower()
  if suffix not in SUFFIXES:
    raise DataError(f"{path}: p2p reads {', '.join(SUFFIXES)} files, not {suffix or 'no suffix'}"
                    f"; convert it or remove it from the dataset folder.")
  if path.stat().st_size == 0:
    raise _bad(path, "is empty (0 bytes)")
  return {".jpeg": ".jpg", ".tiff": ".tif"}.get(suffix, suffix)


def _png_header(path: Path) -> tuple[int, int, int, int]:
  """(width, height, bit depth, colour type) from a PNG's IHDR chunk."""
  with open(path, "rb") as f:
    head = f.read(26)
  if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n":
    raise _bad(path, "is not a decodable image (not a PNG: bad signature)")
  return (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"), head[24],
          head[25])


def _as_hwc(array: np.ndarray, path: Path) -> np.ndarray:
  if array.ndim == 2:
    array = array[..., None]
  if array.ndim != 3 or min(array.shape) == 0:
    raise _bad(path, f"holds an array of shape {array.shape}, not an H x W or H x W x C image")
  if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
    raise _bad(path, f"holds {array.dtype} samples; p2p reads integer or float images")
  return array.astype(array.dtype.newbyteorder("="), copy=False)


def _tiff_axes(axes: str, shape: Sequence[int], path: Path) -> tuple[int, ...]:
  """The transpose that takes a TIFF series to Y, X, channels (at most one extra axis)."""
  if "Y" not in axes or "X" not in axes:
    raise _bad(path, f"is a TIFF with axes {axes!r} and no Y/X image plane")
  rest = [i for i, a in enumerate(axes) if a not in "YX" and shape[i] > 1]
  if len(rest) > 1:
    raise _bad(path, f"is a TIFF with axes {axes!r} {tuple(shape)}; p2p reads one image of "
               f"H x W x bands (no stacks or time series)")
  return (axes.index("Y"), axes.index("X"), *rest)


def _read_pil(path: Path) -> np.ndarray:
  from PIL import Image
  with Image.open(path) as image:
    image.load()
    mode = image.mode
    if mode in ("P", "PA"):
      image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode in ("1", "CMYK", "YCbCr"):
      image = image.convert("L" if mode == "1" else "RGB")
    elif mode not in _PIL_MODES and mode != "I":
      raise _bad(path, f"has the image mode {mode}, which p2p does not read")
    return np.asarray(image)


def read_image(path: str | os.PathLike) -> np.ndarray:
  """The whole image as H x W x C in the file's dtype (uint8, uint16, float32, ...)."""
  path = Path(path)
  kind = _kind(path)
  try:
    if kind == ".npy":
      array = np.load(path, allow_pickle=False)
    elif kind == ".tif":
      import tifffile
      with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        array = np.transpose(series.asarray(), _tiff_axes(series.axes, series.shape, path))
    elif kind == ".png" and _png_header(path)[2] == 16:
      import imagecodecs
      array = imagecodecs.png_decode(path.read_bytes())
    else:
      array = _read_pil(path)
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001 -- any decoder failure is this one user-facing error
    raise _bad(path, f"is not a decodable image ({type(e).__name__}: {e})") from None
  return _as_hwc(array, path)


def probe(path: str | os.PathLike) -> ImageInfo:
  """Size, channels and dtype from the header only (fast; a broken body fails at read time)."""
  path = Path(path)
  kind = _kind(path)
  try:
    if kind == ".npy":
      array = np.load(path, mmap_mode="r", allow_pickle=False)
      shape, dtype = array.shape, array.dtype
      if len(shape) == 2:
        shape = (*shape, 1)
      if len(shape) != 3:
        raise _bad(path, f"holds an array of shape {array.shape}, not an H x W x C image")
      return ImageInfo(shape[0], shape[1], shape[2], np.dtype(dtype).name)
    if kind == ".tif":
      import tifffile
      with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        order = _tiff_axes(series.axes, series.shape, path)
        shape = [series.shape[i] for i in order]
        return ImageInfo(shape[0], shape[1], shape[2] if len(shape) > 2 else 1,
                         np.dtype(series.dtype).name)
    if kind == ".png":
      width, height, depth, colour = _png_header(path)
      if depth == 16:
        return ImageInfo(height, width, _PNG_CHANNELS.get(colour, 3), "uint16")
    from PIL import Image
    with pillow_unlimited(), Image.open(path) as image:  # the header only: any size is safe
      mode, (width, height) = image.mode, image.size
      if mode in ("P", "PA"):
        channels = 4 if mode == "PA" or "transparency" in image.info else 3
        return ImageInfo(height, width, channels, "uint8")
    if mode == "I":
      return ImageInfo(height, width, 1, "int32")
    if mode not in _PIL_MODES:
      raise _bad(path, f"has the image mode {mode}, which p2p does not read")
    channels, dtype = _PIL_MODES[mode]
    return ImageInfo(height, width, channels, dtype)
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001
    raise _bad(path, f"is not a decodable image ({type(e).__name__}: {e})") from None


def read_geotags(path: str | os.PathLike) -> tuple[tuple, ...]:
  """A GeoTIFF's georeferencing tags as tifffile extratags; () for anything else."""
  path = Path(path)
  if path.suffix.lower() not in (".tif", ".tiff"):
    return ()
  import tifffile
  with tifffile.TiffFile(path) as tif:
    tags = tif.pages[0].tags
    return tuple((t.code, int(t.dtype), t.count, t.value, True)
                 for t in tags.values() if t.code in GEO_TAGS)


def default_suffix(channels: int, dtype: str) -> str:
  """The format an image of this kind is saved in: PNG for 8/16-bit gray or RGB, else TIFF
  (a PNG's 2nd or 4th channel is read as transparency; a 4th band is more often infrared)."""
  if dtype in ("uint8", "uint16") and channels in (1, 3):
    return ".png"
  return ".tif"


def write_image(path: str | os.PathLike, image: np.ndarray, *,
                geotags: Sequence[tuple] = (), quality: int = 95) -> None:
  """Saves H x W x C: PNG (8/16-bit, 1-4 channels), JPEG (8-bit), TIFF (any) or .npy."""
  path = Path(path)
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  channels, dtype, suffix = image.shape[-1], image.dtype.name, path.suffix.lower()
  path.parent.mkdir(parents=True, exist_ok=True)
  if suffix in (".tif", ".tiff"):
    import tifffile
    photometric = "rgb" if channels == 3 and dtype in ("uint8", "uint16") else "minisblack"
    tifffile.imwrite(path, image if channels > 1 else image[..., 0], photometric=photometric,
                     planarconfig="contig" if channels > 1 else None, compression="zlib",
                     extratags=list(geotags), metadata=None)
  elif suffix == ".npy":
    np.save(path, image)
  elif suffix == ".png" and dtype == "uint16" and channels in (1, 2, 3, 4):
    import imagecodecs
    path.write_bytes(imagecodecs.png_encode(image if channels > 1 else image[..., 0]))
  elif suffix in (".png", ".jpg", ".jpeg") and dtype == "uint8" and channels in (
      (1, 2, 3, 4) if suffix == ".png" else (1, 3)):
    from PIL import Image
    Image.fromarray(image if channels > 1 else image[..., 0]).save(
        path, **({} if suffix == ".png" else {"quality": quality}))
  else:
    raise ValueError(f"{path}: a {channels}-channel {dtype} image cannot be saved as "
                     f"{suffix or 'a file without suffix'}; use .tif (any image) or .npy"
                     f"{' or .png' if default_suffix(channels, dtype) == '.png' else ''}.")
