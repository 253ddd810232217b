"""What the demo offers to try: the maps palette, random synthetic maps and val examples.

Everything is made at start-up at the scale the run was trained on (a resize run saw each map
shrunk to load_size; a patches run saw it at native scale), so nothing is committed.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from p2p.config import DataConfig
from p2p.data.images import display
from p2p.data.io import default_suffix, write_image
from p2p.data.synthetic import MAP_COLOURS, SIZE, render_pair
from p2p.data.synthetic.layout import (ARTERIAL, BUILDING, GROUND, HIGHWAY, PARK, STREET,
                                       WATER)
from p2p.data.transforms import center_crop, resize_short
from p2p.data.values import to_8bit

# The brush colours: the maps legend as p2p.data.synthetic paints it (name, class).
PALETTE = (("road", STREET), ("major road", ARTERIAL), ("highway", HIGHWAY), ("water", WATER),
           ("park", PARK), ("building", BUILDING), ("background", GROUND))


@dataclasses.dataclass(frozen=True)
class Example:
  """One example input file, with its ground truth (8-bit view) when there is one."""

  label: str
  input_path: Path
  truth_path: Path | None


def hex_colour(rgb: np.ndarray) -> str:
  """(r, g, b) -> '#rrggbb'."""
  return "#" + "".join(f"{int(v):02x}" for v in rgb)


def palette() -> list[tuple[str, str]]:
  """(name, '#rrggbb') of each brush colour, road first."""
  return [(name, hex_colour(MAP_COLOURS[cls])) for name, cls in PALETTE]


def background_colour() -> tuple[int, int, int]:
  """The maps' empty-land colour, the canvas's starting fill."""
  return tuple(int(v) for v in MAP_COLOURS[GROUND])


def training_scale(data: DataConfig) -> int:
  """The side, in px, at which the run saw a 600 px maps half (synthetic maps render at it)."""
  if data.preprocess == "resize":
    return max(data.load_size, data.image_size, 32)
  return max(round(SIZE * data.image_size / data.patch_size), data.image_size, 32)


def to_training_scale(image: np.ndarray, data: DataConfig) -> np.ndarray:
  """A dataset image brought to the scale the model learned (resize runs: load_size)."""
  if data.preprocess == "resize":
    return resize_short(image, max(data.load_size, data.image_size))
  if data.patch_size != data.image_size:
    return resize_short(image, round(min(image.shape[:2]) * data.image_size / data.patch_size))
  return image


def synthetic_pair(seed: int, data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
  """(map, photo): one random synthetic maps tile at the run's training scale, uint8 RGB."""
  size = training_scale(data)
  pair = render_pair(np.random.default_rng(seed), size)
  return pair[:, size:], pair[:, :size]


def random_map(seed: int, data: DataConfig) -> np.ndarray:
  """A fresh synthetic map of exactly the model's input size (the sketch canvas)."""
  map_, _ = synthetic_pair(seed, data)
  return np.ascontiguousarray(center_crop(map_, data.image_size))


def write_synthetic(folder: Path, count: int, data: DataConfig) -> list[Example]:
  """`count` synthetic map files with their photos as ground truth (seeds 0..count-1)."""
  folder.mkdir(parents=True, exist_ok=True)
  out = []
  for seed in range(count):
    map_, photo = synthetic_pair(seed, data)
    write_image(folder / f"synthetic_{seed}.png", map_)
    write_image(folder / f"synthetic_{seed}_truth.png", photo)
    out.append(Example(f"synthetic {seed}", folder / f"synthetic_{seed}.png",
                       folder / f"synthetic_{seed}_truth.png"))
  return out


def write_val(folder: Path, count: int, data: DataConfig,
              ranges: tuple[tuple[float, float], tuple[float, float]]) -> list[Example]:
  """The first `count` val inputs of the run's dataset with their targets; [] when absent."""
  from p2p.eval.protocols import load_pairs
  if count <= 0:
    return []
  try:
    pairs = load_pairs(data, "val", count)
  except (OSError, ValueError) as e:  # DataError included: the data folder moved or is gone
    logging.info("No val examples: %s", str(e).splitlines()[0])
    return []
  folder.mkdir(parents=True, exist_ok=True)
  out = []
  for name, x, y in zip(pairs.names, pairs.inputs, pairs.targets):
    x, y = to_training_scale(x, data), to_training_scale(y, data)
    stem = f"val_{Path(name).stem}"
    input_path = folder / f"{stem}{default_suffix(x.shape[-1], x.dtype.name)}"
    write_image(input_path, x)
    write_image(folder / f"{stem}_truth.png", display(to_8bit(y, ranges[1])))
    out.append(Example(f"val {name}", input_path, folder / f"{stem}_truth.png"))
  return out
