"""Per-example transforms: patch layout, resize, aligned jitter and flip, scaling to [-1, 1]."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np
from PIL import Image

from p2p.data.errors import DataError
from p2p.data.folder import orient
from p2p.data.values import cast, to_unit, value_range

PATCH_LAYOUTS = ("grid", "cover")


def tile_starts(extent: int, size: int, layout: str = "cover", stride: int = 0) -> list[int]:
  """Start offsets of tiles of `size` along an axis of `extent` pixels.

  grid: non-overlapping tiles from 0, the remainder dropped (the seed: 0, 256 of 600).
  cover: tiles every `stride` pixels with the last one flush with the edge, so every pixel is
  covered; stride 0 spaces the fewest tiles that cover evenly (600 -> 0, 172, 344).
  """
  if size > extent:
    raise DataError(f"data.patch_size={size} is larger than the image half ({extent} px); "
                    f"lower data.patch_size or use data.preprocess='resize'.")
  if layout == "grid":
    return list(range(0, extent - size + 1, size))
  if layout != "cover":
    raise DataError(f"data.patch_layout={layout!r} is not one of {PATCH_LAYOUTS}.")
  if stride <= 0:
    count = math.ceil((extent - size) / size) + 1
    if count == 1:
      return [0]
    return [round(i * (extent - size) / (count - 1)) for i in range(count)]
  starts = list(range(0, extent - size + 1, stride))
  if starts[-1] + size < extent:
    starts.append(extent - size)
  return starts


def patch_boxes(shape: int | Sequence[int], size: int, layout: str = "cover",
                stride: int = 0) -> list[tuple[int, int]]:
  """(top, left) of every patch of an image (height, width), or a square side, row by row."""
  height, width = (shape, shape) if isinstance(shape, (int, np.integer)) else shape[:2]
  lefts = tile_starts(width, size, layout, stride)
  return [(top, left) for top in tile_starts(height, size, layout, stride) for left in lefts]


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bicubic resize (as the PyTorch pix2pix) of H x W x C samples of any dtype, dtype kept.

  8-bit RGB and gray go through PIL's 8-bit filter; other images are resized channel by channel
  in float32, then rounded and clipped back to an integer dtype.
  """
  if image.shape[:2] == (height, width):
    return image
  if image.dtype == np.uint8 and image.shape[-1] in (1, 3):
    mode_image = Image.fromarray(image if image.shape[-1] == 3 else image[..., 0])
    out = np.asarray(mode_image.resize((width, height), Image.BICUBIC))
    return out if out.ndim == 3 else out[..., None]
  planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], np.float32), "F")
                       .resize((width, height), Image.BICUBIC)) for c in range(image.shape[-1])]
  return cast(np.stack(planes, axis=-1), image.dtype)


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bicubic resize to size x size (a square image; the aspect of others is not kept)."""
  return resize_to(image, size, size)


def resize_short(image: np.ndarray, size: int) -> np.ndarray:
  """Bicubic resize so that the shorter side is `size`, keeping the aspect."""
  height, width = image.shape[:2]
  if height == width:
    return resize(image, size)
  scale = size / min(height, width)
  return resize_to(image, max(size, round(height * scale)), max(size, round(width * scale)))


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """The central size x size window."""
  top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
  return image[top:top + size, left:left + size]


def rescale(image: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return to_unit(image, (0.0, 255.0))


def random_crop(input_: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                size: int) -> tuple[np.ndarray, np.ndarray]:
  """The same size x size window, at a uniformly random place, of both images (native scale)."""
  top = rng.integers(0, input_.shape[0] - size + 1)
  left = rng.integers(0, input_.shape[1] - size + 1)
  window = np.s_[top:top + size, left:left + size]
  return input_[window], target[window]


def aligned_jitter(input_: np.ndarray, target: np.ndarray, rng: np.random.Generator, *,
                   load_size: int, crop_size: int, flip: bool,
                   jitter: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Resize both (shorter side load_size), cut the same random crop, flip both or neither."""
  if jitter:
    input_, target = resize_short(input_, load_size), resize_short(target, load_size)
    input_, target = random_crop(input_, target, rng, crop_size)
  else:
    input_ = center_crop(resize_short(input_, crop_size), crop_size)
    target = center_crop(resize_short(target, crop_size), crop_size)
  if flip and rng.random() < 0.5:
    input_, target = input_[:, ::-1], target[:, ::-1]
  return input_, target


