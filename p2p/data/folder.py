"""Reads the pix2pix paired-image folder format: <root>/<split>/*.jpg, photo | map side by side."""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from p2p.data.errors import DataError

DIRECTIONS = ("map_to_satellite", "satellite_to_map")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def list_images(root: str | os.PathLike, split: str) -> list[Path]:
  """Sorted image paths of a split; DataError for a missing root or split, or an empty split."""
  root = Path(root).expanduser()
  if not root.is_dir():
    raise DataError(f"Dataset folder {root} does not exist. {make_dataset_hint(root)}")
  split_dir = root / split
  if not split_dir.is_dir():
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    raise DataError(
        f"Split folder {split_dir} does not exist (found: {found or 'no folders'}). "
        f"A dataset needs {root}/train and {root}/val holding side-by-side .jpg pairs.")
  paths = sorted((p for p in split_dir.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
                 key=_natural_key)
  if not paths:
    raise DataError(
        f"Split folder {split_dir} holds no .jpg/.png images. Put the {split} pairs there "
        f"(photo on the left, map on the right, width = 2 x height).")
  return paths


def make_dataset_hint(root: Path) -> str:
  """The command that fills a missing dataset folder, judged by its name."""
  if "synthetic" in root.name.lower():
    return (f"Generate it with `python -m p2p.data.synthetic --out {root} --train 200 --val 16 "
            "--seed 0`, or point data.data_dir elsewhere.")
  if "maps" in root.name.lower():
    return (f"Download the maps dataset with `python -m p2p.data.download --out {root}`, or "
            "point data.data_dir (--config.data.data_dir=DIR) at a folder with train/ and val/.")
  return ("Point data.data_dir (--config.data.data_dir=DIR) at a folder holding train/ and "
          "val/ side-by-side pairs (`python -m p2p.data.download --out data/maps` fetches the "
          "maps; docs/data.md has the layout).")


def _natural_key(path: Path) -> tuple:
  """Sort 2.jpg before 10.jpg, like the original file numbering."""
  stem = path.stem
  return (0, int(stem), path.name) if stem.isdigit() else (1, 0, path.name)


def load_pair(path: str | os.PathLike) -> np.ndarray:
  """Decodes one side-by-side pair to uint8 (H, 2H, 3); raises DataError if it is not one."""
  try:
    with Image.open(path) as image:
      image.load()
      pair = np.asarray(image.convert("RGB"))
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    raise DataError(
        f"{path} is not a decodable image ({e}). Replace or delete the file, or set "
        f"data.skip_bad_files=True to skip undecodable files.") from None
  check_pair_shape(pair.shape, path)
  return pair


def check_pair_shape(shape: Sequence[int], path: str | os.PathLike) -> None:
  """Raises DataError unless an image is twice as wide as it is high."""
  height, width = shape[0], shape[1]
  if width != 2 * height:
    raise DataError(
        f"{path} is {width}x{height} (WxH); a pix2pix pair must be twice as wide as it is "
        f"high (photo left, map right, e.g. 1200x600). Re-export the pair or remove the file.")


def split_pair(pair: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
  """Returns (input, target) halves of a pair; map_to_satellite takes the map (right) as input."""
  if direction not in DIRECTIONS:
    raise DataError(f"data.direction={direction!r} is not one of {DIRECTIONS}.")
  width = pair.shape[1] // 2
  photo, map_ = pair[:, :width], pair[:, width:]
  return (map_, photo) if direction == "map_to_satellite" else (photo, map_)


def scan_split(root: str | os.PathLike, split: str, *, skip_bad_files: bool = False,
               verify: bool = True, num_threads: int = 4) -> list[Path]:
  """Lists a split and checks every file decodes as a pair, raising or skipping bad ones.

  With verify=False only headers are read (fast), so a truncated body fails later, at load time.
  """
  paths = list_images(root, split)
  check = _check_full if verify else _check_header
  with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
    errors = list(pool.map(check, paths))
  bad = [(p, e) for p, e in zip(paths, errors) if e is not None]
  if bad and not skip_bad_files:
    raise bad[0][1]
  for path, error in bad:
    logging.warning("Skipping %s: %s", path, error)
  if bad:
    logging.warning("Skipped %d of %d files in %s/%s.", len(bad), len(paths), root, split)
  good = [p for p, e in zip(paths, errors) if e is None]
  if not good:
    raise DataError(f"Every file in {Path(root) / split} is unreadable; nothing to train on.")
  return good


def _check_full(path: Path) -> DataError | None:
  try:
    load_pair(path)
  except DataError as e:
    return e
  return None


def _check_header(path: Path) -> DataError | None:
  try:
    with Image.open(path) as image:
      size = image.size
  except (OSError, SyntaxError, ValueError) as e:
    return DataError(f"{path} is not a decodable image ({e}). Replace or delete the file, or "
                     f"set data.skip_bad_files=True to skip undecodable files.")
  try:
    check_pair_shape((size[1], size[0]), path)
  except DataError as e:
    return e
  return None


class FolderSource:
  """Random-access grain source over a list of pair files; yields {'pair', 'name'}."""

  def __init__(self, paths: Sequence[str | os.PathLike]):
    self._paths = [str(p) for p in paths]

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> dict:
    path = self._paths[index]
    return {"pair": load_pair(path), "name": os.path.basename(path)}

  def __repr__(self) -> str:
    return f"FolderSource({len(self)} files)"
