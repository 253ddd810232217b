"""A dataset folder's pairs: scanned and checked once, decoded as (A, B) arrays of any channel
count and bit depth, and described (layout, channels, dtypes, ranges) for the run's config."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from p2p.data.errors import DataError
from p2p.data.io import probe, read_image
from p2p.data.layouts import Layout, PairFiles, detect, resolve_val_source, split_pairs
from p2p.data.values import check_values, value_range

DIRECTIONS = ("AtoB", "BtoA", "map_to_satellite", "satellite_to_map")
ALIASES = {"map_to_satellite": "BtoA", "satellite_to_map": "AtoB"}  # maps: A = photo (left)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601, as PIL's convert('L')


def input_side(direction: str) -> str:
  """'a' or 'b': the side a direction takes as the model's input."""
  if direction not in DIRECTIONS:
    raise DataError(f"data.direction={direction!r} is not one of {DIRECTIONS}.")
  return "a" if ALIASES.get(direction, direction) == "AtoB" else "b"


def orient(a: Any, b: Any, direction: str) -> tuple[Any, Any]:
  """(input, target) from the (A, B) sides of anything."""
  return (a, b) if input_side(direction) == "a" else (b, a)


def split_pair(pair: np.ndarray, direction: str) -> tuple[np.ndarray, np.ndarray]:
  """(input, target) halves of a side-by-side pair: A is the left half, B the right."""
  width = pair.shape[1] // 2
  return orient(pair[:, :width], pair[:, width:], direction)


def make_dataset_hint(root: Path) -> str:
  """The command that fills a missing dataset folder, judged by its name."""
  if "synthetic" in root.name.lower():
    return (f"Generate it with `python -m p2p.data.synthetic --out {root} --train 200 --val 16 "
            "--seed 0`, or point data.data_dir elsewhere.")
  if "maps" in root.name.lower():
    return (f"Download the maps dataset with `python -m p2p.data.download --out {root}`, or "
            "point data.data_dir (--config.data.data_dir=DIR) at a folder with train/ and val/.")
  return ("Point data.data_dir (--config.data.data_dir=DIR) at your dataset: side-by-side pairs "
          "in train/ and val/, or train/A and train/B folders (docs/data.md has every layout; "
          "`p2p-inspect DIR` checks one).")


def list_images(root: str | os.PathLike, split: str) -> list[Path]:
  """A side-by-side split's image files in natural order (the maps layout)."""
  pairs = split_pairs(root, Layout("side_by_side"), split, val_source="folder", val_fraction=0.0)
  return [Path(p.a) for p in pairs]


def adapt_channels(image: np.ndarray, channels: int, path: object, field: str) -> np.ndarray:
  """The image with `channels` channels: as it is, RGB -> gray (luma), gray -> RGB, RGBA -> RGB."""
  have = image.shape[-1]
  if channels in (0, have):
    return image
  if channels == 1 and have in (3, 4):
    gray = np.tensordot(image[..., :3].astype(np.float64), LUMA, axes=([-1], [0]))[..., None]
    if np.issubdtype(image.dtype, np.integer):
      gray = np.rint(gray)
    return gray.astype(image.dtype)
  if channels == 3 and have == 1:
    return np.repeat(image, 3, axis=-1)
  if channels == 3 and have == 4:
    return image[..., :3]
  raise DataError(f"{path} has {have} channel(s) and {field}={channels}; p2p converts only "
                  f"RGB(A) -> 1, 1 -> 3 and RGBA -> 3. Set {field}=0 to use the file's channels.")