def image_regions(sizes: np.ndarray, size: int, layout: str = "cover", stride: int = 0,
                  whole: bool = False) -> np.ndarray:
  """(image, top, left) of every region, image by image; top = -1 for a whole image."""
  if whole:
    return np.stack([np.arange(len(sizes)), -np.ones(len(sizes), int),
                     -np.ones(len(sizes), int)], axis=1).astype(np.int64)
  rows, cache = [], {}
  for i, shape in enumerate(sizes):
    key = (int(shape[0]), int(shape[1]))
    if key not in cache:
      cache[key] = patch_boxes(key, size, layout, stride)
    rows += [(i, top, left) for top, left in cache[key]]
  return np.array(rows, np.int64).reshape(-1, 3)


@dataclasses.dataclass(frozen=True)
class ReadRegion(grain.transforms.Map):
  """Element index -> {'input', 'target'} native region (a patch or a whole image) of one pair."""

  source: Any                      # random-access: index -> {'a', 'b', 'name'}
  image_indices: Sequence[int]     # this process's images, into source
  regions: np.ndarray              # (position into image_indices, top, left); top -1 = whole
  region_size: int                 # patch size in pixels (ignored for whole images)
  direction: str

  def map(self, index: int) -> dict[str, np.ndarray]:
    position, top, left = (int(v) for v in self.regions[index])
    return self._cut(self._read(position), [(top, left)])[0]

  def _read(self, position: int) -> dict:
    return self.source[int(self.image_indices[position])]

  def _cut(self, record: dict, boxes: Sequence[tuple[int, int]]) -> list[dict[str, np.ndarray]]:
    input_, target = orient(record["a"], record["b"], self.direction)
    regions = []
    for top, left in boxes:
      if top < 0:
        regions.append({"input": input_, "target": target})
        continue
      if top + self.region_size > input_.shape[0] or left + self.region_size > input_.shape[1]:
        raise DataError(f"{record['name']} is {input_.shape[1]}x{input_.shape[0]} px, smaller "
                        f"than when the split was scanned; re-run with the files unchanged.")
      window = np.s_[top:top + self.region_size, left:left + self.region_size]
      regions.append({"input": input_[window], "target": target[window]})
    return regions

  def image_regions(self, position: int) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """(element indices, regions) of this process's position-th image, decoded once."""
    rows = np.flatnonzero(self.regions[:, 0] == position)
    boxes = [(int(self.regions[r, 1]), int(self.regions[r, 2])) for r in rows]
    return rows, self._cut(self._read(position), boxes)


@dataclasses.dataclass(frozen=True)
class Jitter(grain.transforms.RandomMap):
  """Training augmentation: aligned resize + random crop + flip, then scale to [-1, 1]."""

  load_size: int
  crop_size: int
  flip: bool
  jitter: bool = True
  ranges: tuple[Sequence[float], Sequence[float]] = ((), ())  # (input, target); () = dtype's

  def random_map(self, element: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    input_, target = element["input"], element["target"]
    input_, target = aligned_jitter(input_, target, rng, load_size=self.load_size,
                                    crop_size=self.crop_size, flip=self.flip, jitter=self.jitter)
    return {"input": _unit(input_, self.ranges[0]), "target": _unit(target, self.ranges[1])}


@dataclasses.dataclass(frozen=True)
class Resize(grain.transforms.Map):
  """Evaluation: shorter side to the model size, centre crop, scale to [-1, 1]; no randomness."""

  size: int
  ranges: tuple[Sequence[float], Sequence[float]] = ((), ())  # (input, target); () = dtype's

  def map(self, element: dict) -> dict[str, np.ndarray]:
    out = {}
    for key, given in zip(("input", "target"), self.ranges):
      image = center_crop(resize_short(element[key], self.size), self.size)
      out[key] = _unit(image, given)
    return out


def _unit(image: np.ndarray, given: Sequence[float]) -> np.ndarray:
  """Scaled to [-1, 1] and clipped there (bicubic resizing of floats can overshoot)."""
  return to_unit(image, value_range(image.dtype, given), clip=True)
