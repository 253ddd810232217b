"""Per-example transforms: patch layout, resize, aligned jitter and flip, rescale to [-1, 1]."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import grain
import numpy as np
from PIL import Image

from p2p.data.errors import DataError
from p2p.data.folder import split_pair

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


def patch_boxes(half_size: int, size: int, layout: str = "cover",
                stride: int = 0) -> list[tuple[int, int]]:
  """(top, left) of every patch of a square half, row by row."""
  starts = tile_starts(half_size, size, layout, stride)
  return [(top, left) for top in starts for left in starts]


def resize(image: np.ndarray, size: int) -> np.ndarray:
  """Bicubic resize of a uint8 HxWx3 image to size x size (as the PyTorch pix2pix)."""
  if image.shape[0] == size and image.shape[1] == size:
    return image
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def rescale(image: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return image.astype(np.float32) / 127.5 - 1.0


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
  """Resize both to load_size, cut the same random crop from both, flip both or neither."""
  if jitter:
    input_, target = resize(input_, load_size), resize(target, load_size)
    input_, target = random_crop(input_, target, rng, crop_size)
  else:
    input_, target = resize(input_, crop_size), resize(target, crop_size)
  if flip and rng.random() < 0.5:
    input_, target = input_[:, ::-1], target[:, ::-1]
  return input_, target


@dataclasses.dataclass(frozen=True)
class ReadRegion(grain.transforms.Map):
  """Element index -> {'input', 'target'} uint8 region (a patch or a whole half) of one pair."""

  source: Any                      # random-access: index -> {'pair', 'name'}
  image_indices: Sequence[int]     # this process's images, into source
  boxes: Sequence[tuple[int, int]]  # (top, left) per region; empty = the whole half
  region_size: int                 # patch size in pixels (ignored for whole halves)
  direction: str

  @property
  def regions_per_image(self) -> int:
    """Elements each image gives per epoch."""
    return max(len(self.boxes), 1)

  def map(self, index: int) -> dict[str, np.ndarray]:
    count = self.regions_per_image
    return self.image_regions(index // count, [index % count])[0]

  def image_regions(self, position: int,
                    which: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
    """Regions `which` (default: all) of this process's position-th image, decoded once.

    Without boxes, the one region is the whole half.
    """
    record = self.source[int(self.image_indices[position])]
    input_, target = split_pair(record["pair"], self.direction)
    if not self.boxes:
      return [{"input": input_, "target": target}]
    half = input_.shape[0]
    boxes = self.boxes if which is None else [self.boxes[i] for i in which]
    regions = []
    for top, left in boxes:
      if top + self.region_size > half or left + self.region_size > half:
        raise DataError(
            f"{record['name']} has {half}px halves but the patch layout was computed for larger "
            f"ones; in patches mode every pair of a split must have the same size "
            f"(or use data.preprocess='resize').")
      window = np.s_[top:top + self.region_size, left:left + self.region_size]
      regions.append({"input": input_[window], "target": target[window]})
    return regions


@dataclasses.dataclass(frozen=True)
class Jitter(grain.transforms.RandomMap):
  """Training augmentation: aligned resize + random crop + flip, then rescale to [-1, 1]."""

  load_size: int
  crop_size: int
  flip: bool
  jitter: bool = True

  def random_map(self, element: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    input_, target = element["input"], element["target"]
    input_, target = aligned_jitter(input_, target, rng, load_size=self.load_size,
                                    crop_size=self.crop_size, flip=self.flip, jitter=self.jitter)
    return {"input": rescale(input_), "target": rescale(target)}


@dataclasses.dataclass(frozen=True)
class Resize(grain.transforms.Map):
  """Evaluation: resize both to the model size, then rescale to [-1, 1]; no randomness."""

  size: int

  def map(self, element: dict) -> dict[str, np.ndarray]:
    return {k: rescale(resize(element[k], self.size)) for k in ("input", "target")}