def load_pair(files: PairFiles, a_channels: int = 0, b_channels: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
  """Decodes a pair as (A, B) arrays, H x W x C each in the files' dtypes."""
  if files.b is None:
    pair = read_image(files.a)
    check_pair_shape(pair.shape, files.a)
    width = pair.shape[1] // 2
    a, b = pair[:, :width], pair[:, width:]
  else:
    a, b = read_image(files.a), read_image(files.b)
    if a.shape[:2] != b.shape[:2]:
      raise DataError(f"{files.a} is {a.shape[1]}x{a.shape[0]} but its partner {files.b} is "
                      f"{b.shape[1]}x{b.shape[0]} (WxH); the two images of a pair must be the "
                      f"same size. Re-export one of them or remove the pair.")
  return (adapt_channels(a, a_channels, files.a, "data.a_channels"),
          adapt_channels(b, b_channels, files.b or files.a, "data.b_channels"))


def check_pair_shape(shape: Sequence[int], path: str | os.PathLike) -> None:
  """Raises DataError unless a side-by-side image is twice as wide as it is high."""
  height, width = shape[0], shape[1]
  if width != 2 * height:
    raise DataError(
        f"{path} is {width}x{height} (WxH); a side-by-side pair must be twice as wide as it is "
        f"high (A left, B right, e.g. 1200x600). Re-export the pair, remove the file, or keep "
        f"A and B in train/A and train/B folders (any size; docs/data.md).")


@dataclasses.dataclass(frozen=True)
class Side:
  """What every image of one side (A or B) has in common."""

  channels: int
  dtype: str


@dataclasses.dataclass(frozen=True)
class Scan:
  """A split's checked pairs, their sizes (height, width of each side) and their two sides."""

  pairs: list[PairFiles]
  sizes: np.ndarray
  a: Side
  b: Side
  layout: Layout
  val_source: str


def _side_infos(files: PairFiles) -> tuple[Any, Any]:
  """Header facts of both sides (a side-by-side image is split in two)."""
  if files.b is None:
    info = probe(files.a)
    check_pair_shape((info.height, info.width), files.a)
    half = dataclasses.replace(info, width=info.width // 2)
    return half, half
  a, b = probe(files.a), probe(files.b)
  if (a.height, a.width) != (b.height, b.width):
    raise DataError(f"{files.a} is {a.width}x{a.height} but its partner {files.b} is "
                    f"{b.width}x{b.height} (WxH); the two images of a pair must be the same "
                    f"size. Re-export one of them or remove the pair.")
  return a, b


def check_pair(files: PairFiles, cfg: Any, min_size: int, verify: bool
           ) -> tuple[tuple[int, int], Side, Side] | DataError:
  """(size, A side, B side) of one pair, or the DataError that says what is wrong with it.

  min_size: the crop in px (smaller pairs are errors); verify: decode (else headers only).
  """
  try:
    if verify:
      a, b = load_pair(files, cfg.a_channels, cfg.b_channels)
      for image, path, side in ((a, files.a, "a"), (b, files.b or files.a, "b")):
        check_values(image, value_range(image.dtype, getattr(cfg, f"{side}_range")), path,
                     f"data.{side}_range")
      size = a.shape[:2]
      sides = (Side(a.shape[-1], a.dtype.name), Side(b.shape[-1], b.dtype.name))
    else:
      infos = _side_infos(files)
      size = (infos[0].height, infos[0].width)
      sides = tuple(Side(getattr(cfg, f"{s}_channels") or i.channels, i.dtype)
                    for s, i in zip("ab", infos))
    if min(size) < min_size:
      raise DataError(f"{files.a} is {size[1]}x{size[0]} px (WxH per side), smaller than the "
                      f"{min_size} px crop. Remove the file, set data.skip_bad_files=True, or "
                      f"lower data.patch_size/data.image_size.")
  except DataError as e:
    if "skip_bad_files" not in str(e):
      return DataError(f"{e} Or set data.skip_bad_files=True to skip such pairs.")
    return e
  return size, *sides


def _common_side(results: list, pairs: list[PairFiles], index: int, side: str
                 ) -> tuple[Side, list]:
  """The channels/dtype most files of a side share; the others become errors."""
  counts = collections.Counter(r[index] for r in results if not isinstance(r, DataError))
  if not counts:
    return Side(0, ""), results
  common = counts.most_common(1)[0][0]
  out = []
  for files, r in zip(pairs, results):
    if not isinstance(r, DataError) and r[index] != common:
      path = files.a if side == "a" or files.b is None else files.b
      r = DataError(f"{path} has {r[index].channels} channel(s) of {r[index].dtype} but the "
                    f"other {side.upper()} images have {common.channels} of {common.dtype}: every "
                    f"image of a side must have the same channels and bit depth. Convert it, "
                    f"set data.{side}_channels={common.channels} to convert channels on load, "
                    f"or remove it.")
    out.append(r)
  return common, out


def scan_split(cfg: Any, split: str, *, verify: bool | None = None,
               min_size: int | None = None) -> Scan:
  """Finds a split's pairs and checks every one (decoding it unless verify is False).

  A bad pair stops the scan with its error, or is skipped and logged with data.skip_bad_files.
  """
  layout = detect(cfg.data_dir, cfg.layout, cfg.a_dir, cfg.b_dir)
  val_source = resolve_val_source(cfg.data_dir, layout, cfg.val_source)
  pairs = split_pairs(cfg.data_dir, layout, split, val_source=val_source,
                      val_fraction=cfg.val_fraction, skip_unmatched=cfg.skip_bad_files)
  verify = cfg.verify_images if verify is None else verify
  if min_size is None:
    min_size = cfg.patch_size if cfg.preprocess == "patches" else cfg.image_size
  with concurrent.futures.ThreadPoolExecutor(max(cfg.num_threads, 2)) as pool:
    results = list(pool.map(lambda f: check_pair(f, cfg, min_size, verify), pairs))
  a, results = _common_side(results, pairs, 1, "a")
  b, results = _common_side(results, pairs, 2, "b")
  bad = [(p, r) for p, r in zip(pairs, results) if isinstance(r, DataError)]
  if bad and not cfg.skip_bad_files:
    raise bad[0][1]
  for files, error in bad:
    logging.warning("Skipping %s: %s", files.name, error)
  if bad:
    logging.warning("Skipped %d of %d pairs of %s/%s.", len(bad), len(pairs), cfg.data_dir,
                    split)
  good = [(p, r) for p, r in zip(pairs, results) if not isinstance(r, DataError)]
  if not good:
    raise DataError(f"Every pair of {cfg.data_dir} ({split}) was skipped, so there is nothing "
                    f"to train on; the first: {bad[0][1]}")
  sizes = np.array([r[0] for _, r in good], np.int64).reshape(-1, 2)
  return Scan([p for p, _ in good], sizes, a, b, layout, val_source)


def describe(cfg: Any, scan: Scan) -> dict[str, Any]:
  """The data fields a run records: resolved layout, hold-out, channels, dtypes and ranges."""
  fields = {"layout": scan.layout.kind, "a_dir": scan.layout.a_dir, "b_dir": scan.layout.b_dir,
            "val_source": scan.val_source}
  for side in ("a", "b"):
    info: Side = getattr(scan, side)
    fields[f"{side}_channels"] = info.channels
    fields[f"{side}_dtype"] = info.dtype
    fields[f"{side}_range"] = value_range(info.dtype, getattr(cfg, f"{side}_range"))
  return fields


class FolderSource:
  """Random-access grain source over a split's pairs; yields {'a', 'b', 'name'}."""

  def __init__(self, pairs: Sequence[PairFiles], a_channels: int = 0, b_channels: int = 0):
    self._pairs = list(pairs)
    self._channels = (a_channels, b_channels)

  def __len__(self) -> int:
    return len(self._pairs)

  def __getitem__(self, index: int) -> dict:
    files = self._pairs[index]
    a, b = load_pair(files, *self._channels)
    return {"a": a, "b": b, "name": files.name}

  def __repr__(self) -> str:
    return f"FolderSource({len(self)} pairs)"

